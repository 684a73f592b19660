/**
 * `meridian drill PLACE`: a recovery exercise on the running local fleet (`meridian up`). Synthetic
 * clients from every client region call through the router; after a warm-up the region or cluster is
 * killed (SIGKILL: its supervisor restarts it), hung (SIGSTOP, then SIGCONT) or evacuated under the
 * safety rules (then restored); the recovery time of each client region is measured against the
 * policy's RTO and written as a report (Markdown and JSON). Audited; exit 0 when every region met its
 * RTO, 1 when one did not. docs/recovery.md, "Drills".
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { MeridianError, UsageError } from '../../errors.js';
import { drillMarkdown, recoveryOf, servedBeforeFault, type DrillResult, type DrillSample } from '../../recovery/drill-report.js';
import { evacuate, restore } from '../../recovery/evacuation.js';
import { blockedBy, rtoMs } from '../../recovery/policy.js';
import { restoreRamp } from '../../recovery/ramp.js';
import type { Place } from '../../recovery/safety.js';
import { render } from '../../render/render.js';
import { loadFleet } from '../../spec/load.js';
import { resolveActor } from '../../store/actor.js';
import { runTraffic, type Answer } from '../../traffic/generator.js';
import { parseDuration } from '../../units/duration.js';
import { parseRatio } from '../../units/quantity.js';
import { EXIT } from '../exit-codes.js';
import { type Io, write } from '../io.js';
import { storeFor } from '../state.js';
import { readUpInfo } from '../up-info.js';
import type { Result } from './index.js';

type Fault = 'kill' | 'hang' | 'evacuate';

interface DrillFlags {
  fault: string;
  rps: string;
  warmup: string;
  duration: string;
  slo: string;
  sloLatency: string;
  window: string;
  service?: string;
  host?: string;
  report?: string;
  state?: string;
  actor?: string;
  output: 'text' | 'json';
}

function durationOf(flag: string, value: string): number {
  const v = parseDuration(value);
  if (v === undefined || v <= 0) throw new UsageError(`--${flag} must be a duration like 10s or 500ms, not ${JSON.stringify(value)}`);
  return v;
}

/** The process groups of a cluster's replicas, from the local fleet's control API. */
async function replicaGroups(control: string, token: string, cluster: string): Promise<number[]> {
  const res = await fetch(new URL(`/v1/status?cluster=${encodeURIComponent(cluster)}`, control), {
    headers: { authorization: `Bearer ${token}` },
  });
  if (!res.ok)
    throw new MeridianError('MERIDIAN_E_DRILL_FLEET', `the local fleet's control API answered ${res.status} for cluster ${cluster}`);
  const status = (await res.json()) as { services?: Record<string, Record<string, { replicas?: { pid?: number | null }[] }>> };
  const pids: number[] = [];
  for (const tracks of Object.values(status.services ?? {}))
    for (const t of Object.values(tracks)) for (const r of t.replicas ?? []) if (typeof r.pid === 'number') pids.push(r.pid);
  return pids;
}

function signalGroups(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(-pid, signal);
    } catch {
      // gone already
    }
  }
}

