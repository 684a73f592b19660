/** The reporters: exact output for a small set of findings, escaping, and the exit code. */
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../src/validate/exit-code.js';
import type { Finding } from '../src/findings/finding.js';
import {
  escapeData,
  escapeProperty,
  escapeXml,
  formatGithub,
  formatJson,
  formatJunit,
  formatText,
  report,
} from '../src/validate/report/index.js';

const findings: Finding[] = [
  {
    code: 'MERIDIAN_E_IMAGE_UNPINNED',
    severity: 'error',
    message: 'the image of web (ghcr.io/acme/web:2.4.0) is not pinned by digest (on 2 clusters: eu-west-1, us-east-1)',
    path: 'services.web.image',
    location: { file: 'fleet/services.yaml', line: 4, col: 12 },
    fix: 'append the digest',
    rule: 'digest-pinned',
    check: 'digests',
    target: { service: 'web' },
    clusters: ['eu-west-1', 'us-east-1'],
  },
  {
    code: 'MERIDIAN_E_QUOTA_EXCEEDED',
    severity: 'error',
    message: 'region eu-west requests 9 CPU, over 100% of <quota> & "more"',
    path: 'regions.eu-west.quota.cpu',
    location: { file: 'fleet/fleet.yaml', line: 9, col: 19 },
    fix: 'lower replicas,\nor raise the quota',
    check: 'quotas',
    target: { region: 'eu-west' },
  },
  {
    code: 'MERIDIAN_E_REPLICAS_BELOW_MIN',
    severity: 'error',
    message: 'api runs 1 replica, fewer than the minimum of 2 (on us-east-1)',
    path: 'services.api.replicas',
    location: { file: 'fleet/services.yaml', line: 20, col: 15 },
    fix: 'set replicas to 2 or more',
    rule: 'min-replicas',
    check: 'min-replicas',
    target: { service: 'api', cluster: 'us-east-1' },
    waivedBy: { reason: 'OPS-142', approvedBy: 'alice', expires: '2027-01-31' },
  },
  {
    code: 'MERIDIAN_W_WAIVER_UNUSED',
    severity: 'warning',
    message: 'the waiver of tls-ingress waived nothing',
    path: 'policies.waivers[0]',
    check: 'waivers',
  },
];

describe('text', () => {
  it('groups by file, one line per finding with its fix, and a summary', () => {
    expect(formatText(findings)).toBe(
      [
        'fleet/fleet.yaml:9:19  MERIDIAN_E_QUOTA_EXCEEDED  region eu-west requests 9 CPU, over 100% of <quota> & "more"',
        '  fix: lower replicas,\nor raise the quota',
        '',
        'fleet/services.yaml:4:12  MERIDIAN_E_IMAGE_UNPINNED  the image of web (ghcr.io/acme/web:2.4.0) is not pinned by digest (on 2 clusters: eu-west-1, us-east-1)',
        '  fix: append the digest',
        'fleet/services.yaml:20:15  MERIDIAN_E_REPLICAS_BELOW_MIN  api runs 1 replica, fewer than the minimum of 2 (on us-east-1)',
        '  waived: OPS-142 (approved by alice, until 2027-01-31)',
        '  fix: set replicas to 2 or more',
        '',
        'policies.waivers[0]  MERIDIAN_W_WAIVER_UNUSED  the waiver of tls-ingress waived nothing',
        '',
        '2 errors, 1 warning, 1 waived',
        '',
      ].join('\n'),
    );
  });

  it('colours only when asked', () => {
    expect(formatText(findings)).not.toContain('\u001b[');
    const c = formatText(findings, { color: true });
    expect(c).toContain('\u001b[31mMERIDIAN_E_QUOTA_EXCEEDED\u001b[0m');
    expect(c).toContain('\u001b[33mMERIDIAN_W_WAIVER_UNUSED\u001b[0m');
  });

  it('says so when there is nothing', () => {
    expect(formatText([])).toBe('0 errors, 0 warnings, 0 waived\n');
  });
});

