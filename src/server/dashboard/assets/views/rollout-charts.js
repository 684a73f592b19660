/**
 * Two pictures of a rollout: its timeline (a row per wave, a segment per canary step, approval wait, bake
 * and rollback, with a tick per gate verdict), and the current step's canary against its baseline on the
 * judge's own windows, with the gate's thresholds drawn in.
 */
import { h } from '../dom.js';
import { clock, valueIn } from '../format.js';
import { s } from '../svg.js';

/** @typedef {Record<string, any>} Obj */

const PHASES = /** @type {Record<string, string>} */ ({
  approval: 'approval',
  deploy: 'deploy',
  weight: 'step',
  pause: 'step',
  analysis: 'step',
  bake: 'bake',
  promote: 'promote',
  rollback: 'rollback',
});

/**
 * Segments per wave from the events: each event's `to` starts a segment that the next event ends.
 * @param {Obj[]} events @param {number} end
 */
export function timelineSegments(events, end) {
  /** @type {{ wave: number, kind: string, step: number | null, from: number, to: number }[]} */
  const segs = [];
  /** @type {{ wave: number, step: number | null, outcome: string, at: number }[]} */
  const ticks = [];
  for (const [i, e] of events.entries()) {
    const d = e.data ?? {};
    const to = d.to ?? {};
    const at = Date.parse(e.at);
    if (e.type === 'verdict') {
      const from = d.from ?? {};
      ticks.push({ wave: Number(from.wave), step: typeof from.step === 'number' ? from.step : null, outcome: String(d.outcome), at });
    }
    const kind = PHASES[String(to.phase)];
    if (!kind || typeof to.wave !== 'number') continue;
    const next = events[i + 1];
    const until = next ? Date.parse(next.at) : end;
    const last = segs.at(-1);
    const step = typeof to.step === 'number' ? to.step : null;
    if (last && last.wave === to.wave && last.kind === kind && last.step === step) last.to = until;
    else segs.push({ wave: to.wave, kind, step, from: at, to: until });
  }
  return { segs, ticks };
}

/** The segment a click chose, per rollout: its caption stays across live re-renders. @type {Map<string, string>} */
const chosen = new Map();

/** @param {{ id: string, active: boolean, waves: { name: string, steps: number[] }[], events: Obj[], createdAt: string, finishedAt: string | null }} r */
export function timelineView(r) {
  const start = Date.parse(r.createdAt) || Date.parse(r.events[0]?.at ?? '') || Date.now();
  const lastAt = Date.parse(r.events.at(-1)?.at ?? '');
  const end = (r.finishedAt && Date.parse(r.finishedAt)) || (r.active || !Number.isFinite(lastAt) ? Date.now() : lastAt);
  const { segs, ticks } = timelineSegments(r.events, end);
  if (!segs.length) return null;
  const width = 900;
  const left = 110;
  const row = 26;
  const span = Math.max(1, end - start);
  const x = (/** @type {number} */ t) => left + ((t - start) / span) * (width - left - 10);
  const height = r.waves.length * row + 24;
  const caption = h('p', { class: 'timeline-caption muted' }, chosen.get(r.id) ?? 'Click a segment for its times.');
  /** @param {string} text */
  const choose = (text) => {
    chosen.set(r.id, text);
    caption.textContent = text;
  };
  return h(
    'div',
    { class: 'timeline', 'data-rollout': r.id },
    h('h4', null, 'Timeline'),
    s(
      'svg',
      { viewBox: `0 0 ${width} ${height}`, class: 'timeline-svg', role: 'img', 'aria-label': 'timeline of waves and steps' },
      r.waves.map((w, i) =>
        s(
          'g',
          { 'data-wave': w.name },
          s('text', { x: 4, y: i * row + 17, class: 'tl-label', text: w.name }),
          s('line', { x1: left, x2: width - 10, y1: i * row + 13, y2: i * row + 13, class: 'tl-axis' }),
          segs
            .filter((g) => g.wave === i)
            .map((g) =>
              s(
                'rect',
                {
                  class: `tl-seg tl-${g.kind}`,
                  x: x(g.from).toFixed(1),
                  y: i * row + 4,
                  width: Math.max(2, x(g.to) - x(g.from)).toFixed(1),
                  height: 18,
                  rx: 3,
                  'data-kind': g.kind,
                  'data-step': g.step === null ? '' : String(g.step + 1),
                  onclick: () => choose(segmentText(w, g)),
                },
                s('title', { text: segmentText(w, g) }),
              ),
            ),
          segs
            .filter((g) => g.wave === i && g.kind === 'step' && g.step !== null && x(g.to) - x(g.from) > 26)
            .map((g) =>
              s('text', {
                x: (x(g.from) + 4).toFixed(1),
                y: i * row + 17,
                class: 'tl-step-label',
                text: `${w.steps[g.step ?? 0] ?? '?'}%`,
              }),
            ),
          ticks
            .filter((t) => t.wave === i)
            .map((t) =>
              s('line', {
                class: `tl-tick tone-${t.outcome === 'pass' ? 'ok' : t.outcome === 'running' ? 'muted' : 'bad'}`,
                x1: x(t.at).toFixed(1),
                x2: x(t.at).toFixed(1),
                y1: i * row + 2,
                y2: i * row + 24,
                'data-outcome': t.outcome,
              }),
            ),
        ),
      ),
      s('text', { x: left, y: height - 4, class: 'tl-time', text: clock(new Date(start).toISOString()) }),
      s('text', { x: width - 10, y: height - 4, class: 'tl-time', 'text-anchor': 'end', text: clock(new Date(end).toISOString()) }),
    ),
    caption,
  );
}

