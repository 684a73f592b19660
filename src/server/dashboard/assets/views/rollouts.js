/** Rollouts: waves as a stepper, where it is now, canary weights, approvals, each gate's verdict with its numbers, and the actions the role allows. */
import { h } from '../dom.js';
import { canaryChartView, timelineView } from './rollout-charts.js';
import { ago, clock, pct, rev, tone, valueIn } from '../format.js';

/** @typedef {Record<string, unknown>} Obj */

/** @param {unknown} v @returns {Obj} */
const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? /** @type {Obj} */ (v) : {});
/** @param {unknown} v @returns {unknown[]} */
const arr = (v) => (Array.isArray(v) ? v : []);
/** @param {unknown} v */
const str = (v) => (v === null || v === undefined ? '' : String(v));
/** @param {unknown} v @returns {number | null} */
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
/** @param {unknown} a */
const who = (a) => (typeof a === 'string' ? a : str(obj(a).actor ?? obj(a).id ?? obj(a).name));

const ACTIVE = new Set(['running', 'paused', 'awaiting-approval']);

/** @param {string} state */
export function isActive(state) {
  return ACTIVE.has(state);
}

/**
 * The rollout as the page shows it, from the API's view (tolerant of both the RolloutView fields and the
 * contract's names for them).
 * @param {Obj} r
 */
export function normalise(r) {
  const phase = obj(r.phase);
  const current = phase.kind === 'paused' ? obj(phase.resume) : phase;
  const waves = arr(r.waves).map((w0) => {
    const w = obj(w0);
    const a = w.approvals ? obj(w.approvals) : null;
    return {
      name: str(w.name),
      clusters: arr(w.clusters).map(str),
      status: str(w.status ?? w.state ?? 'pending'),
      steps: arr(w.steps).map((s) => (typeof s === 'number' ? s : (num(obj(s).weight) ?? 0))),
      approvals: a
        ? {
            needed: num(a.needed ?? a.required) ?? 1,
            roles: arr(a.roles).map(str),
            approvers: arr(a.approvers ?? a.given).map(who),
            rejectedBy: a.rejectedBy ? str(a.rejectedBy) : null,
          }
        : null,
    };
  });
  /** @type {{ seq: number | null, at: string, wave: string, step: number | null, weight: number | null, outcome: string, reason: string, clusters: string[], metrics: Obj[] }[]} */
  const gates = arr(r.gates).map((g0) => {
    const g = obj(g0);
    return {
      seq: num(g.seq),
      at: str(g.at),
      wave: str(g.wave),
      step: num(g.step),
      weight: num(g.weight),
      outcome: str(g.outcome),
      reason: str(g.reason),
      clusters: arr(g.clusters).map(str),
      metrics: arr(g.metrics).map(obj),
    };
  });
  // the contract's verdicts: one row per metric of a gate (the judge's whole record in `detail`), grouped back by gate
  /** @type {Map<string, (typeof gates)[number]>} */
  const bySeq = new Map();
  for (const v0 of arr(r.verdicts)) {
    const v = obj(v0);
    const key = v.seq === undefined ? `${str(v.wave)}:${str(v.step)}:${str(v.at)}` : str(v.seq);
    let g = bySeq.get(key);
    if (!g) {
      g = {
        seq: num(v.seq),
        at: str(v.at),
        wave: str(v.wave),
        step: num(v.step),
        weight: num(v.weight),
        outcome: str(v.outcome ?? v.verdict),
        reason: str(v.reason),
        clusters: [],
        metrics: [],
      };
      bySeq.set(key, g);
      gates.push(g);
    }
    const d = v.detail && typeof v.detail === 'object' && !Array.isArray(v.detail) ? obj(v.detail) : v.metric ? v : null;
    if (d) g.metrics.push(d);
  }
  const weights = /** @type {Record<string, number>} */ ({});
  for (const [c, w] of Object.entries(obj(r.weights))) if (typeof w === 'number') weights[c] = w;
  const waveIndex = num(current.wave) ?? num(r.waveIndex) ?? num(r.wave);
  const stepIndex = num(current.step) ?? num(r.step);
  return {
    id: str(r.id),
    kind: str(r.kind || 'rollout'),
    state: str(r.state),
    author: str(r.author),
    from: r.from === undefined ? str(r.fromRevision) : str(r.from),
    to: str(r.to ?? r.toRevision ?? r.revision),
    createdAt: str(r.createdAt ?? r.startedAt),
    finishedAt: r.finishedAt ? str(r.finishedAt) : null,
    reason: r.reason ? str(r.reason) : '',
    phaseKind: str(phase.kind),
    currentKind: str(current.kind),
    waveIndex,
    stepIndex,
    canaryWeight: num(r.canaryWeight),
    driven: r.driven === undefined ? null : Boolean(r.driven),
    events: arr(r.events).map(obj),
    waves,
    weights,
    gates,
  };
}

