/**
 * Time series per client region — request rate, error rate and p99 latency — from the traffic snapshots the
 * page receives (the event stream pushes one every few seconds), drawn with uPlot. The selected region is
 * drawn bold, the others thin.
 */
/* global uPlot */
import { h } from '../dom.js';

/** @typedef {import('./traffic.js').Flow} Flow */

/** The last `max` snapshots: time (s) and, per client region, rate, error rate and p99. */
export class History {
  /** @param {number} [max] */
  constructor(max = 240) {
    this.max = max;
    /** @type {{ t: number, regions: Map<string, { rps: number, err: number, p99: number | null }> }[]} */
    this.points = [];
  }

  /** Adds a snapshot (ignored when it is not newer than the last). @param {string | undefined} at @param {Flow[]} flows */
  add(at, flows) {
    const t = (at ? Date.parse(at) : Date.now()) / 1000;
    const last = this.points.at(-1);
    if (last && t <= last.t) return;
    /** @type {Map<string, { rps: number, err: number, p99: number | null }>} */
    const regions = new Map();
    for (const f of flows) {
      const r = regions.get(f.clientRegion) ?? { rps: 0, err: 0, p99: null };
      r.err = (r.err * r.rps + (f.errorRate ?? 0) * f.rps) / Math.max(1e-9, r.rps + f.rps);
      r.rps += f.rps;
      if (f.p99Ms !== null && f.p99Ms !== undefined && f.rps > 0) r.p99 = Math.max(r.p99 ?? 0, f.p99Ms);
      regions.set(f.clientRegion, r);
    }
    this.points.push({ t, regions });
    if (this.points.length > this.max) this.points.shift();
  }

  /** Every client region seen, sorted. */
  regions() {
    const names = new Set();
    for (const p of this.points) for (const r of p.regions.keys()) names.add(r);
    return /** @type {string[]} */ ([...names].sort());
  }

  /** uPlot's columns for one measure. @param {'rps' | 'err' | 'p99'} key @param {string[]} regions */
  columns(key, regions) {
    return [
      this.points.map((p) => p.t),
      ...regions.map((r) =>
        this.points.map((p) => {
          const v = p.regions.get(r);
          if (!v) return key === 'p99' ? null : 0;
          return key === 'err' ? v.err * 100 : v[key];
        }),
      ),
    ];
  }
}

const PALETTE = ['#7aa2f7', '#9ece6a', '#e0af68', '#bb9af7', '#7dcfff', '#f7768e', '#73daca', '#ff9e64'];

const MEASURES = /** @type {const} */ ([
  ['rps', 'requests per second', 'req/s'],
  ['err', 'error rate', '%'],
  ['p99', 'p99 latency', 'ms'],
]);

/** Charts that live across renders: rebuilt when the regions or the selection change, else given new data. */
export class Charts {
  /** @param {HTMLElement} root */
  constructor(root) {
    this.root = root;
    this.key = '';
    /** @type {any[]} */
    this.plots = [];
  }

  /** @param {History} history @param {string | null} selected */
  update(history, selected) {
    const regions = history.regions();
    this.root.dataset.region = selected ?? '';
    this.root.dataset.points = String(history.points.length);
    if (history.points.length < 2) {
      if (!this.root.querySelector('.empty'))
        this.root.replaceChildren(h('p', { class: 'empty' }, 'The charts fill in as traffic snapshots arrive.'));
      this.key = '';
      return;
    }
    const key = `${regions.join(',')}|${selected ?? ''}|${this.root.clientWidth}`;
    if (key !== this.key) {
      for (const p of this.plots) p.destroy();
      this.plots = [];
      this.root.replaceChildren();
      const width = Math.max(260, Math.floor((this.root.clientWidth - 24) / 3));
      for (const [measure, label, unit] of MEASURES) {
        const box = h('div', { class: 'chart', 'data-measure': measure });
        this.root.appendChild(box);
        const plot = new uPlot(
          {
            title: `${label}${selected ? ` · ${selected}` : ''}`,
            width,
            height: 180,
            scales: { x: { time: true } },
            axes: [
              { stroke: '#8a93a6', grid: { stroke: 'rgba(138,147,166,0.15)' } },
              {
                stroke: '#8a93a6',
                grid: { stroke: 'rgba(138,147,166,0.15)' },
                values: (/** @type {unknown} */ _u, /** @type {number[]} */ vs) => vs.map((v) => `${v}${unit === '%' ? '%' : ''}`),
              },
            ],
            legend: { show: true },
            series: [
              {},
              ...regions.map((r, i) => ({
                label: r || '(unknown)',
                stroke: PALETTE[i % PALETTE.length],
                width: !selected || selected === r ? 2 : 0.75,
                alpha: !selected || selected === r ? 1 : 0.35,
                spanGaps: true,
              })),
            ],
          },
          history.columns(measure, regions),
          box,
        );
        this.plots.push(plot);
      }
      this.key = key;
      return;
    }
    MEASURES.forEach(([measure], i) => this.plots[i]?.setData(history.columns(measure, regions)));
  }
}
