/**
 * The dashboard in headless Chromium against the real thing: `meridian up --detach` runs the local fleet
 * as processes behind its router, `meridian serve` serves the API and the page, synthetic clients send
 * traffic from two client regions, and `meridian rollout --wait` (by alice) stops at a wave that needs an
 * approval. An approver's page shows live traffic per region and approves the wave, and the rollout
 * proceeds to the end; a viewer's page has no approve button and the API refuses the viewer's call.
 * Screenshots of the main views go to docs/screenshots/ with MERIDIAN_SCREENSHOTS=1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiToken } from '../src/server/auth/tokens.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { runTraffic } from '../src/traffic/generator.js';
import { copyRolloutFleet } from './fixtures/copy-rollout-fleet.js';
import { replicaPids, runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'meridian.js');
const work = mkdtempSync(join(tmpdir(), 'meridian-dashboard-e2e-'));
/** Screenshots go to docs/screenshots/ when MERIDIAN_SCREENSHOTS=1 (to refresh the docs), else beside the test's files. */
const shots = process.env['MERIDIAN_SCREENSHOTS'] === '1' ? join(root, 'docs', 'screenshots') : join(work, 'screenshots');
const fleet = join(work, 'tiny');
const env = { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'ci' };

function meridian(args: string[], extra: Record<string, string> = {}): CliRun {
  return runMeridian(args, { cwd: work, env: { ...env, ...extra } });
}

/** A long-running `meridian` child; `out` grows as it prints. */
function start(args: string[]): { child: ChildProcess; out: () => string; done: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  return { child, out: () => out, done: new Promise((r) => child.on('close', (code) => r(code))) };
}

/** PIDs whose working directory is the fleet: the replicas `up` started (to be sure none is left). */
const fleetPids = (): number[] => replicaPids(fleet);

async function until<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let browser: Browser;
let server: ReturnType<typeof start> | undefined;
let rollout: ReturnType<typeof start> | undefined;
let url = '';
/** Tokens by who holds them; `author` is alice, who starts the rollout and holds the approver role too. */
const tokens = { approver: '', deployer: '', viewer: '', author: '' };
const traffic = new AbortController();
let trafficDone: Promise<unknown> = Promise.resolve();

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium; .ci/run does)`);
  copyRolloutFleet(fleet);
  // clients say where they are (a header trusted from loopback); the steps last long enough to be seen and
  // judged on the router's error rate and latency; the second wave needs one approval by a release manager;
  // and there is a flag
  const file = join(fleet, 'fleet.yaml');
  let yaml = readFileSync(file, 'utf8');
  const edit = (from: string, to: string): void => {
    if (!yaml.includes(from))
      throw new Error(`test/fixtures/rollout-fleet/fleet.yaml no longer has ${JSON.stringify(from)}: update this test`);
    yaml = yaml.replace(from, to);
  };
  edit('    match: { hosts: [tiny.example] }\n', '    match: { hosts: [tiny.example] }\n    clientCountryHeader: x-client-country\n');
  edit(
    'steps: [{ weight: 50, pause: 50ms }, { weight: 100, pause: 50ms }]',
    'steps: [{ weight: 50, pause: 6s }, { weight: 100, pause: 2s }]',
  );
  edit('steps: [{ weight: 100, pause: 50ms }]', 'steps: [{ weight: 100, pause: 2s }]');
  edit(
    '  analysis: { interval: 50ms }\n',
    '  analysis:\n    interval: 1s\n    minSamples: 5\n    metrics:\n      - { name: error-rate, source: router, max: 5% }\n      - { name: p99-latency, source: router, max: 5s }\n',
  );
  edit('    - name: rest\n', '    - name: rest\n      approvals: { count: 1, roles: [release-manager] }\n');
  edit('\npolicies:', '\nflags:\n  new-checkout:\n    default: false\n    regions: { eu: { enabled: true, percent: 20 } }\n\npolicies:');
  writeFileSync(file, yaml);
  const up = meridian(['up', 'tiny', '--detach', '--port', '0', '--no-server']); // the control plane comes from `meridian serve` below
  expect(up.code, up.err).toBe(0);
  const info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as { router: string };

  const store = await openSqliteStore(join(work, '.meridian', 'state.db'));
  for (const [name, role] of [
    ['bob', 'approver'],
    ['carol', 'deployer'],
    ['dana', 'viewer'],
    ['alice', 'author'],
  ] as const) {
    const t = newApiToken(name, role === 'author' ? 'approver' : role, { id: 'test' });
    await store.createApiToken(t.record, { id: 'test' });
    tokens[role] = t.token;
  }
  await store.close();

  server = start(['serve', 'tiny', '--port', '0', '--no-local-admin']);
  url = await until(
    'meridian serve to say where it listens',
    () => /control plane on (http:\/\/127\.0\.0\.1:\d+)\//.exec(server?.out() ?? '')?.[1],
  ).catch((err: Error) => {
    throw new Error(`${err.message}; it said: ${server?.out() ?? ''} (is dist/ fresh? npx tsc -p tsconfig.json)`);
  });

  trafficDone = runTraffic({
    url: info.router,
    host: 'tiny.example',
    rps: 40,
    mix: [
      { country: 'DE', weight: 3 },
      { country: 'US', weight: 1 },
    ],
    durationMs: 180_000, // until afterAll stops it
    signal: traffic.signal,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  mkdirSync(shots, { recursive: true });
}, 90_000);

afterAll(async () => {
  traffic.abort();
  await trafficDone;
  await browser?.close();
  if (rollout && rollout.child.exitCode === null && rollout.child.pid) rollout.child.kill('SIGTERM');
  await rollout?.done;
  if (server && server.child.exitCode === null && server.child.pid) server.child.kill('SIGTERM');
  await server?.done;
  meridian(['down']);
  for (const pid of fleetPids()) process.kill(pid, 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
}, 60_000);

async function signIn(role: keyof typeof tokens, colorScheme: 'dark' | 'light' = 'dark'): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme });
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${url}/#token=${encodeURIComponent(tokens[role])}`);
  await page.waitForSelector('body[data-ready="true"]');
  expect(page.url(), 'the token leaves the address bar').not.toContain('token=');
  expect(errors).toEqual([]);
  return page;
}