/** @typedef {ReturnType<typeof normalise>} Rollout */

/** "wave europe · step 2/3 · 25 %" @param {Rollout} r */
function where(r) {
  if (!isActive(r.state)) return r.reason || r.state;
  const w = r.waveIndex === null ? undefined : r.waves[r.waveIndex];
  const parts = [];
  if (w) parts.push(`wave ${w.name} (${(r.waveIndex ?? 0) + 1}/${r.waves.length})`);
  if (w && r.stepIndex !== null) parts.push(`step ${r.stepIndex + 1}/${w.steps.length} at ${w.steps[r.stepIndex] ?? '?'} %`);
  const labels = /** @type {Record<string, string>} */ ({
    approval: 'waiting for approval',
    deploy: 'deploying the canary',
    weight: 'setting the weight',
    pause: 'observing',
    analysis: 'judging',
    bake: 'baking',
    promote: 'promoting',
    rollback: 'rolling back',
  });
  const doing = labels[r.currentKind];
  if (r.state === 'paused') parts.push(`paused${r.reason ? `: ${r.reason}` : ''}`);
  else if (doing) parts.push(doing);
  return parts.join(' · ');
}

/**
 * @param {{ list: Obj[], details: Map<string, Obj>, expanded: Set<string>, can: Record<string, boolean>,
 *           toggle: (id: string) => void, act: (label: string, path: string, body: unknown) => void }} m
 */
export function rolloutsView(m) {
  if (!m.list.length) return [h('p', { class: 'empty' }, 'No rollouts yet. `meridian rollout` starts one; it shows up here live.')];
  return m.list.map((r0) => {
    const r = normalise({ ...r0, ...obj(m.details.get(str(r0.id))) });
    const open = m.expanded.has(r.id);
    return h(
      'article',
      { class: `rollout tone-${tone(r.state)}`, 'data-rollout': r.id, 'data-state': r.state },
      h(
        'header',
        { class: 'rollout-head' },
        h(
          'button',
          { type: 'button', class: 'disclosure', 'aria-expanded': open ? 'true' : 'false', onclick: () => m.toggle(r.id) },
          h('span', { 'aria-hidden': 'true' }, open ? '▾' : '▸'),
          h('span', { class: 'mono' }, r.id),
        ),
        h('span', { class: `pill tone-${tone(r.state)}` }, r.state),
        r.kind !== 'rollout' ? h('span', { class: 'tag' }, r.kind) : null,
        h('span', { class: 'mono muted' }, `${rev(r.from) || '(none)'} → ${rev(r.to)}`),
        h('span', { class: 'spacer' }),
        h('span', { class: 'muted' }, `by ${r.author || '?'} · ${ago(r.createdAt)}`),
      ),
      h('p', { class: 'rollout-now' }, where(r)),
      open ? detail(r, m) : null,
    );
  });
}

