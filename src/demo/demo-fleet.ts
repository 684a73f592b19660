/**
 * The guided demo's copy of a fleet: the fleet directory copied to a scratch place, its rollout timings
 * shortened by an overlay (so a whole rollout fits in a minute or two), and new versions of one service
 * written into it — a good one, and a bad one that answers errors. The fleet the user has is never
 * edited.
 */
import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { UsageError } from '../errors.js';
import { parseDuration } from '../units/duration.js';

/** The overlay's timings: pauses, bakes and analysis no longer than these, and canary steps at least this heavy. */
export interface DemoTimings {
  readonly pause: string;
  readonly bake: string;
  readonly interval: string;
  /** A new canary's warm-up before its first step is judged (`rollout.analysis.warmup`), when the fleet sets one. */
  readonly warmup: string;
  readonly minSamples: number;
  /** Steps below this weight (in %) are raised to it, so that a canary sees enough requests quickly. */
  readonly minWeight: number;
  /**
   * How often the services ask the control plane for their flags (the example services' FLAGS_POLL_INTERVAL,
   * 500 ms by default) at the shortest: on a laptop, forty replicas asking twice a second (and again for every
   * user every 5 s) cost the demo's one process — router, control plane and traffic — a quarter of its CPU.
   */
  readonly flagsPoll: string;
}

export const DEMO_TIMINGS: DemoTimings = {
  pause: '4s',
  bake: '3s',
  interval: '2s',
  warmup: '2s',
  minSamples: 20,
  minWeight: 25,
  flagsPoll: '2s',
};

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .map((f) => join(dir, f));
}

function edit(dir: string, has: (doc: Document) => boolean, change: (doc: Document) => void): boolean {
  for (const file of yamlFiles(dir)) {
    const doc = parseDocument(readFileSync(file, 'utf8'));
    if (!has(doc)) continue;
    change(doc);
    writeFileSync(file, doc.toString({ lineWidth: 0 }));
    return true;
  }
  return false;
}

/** At most `cap`: a duration string shortened to the cap when longer. */
function capped(value: unknown, cap: string): unknown {
  if (typeof value !== 'string') return value;
  const ms = parseDuration(value);
  const max = parseDuration(cap) ?? 0;
  return ms !== undefined && ms > max ? cap : value;
}

/** Copies the fleet at `from` to `to` (emptied first). */
export function copyFleet(from: string, to: string): void {
  rmSync(to, { recursive: true, force: true });
  cpSync(from, to, { recursive: true, filter: (src) => !src.includes('/.meridian') });
}

/**
 * Shortens the rollout of the fleet in `dir` in place: every step's pause, every bake, the analysis
 * interval and the canary's warm-up capped by `t`, minSamples capped, light canary steps raised to `t.minWeight`, and
 * the services' flag polling slowed to `t.flagsPoll`. Waves, their order, clusters, approvals and gates stay as the
 * fleet says.
 */
export function applyDemoOverlay(dir: string, t: DemoTimings = DEMO_TIMINGS): void {
  edit(
    dir,
    (doc) => isMap(doc.get('rollout')),
    (doc) => {
      const waves = doc.getIn(['rollout', 'waves']);
      if (isSeq(waves)) {
        waves.items.forEach((_w, i) => {
          const steps = doc.getIn(['rollout', 'waves', i, 'steps']);
          if (isSeq(steps)) {
            steps.items.forEach((_s, j) => {
              const path = ['rollout', 'waves', i, 'steps', j];
              const weight = doc.getIn([...path, 'weight']);
              if (typeof weight === 'number' && weight < 100 && weight < t.minWeight) doc.setIn([...path, 'weight'], t.minWeight);
              if (doc.hasIn([...path, 'pause'])) doc.setIn([...path, 'pause'], capped(doc.getIn([...path, 'pause']), t.pause));
            });
          }
          if (doc.hasIn(['rollout', 'waves', i, 'bake']))
            doc.setIn(['rollout', 'waves', i, 'bake'], capped(doc.getIn(['rollout', 'waves', i, 'bake']), t.bake));
        });
      }
      if (doc.hasIn(['rollout', 'analysis', 'interval']))
        doc.setIn(['rollout', 'analysis', 'interval'], capped(doc.getIn(['rollout', 'analysis', 'interval']), t.interval));
      if (doc.hasIn(['rollout', 'analysis', 'warmup']))
        doc.setIn(['rollout', 'analysis', 'warmup'], capped(doc.getIn(['rollout', 'analysis', 'warmup']), t.warmup));
      const min = doc.getIn(['rollout', 'analysis', 'minSamples']);
      if (typeof min === 'number' && min > t.minSamples) doc.setIn(['rollout', 'analysis', 'minSamples'], t.minSamples);
    },
  );
  // the services' flag polling, where it is shorter than t.flagsPoll (or unset: 500 ms)
  edit(
    dir,
    (doc) => isMap(doc.get('services')),
    (doc) => {
      const services = doc.get('services');
      if (!isMap(services)) return;
      for (const item of services.items) {
        const path = ['services', String(item.key), 'config', 'FLAGS_POLL_INTERVAL'];
        const now = doc.getIn(path);
        const ms = typeof now === 'string' ? parseDuration(now) : undefined;
        if (ms === undefined || ms < (parseDuration(t.flagsPoll) ?? 0)) doc.setIn(path, t.flagsPoll);
      }
    },
  );
}

/**
 * Writes the next minor version of `service` into the fleet in `dir`: `version`, the image's tag and a
 * digest of its own; with `errorRatio`, the new version answers that share of requests with errors (the
 * example services' FAULT_ERROR_RATIO knob). Returns the old and new version.
 */
export function bumpVersion(dir: string, service: string, opts: { errorRatio?: string } = {}): { from: string; to: string } {
  let from = '';
  let to = '';
  const found = edit(
    dir,
    (doc) => isMap(doc.getIn(['services', service])),
    (doc) => {
      from = String(doc.getIn(['services', service, 'version']));
      const next = semver.inc(from, 'minor');
      if (!next) throw new UsageError(`the demo cannot bump ${service}'s version ${from}: it is not a semantic version`);
      to = next;
      doc.setIn(['services', service, 'version'], to);
      const image = doc.getIn(['services', service, 'image']);
      if (typeof image === 'string') {
        const repo = image.replace(/@sha256:[0-9a-f]{64}$/, '').replace(/:[^:/]+$/, '');
        const digest = createHash('sha256').update(`${repo}:${to}`).digest('hex');
        doc.setIn(['services', service, 'image'], `${repo}:${to}@sha256:${digest}`);
      }
      if (opts.errorRatio !== undefined) doc.setIn(['services', service, 'config', 'FAULT_ERROR_RATIO'], opts.errorRatio);
    },
  );
  if (!found) throw new UsageError(`the demo found no service ${service} in the fleet's files`);
  return { from, to };
}
