/**
 * What a drill measured (docs/recovery.md, "Drills"): from every request's outcome, per client region,
 * the recovery time — from the fault to the moment the region is served within its SLO again and stays
 * so — compared with the policy's RTO; and the report in JSON and Markdown. Pure.
 */

/** One request of the drill's traffic, timed from the fault (negative: before it). */
export interface DrillSample {
  readonly atMs: number;
  readonly region: string;
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly cluster: string | null;
  /** The HTTP status, or 0 when the request got no answer (timeout, reset, refused). */
  readonly status?: number;
}

/** Served within SLO: in each window, at least `successRatio` of requests succeed and their p99 is at most `latencyMs`. */
export interface DrillSlo {
  readonly successRatio: number;
  readonly latencyMs: number;
  readonly windowMs: number;
}

/** A window of a client region's requests that missed the SLO, and by how much. */
export interface MissedWindow {
  /** The window's start, from the fault. */
  readonly fromMs: number;
  readonly requests: number;
  readonly failed: number;
  /** The p99 latency of its requests (the slowest one, for fewer than 100). */
  readonly p99Ms: number;
}

export interface RegionRecovery {
  readonly region: string;
  /** Time from the fault until the region was within SLO for good; 0 when it never left it; null when it never came back. */
  readonly rtoMs: number | null;
  /** The policy's RTO for the region (and service), or null when the policy sets none. */
  readonly policyRtoMs: number | null;
  readonly pass: boolean;
  readonly requests: number;
  readonly failed: number;
  /** The failed requests by what went wrong: an HTTP status (`503`) or `no answer` (timeout, reset, refused). */
  readonly failures: Readonly<Record<string, number>>;
  /** Requests after the fault by the cluster that answered them. */
  readonly servedBy: Readonly<Record<string, number>>;
  /** Every window that missed the SLO, in order: whether requests failed or were slow, and when. */
  readonly missed: readonly MissedWindow[];
}

export interface DrillResult {
  readonly fleet: string;
  readonly place: { readonly kind: 'region' | 'cluster'; readonly name: string };
  readonly fault: string;
  readonly service: string | null;
  readonly startedAt: string;
  readonly slo: DrillSlo;
  readonly observedMs: number;
  readonly regions: readonly RegionRecovery[];
  readonly timeline: readonly { readonly atMs: number; readonly event: string }[];
  readonly pass: boolean;
}

function p99(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] ?? 0;
}

/**
 * Per client region: windows of `slo.windowMs` from the fault on, each judged by the SLO (empty windows
 * are not judged); the recovery time is the end of the last window that missed it — null when the last
 * judged window still misses it.
 */
export function recoveryOf(
  samples: readonly DrillSample[],
  slo: DrillSlo,
  policyRtoMs: (region: string) => number | null,
): RegionRecovery[] {
  const byRegion = new Map<string, DrillSample[]>();
  for (const s of samples) {
    if (s.atMs < 0) continue;
    const list = byRegion.get(s.region);
    if (list) list.push(s);
    else byRegion.set(s.region, [s]);
  }
  const out: RegionRecovery[] = [];
  for (const [region, xs] of [...byRegion].sort(([a], [b]) => a.localeCompare(b))) {
    const windows = new Map<number, DrillSample[]>();
    for (const s of xs) {
      const w = Math.floor(s.atMs / slo.windowMs);
      const list = windows.get(w);
      if (list) list.push(s);
      else windows.set(w, [s]);
    }
    const judged = [...windows].sort(([a], [b]) => a - b);
    const good = (ws: DrillSample[]): boolean =>
      ws.filter((s) => s.ok).length / ws.length >= slo.successRatio && p99(ws.map((s) => s.latencyMs)) <= slo.latencyMs;
    let lastBad = -1;
    const missed: MissedWindow[] = [];
    judged.forEach(([w, ws]) => {
      if (good(ws)) return;
      lastBad = w;
      missed.push({
        fromMs: w * slo.windowMs,
        requests: ws.length,
        failed: ws.filter((s) => !s.ok).length,
        p99Ms: Math.round(p99(ws.map((s) => s.latencyMs))),
      });
    });
    const lastIndex = judged[judged.length - 1]?.[0] ?? -1;
    const rtoMs = lastBad < 0 ? 0 : lastBad === lastIndex ? null : (lastBad + 1) * slo.windowMs;
    const policy = policyRtoMs(region);
    const servedBy: Record<string, number> = {};
    const failures: Record<string, number> = {};
    for (const s of xs) {
      if (s.ok && s.cluster) servedBy[s.cluster] = (servedBy[s.cluster] ?? 0) + 1;
      if (s.ok) continue;
      const why = !s.status ? 'no answer' : String(s.status);
      failures[why] = (failures[why] ?? 0) + 1;
    }
    out.push({
      region,
      rtoMs,
      policyRtoMs: policy,
      pass: rtoMs !== null && (policy === null || rtoMs <= policy),
      requests: xs.length,
      failed: xs.filter((s) => !s.ok).length,
      failures,
      servedBy,
      missed,
    });
  }
  return out;
}

