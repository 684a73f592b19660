/** A plan as text for people: what changes where, the waves, and the blast radius table. Pure and deterministic. */
import { canonicalJson } from '../render/canonical.js';
import type { Change, ChangeValue, ClusterDiff, PolicyChange } from './diff.js';
import type { Plan, PlanWave } from './plan.js';

export interface FormatOptions {
  /** ANSI colours (the CLI passes true only on a terminal). */
  readonly color?: boolean | undefined;
}

interface Paint {
  add(s: string): string;
  del(s: string): string;
  mod(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

function paint(on: boolean): Paint {
  const w = (open: number, close: number) => (s: string) => (on ? `\u001b[${open}m${s}\u001b[${close}m` : s);
  return { add: w(32, 39), del: w(31, 39), mod: w(33, 39), bold: w(1, 22), dim: w(2, 22) };
}

/** Formats a plan. Clusters with the same changes are listed together, so a fleet of hundreds stays readable. */
export function formatPlan(plan: Plan, opts: FormatOptions = {}): string {
  const p = paint(opts.color ?? false);
  const s = plan.summary;
  const out: string[] = [];
  out.push(`${p.bold(`Plan for fleet ${plan.fleet}`)}: revision ${plan.revision}${plan.previous ? ` (from ${plan.previous})` : ''}`);
  out.push(`  plan hash ${p.dim(plan.hash)}`);
  out.push(
    `  ${plural(s.clusters, 'cluster')}: ${s.create} to create, ${s.update} to update, ${s.unchanged} unchanged, ${s.remove} to remove; ` +
      `${plural(s.changes, 'change')}; ${plural(s.routingChanges, 'routing change')}; ${plural(s.flagChanges, 'flag change')}`,
  );

  out.push('', p.bold('Clusters'));
  const unchanged: string[] = [];
  const groups = new Map<string, { names: string[]; diff: ClusterDiff }>();
  for (const [name, diff] of Object.entries(plan.clusters)) {
    if (diff.action === 'unchanged') {
      unchanged.push(name);
      continue;
    }
    const key = canonicalJson({ action: diff.action, from: diff.from, changes: diff.changes });
    const g = groups.get(key);
    if (g) g.names.push(name);
    else groups.set(key, { names: [name], diff });
  }
  if (groups.size === 0 && unchanged.length === 0) out.push('  (none)');
  for (const { names, diff } of groups.values()) {
    const was = diff.from ? ` (runs ${diff.from})` : '';
    out.push(`  ${p.bold(names.join(', '))}  ${actionLabel(diff.action, p)}${p.dim(was)}`);
    for (const c of diff.changes) out.push(`    ${changeLine(c, p)}`);
    if (diff.changes.length === 0) out.push(`    ${p.dim('(the rendered cluster differs only in fields the plan does not list)')}`);
  }
  if (unchanged.length > 0) out.push(`  ${p.dim(`unchanged: ${unchanged.join(', ')}`)}`);

  if (plan.routingChanges.length > 0) {
    out.push('', p.bold('Routing'));
    for (const c of plan.routingChanges) out.push(`  ${policyLine(c, 'routing', p)}`);
  }
  if (plan.flagChanges.length > 0) {
    out.push('', p.bold('Flags'));
    for (const c of plan.flagChanges) out.push(`  ${policyLine(c, 'flag', p)}`);
  }

  out.push('', p.bold('Waves'));
  if (plan.waves.length === 0) out.push('  (none)');
  const nameWidth = Math.max(0, ...plan.waves.map((w) => w.name.length));
  const membersOf = plan.waves.map(members);
  const memberWidth = Math.max(0, ...membersOf.map((m) => m.length));
  plan.waves.forEach((w, i) => {
    const extra = [`steps ${w.steps.map((st) => `${st.weight}%${st.pause ? ` ${st.pause}` : ''}`).join(', ')}`];
    if (w.approvals) extra.push(`approvals ${w.approvals.count} of ${w.approvals.roles.join(' or ')}`);
    if (w.maxParallel < w.clusters.length) extra.push(`max ${w.maxParallel} at once`);
    if (w.bake) extra.push(`bake ${w.bake}`);
    out.push(`  ${i + 1}. ${w.name.padEnd(nameWidth)}  ${(membersOf[i] ?? '').padEnd(memberWidth)}  ${extra.join('; ')}`);
  });

  out.push('', p.bold("Blast radius: share of each client region's traffic that can reach the new version"));
  const br = plan.blastRadius;
  if (br.regions.length === 0) out.push('  (no traffic shares were given)');
  else if (br.steps.length === 0) out.push('  (no wave has clusters)');
  else out.push(...blastTable(plan).map((l) => `  ${l}`));
  return `${out.join('\n')}\n`;
}

function members(w: PlanWave): string {
  if (w.clusters.length === 0) return '(no clusters)';
  const same = w.clusters.length - w.changed.length;
  return `${w.clusters.join(', ')}${same > 0 ? ` (${same} unchanged)` : ''}`;
}

function blastTable(plan: Plan): string[] {
  const { regions, steps } = plan.blastRadius;
  const rows = steps.map((st) => [
    st.wave,
    `${st.step}: ${st.weight}%`,
    ...regions.map((r) => `${((st.share[r] ?? 0) * 100).toFixed(2)}%`),
  ]);
  const head = ['wave', 'step', ...regions];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)];
}

function actionLabel(action: ClusterDiff['action'], p: Paint): string {
  if (action === 'create') return p.add('create');
  if (action === 'remove') return p.del('remove');
  return p.mod(action);
}

function changeLine(c: Change, p: Paint): string {
  if (c.field === 'service') {
    return c.from === null ? p.add(`+ ${c.service} ${show(c.to)}`) : p.del(`- ${c.service} ${show(c.from)}`);
  }
  return fieldLine(c.service === null ? c.field : `${c.service}.${c.field}`, c.from, c.to, p);
}

function policyLine(c: PolicyChange, whole: string, p: Paint): string {
  if (c.field === whole) return c.from === null ? p.add(`+ ${c.service}`) : p.del(`- ${c.service}`);
  return fieldLine(`${c.service}.${c.field}`, c.from, c.to, p);
}

function fieldLine(name: string, from: ChangeValue, to: ChangeValue, p: Paint): string {
  if (from === null) return p.add(`+ ${name} ${show(to)}`);
  if (to === null) return p.del(`- ${name} (was ${show(from)})`);
  return p.mod(`~ ${name} ${show(from)} -> ${show(to)}`);
}

/** A value in one short token: strings bare (quoted when blank or spaced), digests cut to 12 hex digits. */
function show(v: ChangeValue): string {
  if (v === null) return '(none)';
  const text =
    typeof v === 'string' ? (v === '' || /\s/.test(v) ? JSON.stringify(v) : v) : typeof v === 'object' ? canonicalJson(v) : String(v);
  return text.replace(/sha256:([0-9a-f]{12})[0-9a-f]{52}/g, 'sha256:$1…');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
