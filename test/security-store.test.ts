/**
 * Attack suite, the store and its audit chain (docs/security.md; findings of the security review):
 * F-5 a truncated, wiped or rewritten tail is caught against an anchor kept outside the database
 * (`audit verify --head/--count`, signed checkpoints); F-21 a corrupt page is found when the store is
 * opened, not when it is read; F-22 a new store is readable by its owner only.
 */
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeridianError } from '../src/errors.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { runMeridian } from './support/cli-kit.js';

const root = mkdtempSync(join(tmpdir(), 'meridian-sec-store-'));
let n = 0;
const fresh = (): string => join(root, `t${++n}`, '.meridian', 'state.db');

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A store with `count` audit entries; returns its path. */
async function storeWith(count: number): Promise<string> {
  const file = fresh();
  const store = await openSqliteStore(file);
  for (let i = 1; i <= count; i++) {
    await store.appendAudit({ actor: { id: 'alice' }, action: 'test.entry', subject: `s${i}`, reason: `entry ${i}`, data: { i } });
  }
  await store.close();
  return file;
}

/** The head (count and hash) `audit verify -o json` prints. */
function head(file: string): { count: number; headHash: string; ok: boolean } {
  const r = runMeridian(['audit', 'verify', '--state', file, '-o', 'json'], { cwd: root });
  return JSON.parse(r.out) as { count: number; headHash: string; ok: boolean };
}

/** Runs raw SQL on the store as an attacker with write access to the file would. */
function tamper(file: string, sql: string): void {
  const db = new Database(file);
  db.exec('DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete');
  db.exec(sql);
  db.close();
}