describe('json', () => {
  it('is stable: ok, summary, findings with a fixed key order', () => {
    const doc = JSON.parse(formatJson(findings)) as { ok: boolean; summary: unknown; findings: Record<string, unknown>[] };
    expect(doc.ok).toBe(false);
    expect(doc.summary).toEqual({ errors: 2, warnings: 1, waived: 1 });
    expect(Object.keys(doc.findings[0] ?? {})).toEqual([
      'code',
      'severity',
      'message',
      'path',
      'location',
      'fix',
      'rule',
      'check',
      'target',
      'clusters',
    ]);
    expect(doc.findings[2]?.['waivedBy']).toEqual({ reason: 'OPS-142', approvedBy: 'alice', expires: '2027-01-31' });
    expect(formatJson(findings)).toBe(formatJson(findings.map((f) => ({ ...f }))));
    expect(JSON.parse(formatJson([])).ok).toBe(true);
  });
});

describe('github', () => {
  it('escapes data and properties as the runner expects', () => {
    expect(escapeData('100% done\r\nnext')).toBe('100%25 done%0D%0Anext');
    expect(escapeProperty('a:b,c%')).toBe('a%3Ab%2Cc%25');
  });

  it('writes one workflow command per finding', () => {
    expect(formatGithub(findings)).toBe(
      [
        '::error file=fleet/services.yaml,line=4,col=12,title=MERIDIAN_E_IMAGE_UNPINNED::the image of web (ghcr.io/acme/web:2.4.0) is not pinned by digest (on 2 clusters: eu-west-1, us-east-1)%0Afix: append the digest',
        '::error file=fleet/fleet.yaml,line=9,col=19,title=MERIDIAN_E_QUOTA_EXCEEDED::region eu-west requests 9 CPU, over 100%25 of <quota> & "more"%0Afix: lower replicas,%0Aor raise the quota',
        '::notice file=fleet/services.yaml,line=20,col=15,title=MERIDIAN_E_REPLICAS_BELOW_MIN::api runs 1 replica, fewer than the minimum of 2 (on us-east-1)%0Awaived: OPS-142 (approved by alice, until 2027-01-31)%0Afix: set replicas to 2 or more',
        '::warning title=MERIDIAN_W_WAIVER_UNUSED::policies.waivers[0]: the waiver of tls-ingress waived nothing',
        '2 errors, 1 warning, 1 waived',
        '',
      ].join('\n'),
    );
  });

  it('escapes a file name with a comma or colon', () => {
    const out = formatGithub([{ code: 'X', severity: 'error', message: 'm', location: { file: 'C:/a,b.yaml', line: 1, col: 1 } }]);
    expect(out.split('\n')[0]).toBe('::error file=C%3A/a%2Cb.yaml,line=1,col=1,title=X::m');
  });
});