async function drill(name: string, flags: DrillFlags, io: Io): Promise<number> {
  const info = readUpInfo(io);
  if (!info) {
    throw new UsageError(
      'no running fleet here: a drill runs against the live local fleet',
      'start it first with `meridian up FLEET` in this directory (or --detach)',
    );
  }
  const fault = flags.fault as Fault;
  if (!['kill', 'hang', 'evacuate'].includes(fault))
    throw new UsageError(`--fault must be kill, hang or evacuate, not ${JSON.stringify(flags.fault)}`);
  const rps = Number(flags.rps);
  if (!Number.isFinite(rps) || rps <= 0 || rps > 2000)
    throw new UsageError(`--rps must be a number from 1 to 2000, not ${JSON.stringify(flags.rps)}`);
  const warmupMs = durationOf('warmup', flags.warmup);
  const durationMs = durationOf('duration', flags.duration);
  const windowMs = durationOf('window', flags.window);
  const sloLatencyMs = durationOf('slo-latency', flags.sloLatency);
  const successRatio = parseRatio(flags.slo);
  if (successRatio === undefined) throw new UsageError(`--slo must be a ratio like 99% or 0.99, not ${JSON.stringify(flags.slo)}`);

  // the directory `up` ran (an up.json of an older version names only the fleet: a directory of that name here)
  const loaded = loadFleet(info.fleetDir ?? resolve(io.cwd, info.fleet));
  const { fleet } = loaded;
  const place: Place = fleet.regions[name]
    ? { kind: 'region', name }
    : fleet.clusters[name]
      ? { kind: 'cluster', name }
      : (() => {
          throw new UsageError(
            `the fleet ${fleet.fleet} has no region or cluster ${JSON.stringify(name)}`,
            `regions: ${Object.keys(fleet.regions).join(', ')}`,
          );
        })();
  const startedAt = new Date();
  const blocked = blockedBy(fleet.recovery, startedAt);
  if (blocked)
    throw new MeridianError('MERIDIAN_E_DRILL_BLOCKED', `no drill may start now: it is inside ${blocked}`, {
      hint: 'run it outside the blocked windows and dates',
    });
  const service = flags.service ?? Object.keys(fleet.routing)[0] ?? null;
  const clusters = Object.entries(fleet.clusters)
    .filter(([c, x]) => (place.kind === 'cluster' ? c === place.name : x.region === place.name))
    .map(([c]) => c);
  const countryRegion = new Map<string, string>();
  for (const [region, r] of Object.entries(fleet.regions)) if (r.countries[0]) countryRegion.set(r.countries[0], region);
  const mix = [...countryRegion.keys()].map((country) => ({ country, weight: 1 }));
  if (mix.length === 0)
    throw new UsageError(`the fleet ${fleet.fleet} has no client regions (regions with countries) to send traffic from`);

  const actor = resolveActor(flags.actor, io.env);
  const store = await storeFor(flags.state, io);
  try {
    await store.appendAudit({
      actor,
      action: 'drill.start',
      subject: name,
      reason: `drill: ${fault} ${place.kind} ${name}`,
      data: { fault, kind: place.kind },
    });
    const answers: Answer[] = [];
    const timeline: { atMs: number; event: string }[] = [];
    const abort = new AbortController();
    let t0 = Number.NaN;
    const traffic = runTraffic({
      url: info.router,
      rps,
      mix,
      durationMs: warmupMs + durationMs,
      timeoutMs: Math.max(2000, sloLatencyMs * 2),
      ...(flags.host ? { host: flags.host } : {}),
      signal: abort.signal,
      onAnswer: (a) => answers.push(a),
    });
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    await sleep(warmupMs);

    let groups: number[] = [];
    if (fault !== 'evacuate') for (const c of clusters) groups.push(...(await replicaGroups(info.control, info.token, c)));
    t0 = performance.now();
    timeline.push({ atMs: -warmupMs, event: `traffic from ${mix.map((m) => m.country).join(', ')} at ${rps} req/s` });
    if (fault === 'kill') {
      signalGroups(groups, 'SIGKILL');
      timeline.push({
        atMs: 0,
        event: `SIGKILL to ${groups.length} replica process group(s) of ${clusters.join(', ')} (their supervisor restarts them)`,
      });
    } else if (fault === 'hang') {
      signalGroups(groups, 'SIGSTOP');
      timeline.push({ atMs: 0, event: `SIGSTOP to ${groups.length} replica process group(s) of ${clusters.join(', ')}` });
    } else {
      const outcome = await evacuate(store, fleet.recovery, render(loaded).revision, {
        place,
        reason: `drill: evacuate ${name}`,
        declaredDown: [],
        automated: false,
        actor,
      });
      const at = Math.round(performance.now() - t0);
      if (outcome.kind === 'refused') {
        abort.abort();
        await traffic;
        const rules = outcome.verdict.violations.map((v) => `${v.rule}: ${v.message}`).join('; ');
        throw new MeridianError(
          'MERIDIAN_E_DRILL_REFUSED',
          `the evacuation of ${place.kind} ${name} was refused by the safety rules: ${rules}`,
          {
            hint: 'drill a place the rules allow, or change the policy (docs/recovery.md)',
          },
        );
      }
      timeline.push(
        { atMs: 0, event: `evacuation of ${place.kind} ${name} ordered` },
        { atMs: at, event: 'evacuation recorded (routing.drain)' },
      );
    }
    await sleep(durationMs);
    const healAt = Math.round(performance.now() - t0);
    if (fault === 'hang') {
      signalGroups(groups, 'SIGCONT');
      timeline.push({ atMs: healAt, event: 'SIGCONT: the hung replicas run again' });
    } else if (fault === 'evacuate') {
      await restore(store, place, actor, 'drill over', restoreRamp(fleet.recovery));
      timeline.push({ atMs: healAt, event: `${place.kind} ${name} restored` });
    }
    await traffic;
    groups = [];

    const samples: DrillSample[] = answers.map((a) => ({
      atMs: a.sentAt - t0,
      region: countryRegion.get(a.country) ?? a.country,
      ok: a.status > 0 && a.status < 500,
      latencyMs: a.latencyMs,
      cluster: a.cluster,
      status: a.status,
    }));
    if (servedBeforeFault(samples, clusters) === false)
      timeline.push({
        atMs: -warmupMs,
        event: `note: no request was served by ${clusters.join(', ')} before the fault (drained, ejected by the router's outlier detection after an earlier fault, or down): this drill measured no failover`,
      });
    // judged only up to the heal: what comes after it is the way back, not the recovery
    const judged = samples.filter((s) => s.atMs < healAt);
    const regions = recoveryOf(judged, { successRatio, latencyMs: sloLatencyMs, windowMs }, (region) =>
      rtoMs(fleet.recovery, service, region),
    );
    for (const r of regions)
      if (r.rtoMs !== null && r.rtoMs > 0) timeline.push({ atMs: r.rtoMs, event: `${r.region} served within SLO again` });
    timeline.sort((a, b) => a.atMs - b.atMs);
    const result: DrillResult = {
      fleet: fleet.fleet,
      place,
      fault,
      service,
      startedAt: startedAt.toISOString(),
      slo: { successRatio, latencyMs: sloLatencyMs, windowMs },
      observedMs: healAt,
      regions,
      timeline,
      pass: regions.every((r) => r.pass),
    };
    const dir = resolve(io.cwd, flags.report ?? join('.meridian', 'drills', startedAt.toISOString().replace(/[:.]/g, '-')));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'drill.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(dir, 'drill.md'), drillMarkdown(result));
    await store.appendAudit({
      actor,
      action: 'drill.result',
      subject: name,
      reason: result.pass ? 'every client region met its RTO' : 'a client region missed its RTO',
      data: {
        fault,
        pass: result.pass,
        regions: regions.map((r) => ({ region: r.region, rtoMs: r.rtoMs, policyRtoMs: r.policyRtoMs, failed: r.failed })),
      },
    });
    if (flags.output === 'json') await write(io.out, `${JSON.stringify({ ...result, report: dir }, null, 2)}\n`);
    else await write(io.out, `${drillMarkdown(result)}\nreport: ${join(dir, 'drill.md')} and drill.json (audited as drill.result)\n`);
    return result.pass ? EXIT.ok : EXIT.findings;
  } finally {
    await store.close();
  }
}

