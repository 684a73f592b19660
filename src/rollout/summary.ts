/**
 * What a rollout looks like from outside: its waves and where it is, the canary weights in force, each
 * gate's verdict with its numbers, and the approvals — as a plain view (for `--output json`), as text
 * for a terminal, and as Markdown fit for $GITHUB_STEP_SUMMARY. Pure.
 */
import type { ApprovalRecord, JsonValue, RolloutEventRecord, RolloutRecord } from '../store/store.js';
import { formatVerdict } from './analysis/verdict.js';
import { evaluateApprovals } from './approvals.js';
import { MeasurementRecord } from './canary-analysis.js';
import { asState } from './events.js';
import type { RolloutSpec } from './rollout-spec.js';

export interface GateView {
  readonly seq: number;
  readonly at: string;
  readonly wave: string;
  readonly clusters: readonly string[];
  readonly step: number;
  readonly weight: number | null;
  readonly attempt: number;
  readonly outcome: string;
  readonly reason: string | null;
  readonly metrics: JsonValue;
}

export interface WaveView {
  readonly name: string;
  readonly clusters: readonly string[];
  readonly batches: readonly (readonly string[])[];
  readonly steps: readonly number[];
  /** `pending`, `in-progress`, `promoted`, `rolled-back`. */
  readonly status: string;
  readonly approvals: {
    readonly needed: number;
    readonly roles: readonly string[];
    readonly approvers: readonly string[];
    readonly rejectedBy: string | null;
    readonly ignored: readonly string[];
  } | null;
}

export interface RolloutView {
  readonly id: string;
  readonly kind: string;
  readonly fleet: string;
  readonly state: string;
  readonly author: string;
  readonly planHash: string;
  readonly from: string | null;
  readonly to: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
  readonly phase: JsonValue;
  readonly reason: string | null;
  readonly waves: readonly WaveView[];
  /** Cluster → percent of its changed services' traffic to the canary, as last set and not cleared. */
  readonly weights: Readonly<Record<string, number>>;
  readonly gates: readonly GateView[];
  readonly overrides: readonly { readonly by: string; readonly reason: string | null; readonly at: string }[];
  readonly events: number;
}