describe('F-5: the audit head anchored outside the database', () => {
  let file = '';
  let anchor = { count: 0, headHash: '' };
  beforeAll(async () => {
    file = await storeWith(13);
    anchor = head(file); // what CI printed and kept after the 13th entry
  });

  it('truncating the tail and moving audit_head passes the in-database check, but not `--head/--count`', () => {
    const t = join(root, 'truncated.db');
    new Database(file, { readonly: true }).exec(`VACUUM INTO '${t}'`);
    tamper(
      t,
      'DELETE FROM audit_log WHERE seq >= 11; UPDATE audit_head SET count = 10, hash = (SELECT hash FROM audit_log WHERE seq = 10)',
    );
    // the finding as the review saw it: the chain alone is "ok"
    expect(head(t)).toMatchObject({ ok: true, count: 10 });
    const r = runMeridian(['audit', 'verify', '--state', t, '--head', anchor.headHash, '--count', String(anchor.count)], { cwd: root });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/entries 11\.\.13 .*(deleted|truncated)/);
    // the untouched store verifies against the same anchor, and against an older one after more appends
    const ok = runMeridian(['audit', 'verify', '--state', file, '--head', anchor.headHash, '--count', '13'], { cwd: root });
    expect([ok.code, ok.out]).toEqual([0, expect.stringMatching(/anchor: entry 13 is .* as expected/)]);
  });

  it('a wiped log and a rewritten, rehashed entry are both caught by the anchor', async () => {
    const wiped = join(root, 'wiped.db');
    new Database(file, { readonly: true }).exec(`VACUUM INTO '${wiped}'`);
    tamper(wiped, `DELETE FROM audit_log; UPDATE audit_head SET count = 0, hash = '${'0'.repeat(64)}'`);
    expect(head(wiped)).toMatchObject({ ok: true, count: 0 });
    const r = runMeridian(['audit', 'verify', '--state', wiped, '--head', anchor.headHash, '--count', '13'], { cwd: root });
    expect(r.code).toBe(1);

    // rewrite entry 2 and rehash everything after it with the documented formula (review attempt 5.13)
    const rewritten = join(root, 'rewritten.db');
    new Database(file, { readonly: true }).exec(`VACUUM INTO '${rewritten}'`);
    const { entryHash } = await import('../src/store/audit-chain.js');
    const db = new Database(rewritten);
    db.exec('DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete');
    const rows = db.prepare('SELECT * FROM audit_log ORDER BY seq').all() as Record<string, unknown>[];
    let prev = '0'.repeat(64);
    for (const row of rows) {
      const actorId = row['seq'] === 2 ? 'mallory' : String(row['actor']);
      const body = {
        seq: Number(row['seq']),
        at: String(row['at']),
        actor: { id: actorId },
        action: String(row['action']),
        subject: String(row['subject']),
        reason: (row['reason'] as string | null) ?? null,
        data: JSON.parse(String(row['data'])) as never,
      };
      const hash = entryHash(prev, body as never);
      db.prepare('UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?').run(actorId, prev, hash, body.seq);
      prev = hash;
    }
    db.prepare('UPDATE audit_head SET hash = ? WHERE id = 1').run(prev);
    db.close();
    expect(head(rewritten)).toMatchObject({ ok: true, count: 13 });
    const rw = runMeridian(['audit', 'verify', '--state', rewritten, '--head', anchor.headHash], { cwd: root });
    expect(rw.code).toBe(1);
    expect(rw.out).toMatch(/anchor/);
  });

  it('a signed checkpoint is written by `audit checkpoint` and checked by `audit verify --checkpoint`', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const priv = join(root, 'ci.key');
    const pub = join(root, 'ci.pub');
    writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    const cp = runMeridian(['audit', 'checkpoint', '--state', file, '--sign-key', priv], { cwd: root });
    expect(cp.code).toBe(0);
    const checkpoint = JSON.parse(cp.out) as { count: number; head: string; signature: string };
    expect(checkpoint).toMatchObject({ count: 13, head: anchor.headHash, signature: expect.any(String) });
    const cpFile = join(root, 'checkpoint.json');
    writeFileSync(cpFile, cp.out);
    const good = runMeridian(['audit', 'verify', '--state', file, '--checkpoint', cpFile, '--verify-key', pub], { cwd: root });
    expect(good.code).toBe(0);
    // a forged checkpoint (its count moved down to match a truncation) fails its signature
    writeFileSync(cpFile, JSON.stringify({ ...checkpoint, count: 10 }));
    const forged = runMeridian(['audit', 'verify', '--state', file, '--checkpoint', cpFile, '--verify-key', pub], { cwd: root });
    expect(forged.code).toBe(2);
    expect(forged.err).toMatch(/MERIDIAN_E_AUDIT_CHECKPOINT.*signature/);
  });

  it('a malformed --head is a usage error, not a crash', () => {
    const r = runMeridian(['audit', 'verify', '--state', file, '--head', 'xyz'], { cwd: root });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--head/);
  });
});

describe('F-21: corruption is found when the store opens', () => {
  it('random bytes over a page in the middle of the store: MERIDIAN_E_STORE_CORRUPT at open', async () => {
    const file = await storeWith(200);
    const db = new Database(file);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const page = Number(db.pragma('page_size', { simple: true }));
    const root = (db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'rollout_locks'").get() as { rootpage: number }).rootpage;
    db.close();
    const fd = openSync(file, 'r+');
    const junk = Buffer.alloc(page, 0x5a);
    writeSync(fd, junk, 0, page, (root - 1) * page);
    closeSync(fd);
    let code: string | undefined;
    try {
      await (await openSqliteStore(file)).close();
    } catch (err) {
      code = err instanceof MeridianError ? err.code : String(err);
    }
    expect(code).toBe('MERIDIAN_E_STORE_CORRUPT');
  });
});

describe('F-22: a new store is readable by its owner only', () => {
  it('creates the state file 0600 and its directory 0700', async () => {
    const file = fresh();
    const store = await openSqliteStore(file);
    await store.appendAudit({ actor: { id: 'a' }, action: 'x', subject: 'y', data: null });
    expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(`${file}-wal`).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(join(file, '..')).mode & 0o777).toString(8)).toBe('700');
    await store.close();
  });
});