export function registerDrill(program: Command, io: Io, result: Result): void {
  program
    .command('drill <place>')
    .description(
      "kill, hang or evacuate a region or cluster of the running local fleet under traffic and measure each client region's recovery time against the RTO",
    )
    .option('--fault <kind>', 'kill (SIGKILL; the supervisor restarts), hang (SIGSTOP, then SIGCONT) or evacuate (then restore)', 'kill')
    .option('--rps <n>', 'synthetic requests per second, spread over the client regions', '60')
    .option('--warmup <duration>', 'traffic before the fault', '2s')
    .option('--duration <duration>', 'how long the fault lasts and is observed', '10s')
    .option('--slo <ratio>', 'share of requests that must succeed in a window', '99%')
    .option('--slo-latency <duration>', 'p99 latency bound in a window', '1s')
    .option('--window <duration>', 'the SLO window', '500ms')
    .option('--service <name>', 'the service whose RTO applies (default: the first routed one)')
    .option('--host <host>', 'Host header for the traffic (to pick a service by host)')
    .option('--report <dir>', 'where to write drill.md and drill.json (default .meridian/drills/<time>)')
    .option('--state <store>', 'the state store (default: MERIDIAN_STATE or .meridian/state.db)')
    .option('--actor <id>', 'who runs the drill')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (place: string, flags: DrillFlags) => {
      result.code = await drill(place, flags, io);
    });
}
