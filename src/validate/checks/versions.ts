/**
 * Version compatibility: every `requires` range holds before, during and after the rollout.
 *
 * The model (docs/findings.md, "Version skew"): the rollout is a sequence of stages — before (the
 * recorded state), one stage per wave, after (the new revision). While wave k rolls, its clusters run
 * the old and the new version of every changed service side by side; earlier waves run the new one,
 * later waves the old one. At every stage, every version of a service present on a cluster must
 * accept every version of each dependency it can reach: the dependency on the same cluster when it
 * runs there, else every version of it running anywhere in the fleet.
 */
import semver from 'semver';
import type { RenderedCluster } from '../../render/render.js';
import { type CheckContext, type Origin, fewOf } from '../context.js';
import type { Finding } from '../../findings/finding.js';

/** One running version of a service on one cluster at one stage. */
interface Instance {
  readonly service: string;
  readonly version: string;
  readonly requires: Readonly<Record<string, string>>;
  /** From the new revision (true) or the recorded state (false). */
  readonly isNew: boolean;
  readonly cluster: string;
}

/** Cluster → service → the versions running there at one stage. */
type Stage = Map<string, Map<string, Instance[]>>;

interface Violation {
  readonly consumer: Instance;
  readonly dep: string;
  readonly range: string;
  /** The version of the dependency it would call, or null when the dependency runs nowhere it can reach. */
  readonly depVersion: string | null;
  /** The instance of the dependency (for locating a new version), when one. */
  readonly depInstance: Instance | null;
  /** Where the dependency version runs (its cluster), when known. */
  readonly depCluster: string | null;
}

const satisfiesCache = new Map<string, boolean>();
function satisfies(version: string, range: string): boolean {
  const key = `${version}\u0000${range}`;
  let v = satisfiesCache.get(key);
  if (v === undefined) {
    v = semver.satisfies(version, range, { includePrerelease: true });
    if (satisfiesCache.size > 10_000) satisfiesCache.clear();
    satisfiesCache.set(key, v);
  }
  return v;
}

function instancesOf(cluster: string, c: RenderedCluster, isNew: boolean): Map<string, Instance[]> {
  const m = new Map<string, Instance[]>();
  for (const [service, s] of Object.entries(c.services)) {
    m.set(service, [{ service, version: s.version, requires: s.requires, isNew, cluster }]);
  }
  return m;
}

function sameInstance(a: Instance, b: Instance): boolean {
  if (a.version !== b.version) return false;
  const ka = Object.keys(a.requires);
  const kb = Object.keys(b.requires);
  return ka.length === kb.length && ka.every((k) => a.requires[k] === b.requires[k]);
}

/** Both sides of a cluster that is rolling: old and new of every service, one when they are the same. */
function bothOf(cluster: string, oldC: RenderedCluster | undefined, newC: RenderedCluster | undefined): Map<string, Instance[]> {
  const m = new Map<string, Instance[]>();
  const olds = oldC ? instancesOf(cluster, oldC, false) : new Map<string, Instance[]>();
  const news = newC ? instancesOf(cluster, newC, true) : new Map<string, Instance[]>();
  for (const [service, [n]] of news) {
    const [o] = olds.get(service) ?? [];
    m.set(service, n && o && !sameInstance(n, o) ? [o, n] : n ? [n] : []);
  }
  for (const [service, list] of olds) if (!m.has(service)) m.set(service, list);
  return m;
}

/** Every version a service can be called at by a consumer on `cluster` at this stage. */
function reachable(stage: Stage, cluster: string, dep: string, everywhere: Map<string, Instance[]>): Instance[] {
  const local = stage.get(cluster)?.get(dep);
  if (local && local.length > 0) return local;
  return everywhere.get(dep) ?? [];
}

/** Every distinct version of every service running anywhere at a stage (one instance per version). */
function fleetWide(stage: Stage): Map<string, Instance[]> {
  const out = new Map<string, Map<string, Instance>>();
  for (const services of stage.values()) {
    for (const [service, list] of services) {
      let byVersion = out.get(service);
      if (!byVersion) out.set(service, (byVersion = new Map()));
      for (const i of list) {
        const prev = byVersion.get(i.version);
        // prefer a new instance, so a finding can point at the fleet file
        if (!prev || (!prev.isNew && i.isNew)) byVersion.set(i.version, i);
      }
    }
  }
  return new Map([...out].map(([s, m]) => [s, [...m.values()]]));
}