/** "canary step 1 (25 %): 12:00:01 UTC – 12:00:09 UTC (8 s)" @param {{ name: string, steps: number[] }} w @param {{ kind: string, step: number | null, from: number, to: number }} g */
function segmentText(w, g) {
  const step = g.kind === 'step' && g.step !== null ? ` ${g.step + 1} (${w.steps[g.step] ?? '?'} %)` : '';
  const secs = Math.round((g.to - g.from) / 1000);
  return `${w.name} ${g.kind}${step}: ${clock(new Date(g.from).toISOString())} – ${clock(new Date(g.to).toISOString())} (${secs} s)`;
}

/**
 * The newest step's looks: for each metric, the canary's and the baseline's value per window, and the gate's
 * thresholds (max; baseline + maxIncreaseOverBaseline).
 * @param {{ gates: { wave: string, step: number | null, weight: number | null, metrics: Obj[] }[] }} r
 */
export function canaryChartView(r) {
  const last = r.gates.at(-1);
  if (!last) return null;
  const looks = r.gates.filter((g) => g.wave === last.wave && g.step === last.step && g.weight === last.weight);
  /** @type {Map<string, Obj[]>} */
  const byMetric = new Map();
  for (const g of looks)
    for (const m of g.metrics) {
      if (!m || typeof m !== 'object' || !m.window || !('canary' in m)) continue;
      const name = `${m.service ? `${m.service} ` : ''}${m.metric}`;
      byMetric.set(name, [...(byMetric.get(name) ?? []), m]);
    }
  if (!byMetric.size) return null;
  return h(
    'div',
    { class: 'canary-charts', 'data-gate': `${last.wave}:${last.step}` },
    h(
      'h4',
      null,
      `Canary against baseline · wave ${last.wave}, step ${(last.step ?? 0) + 1}${last.weight === null ? '' : ` (${last.weight} %)`}`,
    ),
    [...byMetric].map(([name, ms]) => metricChart(name, ms)),
  );
}