/** Builds the view of a rollout from its record, events and approvals. */
export function rolloutView(
  r: RolloutRecord,
  spec: RolloutSpec,
  events: readonly RolloutEventRecord[],
  decisions: readonly ApprovalRecord[],
  now: number,
): RolloutView {
  const state = asState(r.machine);
  const p = state.phase;
  const promoted = new Set<string>();
  const rolledBack = new Set<string>();
  const weights: Record<string, number> = {};
  const gates: GateView[] = [];
  const overrides: { by: string; reason: string | null; at: string }[] = [];
  for (const e of events) {
    const d = (e.data ?? {}) as Record<string, JsonValue>;
    const from = (d['from'] ?? {}) as Record<string, JsonValue>;
    if (e.type === 'promoted') for (const c of (d['clusters'] as string[] | undefined) ?? []) promoted.add(c);
    if (e.type === 'cluster-rolled-back') rolledBack.add(String(d['cluster']));
    if (e.type === 'weight-set') {
      for (const c of (d['clusters'] as string[] | undefined) ?? []) weights[c] = Number(d['weight']);
    }
    if (e.type === 'promoted' || e.type === 'cluster-rolled-back') {
      const cs = e.type === 'promoted' ? ((d['clusters'] as string[] | undefined) ?? []) : [String(d['cluster'])];
      for (const c of cs) delete weights[c];
    }
    if (e.type === 'verdict') {
      const wi = Number(from['wave']);
      const w = spec.config.waves[wi];
      gates.push({
        seq: e.seq,
        at: e.at,
        wave: w?.name ?? String(wi),
        clusters: w?.batches[Number(from['batch'])] ?? [],
        step: Number(from['step']),
        weight: typeof d['weight'] === 'number' ? d['weight'] : null,
        attempt: Number(from['attempt'] ?? 0),
        outcome: String(d['outcome']),
        reason: d['reason'] == null ? null : String(d['reason']),
        metrics: d['metrics'] ?? [],
      });
    }
    if (e.type === 'control' && d['action'] === 'promote')
      overrides.push({ by: e.actor, reason: d['reason'] == null ? null : String(d['reason']), at: e.at });
  }
  const current = p.kind === 'paused' ? p.resume : p;
  const waves: WaveView[] = spec.config.waves.map((w, i) => {
    const clusters = w.batches.flat();
    let status = 'pending';
    if (clusters.length > 0 && clusters.every((c) => promoted.has(c) && !rolledBack.has(c))) status = 'promoted';
    else if (clusters.some((c) => rolledBack.has(c))) status = 'rolled-back';
    else if (p.kind !== 'done' && current.wave === i) {
      status =
        p.kind === 'rollback' || p.kind === 'revert'
          ? 'rolling-back'
          : p.kind === 'paused'
            ? 'paused'
            : current.kind === 'approval'
              ? 'awaiting-approval'
              : 'in-progress';
    } else if (clusters.length === 0) status = 'empty';
    let approvals: WaveView['approvals'] = null;
    if (w.approvals) {
      const v = evaluateApprovals(
        decisions.filter((x) => x.wave === w.name),
        {
          planHash: spec.planHash,
          wave: w.name,
          count: w.approvals.count,
          roles: w.approvals.roles,
          authors: spec.authors,
          now,
        },
      );
      approvals = {
        needed: w.approvals.count,
        roles: w.approvals.roles,
        approvers: v.approvers,
        rejectedBy: v.rejected?.actor ?? null,
        ignored: v.ignored.map((x) => `${x.approval.actor}: ${x.why}`),
      };
    }
    return { name: w.name, clusters, batches: w.batches, steps: w.steps.map((s) => s.weight), status, approvals };
  });
  const reason = p.kind === 'done' || p.kind === 'paused' || p.kind === 'rollback' || p.kind === 'revert' ? p.reason : null;
  return {
    id: r.id,
    kind: r.kind,
    fleet: r.fleet,
    state: r.state,
    author: r.author,
    planHash: r.planHash,
    from: spec.previous,
    to: spec.revision,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
    phase: JSON.parse(JSON.stringify(p)) as JsonValue,
    reason,
    waves,
    weights: Object.fromEntries(Object.entries(weights).filter(([, w]) => w > 0)),
    gates,
    overrides,
    events: events.length,
  };
}

function metricsText(m: JsonValue): string {
  if (!Array.isArray(m) || m.length === 0) return '';
  return m
    .map((x) => {
      if (!x || typeof x !== 'object' || Array.isArray(x)) return JSON.stringify(x);
      const verdict = MeasurementRecord.safeParse(x);
      if (verdict.success) return `${verdict.data.service} ${formatVerdict(verdict.data)}`;
      const o = x as Record<string, JsonValue>;
      const name = String(o['name'] ?? 'metric');
      const rest = Object.entries(o)
        .filter(([k]) => k !== 'name')
        .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
        .join(' ');
      return `${name}(${rest})`;
    })
    .join('\n');
}

function phaseText(v: RolloutView): string {
  const p = v.phase as Record<string, JsonValue>;
  const cur = (p['kind'] === 'paused' ? p['resume'] : p) as Record<string, JsonValue>;
  const wave = v.waves[Number(cur['wave'])];
  const parts = [String(p['kind'])];
  if (wave && p['kind'] !== 'done') parts.push(`wave ${wave.name}`);
  if (wave && typeof cur['batch'] === 'number')
    parts.push(`batch ${cur['batch'] + 1}/${wave.batches.length} [${(wave.batches[cur['batch']] ?? []).join(', ')}]`);
  if (wave && typeof cur['step'] === 'number')
    parts.push(`step ${cur['step'] + 1}/${wave.steps.length} (${wave.steps[cur['step']] ?? '?'}%)`);
  return parts.join(', ');
}