function violationsAt(stage: Stage, validRange: (r: string) => boolean): Map<string, { v: Violation; clusters: Set<string> }> {
  const everywhere = fleetWide(stage);
  const out = new Map<string, { v: Violation; clusters: Set<string> }>();
  const add = (v: Violation): void => {
    const key = JSON.stringify([v.consumer.service, v.consumer.version, v.consumer.isNew, v.dep, v.range, v.depVersion]);
    let e = out.get(key);
    if (!e) out.set(key, (e = { v, clusters: new Set() }));
    e.clusters.add(v.consumer.cluster);
  };
  for (const [cluster, services] of stage) {
    for (const list of services.values()) {
      for (const consumer of list) {
        if (!semver.valid(consumer.version)) continue;
        for (const [dep, range] of Object.entries(consumer.requires)) {
          if (!validRange(range)) continue;
          const targets = reachable(stage, cluster, dep, everywhere);
          if (targets.length === 0) {
            add({ consumer, dep, range, depVersion: null, depInstance: null, depCluster: null });
            continue;
          }
          for (const t of targets) {
            if (!semver.valid(t.version)) continue; // reported as MERIDIAN_E_VERSION_INVALID
            if (!satisfies(t.version, range)) add({ consumer, dep, range, depVersion: t.version, depInstance: t, depCluster: t.cluster });
          }
        }
      }
    }
  }
  return out;
}

function identity(key: string): string {
  // the same problem across stages: consumer service+version, dependency, range, dependency version
  const [s, v, , d, r, dv] = JSON.parse(key) as unknown[];
  return JSON.stringify([s, v, d, r, dv]);
}

export function checkVersions(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  const { revision } = ctx;
  const recorded = ctx.recorded ?? {};

  // Versions and ranges that are not semver: reported once per place they are written.
  const badVersion = new Set<string>();
  const badRange = new Map<string, boolean>();
  const validRange = (r: string): boolean => {
    let ok = badRange.get(r);
    if (ok === undefined) badRange.set(r, (ok = semver.validRange(r, { includePrerelease: true }) !== null));
    return ok;
  };
  for (const [cluster, c] of Object.entries(revision.clusters)) {
    for (const [service, s] of Object.entries(c.services)) {
      if (!semver.valid(s.version)) {
        const o = ctx.origin(cluster, service, 'version');
        if (!badVersion.has(o.path)) {
          badVersion.add(o.path);
          findings.push({
            code: 'MERIDIAN_E_VERSION_INVALID',
            severity: 'error',
            message: `the version of ${service}, ${JSON.stringify(s.version)}, is not a semantic version`,
            path: o.path,
            ...(o.location ? { location: o.location } : {}),
            fix: 'write MAJOR.MINOR.PATCH, like 2.4.0 or 2.5.0-rc.1, so that `requires` ranges can be checked',
            target: { service },
          });
        }
      }
      for (const [dep, range] of Object.entries(s.requires)) {
        if (validRange(range)) continue;
        const o = ctx.origin(cluster, service, `requires.${dep}`);
        if (badVersion.has(`${o.path}#range`)) continue;
        badVersion.add(`${o.path}#range`);
        findings.push({
          code: 'MERIDIAN_E_REQUIRES_RANGE_INVALID',
          severity: 'error',
          message: `${service} requires ${dep} ${JSON.stringify(range)}, which is not a semver range`,
          path: o.path,
          ...(o.location ? { location: o.location } : {}),
          fix: 'write a range like ">=1.4.0 <2.0.0", "^1.4.0" or "~1.4.2"',
          target: { service },
        });
      }
    }
  }

  // The stages.
  const newClusters = Object.keys(revision.clusters);
  const gone = Object.keys(recorded).filter((c) => !(c in revision.clusters)); // removed clusters run old until the end
  const before: Stage = new Map(Object.entries(recorded).map(([c, rc]) => [c, instancesOf(c, rc, false)]));
  const after: Stage = new Map(newClusters.map((c) => [c, instancesOf(c, revision.clusters[c] as RenderedCluster, true)]));
  const waveOf = new Map<string, number>();
  ctx.waves.forEach((w, i) => w.clusters.forEach((c) => waveOf.set(c, i)));
  const during = ctx.waves.map((w, k) => {
    const stage: Stage = new Map();
    for (const c of newClusters) {
      const i = waveOf.get(c) ?? ctx.waves.length;
      if (i < k) stage.set(c, instancesOf(c, revision.clusters[c] as RenderedCluster, true));
      else if (i === k) stage.set(c, bothOf(c, recorded[c], revision.clusters[c]));
      else if (recorded[c]) stage.set(c, instancesOf(c, recorded[c], false));
    }
    for (const c of gone) stage.set(c, instancesOf(c, recorded[c] as RenderedCluster, false));
    return { wave: w.name, stage };
  });

  const vBefore = new Set([...violationsAt(before, validRange).keys()].map(identity));
  const vAfter = violationsAt(after, validRange);
  const afterIds = new Set([...vAfter.keys()].map(identity));

  // Final state.
  for (const { v, clusters } of vAfter.values()) findings.push(finalFinding(ctx, v, [...clusters].sort()));

  // During the rollout: new problems that neither exist before nor remain after; first wave only.
  const reported = new Set<string>();
  for (const { wave, stage } of during) {
    for (const [key, { v, clusters }] of violationsAt(stage, validRange)) {
      const id = identity(key);
      if (vBefore.has(id) || afterIds.has(id) || reported.has(id)) continue;
      reported.add(id);
      findings.push(skewFinding(ctx, wave, v, [...clusters].sort()));
    }
  }
  return findings;
}