/** A screenshot of the part of the page a locator shows now (a live panel re-renders: an element screenshot would lose it). */
async function shoot(page: Page, part: ReturnType<Page['locator']>, name: string): Promise<void> {
  const box = await part.boundingBox();
  if (!box) throw new Error(`nothing to photograph for ${name}`);
  await page.screenshot({ path: join(shots, name), clip: box, fullPage: true });
}

async function api(path: string, token: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/v1${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('the dashboard, in Chromium, against meridian serve and the local fleet', () => {
  it('shows live traffic per client region, and the health of every cluster', async () => {
    const page = await signIn('approver');
    for (const region of ['eu', 'us']) {
      const row = page.locator(`.flow-row[data-client-region="${region}"]`);
      await row.waitFor({ timeout: 20_000 });
      const text = await row.locator('.flow-total').textContent();
      expect(Number.parseFloat(text ?? '')).toBeGreaterThan(0);
      expect(text).toMatch(/req\/s/);
    }
    // live: new measurements arrive over the event stream without a reload
    const body = page.locator('#traffic-body');
    const first = await body.getAttribute('data-at');
    await until('a newer traffic measurement on the page', async () => ((await body.getAttribute('data-at')) ?? first) !== first);
    for (const c of ['local-a', 'local-b', 'local-c'])
      await expect(page.locator(`.cluster[data-cluster="${c}"] .state-word`).textContent()).resolves.toBe('healthy');
    await expect(page.locator('#live').textContent()).resolves.toBe('live');
    // the map: Natural Earth's countries, each client region joined to the clusters that serve it
    const map = page.locator('#traffic-map svg.geo-map');
    await map.locator('path.land').waitFor({ timeout: 20_000 });
    expect(((await map.locator('path.land').getAttribute('d')) ?? '').length).toBeGreaterThan(10_000);
    const euLines = map.locator('.flow-line[data-flow^="eu→"]');
    await euLines.first().waitFor({ timeout: 20_000 });
    const widths = await map.locator('.flow-line').evaluateAll((els) =>
      els.map((e) => ({
        flow: e.getAttribute('data-flow'),
        w: Number(e.getAttribute('stroke-width')),
        tone: e.getAttribute('data-tone'),
      })),
    );
    expect(widths.every((w) => w.tone === 'ok')).toBe(true); // healthy clusters, no errors
    const eu = widths.filter((w) => w.flow?.startsWith('eu→')).reduce((n, w) => n + w.w, 0);
    const us = widths.filter((w) => w.flow?.startsWith('us→')).reduce((n, w) => n + w.w, 0);
    expect(eu).toBeGreaterThan(us); // three times the traffic: thicker lines
    await expect(map.locator('.cluster-dot').count()).resolves.toBe(3);
    // the charts: rate, error rate and p99 per client region; a click on the map selects a region
    // dispatched: the lines beside the mark move with every traffic update, so Playwright never sees the map "stable"
    await map.locator('.region-mark[data-region="us"]').dispatchEvent('click');
    const charts = page.locator('#traffic-charts');
    await until('the charts to select us', async () => (await charts.getAttribute('data-region')) === 'us');
    await until('two traffic snapshots', async () => Number(await charts.getAttribute('data-points')) >= 2, 30_000);
    await charts.locator('.chart[data-measure="p99"] canvas').waitFor({ timeout: 20_000 });
    await expect(charts.locator('.chart canvas').count()).resolves.toBe(3);
    await expect(charts.locator('.chart[data-measure="rps"] .u-title').textContent()).resolves.toBe('requests per second · us');
    await expect(map.locator('.region-mark.selected').getAttribute('data-region')).resolves.toBe('us');
    await expect(map.locator('.flow-line.dim[data-flow^="eu→"]').count()).resolves.toBeGreaterThan(0);
    await page.locator('#traffic').screenshot({ path: join(shots, 'map-and-charts.png') });
    await map.locator('.region-mark[data-region="us"]').dispatchEvent('click'); // a second click shows every region again
    await until('the charts to show every region', async () => (await charts.getAttribute('data-region')) === '');
    await page.screenshot({ path: join(shots, 'overview-dark.png'), fullPage: true });
    await page.context().close();
    const light = await signIn('approver', 'light');
    await light.locator('.flow-row[data-client-region="eu"]').waitFor();
    await light.screenshot({ path: join(shots, 'overview-light.png'), fullPage: true });
    await light.context().close();
  }, 90_000);

  it('lets an approver approve a waiting wave from the page, and the rollout proceeds; a viewer sees no button and is refused', async () => {
    const file = join(fleet, 'fleet.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('version: 1.0.0', 'version: 1.1.0').replace('web:1.0.0@', 'web:1.1.0@'));
    const watcher = await signIn('approver');
    rollout = start(['rollout', 'tiny', '--wait', '--actor', 'alice', '--poll', '50ms']);
    // live, without a reload: the canary shows up in the health grid, and EU clients' requests reach it
    await watcher.locator('.cluster[data-cluster="local-a"] .pill.canary').waitFor({ timeout: 30_000 });
    await watcher.locator('.flow-row[data-client-region="eu"] .chip[data-cluster="local-a"] .pill.canary').waitFor({ timeout: 15_000 });
    await expect(watcher.locator('.rollout .weight-row[data-cluster="local-a"] .num').first().textContent()).resolves.toBe('50 %');
    // during the step: the canary against its baseline on the judge's windows, with the gate's limit drawn in
    const cc = watcher.locator('.rollout .canary-charts[data-gate="canary:0"]').first();
    await cc.waitFor({ timeout: 30_000 });
    const errChart = cc.locator('.canary-chart[data-metric="web error-rate"]');
    await errChart.locator('[data-threshold="max"]').waitFor({ state: 'attached' }); // a horizontal line: no height, never "visible"
    await expect(errChart.locator('.cc-canary-dot').count()).resolves.toBeGreaterThan(0);
    await expect(errChart.locator('.cc-label').textContent()).resolves.toBe('max 5.00 %');
    await shoot(watcher, cc, 'canary-vs-baseline.png');
    // the timeline: the canary wave's first step, clicked for its times
    const tl = watcher.locator('.rollout .timeline').first();
    await tl.locator('.tl-seg[data-kind="step"][data-step="1"]').first().dispatchEvent('click');
    await expect(tl.locator('.timeline-caption').textContent()).resolves.toMatch(/^canary step 1 \(50 %\): \d\d:\d\d:\d\d UTC – /);
    await watcher.screenshot({ path: join(shots, 'canary-dark.png'), fullPage: true });
    await watcher.context().close();
    const id = await until(
      'the rollout to wait for approval',
      async () => {
        const list = (await api('/rollouts', tokens.viewer)).body as unknown as { id: string; state: string }[];
        return list.find((r) => r.state === 'awaiting-approval')?.id;
      },
      45_000,
    );

    // the viewer: sees the rollout waiting, has no button, and the API says no
    const viewer = await signIn('viewer');
    const card = viewer.locator(`.rollout[data-rollout="${id}"]`);
    await expect(card.getAttribute('data-state')).resolves.toBe('awaiting-approval');
    await expect(card.getByRole('button', { name: /approve/i }).count()).resolves.toBe(0);
    await expect(viewer.getByRole('button', { name: /approve|reject|pause|abort|drain|set flag/i }).count()).resolves.toBe(0);
    await viewer.screenshot({ path: join(shots, 'viewer.png'), fullPage: true });
    const refused = await api(`/rollouts/${id}/approve`, tokens.viewer, { wave: 'rest', role: 'release-manager' });
    expect(refused.status).toBe(403);
    await viewer.context().close();

    // the author, though an approver, may not approve her own change: the page shows the server's refusal
    const author = await signIn('author');
    await author.locator(`.rollout[data-rollout="${id}"]`).getByRole('button', { name: 'Approve rest' }).click();
    await author.locator('#action-error').waitFor();
    await expect(author.locator('#action-error').textContent()).resolves.toContain('MERIDIAN_E_APPROVAL_AUTHOR');
    await author.context().close();

    // the approver (bob, not the author alice): approves from the page
    const page = await signIn('approver');
    const mine = page.locator(`.rollout[data-rollout="${id}"]`);
    await mine.screenshot({ path: join(shots, 'rollout-awaiting-approval.png') });
    // each gate's verdict with its numbers: the canary's error rate and p99 against their limits, with the samples
    const errorRate = mine.locator('.gates tr', { hasText: 'error-rate' }).first();
    await expect(errorRate.textContent()).resolves.toMatch(/\d+\.\d+ %.*≤ 5\.00 %\s*\d+/);
    await expect(mine.locator('.gates tr', { hasText: 'p99-latency' }).first().textContent()).resolves.toMatch(/\d+(\.\d)? ms.*≤ 5\.00 s/);
    await mine.getByRole('textbox', { name: /comment/i }).fill('canary looked fine');
    await mine.getByRole('button', { name: 'Approve rest' }).click();
    await expect(rollout.done).resolves.toBe(0);
    await page.locator(`.rollout[data-rollout="${id}"][data-state="promoted"]`).waitFor({ timeout: 20_000 });
    await expect(page.locator('#action-error').isHidden()).resolves.toBe(true);
    const detail = (await api(`/rollouts/${id}`, tokens.viewer)).body as {
      state: string;
      waves: { name: string; approvals: { given: string[] } | null }[];
    };
    expect(detail.state).toBe('promoted');
    expect(detail.waves.find((w) => w.name === 'rest')?.approvals?.given).toEqual(['bob']);
    await page.locator('#audit-body tr', { hasText: 'approval.approve' }).first().waitFor();
    // the timeline of the whole rollout: both waves, the approval wait, a verdict tick per look
    const timeline = page.locator(`.rollout[data-rollout="${id}"] .timeline`);
    await expect(timeline.locator('g[data-wave="rest"] .tl-seg[data-kind="approval"]').count()).resolves.toBeGreaterThan(0);
    await expect(timeline.locator('.tl-tick[data-outcome="pass"]').count()).resolves.toBeGreaterThan(1);
    await timeline.locator('g[data-wave="rest"] .tl-seg[data-kind="approval"]').first().dispatchEvent('click');
    await expect(timeline.locator('.timeline-caption').textContent()).resolves.toMatch(/^rest approval: /);
    await shoot(page, timeline, 'rollout-timeline.png');
    await page.evaluate('window.scrollTo(0, 0)');
    await page.screenshot({ path: join(shots, 'rollout-promoted.png'), fullPage: true });
    await page.context().close();
  }, 90_000);

  it('signs in with the form, says why a token is refused, and keeps the token in the tab only', async () => {
    const csp = (await fetch(`${url}/`)).headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toMatch(/unsafe-inline/); // and signIn fails on any console error, a CSP violation included
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    const page = await ctx.newPage();
    await page.goto(`${url}/`);
    const input = page.getByLabel('Token');
    await input.fill('mrd_aaaaaaaaaa_not-a-real-token-not-a-real-token-not-a-real-tok');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(
      page
        .getByRole('alert')
        .filter({ hasText: /refused/i })
        .textContent(),
    ).resolves.toMatch(/refused/i);
    await expect(page.locator('#app').isHidden()).resolves.toBe(true);
    await page.screenshot({ path: join(shots, 'sign-in.png') });
    await input.fill(tokens.viewer);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('body[data-ready="true"]');
    await expect(page.locator('#who').textContent()).resolves.toContain('dana');
    await expect(page.evaluate('sessionStorage.length')).resolves.toBe(1);
    await expect(page.evaluate('localStorage.getItem("meridian.token")')).resolves.toBeNull();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page.evaluate('sessionStorage.length')).resolves.toBe(0);
    await expect(page.getByLabel('Token').isVisible()).resolves.toBe(true);
    await ctx.close();
  });

  it('shows each role only its buttons: a deployer sets a flag in a region from the page; an approver cannot', async () => {
    const approver = await signIn('approver');
    await expect(approver.locator('.flags-table tr[data-flag="new-checkout"] td[data-region="eu"]').textContent()).resolves.toMatch(
      /^on 20 %/,
    );
    await expect(approver.getByRole('button', { name: 'Set flag' }).count()).resolves.toBe(0);
    await expect(approver.getByRole('button', { name: /drain/i }).count()).resolves.toBe(0);
    await approver.context().close();

    const page = await signIn('deployer');
    await expect(page.getByRole('button', { name: /approve/i }).count()).resolves.toBe(0);
    await expect(page.getByRole('button', { name: 'Drain cluster local-a' }).count()).resolves.toBe(1);
    const form = page.getByRole('form', { name: 'set a flag in a region' });
    await form.getByLabel('Flag').selectOption('new-checkout');
    await form.getByLabel('in').selectOption('us');
    await form.getByLabel('for').fill('50');
    await form.getByRole('button', { name: 'Set flag' }).click();
    const cell = page.locator('.flags-table tr[data-flag="new-checkout"] td[data-region="us"]');
    await until('the flag to show as set in us', async () => /^on 50 %/.test((await cell.textContent()) ?? ''));
    await page.locator('#audit-body tr', { hasText: 'carol' }).first().waitFor();
    await page.locator('#flags').screenshot({ path: join(shots, 'flags.png') });
    await page.context().close();
  });

  it('says when it loses the live stream, and catches up by itself when the server is back', async () => {
    const page = await signIn('viewer');
    // the page opens its live stream after sign-in: on a loaded machine it may still be connecting here
    await until('the page to be live', async () => (await page.locator('#live').textContent()) === 'live');
    const port = new URL(url).port;
    server?.child.kill('SIGTERM');
    await server?.done;
    await until('the page to notice', async () => (await page.locator('#live').textContent()) === 'reconnecting');
    await page.locator('.alert', { hasText: 'live updates lost' }).waitFor();
    server = start(['serve', 'tiny', '--port', port, '--no-local-admin']);
    await until('meridian serve to listen again', () => /control plane on/.test(server?.out() ?? ''));
    await until('the page to be live again', async () => (await page.locator('#live').textContent()) === 'live', 40_000);
    const body = page.locator('#traffic-body');
    const first = await body.getAttribute('data-at');
    await until('traffic to move again', async () => ((await body.getAttribute('data-at')) ?? first) !== first);
    await expect(page.locator('.alert', { hasText: 'live updates lost' }).count()).resolves.toBe(0);
    await page.context().close();
  }, 60_000);
});
