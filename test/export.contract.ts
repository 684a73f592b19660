/**
 * The exporter contract suite: every exporter runs it (as every target runs targets.contract.ts). It
 * holds each one to the contract in src/export/contract.ts: pure and deterministic, golden files for the
 * fixture fleet, files the target's own tool accepts, a loss report of catalogued codes that each say
 * what was exported instead and its effect, and residency: a locked row's configuration never names a
 * cluster outside the allowed jurisdictions.
 */
import { spawnSync } from 'node:child_process';

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterAddresses, exportInput, LOSS_CODES, writeExport, type Exporter } from '../src/export/index.js';
import { fixtureRevision, tempDir } from './support/export-kit.js';
import { expectGolden } from './support/golden.js';

const GOLDEN = join(import.meta.dirname, 'golden', 'export');

/** True when the tool is installed here (the contract runs the check only where the server exists). */
function installed(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

export function exporterContract(exporter: Exporter): void {
  describe(`exporter contract: ${exporter.target}`, () => {
    const rev = fixtureRevision();
    const input = exportInput(rev, clusterAddresses(rev), {
      countryNets: { '127.0.1.0/24': 'DE' },
      runtimeApi: '/tmp/meridian-contract.sock',
    });

    it('is pure: the same input gives the same files and loss report', () => {
      expect(exporter.export(input)).toEqual(exporter.export(exportInput(rev, clusterAddresses(rev), input.settings)));
    });

    it('matches its golden files (UPDATE_GOLDEN=1 rewrites them)', () => {
      const out = exporter.export(input);
      const dir = join(GOLDEN, exporter.target);
      const files = { ...out.files, 'loss-report.json': `${JSON.stringify(out.loss, null, 2)}\n` };
      for (const [name, text] of Object.entries(files)) {
        expect(name.startsWith('/') || name.split('/').includes('..'), name).toBe(false);
        expectGolden(join(dir, name), text);
      }
    });

    it('writes files the target’s own tool accepts', () => {
      const check = exporter.check;
      if (!check) return;
      const [tool, ...args] = check;
      expect(installed(tool ?? ''), `${tool} must be installed (.ci/run installs it)`).toBe(true);
      const tmp = tempDir(`meridian-contract-${exporter.target}-`);
      try {
        writeExport(tmp.dir, exporter.target, exporter.export(input));
        const r = spawnSync(
          tool ?? '',
          args.map((a) => a.replace('{dir}', tmp.dir)),
          { encoding: 'utf8' },
        );
        expect(r.status, `${check.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
      } finally {
        tmp.cleanup();
      }
    });

    it('reports every loss with a catalogued code, the model’s value, what was exported instead and its effect', () => {
      for (const f of exporter.export(input).loss) {
        expect(Object.keys(LOSS_CODES)).toContain(f.code);
        expect(f.target).toBe(exporter.target);
        for (const field of [f.model, f.exported, f.effect]) expect(field.trim().length).toBeGreaterThan(5);
        if (f.service !== null) expect(Object.keys(input.projection.services)).toContain(f.service);
      }
    });

    it('never names a cluster outside a lock’s allowed jurisdictions in that row’s part of the configuration', () => {
      const text = Object.values(exporter.export(input).files).join('\n');
      const eu = Object.entries(rev.clusters).filter(([, c]) => c.jurisdiction === 'EU');
      const outside = Object.entries(rev.clusters).filter(([, c]) => c.jurisdiction !== 'EU');
      // the fixture locks EU clients to the EU: each EU row's block names only EU clusters' addresses
      for (const client of ['eu-west', 'eu-central']) {
        const block = rowBlock(text, client);
        if (block === null) continue;
        expect(
          eu.some(([, c]) => c.ingress && block.includes(c.ingress.address.split(':')[0] ?? '?')) || /\beu-(west|central)/.test(block),
        ).toBe(true);
        for (const [name, c] of outside) {
          expect(block.includes(name) || block.includes(c.region), `${client} names ${name} or its region`).toBe(false);
          if (c.ingress) expect(block.includes(c.ingress.address), `${client} names ${c.ingress.address}`).toBe(false);
        }
      }
    });
  });
}

/** The part of a configuration that concerns one client region of `web`: from its comment to the next one. */
function rowBlock(text: string, client: string): string | null {
  const start = text.indexOf(`# web, clients of ${client}`);
  if (start < 0) return null;
  const next = text.indexOf('# web, clients of ', start + 1);
  return text.slice(start, next < 0 ? undefined : next);
}
