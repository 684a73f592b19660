/** Cross-field rules: every name the fleet refers to exists. A typo in a selector must not silently match nothing. */
import { type Finding, formatPath } from '../findings/finding.js';
import type { Fleet, Selector } from './schema.js';
import { closest } from './schema-walk.js';
import type { SourceMap } from './source-map.js';

export function checkReferences(fleet: Fleet, map: SourceMap): Finding[] {
  const findings: Finding[] = [];
  const regions = Object.keys(fleet.regions);
  const clusters = Object.keys(fleet.clusters);
  const services = Object.keys(fleet.services);
  const flags = Object.keys(fleet.flags);
  const jurisdictions = [...new Set(Object.values(fleet.regions).map((r) => r.jurisdiction))];

  const ref = (path: PropertyKey[], kind: string, name: string, known: readonly string[]): void => {
    if (known.includes(name)) return;
    const guess = closest(name, known);
    findings.push({
      code: 'MERIDIAN_E_UNKNOWN_REFERENCE',
      severity: 'error',
      message: `${formatPath(path)} names the ${kind} ${JSON.stringify(name)}, which the fleet does not define`,
      path: formatPath(path),
      ...loc(map, path),
      fix: guess
        ? `did you mean ${JSON.stringify(guess)}?`
        : `define ${kind} ${name}, or use one of: ${known.join(', ') || '(none defined)'}`,
    });
  };
  const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const selector = (path: PropertyKey[], sel: Selector | undefined): void => {
    if (!sel) return;
    list(sel.region).forEach((r, i) => ref([...path, 'region', ...(Array.isArray(sel.region) ? [i] : [])], 'region', r, regions));
    list(sel.cluster).forEach((c, i) => ref([...path, 'cluster', ...(Array.isArray(sel.cluster) ? [i] : [])], 'cluster', c, clusters));
    list(sel.jurisdiction).forEach((j, i) =>
      ref([...path, 'jurisdiction', ...(Array.isArray(sel.jurisdiction) ? [i] : [])], 'jurisdiction', j, jurisdictions),
    );
  };

  for (const [name, c] of Object.entries(fleet.clusters)) ref(['clusters', name, 'region'], 'region', c.region, regions);
  const home = new Map<string, string>();
  for (const [name, r] of Object.entries(fleet.regions)) {
    r.countries.forEach((country, i) => {
      const first = home.get(country);
      if (first === undefined) {
        home.set(country, name);
        return;
      }
      findings.push({
        code: 'MERIDIAN_E_DUPLICATE_COUNTRY',
        severity: 'error',
        message: `${country} is listed by both regions.${first}.countries and regions.${name}.countries; a client country has one home region`,
        path: formatPath(['regions', name, 'countries', i]),
        ...loc(map, ['regions', name, 'countries', i]),
        fix: `keep ${country} in one region's countries; the router sends its clients to that region first and fails over by distance`,
      });
    });
  }
  for (const [name, s] of Object.entries(fleet.services)) {
    for (const dep of Object.keys(s.requires ?? {})) ref(['services', name, 'requires', dep], 'service', dep, services);
    selector(['services', name, 'placement', 'match'], s.placement?.match);
    selector(['services', name, 'placement', 'exclude'], s.placement?.exclude);
    s.overrides?.forEach((o, i) => {
      selector(['services', name, 'overrides', i, 'match'], o.match);
      for (const dep of Object.keys(o.set.requires ?? {}))
        ref(['services', name, 'overrides', i, 'set', 'requires', dep], 'service', dep, services);
    });
  }
  for (const [name, r] of Object.entries(fleet.routing)) {
    ref(['routing', name], 'service', name, services);
    for (const [from, to] of Object.entries(r.failover ?? {})) {
      ref(['routing', name, 'failover', from], 'region', from, regions);
      to.forEach((t, i) => ref(['routing', name, 'failover', from, i], 'region', t, regions));
    }
    for (const region of Object.keys(r.bias ?? {})) ref(['routing', name, 'bias', region], 'region', region, regions);
    if (r.flag !== undefined) ref(['routing', name, 'flag'], 'flag', r.flag, flags);
    for (const key of Object.keys(r.residency ?? {})) {
      if (key !== 'default' && !/^[A-Z][A-Z0-9_-]*$/.test(key)) {
        findings.push({
          code: 'MERIDIAN_E_SCHEMA',
          severity: 'error',
          message: `routing.${name}.residency has the key ${JSON.stringify(key)}; expected a client jurisdiction (like EU) or default`,
          path: formatPath(['routing', name, 'residency', key]),
          ...loc(map, ['routing', name, 'residency', key], true),
          fix: 'name a jurisdiction in upper case, or use `default` for every other client',
        });
      }
    }
  }
  const waveNames = new Map<string, number>();
  fleet.rollout?.waves.forEach((w, i) => {
    selector(['rollout', 'waves', i, 'clusters'], w.clusters);
    const prev = waveNames.get(w.name);
    if (prev !== undefined) {
      findings.push({
        code: 'MERIDIAN_E_DUPLICATE_NAME',
        severity: 'error',
        message: `two waves are named ${w.name} (rollout.waves[${prev}] and rollout.waves[${i}])`,
        path: formatPath(['rollout', 'waves', i, 'name']),
        ...loc(map, ['rollout', 'waves', i, 'name']),
        fix: 'give every wave its own name',
      });
    }
    waveNames.set(w.name, i);
  });
  fleet.rollout?.analysis?.metrics.forEach((m, i) => {
    if (m.source === 'prometheus' && (!m.query || !m.url)) {
      findings.push({
        code: 'MERIDIAN_E_MISSING_KEY',
        severity: 'error',
        message: `rollout.analysis.metrics[${i}] reads from prometheus but has no ${m.query ? 'url' : 'query'}`,
        path: formatPath(['rollout', 'analysis', 'metrics', i]),
        ...loc(map, ['rollout', 'analysis', 'metrics', i]),
        fix: 'add `query:` (PromQL; `$cluster`, `$version` and `$window` are filled in) and `url:` (the Prometheus server)',
      });
    }
  });
  for (const [name, f] of Object.entries(fleet.flags)) {
    for (const region of Object.keys(f.regions ?? {})) ref(['flags', name, 'regions', region], 'region', region, regions);
  }
  const recovery = fleet.recovery;
  for (const s of Object.keys(recovery?.rto?.services ?? {})) ref(['recovery', 'rto', 'services', s], 'service', s, services);
  for (const r of Object.keys(recovery?.rto?.regions ?? {})) ref(['recovery', 'rto', 'regions', r], 'region', r, regions);
  const disasterClass = recovery?.incidents.findIndex((i) => i.disaster) ?? -1;
  if (recovery && disasterClass >= 0 && !recovery.disaster) {
    findings.push({
      code: 'MERIDIAN_E_MISSING_KEY',
      severity: 'error',
      message: `recovery.incidents[${disasterClass}] is a disaster class, but recovery.disaster.approvals does not say who may declare one`,
      path: formatPath(['recovery', 'incidents', disasterClass, 'disaster']),
      ...loc(map, ['recovery', 'incidents', disasterClass, 'disaster']),
      fix: 'add `recovery: { disaster: { approvals: { count: 2, roles: [incident-commander] } } }` (N distinct approvers; the one who declares never counts)',
    });
  }
  fleet.policies?.custom?.forEach((c, i) => selector(['policies', 'custom', i, 'match'], c.match));
  fleet.policies?.waivers?.forEach((w, i) => {
    if (w.target.service !== undefined) ref(['policies', 'waivers', i, 'target', 'service'], 'service', w.target.service, services);
    if (w.target.cluster !== undefined) ref(['policies', 'waivers', i, 'target', 'cluster'], 'cluster', w.target.cluster, clusters);
    if (w.target.region !== undefined) ref(['policies', 'waivers', i, 'target', 'region'], 'region', w.target.region, regions);
  });
  return findings;
}

function loc(map: SourceMap, path: PropertyKey[], key = false): { location?: NonNullable<Finding['location']> } {
  const l = map.locate(path, { key });
  return l ? { location: l } : {};
}
