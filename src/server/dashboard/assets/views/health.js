/** Regional health: every region with its clusters, and in each cluster its services — version, track, replicas ready. */
import { h } from '../dom.js';
import { rate } from '../format.js';

/**
 * @typedef {{ service: string, revision?: string, version?: string, track?: string, healthy?: boolean, replicas?: number, ready?: number, restarts?: number, lastError?: string | null }} ClusterService
 * @typedef {{ name: string, region: string, drained?: boolean, healthy?: boolean, reachable?: boolean, error?: string | null, services?: ClusterService[] }} Cluster
 * @typedef {{ name: string, jurisdiction?: string, clusters?: string[] }} Region
 */

/** @param {Cluster} c @returns {'healthy' | 'unhealthy' | 'drained' | 'idle'} */
export function clusterState(c) {
  const svcs = c.services ?? [];
  if (c.reachable === false || svcs.some((s) => s.healthy === false)) return 'unhealthy';
  if (c.drained) return 'drained';
  if (c.healthy === false && svcs.length) return 'unhealthy';
  return svcs.length ? 'healthy' : 'idle';
}

/**
 * @param {{ regions: Region[], clusters: Cluster[], servedRps: Map<string, number>, can: Record<string, boolean>,
 *           act: (label: string, path: string, body: unknown) => void }} m
 */
export function healthView(m) {
  const byName = new Map(m.clusters.map((c) => [c.name, c]));
  const regions = m.regions.length
    ? m.regions
    : [...new Set(m.clusters.map((c) => c.region))].map((name) => ({
        name,
        clusters: m.clusters.filter((c) => c.region === name).map((c) => c.name),
      }));
  return regions.map((r) => {
    const clusters = (r.clusters ?? []).map((n) => byName.get(n) ?? { name: n, region: r.name, services: [] });
    const states = clusters.map(clusterState);
    const state = states.includes('unhealthy')
      ? 'unhealthy'
      : clusters.length && states.every((s) => s === 'drained')
        ? 'drained'
        : 'healthy';
    const served = clusters.reduce((n, c) => n + (m.servedRps.get(c.name) ?? 0), 0);
    const drained = clusters.length > 0 && clusters.every((c) => c.drained);
    return h(
      'article',
      {
        class: `region tone-${state === 'healthy' ? 'ok' : state === 'drained' ? 'idle' : 'bad'}`,
        'data-region': r.name,
        'aria-label': `region ${r.name}`,
      },
      h(
        'header',
        { class: 'region-head' },
        h('h3', null, r.name),
        r.jurisdiction ? h('span', { class: 'tag' }, r.jurisdiction) : null,
        h('span', { class: 'spacer' }),
        h('span', { class: 'num', title: 'requests per second served by this region' }, rate(served)),
        m.can.drain
          ? h('button', {
              type: 'button',
              class: 'small',
              text: drained ? 'Undrain region' : 'Drain region',
              onclick: () =>
                m.act(`${drained ? 'undrain' : 'drain'} region ${r.name}`, `/regions/${encodeURIComponent(r.name)}/drain`, {
                  drained: !drained,
                }),
            })
          : null,
      ),
      h(
        'div',
        { class: 'clusters' },
        clusters.map((c) => clusterCard(c, m)),
      ),
    );
  });
}

/** @param {Cluster} c @param {Parameters<typeof healthView>[0]} m */
function clusterCard(c, m) {
  const state = clusterState(c);
  const label = state === 'healthy' ? 'healthy' : state === 'idle' ? 'no services' : state;
  return h(
    'div',
    { class: `cluster state-${state}`, 'data-cluster': c.name },
    h(
      'div',
      { class: 'cluster-head' },
      h('span', {
        class: `dot tone-${state === 'healthy' ? 'ok' : state === 'unhealthy' ? 'bad' : 'idle'}`,
        'aria-hidden': 'true',
      }),
      h('strong', null, c.name),
      h('span', { class: `state-word tone-${state === 'healthy' ? 'ok' : state === 'unhealthy' ? 'bad' : 'idle'}` }, label),
      h('span', { class: 'spacer' }),
      h('span', { class: 'num muted' }, rate(m.servedRps.get(c.name) ?? 0)),
    ),
    h(
      'table',
      { class: 'svc' },
      h(
        'tbody',
        null,
        (c.services ?? [])
          .slice()
          .sort((a, b) => a.service.localeCompare(b.service) || (a.track === 'canary' ? 1 : -1))
          .map((s) =>
            h(
              'tr',
              { class: s.healthy === false ? 'bad-row' : '' },
              h('td', null, s.service),
              h('td', { class: 'mono' }, s.version ?? '—'),
              h('td', null, s.track === 'canary' ? h('span', { class: 'pill canary' }, 'canary') : h('span', { class: 'muted' }, 'stable')),
              h(
                'td',
                { class: `num ${s.healthy === false ? 'tone-bad' : 'muted'}`, title: 'replicas ready / desired' },
                `${s.ready ?? '?'}/${s.replicas ?? '?'}`,
                s.healthy === false ? ' unhealthy' : '',
              ),
            ),
          ),
      ),
    ),
    m.can.drain
      ? h(
          'div',
          { class: 'card-actions' },
          h('button', {
            type: 'button',
            class: 'small',
            text: c.drained ? 'Undrain' : 'Drain',
            'aria-label': `${c.drained ? 'Undrain' : 'Drain'} cluster ${c.name}`,
            onclick: () =>
              m.act(`${c.drained ? 'undrain' : 'drain'} ${c.name}`, `/clusters/${encodeURIComponent(c.name)}/drain`, {
                drained: !c.drained,
              }),
          }),
        )
      : null,
  );
}