/**
 * Whether the place took traffic before the fault: true when a request of the warm-up was answered by one
 * of `clusters`, false when none was although answers named their cluster (the place was drained,
 * ejected or down already: the drill then measures no failover), null when no answer named its cluster
 * (a data plane that does not say, as HAProxy).
 */
export function servedBeforeFault(samples: readonly DrillSample[], clusters: readonly string[]): boolean | null {
  const before = samples.filter((s) => s.atMs < 0 && s.ok && s.cluster !== null);
  if (before.length === 0) return null;
  return before.some((s) => clusters.includes(s.cluster as string));
}

const ms = (n: number | null): string =>
  n === null ? 'not recovered' : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(n % 1000 === 0 ? 0 : 2)} s`;

function failureText(f: Readonly<Record<string, number>>): string {
  const parts = Object.entries(f)
    .sort(([, a], [, b]) => b - a)
    .map(([why, n]) => `${n} × ${why}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** The report as Markdown, for people and CI summaries. */
export function drillMarkdown(r: DrillResult): string {
  const lines = [
    `# Drill: ${r.fault} ${r.place.kind} ${r.place.name} (fleet ${r.fleet})`,
    '',
    `Started ${r.startedAt}; observed ${ms(r.observedMs)} after the fault. SLO: ${Math.round(r.slo.successRatio * 10000) / 100} % of requests succeed and p99 ≤ ${r.slo.latencyMs} ms in every ${r.slo.windowMs} ms window.`,
    '',
    `**${r.pass ? 'PASS' : 'FAIL'}**: ${r.regions.filter((x) => !x.pass).length} of ${r.regions.length} client regions missed their RTO.`,
    '',
    '| client region | recovery time | policy RTO | requests | failed | served by (after the fault) | result |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...r.regions.map(
      (x) =>
        `| ${x.region} | ${ms(x.rtoMs)} | ${x.policyRtoMs === null ? '—' : ms(x.policyRtoMs)} | ${x.requests} | ${x.failed}${failureText(x.failures)} | ${Object.entries(
          x.servedBy,
        )
          .sort(([, a], [, b]) => b - a)
          .map(([c, n]) => `${c} ${n}`)
          .join(', ')} | ${x.pass ? 'pass' : 'FAIL'} |`,
    ),
    '',
    '## Timeline',
    '',
    ...r.timeline.map((t) => `- ${t.atMs >= 0 ? '+' : ''}${t.atMs} ms: ${t.event}`),
    '',
    ...(r.regions.some((x) => x.missed.length > 0)
      ? [
          '## Windows that missed the SLO',
          '',
          ...r.regions
            .filter((x) => x.missed.length > 0)
            .map(
              (x) =>
                `- ${x.region}: ${x.missed
                  .map((w) => `+${w.fromMs}–${w.fromMs + r.slo.windowMs} ms ${w.failed} of ${w.requests} failed, p99 ${ms(w.p99Ms)}`)
                  .join('; ')}`,
            ),
          '',
        ]
      : []),
  ];
  return lines.join('\n');
}