/** @param {Rollout} r @param {Parameters<typeof rolloutsView>[0]} m */
function detail(r, m) {
  const weights = Object.entries(r.weights);
  return h(
    'div',
    { class: 'rollout-detail' },
    h(
      'ol',
      { class: 'waves', 'aria-label': 'waves' },
      r.waves.map((w, i) =>
        h(
          'li',
          { class: `wave tone-${tone(w.status)} ${i === r.waveIndex && isActive(r.state) ? 'current' : ''}`, 'data-wave': w.name },
          h('div', { class: 'wave-name' }, h('strong', null, w.name), h('span', { class: `state-word tone-${tone(w.status)}` }, w.status)),
          h('div', { class: 'muted small-text' }, w.clusters.join(', ') || '(no clusters)'),
          h(
            'div',
            { class: 'steps', 'aria-label': 'canary steps' },
            w.steps.map((s, j) =>
              h(
                'span',
                {
                  class: `step ${i === r.waveIndex && j === r.stepIndex && isActive(r.state) ? 'step-now' : ''} ${
                    w.status === 'promoted' || (i === r.waveIndex && r.stepIndex !== null && j < r.stepIndex) ? 'step-done' : ''
                  }`,
                },
                `${s} %`,
              ),
            ),
          ),
          w.approvals ? approvals(r, w, m) : null,
        ),
      ),
    ),
    h(
      'div',
      { class: 'weights' },
      h('h4', null, 'Canary weights'),
      weights.length
        ? weights.map(([c, w]) =>
            h(
              'div',
              { class: 'weight-row', 'data-cluster': c },
              h('span', { class: 'weight-name' }, c),
              h(
                'span',
                {
                  class: 'meter',
                  role: 'meter',
                  'aria-valuemin': '0',
                  'aria-valuemax': '100',
                  'aria-valuenow': String(w),
                  'aria-label': `canary weight on ${c}`,
                },
                h('span', { style: { width: `${w}%` } }),
              ),
              h('span', { class: 'num' }, `${w} %`),
            ),
          )
        : h('p', { class: 'muted' }, r.canaryWeight !== null ? `${r.canaryWeight} %` : 'none in force'),
    ),
    controls(r, m),
    timelineView({ ...r, active: isActive(r.state) }),
    canaryChartView(r),
    gatesTable(r),
    recent(r),
  );
}

/** @param {Rollout} r @param {Rollout['waves'][number]} w @param {Parameters<typeof rolloutsView>[0]} m */
function approvals(r, w, m) {
  const a = /** @type {NonNullable<typeof w.approvals>} */ (w.approvals);
  const waiting = r.state === 'awaiting-approval' && r.waves[r.waveIndex ?? -1]?.name === w.name;
  const roleId = `role-${r.id}-${w.name}`;
  return h(
    'div',
    { class: `approvals ${waiting ? 'tone-act' : ''}` },
    h(
      'div',
      null,
      h('strong', { class: 'num' }, `${a.approvers.length}/${a.needed}`),
      ` approvals (${a.roles.join(', ') || 'any role'})`,
      a.approvers.length ? h('span', { class: 'muted' }, ` by ${a.approvers.join(', ')}`) : null,
      a.rejectedBy ? h('span', { class: 'tone-bad' }, ` · rejected by ${a.rejectedBy}`) : null,
    ),
    waiting && (m.can.approve || m.can.reject)
      ? h(
          'form',
          {
            class: 'inline-form',
            'aria-label': `decide on wave ${w.name}`,
            onsubmit: (/** @type {SubmitEvent} */ e) => {
              e.preventDefault();
              const form = /** @type {HTMLFormElement} */ (e.currentTarget);
              const data = new FormData(form);
              const decision = /** @type {HTMLButtonElement | null} */ (e.submitter)?.value ?? 'approve';
              const role = str(data.get('role')) || a.roles[0] || '';
              const comment = str(data.get('comment'));
              if (decision === 'reject') {
                if (!comment) {
                  const input = /** @type {HTMLInputElement} */ (form.elements.namedItem('comment'));
                  input.setCustomValidity('a rejection needs a reason');
                  input.reportValidity();
                  return;
                }
                m.act(`reject wave ${w.name}`, `/rollouts/${encodeURIComponent(r.id)}/reject`, {
                  wave: w.name,
                  ...(role ? { role } : {}),
                  reason: comment,
                });
              } else {
                m.act(`approve wave ${w.name}`, `/rollouts/${encodeURIComponent(r.id)}/approve`, {
                  wave: w.name,
                  role,
                  ...(comment ? { comment } : {}),
                });
              }
            },
          },
          a.roles.length > 1
            ? [
                h('label', { for: roleId }, 'as'),
                h(
                  'select',
                  { id: roleId, name: 'role' },
                  a.roles.map((x) => h('option', { value: x }, x)),
                ),
              ]
            : h('input', { type: 'hidden', name: 'role', value: a.roles[0] ?? '' }),
          h('label', { for: `comment-${r.id}-${w.name}`, class: 'visually-hidden' }, 'Comment or reason'),
          h('input', {
            id: `comment-${r.id}-${w.name}`,
            name: 'comment',
            type: 'text',
            placeholder: 'comment (a reason to reject)',
            oninput: (/** @type {Event} */ e) => /** @type {HTMLInputElement} */ (e.target).setCustomValidity(''),
          }),
          m.can.approve ? h('button', { type: 'submit', class: 'primary', value: 'approve' }, `Approve ${w.name}`) : null,
          m.can.reject ? h('button', { type: 'submit', class: 'danger', value: 'reject' }, 'Reject') : null,
        )
      : null,
  );
}

