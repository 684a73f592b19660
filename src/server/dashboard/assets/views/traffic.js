/** Traffic from each client region to clusters and versions, as stacked bars with rates, error rates and p99. */
import { h } from '../dom.js';
import { millis, pct, rate } from '../format.js';

/**
 * @typedef {{ clientRegion: string, cluster: string, region?: string, version?: string, rps: number, errorRate?: number | null, p99Ms?: number | null }} Flow
 */

/** Requests per second each cluster serves. @param {Flow[]} flows */
export function servedByCluster(flows) {
  const m = new Map();
  for (const f of flows) m.set(f.cluster, (m.get(f.cluster) ?? 0) + (f.rps || 0));
  return m;
}

/**
 * @param {{ flows: Flow[], windowSeconds?: number, canaryVersions: Set<string> }} m
 */
export function trafficView(m) {
  const flows = m.flows.filter((f) => f.rps > 0);
  if (!flows.length)
    return [h('p', { class: 'empty' }, 'No traffic in the last window. Requests through the router show up here within seconds.')];
  const regions = [...new Set(flows.map((f) => f.clientRegion))].sort();
  const max = Math.max(...regions.map((r) => flows.filter((f) => f.clientRegion === r).reduce((n, f) => n + f.rps, 0)));
  const rows = regions.map((r) => {
    const fs = flows.filter((f) => f.clientRegion === r).sort((a, b) => b.rps - a.rps);
    const total = fs.reduce((n, f) => n + f.rps, 0);
    const errors = fs.reduce((n, f) => n + f.rps * (f.errorRate ?? 0), 0);
    const errRate = total > 0 ? errors / total : 0;
    const p99 = Math.max(0, ...fs.map((f) => f.p99Ms ?? 0));
    const errTone = errRate >= 0.05 ? 'tone-bad' : errRate >= 0.01 ? 'tone-warn' : 'muted';
    return h(
      'div',
      { class: 'flow-row', 'data-client-region': r, role: 'row' },
      h('div', { class: 'flow-name', role: 'rowheader' }, h('strong', null, r || '(unknown)')),
      h(
        'div',
        { class: 'flow-bar', role: 'cell', 'aria-label': `${r}: ${rate(total)}` },
        h(
          'div',
          { class: 'bar', style: { width: `${Math.max(4, (total / max) * 100).toFixed(1)}%` } },
          fs.map((f) =>
            h(
              'span',
              {
                class: `seg ${m.canaryVersions.has(f.version ?? '') ? 'seg-canary' : 'seg-stable'}`,
                style: { flex: String(f.rps) },
                title: `${f.cluster} · ${f.version ?? '?'} · ${rate(f.rps)} · ${pct(f.rps / total)}`,
              },
              f.rps / total >= 0.12 ? `${f.cluster}` : '',
            ),
          ),
        ),
        h(
          'div',
          { class: 'flow-detail' },
          fs.map((f) =>
            h(
              'span',
              { class: 'chip', 'data-cluster': f.cluster },
              h('span', { class: `swatch ${m.canaryVersions.has(f.version ?? '') ? 'seg-canary' : 'seg-stable'}`, 'aria-hidden': 'true' }),
              `${f.cluster} `,
              h('span', { class: 'mono' }, f.version ?? '?'),
              m.canaryVersions.has(f.version ?? '') ? h('span', { class: 'pill canary' }, 'canary') : null,
              ` ${pct(f.rps / total, 0)} · ${rate(f.rps)}`,
            ),
          ),
        ),
      ),
      h('div', { class: 'num flow-total', role: 'cell' }, rate(total)),
      h('div', { class: `num ${errTone}`, role: 'cell', title: 'share of responses that were 5xx or failed' }, `${pct(errRate, 2)} err`),
      h('div', { class: 'num muted', role: 'cell', title: '99th percentile latency' }, `p99 ${millis(p99)}`),
    );
  });
  return [
    h(
      'div',
      { class: 'flows', role: 'table', 'aria-label': 'traffic by client region' },
      h(
        'div',
        { class: 'flow-row flow-headrow', role: 'row' },
        h('div', { role: 'columnheader' }, 'client region'),
        h('div', { role: 'columnheader' }, 'where it goes (cluster · version)'),
        h('div', { class: 'num', role: 'columnheader' }, 'rate'),
        h('div', { class: 'num', role: 'columnheader' }, 'errors'),
        h('div', { class: 'num', role: 'columnheader' }, 'latency'),
      ),
      rows,
    ),
  ];
}
