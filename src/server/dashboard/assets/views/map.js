/**
 * The map: the fleet's regions on Natural Earth's countries (world-atlas, projected with d3-geo), each client
 * region joined to the clusters that serve it — a line as thick as its traffic, coloured by the health of
 * the flow (the cluster's state and the flow's error rate). Clicking a region selects it for the charts.
 */
/* global d3, topojson */
import { pct, rate } from '../format.js';
import { s } from '../svg.js';

/** @type {Promise<unknown> | null} */
let world = null;

/** Natural Earth's countries at 1:110m, once. */
export function loadWorld() {
  world ??= fetch('/assets/vendor/countries-110m.json')
    .then((r) => r.json())
    .then((topo) => topojson.feature(topo, topo.objects.countries));
  return world;
}

/**
 * @typedef {{ name: string, location?: { lat: number, lon: number } }} Region
 * @typedef {{ name: string, region: string, health: string }} ClusterDot
 * @typedef {import('./traffic.js').Flow} Flow
 */

/** A flow's tone: red for an unhealthy cluster or 5 % errors, amber from 1 %, else green. @param {string} health @param {number} err */
export function flowTone(health, err) {
  if (health === 'unhealthy' || err >= 0.05) return 'bad';
  if (health === 'degraded' || health === 'unknown' || err >= 0.01) return 'warn';
  return 'ok';
}

/** The countries' outline, projected once (it is the same on every render). @type {{ world: unknown, d: string } | null} */
let land = null;

/** @param {unknown} world @param {(o: any) => string | null} path */
function landPath(world, path) {
  if (land?.world !== world) land = { world, d: path(world) ?? '' };
  return land.d;
}

/**
 * Redraws the map in `box`: whole when what it shows changed (regions, clusters' health, the selection, the
 * countries arriving), else only its flow lines — so that a region stays clickable while traffic moves.
 * @param {HTMLElement} box @param {Parameters<typeof mapView>[0]} m
 */
export function drawMap(box, m) {
  const key = `${Boolean(m.world)}|${m.selected}|${m.regions.map((r) => r.name).join()}|${m.clusters.map((c) => `${c.name}:${c.health}`).join()}`;
  const fresh = mapView(m);
  const old = box.querySelector('svg.geo-map');
  if (old && box.dataset.key === key) {
    const flows = fresh.querySelector('g.flows');
    if (flows) old.querySelector('g.flows')?.replaceWith(flows);
    return;
  }
  box.dataset.key = key;
  box.replaceChildren(fresh);
}

/**
 * @param {{ world: unknown, regions: Region[], clusters: ClusterDot[], flows: Flow[], selected: string | null, onSelect: (r: string) => void }} m
 * @returns {SVGElement}
 */
export function mapView(m) {
  const width = 960;
  const height = 440;
  const projection = d3.geoNaturalEarth1().fitExtent(
    [
      [4, 4],
      [width - 4, height - 4],
    ],
    /** @type {any} */ ({ type: 'Sphere' }),
  );
  const path = d3.geoPath(projection);
  /** @type {Map<string, [number, number]>} */
  const at = new Map();
  for (const r of m.regions) {
    if (!r.location) continue;
    const p = projection([r.location.lon, r.location.lat]);
    if (p) at.set(r.name, /** @type {[number, number]} */ (p));
  }
  // the clusters of a region around its point
  /** @type {Map<string, [number, number]>} */
  const dot = new Map();
  for (const r of m.regions) {
    const cs = m.clusters.filter((c) => c.region === r.name);
    const p = at.get(r.name);
    if (!p) continue;
    cs.forEach((c, i) => {
      const a = (2 * Math.PI * i) / Math.max(1, cs.length) - Math.PI / 2;
      dot.set(c.name, [p[0] + 14 * Math.cos(a), p[1] + 14 * Math.sin(a)]);
    });
  }
  /** @type {Map<string, { client: string, cluster: string, rps: number, errors: number }>} */
  const joined = new Map();
  for (const f of m.flows) {
    if (!(f.rps > 0) || !at.has(f.clientRegion) || !dot.has(f.cluster)) continue;
    const k = `${f.clientRegion}→${f.cluster}`;
    const j = joined.get(k) ?? { client: f.clientRegion, cluster: f.cluster, rps: 0, errors: 0 };
    j.rps += f.rps;
    j.errors += f.rps * (f.errorRate ?? 0);
    joined.set(k, j);
  }
  const max = Math.max(1e-9, ...[...joined.values()].map((j) => j.rps));
  const health = new Map(m.clusters.map((c) => [c.name, c.health]));
  const lines = [...joined.values()]
    .sort((a, b) => a.rps - b.rps)
    .map((j) => {
      const [x1, y1] = /** @type {[number, number]} */ (at.get(j.client));
      const [x2, y2] = /** @type {[number, number]} */ (dot.get(j.cluster));
      const mx = (x1 + x2) / 2 - (y2 - y1) * 0.2;
      const my = (y1 + y2) / 2 + (x2 - x1) * 0.2 - 6;
      const err = j.rps > 0 ? j.errors / j.rps : 0;
      const tone = flowTone(health.get(j.cluster) ?? 'unknown', err);
      const dim = m.selected && m.selected !== j.client ? ' dim' : '';
      return s(
        'path',
        {
          class: `flow-line tone-${tone}${dim}`,
          d: `M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`,
          'stroke-width': (1.5 + 8.5 * (j.rps / max)).toFixed(1),
          'data-flow': `${j.client}→${j.cluster}`,
          'data-tone': tone,
        },
        s('title', { text: `${j.client} → ${j.cluster}: ${rate(j.rps)}, ${pct(err, 2)} errors` }),
      );
    });
  return s(
    'svg',
    {
      class: 'geo-map',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': 'map of client regions and the clusters that serve them',
    },
    s('path', { class: 'sphere', d: path(/** @type {any} */ ({ type: 'Sphere' })) ?? '' }),
    m.world ? s('path', { class: 'land', d: landPath(m.world, path) }) : null,
    s('g', { class: 'flows' }, lines),
    m.clusters
      .filter((c) => dot.has(c.name))
      .map((c) => {
        const [x, y] = /** @type {[number, number]} */ (dot.get(c.name));
        return s(
          'circle',
          { class: `cluster-dot tone-${flowTone(c.health, 0)}`, cx: x.toFixed(1), cy: y.toFixed(1), r: 4.5, 'data-cluster': c.name },
          s('title', { text: `${c.name}: ${c.health}` }),
        );
      }),
    m.regions
      .filter((r) => at.has(r.name))
      .map((r) => {
        const [x, y] = /** @type {[number, number]} */ (at.get(r.name));
        return s(
          'g',
          {
            class: `region-mark${m.selected === r.name ? ' selected' : ''}`,
            'data-region': r.name,
            tabindex: '0',
            role: 'button',
            'aria-label': `show ${r.name} in the charts`,
            onclick: () => m.onSelect(r.name),
            onkeydown: (/** @type {KeyboardEvent} */ e) => (e.key === 'Enter' || e.key === ' ') && m.onSelect(r.name),
          },
          s('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 7 }),
          s('text', { x: (x + 18).toFixed(1), y: (y - 10).toFixed(1), text: r.name }),
        );
      }),
  );
}