/** Pause, resume, abort, promote: only those the role allows and the state accepts. @param {Rollout} r @param {Parameters<typeof rolloutsView>[0]} m */
function controls(r, m) {
  const base = `/rollouts/${encodeURIComponent(r.id)}`;
  const reasonId = `reason-${r.id}`;
  const reason = () => /** @type {HTMLInputElement | null} */ (document.getElementById(reasonId))?.value.trim() ?? '';
  /** @type {[string, string, boolean, string][]} */
  const all = [
    ['pause', 'Pause', r.state === 'running', ''],
    ['resume', 'Resume', r.state === 'paused', 'primary'],
    ['promote', 'Promote wave now', r.state === 'running', ''],
    ['abort', 'Abort and roll back', isActive(r.state), 'danger'],
  ];
  const shown = all.filter(([a, , ok]) => ok && m.can[a]);
  if (!shown.length) return null;
  return h(
    'div',
    { class: 'controls' },
    h('label', { for: reasonId, class: 'visually-hidden' }, 'Reason'),
    h('input', { id: reasonId, type: 'text', placeholder: 'reason (for the audit log)' }),
    shown.map(([a, label, , cls]) =>
      h('button', {
        type: 'button',
        class: cls,
        text: label,
        onclick: (/** @type {MouseEvent} */ e) => {
          const btn = /** @type {HTMLButtonElement} */ (e.currentTarget);
          if (a === 'abort' && btn.dataset.armed !== 'yes') {
            btn.dataset.armed = 'yes';
            btn.textContent = 'Confirm abort';
            setTimeout(() => {
              btn.dataset.armed = '';
              btn.textContent = label;
            }, 5000);
            return;
          }
          const why = reason();
          if (a === 'promote' && !why) {
            const input = /** @type {HTMLInputElement} */ (document.getElementById(reasonId));
            input.setCustomValidity('promoting skips steps: say why');
            input.reportValidity();
            input.addEventListener('input', () => input.setCustomValidity(''), { once: true });
            return;
          }
          m.act(`${a} ${r.id}`, `${base}/${a}`, why ? { reason: why } : {});
        },
      }),
    ),
  );
}

/**
 * The newest verdict of each step (a step is judged at every look while it lasts), with a tally of all its
 * looks, in the order the steps were first judged.
 * @param {Rollout['gates']} gates
 */
function latestPerStep(gates) {
  /** @type {Map<string, { gate: Rollout['gates'][number], counts: Map<string, number>, total: number }>} */
  const steps = new Map();
  for (const g of gates) {
    const key = `${g.wave}|${g.step}|${g.weight}|${g.clusters.join(',')}`;
    const s = steps.get(key) ?? { gate: g, counts: new Map(), total: 0 };
    s.gate = g;
    s.total++;
    s.counts.set(g.outcome, (s.counts.get(g.outcome) ?? 0) + 1);
    steps.set(key, s);
  }
  return [...steps.values()].map((s) => ({
    gate: s.gate,
    looks: { total: s.total, text: `${s.total} looks: ${[...s.counts].map(([o, n]) => `${n} ${o}`).join(', ')}` },
  }));
}