describe('junit', () => {
  it('escapes XML and drops characters XML cannot hold', () => {
    expect(escapeXml(`<a b="c" d='e'> & \u0001`)).toBe('&lt;a b=&quot;c&quot; d=&apos;e&apos;&gt; &amp; \uFFFD');
  });

  it('has a passing case per clean check and a failing case per error, with file and line', () => {
    const xml = formatJunit(findings, { checks: ['load', 'digests', 'quotas', 'min-replicas', 'waivers', 'secrets'] });
    expect(xml).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuite name="meridian validate" tests="6" failures="2" errors="0" skipped="1">',
        '  <testcase classname="meridian.load" name="load"/>',
        '  <testcase classname="meridian.secrets" name="secrets"/>',
        '  <testcase classname="meridian.digests" name="MERIDIAN_E_IMAGE_UNPINNED fleet/services.yaml:4:12" file="fleet/services.yaml" line="4">',
        '    <failure message="the image of web (ghcr.io/acme/web:2.4.0) is not pinned by digest (on 2 clusters: eu-west-1, us-east-1)" type="MERIDIAN_E_IMAGE_UNPINNED">the image of web (ghcr.io/acme/web:2.4.0) is not pinned by digest (on 2 clusters: eu-west-1, us-east-1)',
        'fix: append the digest',
        'path: services.web.image</failure>',
        '  </testcase>',
        '  <testcase classname="meridian.quotas" name="MERIDIAN_E_QUOTA_EXCEEDED fleet/fleet.yaml:9:19" file="fleet/fleet.yaml" line="9">',
        '    <failure message="region eu-west requests 9 CPU, over 100% of &lt;quota&gt; &amp; &quot;more&quot;" type="MERIDIAN_E_QUOTA_EXCEEDED">region eu-west requests 9 CPU, over 100% of &lt;quota&gt; &amp; &quot;more&quot;',
        'fix: lower replicas,',
        'or raise the quota',
        'path: regions.eu-west.quota.cpu</failure>',
        '  </testcase>',
        '  <testcase classname="meridian.min-replicas" name="MERIDIAN_E_REPLICAS_BELOW_MIN fleet/services.yaml:20:15" file="fleet/services.yaml" line="20">',
        '    <skipped message="waived: OPS-142 (approved by alice, until 2027-01-31)"/>',
        '  </testcase>',
        '  <testcase classname="meridian.waivers" name="MERIDIAN_W_WAIVER_UNUSED policies.waivers[0]">',
        '    <system-out>warning: the waiver of tls-ingress waived nothing',
        'path: policies.waivers[0]</system-out>',
        '  </testcase>',
        '</testsuite>',
        '',
      ].join('\n'),
    );
  });

  it('is well formed: tags balance and no raw < or & leaks from findings', () => {
    const xml = formatJunit([{ code: 'X', severity: 'error', message: '</failure><x>&', location: { file: 'a"b.yaml', line: 1, col: 1 } }]);
    const body = xml.replace(/^<\?xml[^>]*\?>\n/, '');
    const stack: string[] = [];
    for (const m of body.matchAll(/<(\/?)([a-z-]+)[^>]*?(\/?)>/g)) {
      if (m[3]) continue;
      if (m[1]) expect(stack.pop()).toBe(m[2]);
      else stack.push(m[2] as string);
    }
    expect(stack).toEqual([]);
    expect(body).not.toMatch(/&(?!(amp|lt|gt|quot|apos);)/);
  });
});

describe('report and exit codes', () => {
  it('dispatches by --output', () => {
    expect(report('json', findings)).toBe(formatJson(findings));
    expect(report('text', findings, { color: false })).toBe(formatText(findings));
  });

  it('exit 0 clean, 1 unwaived errors, 2 unusable input; warnings and waived do not fail', () => {
    expect(exitCodeFor([])).toBe(0);
    expect(exitCodeFor(findings.slice(2))).toBe(0);
    expect(exitCodeFor(findings)).toBe(1);
    expect(exitCodeFor(findings, { unusable: true })).toBe(2);
  });
});

describe('validateFleet', () => {
  it('exit 2 for a fleet that does not load, 1 for findings, 0 for the valid fixture', async () => {
    const { validateFleet } = await import('../src/validate/run.js');
    const now = new Date('2026-06-01T00:00:00Z');
    const root = new URL('../testdata/', import.meta.url).pathname;
    const broken = await validateFleet(`${root}yaml-syntax-error`, { now, env: {} });
    expect([broken.exitCode, broken.unusable, broken.checks]).toEqual([2, true, ['load']]);
    const bad = await validateFleet(`${root}policy-tls-ingress`, { now, env: {} });
    expect(bad.exitCode).toBe(1);
    const ok = await validateFleet(`${root}_valid`, { now, env: {} });
    expect([ok.exitCode, ok.findings]).toEqual([0, []]);
    expect(formatJunit(ok.findings, { checks: ok.checks })).toContain('<testcase classname="meridian.versions" name="versions"/>');
  });
});