/** The view as text for a terminal. */
export function statusText(v: RolloutView): string {
  const lines = [
    `${v.kind} ${v.id}  ${v.state}${v.reason ? ` — ${v.reason}` : ''}`,
    `  fleet ${v.fleet}, ${v.from ?? '(nothing)'} → ${v.to}, started by ${v.author} at ${v.createdAt}`,
    `  now: ${phaseText(v)}`,
    `  waves:`,
  ];
  for (const w of v.waves) {
    let line = `    ${w.name.padEnd(12)} ${w.status.padEnd(17)} ${w.clusters.join(', ') || '(no clusters)'}  steps ${w.steps.join('/')}%`;
    if (w.approvals) {
      line += `  approvals ${w.approvals.approvers.length}/${w.approvals.needed} (${w.approvals.roles.join(', ')})`;
      if (w.approvals.approvers.length) line += ` by ${w.approvals.approvers.join(', ')}`;
      if (w.approvals.rejectedBy) line += `, rejected by ${w.approvals.rejectedBy}`;
    }
    lines.push(line);
  }
  const weights = Object.entries(v.weights);
  lines.push(`  canary weights: ${weights.length ? weights.map(([c, w]) => `${c} ${w}%`).join(', ') : 'none'}`);
  if (v.gates.length) {
    lines.push('  gates:');
    for (const g of v.gates) {
      const m = metricsText(g.metrics);
      lines.push(
        `    #${g.seq} ${g.wave} step ${g.step + 1}${g.weight !== null ? ` (${g.weight}%)` : ''}${g.attempt ? ` look ${g.attempt + 1}` : ''}: ${g.outcome}${g.reason ? ` — ${g.reason}` : ''}${m ? `\n        ${m.split('\n').join('\n        ')}` : ''}`,
      );
    }
  }
  for (const o of v.overrides) lines.push(`  override: promoted by ${o.by} at ${o.at}: ${o.reason ?? '(no reason)'}`);
  return `${lines.join('\n')}\n`;
}

const ICON: Record<string, string> = {
  promoted: '✅',
  'rolled-back': '↩️',
  failed: '❌',
  paused: '⏸️',
  'awaiting-approval': '⏳',
  running: '🔄',
};

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The view as Markdown, for $GITHUB_STEP_SUMMARY. */
export function summaryMarkdown(v: RolloutView, exitCode?: number): string {
  const out = [
    `## ${ICON[v.state] ?? ''} Meridian ${v.kind} \`${v.id}\`: ${v.state}`.replace('  ', ' '),
    '',
    v.reason ? `> ${cell(v.reason)}\n` : '',
    `| | |`,
    `| --- | --- |`,
    `| fleet | \`${v.fleet}\` |`,
    `| revision | \`${v.from ?? '(none)'}\` → \`${v.to}\` |`,
    `| plan hash | \`${v.planHash.slice(0, 16)}\` |`,
    `| started | ${v.createdAt} by ${cell(v.author)} |`,
    `| finished | ${v.finishedAt ?? '—'} |`,
    ...(exitCode !== undefined ? [`| exit code | ${exitCode} |`] : []),
    '',
    '### Waves',
    '',
    '| wave | clusters | steps | approvals | status |',
    '| --- | --- | --- | --- | --- |',
    ...v.waves.map(
      (w) =>
        `| ${cell(w.name)} | ${cell(w.clusters.join(', ') || '—')} | ${w.steps.join(' / ')}% | ${
          w.approvals
            ? `${w.approvals.approvers.length}/${w.approvals.needed} ${cell(w.approvals.roles.join(', '))}${w.approvals.approvers.length ? ` (${cell(w.approvals.approvers.join(', '))})` : ''}${w.approvals.rejectedBy ? `, rejected by ${cell(w.approvals.rejectedBy)}` : ''}`
            : '—'
        } | ${w.status} |`,
    ),
    '',
  ];
  if (v.gates.length) {
    out.push('### Gates', '', '| # | wave | clusters | step | weight | verdict | numbers |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const g of v.gates) {
      out.push(
        `| ${g.seq} | ${cell(g.wave)} | ${cell(g.clusters.join(', '))} | ${g.step + 1}${g.attempt ? ` (look ${g.attempt + 1})` : ''} | ${g.weight ?? '—'}% | ${g.outcome}${g.reason ? `: ${cell(g.reason)}` : ''} | ${cell(metricsText(g.metrics).split('\n').join('; ')) || '—'} |`,
      );
    }
    out.push('');
  }
  for (const o of v.overrides) out.push(`- **override**: promoted by ${cell(o.by)} at ${o.at}: ${cell(o.reason ?? '(no reason)')}`);
  return `${out
    .filter((l, i, a) => !(l === '' && a[i - 1] === ''))
    .join('\n')
    .trimEnd()}\n\n`;
}