function finalFinding(ctx: CheckContext, v: Violation, clusters: string[]): Finding {
  const { consumer, dep, range } = v;
  const first = clusters[0] ?? consumer.cluster;
  const o = ctx.origin(first, consumer.service, `requires.${dep}`);
  const where = clusters.length === 1 ? `on ${first}` : `on ${clusters.length} clusters: ${fewOf(clusters)}`;
  const base = {
    severity: 'error' as const,
    path: o.path,
    ...(o.location ? { location: o.location } : {}),
    target: { service: consumer.service, ...(clusters.length === 1 ? { cluster: first } : {}) },
    clusters,
  };
  if (v.depVersion === null) {
    return {
      ...base,
      code: 'MERIDIAN_E_REQUIRES_UNREACHABLE',
      message: `${consumer.service} ${consumer.version} requires ${dep} ${JSON.stringify(range)}, but ${dep} runs on no cluster; ${consumer.service} runs ${where}`,
      fix: `place ${dep} on at least one cluster (check its placement), or remove ${dep} from ${consumer.service}'s requires`,
    };
  }
  return {
    ...base,
    code: 'MERIDIAN_E_REQUIRES_UNSATISFIED',
    message: `${consumer.service} ${consumer.version} requires ${dep} ${JSON.stringify(range)}, but the ${dep} it calls is ${v.depVersion}; ${consumer.service} runs ${where}`,
    fix: `deploy a version of ${dep} that satisfies ${JSON.stringify(range)} everywhere ${consumer.service} can reach it, or change the range to accept ${dep} ${v.depVersion}`,
  };
}

function skewFinding(ctx: CheckContext, wave: string, v: Violation, clusters: string[]): Finding {
  const { consumer, dep, range } = v;
  const first = clusters[0] ?? consumer.cluster;
  const where = clusters.length === 1 ? first : `${clusters.length} clusters: ${fewOf(clusters)}`;
  // Point at the new half of the pair: the new consumer's range, else the new dependency's version.
  let o: Pick<Origin, 'path' | 'location'>;
  if (consumer.isNew) o = ctx.origin(consumer.cluster, consumer.service, `requires.${dep}`);
  else if (v.depInstance?.isNew) o = ctx.origin(v.depInstance.cluster, dep, 'version');
  else if (ctx.revision.clusters[first]?.services[consumer.service]) o = ctx.origin(first, consumer.service, 'version');
  else o = { path: `services.${dep}`, ...ctx.at(['services', dep], { key: true }) };
  const consumerSide = `${consumer.service} ${consumer.version} (${consumer.isNew ? 'new' : 'old'})`;
  let message: string;
  let fix: string;
  if (v.depVersion === null) {
    message = `during wave ${wave}, ${consumerSide} on ${where} requires ${dep} ${JSON.stringify(range)}, but ${dep} runs on no cluster it can reach yet`;
    fix = `deploy ${dep} before ${consumer.service}: roll ${dep} out in an earlier rollout, or put the clusters that run ${dep} in a wave before ${consumer.service}'s`;
  } else {
    const depSide = `${dep} ${v.depVersion} (${v.depInstance?.isNew ? 'new' : 'old'}${v.depCluster ? `, on ${v.depCluster}` : ''})`;
    message = `during wave ${wave}, ${consumerSide} on ${where} requires ${dep} ${JSON.stringify(range)}, but ${depSide} is still reachable: versions skew while the rollout runs`;
    fix = consumer.isNew
      ? `widen ${consumer.service}'s requires.${dep} to also accept ${dep} ${v.depVersion} while both run, or roll ${dep} out everywhere in an earlier rollout (or an earlier wave) before ${consumer.service}`
      : `keep ${dep} ${v.depVersion} compatible with ${JSON.stringify(range)}, or first release ${consumer.service} with a range that accepts ${dep} ${v.depVersion} and roll that out everywhere`;
  }
  return {
    code: 'MERIDIAN_E_VERSION_SKEW',
    severity: 'error',
    message,
    path: o.path,
    ...(o.location ? { location: o.location } : {}),
    fix,
    target: { service: consumer.service, ...(clusters.length === 1 ? { cluster: first } : {}) },
    clusters,
  };
}