/** @param {string} name @param {Obj[]} ms */
function metricChart(name, ms) {
  const unit = ms[0]?.unit ?? null;
  const width = 420;
  const height = 170;
  const pad = { l: 52, r: 10, t: 12, b: 28 };
  const t = ms.map((m) => Date.parse(m.window?.end ?? ''));
  const canary = ms.map((m) => (typeof m.canary?.value === 'number' ? m.canary.value : null));
  const baseline = ms.map((m) => (typeof m.baseline?.value === 'number' ? m.baseline.value : null));
  const th = ms.at(-1)?.thresholds ?? {};
  const max = typeof th.max === 'number' ? th.max : null;
  const inc = typeof th.maxIncreaseOverBaseline === 'number' ? th.maxIncreaseOverBaseline : null;
  const allowed = baseline.map((b) => (inc !== null && b !== null ? b + inc : null));
  const values = [...canary, ...baseline, ...allowed, max].filter((v) => typeof v === 'number');
  const top = Math.max(1e-9, ...values) * 1.15;
  const t0 = Math.min(...t.map((v, i) => (Number.isFinite(v) ? v : i)));
  const t1 = Math.max(t0 + 1, ...t.map((v, i) => (Number.isFinite(v) ? v : i)));
  const x = (/** @type {number} */ v) => pad.l + ((v - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (/** @type {number} */ v) => pad.t + (1 - v / top) * (height - pad.t - pad.b);
  /** @param {(number | null)[]} vs */
  const line = (vs) =>
    vs
      .map((v, i) => (v === null || !Number.isFinite(t[i] ?? NaN) ? null : `${x(t[i] ?? 0).toFixed(1)},${y(v).toFixed(1)}`))
      .filter(Boolean)
      .join(' ');
  const dots = (/** @type {(number | null)[]} */ vs, /** @type {string} */ cls) =>
    vs.map((v, i) => (v === null ? null : s('circle', { class: cls, cx: x(t[i] ?? 0).toFixed(1), cy: y(v).toFixed(1), r: 3 })));
  return h(
    'figure',
    { class: 'canary-chart', 'data-metric': name },
    s(
      'svg',
      { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${name}: canary against baseline per window` },
      s('line', { class: 'cc-axis', x1: pad.l, x2: width - pad.r, y1: y(0), y2: y(0) }),
      s('text', { class: 'cc-tick', x: pad.l - 6, y: y(0) + 4, 'text-anchor': 'end', text: valueIn(0, unit) }),
      s('text', { class: 'cc-tick', x: pad.l - 6, y: y(top / 1.15) + 4, 'text-anchor': 'end', text: valueIn(top / 1.15, unit) }),
      max !== null
        ? [
            s('line', { class: 'cc-max', x1: pad.l, x2: width - pad.r, y1: y(max), y2: y(max), 'data-threshold': 'max' }),
            s('text', { class: 'cc-label bad', x: width - pad.r, y: y(max) - 4, 'text-anchor': 'end', text: `max ${valueIn(max, unit)}` }),
          ]
        : null,
      inc !== null ? s('polyline', { class: 'cc-allowed', points: line(allowed), 'data-threshold': 'baseline+increase' }) : null,
      s('polyline', { class: 'cc-baseline', points: line(baseline) }),
      s('polyline', { class: 'cc-canary', points: line(canary) }),
      dots(baseline, 'cc-baseline-dot'),
      dots(canary, 'cc-canary-dot'),
      s('text', { class: 'cc-tick', x: pad.l, y: height - 8, text: Number.isFinite(t0) ? clock(new Date(t0).toISOString()) : '' }),
      s('text', {
        class: 'cc-tick',
        x: width - pad.r,
        y: height - 8,
        'text-anchor': 'end',
        text: Number.isFinite(t1) ? clock(new Date(t1).toISOString()) : '',
      }),
    ),
    h(
      'figcaption',
      null,
      h('strong', null, name),
      ' ',
      h('span', { class: 'swatch-canary' }, '● canary'),
      ' ',
      h('span', { class: 'swatch-baseline' }, '● baseline'),
      inc !== null ? h('span', { class: 'muted' }, ` · dashed: baseline + ${valueIn(inc, unit)}`) : null,
      ` · ${ms.length} window${ms.length === 1 ? '' : 's'}`,
    ),
  );
}