/** Each step's newest verdict with its numbers, newest step first. @param {Rollout} r */
function gatesTable(r) {
  if (!r.gates.length) return h('p', { class: 'muted' }, 'No gate judged yet.');
  return h(
    'div',
    { class: 'gates' },
    h('h4', null, 'Gates'),
    h(
      'table',
      { class: 'data' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['wave', 'step', 'weight', 'verdict', 'metric', 'canary', 'baseline', 'limit', 'samples', 'why'].map((c) =>
            h('th', { scope: 'col' }, c),
          ),
        ),
      ),
      h(
        'tbody',
        null,
        latestPerStep(r.gates)
          .reverse()
          .flatMap(({ gate: g, looks }) => {
            const ms = g.metrics.length ? g.metrics : [{}];
            return ms.map((mm, i) => {
              const row = metricRow(mm);
              return h(
                'tr',
                { 'data-gate': `${g.wave}:${g.step}` },
                i === 0 ? h('td', { rowspan: String(ms.length) }, g.wave, h('div', { class: 'muted small-text' }, clock(g.at))) : null,
                i === 0 ? h('td', { rowspan: String(ms.length), class: 'num' }, g.step === null ? '—' : String(g.step + 1)) : null,
                i === 0 ? h('td', { rowspan: String(ms.length), class: 'num' }, g.weight === null ? '—' : `${g.weight} %`) : null,
                i === 0
                  ? h(
                      'td',
                      { rowspan: String(ms.length) },
                      h('span', { class: `pill tone-${tone(g.outcome)}` }, g.outcome || '?'),
                      looks.total > 1
                        ? h('div', { class: 'muted small-text', title: 'the step is judged again and again while it lasts' }, looks.text)
                        : null,
                    )
                  : null,
                h(
                  'td',
                  null,
                  row.name,
                  row.outcome && row.outcome !== g.outcome
                    ? h('span', { class: `state-word tone-${tone(row.outcome)}` }, ` ${row.outcome}`)
                    : null,
                ),
                h('td', { class: 'num' }, row.canary),
                h('td', { class: 'num' }, row.baseline),
                h('td', { class: 'num' }, row.limit),
                h('td', { class: 'num' }, row.samples),
                h('td', { class: 'why' }, row.why || (i === 0 ? g.reason : '')),
              );
            });
          }),
      ),
    ),
  );
}

/** One measured metric's numbers, from the judge's verdict, the health check's record, or the contract's flat verdict. @param {Obj} m */
function metricRow(m) {
  if ('healthy' in m) {
    return {
      name: `${str(m.name || 'canary-health')} ${str(m.cluster)}/${str(m.service)}`,
      outcome: m.healthy ? 'pass' : 'fail',
      canary: `${str(m.readyReplicas)}/${str(m.desiredReplicas)} ready`,
      baseline: '—',
      limit: 'healthy',
      samples: '—',
      why: m.healthy ? 'healthy at the new revision' : 'not healthy at the new revision',
    };
  }
  const unit = m.unit ?? (str(m.metric).includes('latency') ? 'ms' : str(m.metric).includes('rate') ? 'ratio' : null);
  const canary = obj(m.canary);
  const baseline = obj(m.baseline);
  const th = obj(m.thresholds);
  const limits = [];
  if (num(th.max) !== null) limits.push(`≤ ${valueIn(th.max, unit)}`);
  if (num(th.min) !== null) limits.push(`≥ ${valueIn(th.min, unit)}`);
  if (num(th.maxIncreaseOverBaseline) !== null)
    limits.push(`+${unit === 'ratio' ? pct(num(th.maxIncreaseOverBaseline), 2) : valueIn(th.maxIncreaseOverBaseline, unit)} over baseline`);
  if (num(m.threshold) !== null) limits.push(valueIn(m.threshold, unit));
  return {
    name: str(m.metric ?? m.name ?? '—'),
    outcome: str(m.outcome ?? m.verdict),
    canary: valueIn(num(canary.value) ?? num(m.value), unit),
    baseline: valueIn(num(baseline.value) ?? (typeof m.baseline === 'number' ? m.baseline : null), unit),
    limit: limits.join(', ') || '—',
    samples: num(canary.samples) !== null ? `${canary.samples}${num(baseline.samples) !== null ? ` / ${baseline.samples}` : ''}` : '—',
    why: str(m.reason),
  };
}

/** The last transitions, newest first: what the driver did and when. @param {Rollout} r */
function recent(r) {
  const events = r.events.slice(-8).reverse();
  if (!events.length) return null;
  return h(
    'div',
    { class: 'events' },
    h(
      'h4',
      null,
      'Recent events',
      r.driven === false && isActive(r.state) ? h('span', { class: 'muted' }, ' · no process drives it now') : null,
    ),
    h(
      'ol',
      { class: 'event-list' },
      events.map((e) =>
        h(
          'li',
          null,
          h('span', { class: 'mono muted' }, clock(str(e.at))),
          ' ',
          e.text ? str(e.text) : `#${str(e.seq)} ${str(e.type)}`,
          h('span', { class: 'muted' }, ` — ${str(e.actor)}`),
        ),
      ),
    ),
  );
}
