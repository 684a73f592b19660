/**
 * The dashboard: signs in with a token, reads the fleet from the API, keeps it live from the event stream,
 * and offers only the actions the signed-in role may take (from /whoami's `can`).
 */
import { api, ApiError, setToken, subscribe, token, tokenFromFragment } from './api.js';
import { byId, h, replace } from './dom.js';
import { rate } from './format.js';
import { auditState, auditView } from './views/audit.js';
import { flagsView } from './views/flags.js';
import { clusterState, healthView } from './views/health.js';
import { isActive, rolloutsView } from './views/rollouts.js';
import { drawMap, loadWorld } from './views/map.js';
import { Charts, History } from './views/series.js';
import { servedByCluster, trafficView } from './views/traffic.js';

/** Everything the page shows, as last read. */
const state = {
  /** @type {{ identity?: string, roles?: string[], can?: Record<string, boolean> }} */
  who: {},
  /** @type {Record<string, unknown>} */
  fleet: {},
  /** @type {import('./views/health.js').Cluster[]} */
  clusters: [],
  /** @type {{ at?: string, windowSeconds?: number, flows: import('./views/traffic.js').Flow[] }} */
  traffic: { flows: [] },
  /** @type {Record<string, unknown>[]} */
  rollouts: [],
  /** @type {Map<string, Record<string, unknown>>} */
  details: new Map(),
  /** @type {Set<string>} ids the user opened or closed; active rollouts open by default */
  toggled: new Set(),
  /** @type {import('./views/flags.js').Flag[]} */
  flags: [],
  /** @type {{ verified?: boolean, brokenAt?: number, entries?: import('./views/audit.js').Entry[] }} */
  audit: {},
  /** @type {'live' | 'reconnecting' | 'off'} */
  stream: 'off',
  lastTrafficEvent: 0,
  /** Traffic snapshots for the charts, newest last. */
  history: new History(),
  /** @type {string | null} the client region the map selected for the charts */
  selectedRegion: null,
  /** @type {unknown} Natural Earth's countries, once loaded */
  world: null,
};

/** @type {Charts | null} */
let charts = null;

/** @type {(() => void) | null} */
let closeStream = null;
/** @type {ReturnType<typeof setInterval> | null} */
let poller = null;

const can = () => state.who.can ?? {};

// ---- loading -------------------------------------------------------------------------------------------

/** @type {Record<string, () => Promise<void>>} */
const loaders = {
  fleet: async () => {
    state.fleet = /** @type {Record<string, unknown>} */ ((await api('/fleet')) ?? {});
  },
  clusters: async () => {
    state.clusters = /** @type {typeof state.clusters} */ ((await api('/clusters')) ?? []);
  },
  traffic: async () => {
    state.traffic = /** @type {typeof state.traffic} */ ((await api('/traffic')) ?? { flows: [] });
  },
  rollouts: async () => {
    const list = /** @type {unknown} */ (await api('/rollouts?limit=10'));
    state.rollouts = /** @type {typeof state.rollouts} */ (
      Array.isArray(list) ? list : (/** @type {{rollouts?: unknown[]}} */ (list)?.rollouts ?? [])
    ).slice(0, 10);
    const open = state.rollouts.filter((r) => expanded().has(String(r.id)));
    await Promise.all(
      open.map(async (r) => {
        state.details.set(
          String(r.id),
          /** @type {Record<string, unknown>} */ (await api(`/rollouts/${encodeURIComponent(String(r.id))}`)),
        );
      }),
    );
  },
  flags: async () => {
    const f = /** @type {unknown} */ (await api('/flags'));
    state.flags = /** @type {typeof state.flags} */ (Array.isArray(f) ? f : (/** @type {{flags?: unknown[]}} */ (f)?.flags ?? []));
  },
  audit: async () => {
    state.audit = /** @type {typeof state.audit} */ ((await api('/audit?limit=50')) ?? {});
  },
};

/** Which sections each loader feeds. */
const renders = /** @type {Record<string, (() => void)[]>} */ ({
  fleet: [renderHeader, renderHealth, renderFlags],
  clusters: [renderHealth, renderTraffic, renderAlerts],
  traffic: [renderTraffic, renderHealth],
  rollouts: [renderRollouts, renderAlerts],
  flags: [renderFlags],
  audit: [renderAudit, renderAlerts],
});

/** Loads some parts and re-renders what depends on them; an error shows where it happened. @param {string[]} names */
async function load(names) {
  const results = await Promise.allSettled(names.map((n) => loaders[n]?.()));
  const fns = new Set();
  let failed = false;
  for (const [i, r] of results.entries()) {
    const name = names[i] ?? '';
    if (r.status === 'rejected') {
      failed = true;
      if (r.reason instanceof ApiError && r.reason.status === 401)
        return signOut('Your token was refused (expired or revoked). Sign in again.');
      // an unreachable server is already said by the live badge and the attention strip
      if (!(r.reason instanceof ApiError && r.reason.status === 0)) {
        showError(`could not load ${name}: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
        loadFailed = true;
      }
    }
    for (const f of renders[name] ?? []) fns.add(f);
  }
  if (!failed && loadFailed) {
    loadFailed = false;
    byId('action-error').hidden = true;
  }
  for (const f of fns) f();
}

/** Whether the error banner shows a failed load (cleared by the next load that succeeds), not a refused action. */
let loadFailed = false;

/** Coalesces bursts of events into one load per part. */
const pending = new Set();
/** @type {ReturnType<typeof setTimeout> | null} */
let timer = null;
/** @param {...string} names */
function schedule(...names) {
  for (const n of names) pending.add(n);
  if (timer) return;
  timer = setTimeout(() => {
    timer = null;
    const names2 = [...pending];
    pending.clear();
    void load(names2);
  }, 120);
}

// ---- rendering -----------------------------------------------------------------------------------------

function expanded() {
  const open = new Set(state.rollouts.filter((r) => isActive(String(r.state))).map((r) => String(r.id)));
  if (!open.size && state.rollouts[0]) open.add(String(state.rollouts[0].id));
  for (const id of state.toggled) {
    if (open.has(id)) open.delete(id);
    else open.add(id);
  }
  return open;
}

function regions() {
  const r = state.fleet.regions;
  return Array.isArray(r) ? /** @type {import('./views/health.js').Region[]} */ (r) : [];
}

function renderHeader() {
  byId('fleet-name').textContent = state.fleet.name ? `· ${String(state.fleet.name)}` : '';
  document.title = state.fleet.name ? `Meridian · ${String(state.fleet.name)}` : 'Meridian';
  const who = byId('who');
  who.hidden = false;
  replace(
    who,
    h('span', null, state.who.identity ?? '?'),
    ' ',
    (state.who.roles ?? []).map((r) => h('span', { class: 'tag' }, r)),
  );
}

function renderHealth() {
  const servedRps = servedByCluster(state.traffic.flows ?? []);
  replace(byId('health-grid'), healthView({ regions: regions(), clusters: state.clusters, servedRps, can: can(), act }));
  const bad = state.clusters.filter((c) => clusterState(c) === 'unhealthy').length;
  const drained = state.clusters.filter((c) => c.drained).length;
  byId('health-summary').textContent =
    `${state.clusters.length} clusters in ${regions().length || new Set(state.clusters.map((c) => c.region)).size} regions${
      bad ? ` · ${bad} unhealthy` : ' · all healthy'
    }${drained ? ` · ${drained} drained` : ''}`;
}

function canaryVersions() {
  const s = new Set();
  for (const c of state.clusters) for (const x of c.services ?? []) if (x.track === 'canary' && x.version) s.add(x.version);
  return s;
}

function renderTraffic() {
  const flows = state.traffic.flows ?? [];
  state.history.add(state.traffic.at, flows);
  if (!state.world)
    void loadWorld()
      .then((w) => {
        state.world = w;
        renderTraffic();
      })
      .catch(() => {});
  drawMap(byId('traffic-map'), {
    world: state.world,
    regions: regions(),
    clusters: state.clusters.map((c) => ({ name: c.name, region: c.region, health: clusterState(c) })),
    flows,
    selected: state.selectedRegion,
    onSelect: (r) => {
      state.selectedRegion = state.selectedRegion === r ? null : r;
      renderTraffic();
    },
  });
  charts ??= new Charts(byId('traffic-charts'));
  charts.update(state.history, state.selectedRegion);
  replace(byId('traffic-body'), trafficView({ flows, canaryVersions: canaryVersions() }));
  byId('traffic-body').dataset.at = state.traffic.at ?? '';
  const total = flows.reduce((n, f) => n + (f.rps || 0), 0);
  byId('traffic-summary').textContent =
    `${rate(total)} total${state.traffic.windowSeconds ? ` · last ${state.traffic.windowSeconds} s` : ''}`;
}

function renderRollouts() {
  replace(
    byId('rollouts-body'),
    rolloutsView({
      list: state.rollouts,
      details: state.details,
      expanded: expanded(),
      can: can(),
      toggle: (id) => {
        if (state.toggled.has(id)) state.toggled.delete(id);
        else state.toggled.add(id);
        if (expanded().has(id) && !state.details.has(id)) schedule('rollouts');
        renderRollouts();
      },
      act,
    }),
  );
  const active = state.rollouts.filter((r) => isActive(String(r.state))).length;
  byId('rollouts-summary').textContent = active ? `${active} in progress` : 'none in progress';
}

function renderFlags() {
  replace(byId('flags-body'), flagsView({ flags: state.flags, regions: regions().map((r) => r.name), can: can(), act }));
}

function renderAudit() {
  replace(byId('audit-state'), auditState(state.audit));
  replace(byId('audit-body'), auditView(state.audit));
}

/** The strip on top: only what needs attention, most urgent first; one quiet line when nothing does. */
function renderAlerts() {
  const items = [];
  for (const c of state.clusters) {
    if (clusterState(c) === 'unhealthy') {
      const bad = (c.services ?? [])
        .filter((s) => s.healthy === false)
        .map((s) => `${s.service}${s.track === 'canary' ? ' (canary)' : ''}`);
      const why =
        c.reachable === false ? `unreachable${c.error ? ` (${c.error})` : ''}` : `unhealthy${bad.length ? `: ${bad.join(', ')}` : ''}`;
      items.push(h('a', { class: 'alert tone-bad', href: '#health' }, `${c.name} ${why}`));
    }
  }
  if (state.audit.verified === false)
    items.push(
      h(
        'a',
        { class: 'alert tone-bad', href: '#audit' },
        `audit chain broken${state.audit.brokenAt !== undefined ? ` at #${state.audit.brokenAt}` : ''}`,
      ),
    );
  // how the newest rollout ended, if it did not go through (older outcomes are history, not news)
  const newest = state.rollouts[0];
  if (newest?.state === 'failed') items.push(h('a', { class: 'alert tone-bad', href: '#rollouts' }, `rollout ${String(newest.id)} failed`));
  if (newest?.state === 'rolled-back' && newest.kind !== 'rollback')
    items.push(h('a', { class: 'alert tone-warn', href: '#rollouts' }, `rollout ${String(newest.id)} was rolled back`));
  for (const r of state.rollouts) {
    if (r.state === 'paused') items.push(h('a', { class: 'alert tone-warn', href: '#rollouts' }, `rollout ${String(r.id)} is paused`));
    if (r.state === 'awaiting-approval')
      items.push(h('a', { class: 'alert tone-act', href: '#rollouts' }, `rollout ${String(r.id)} waits for approval`));
  }
  if (state.stream === 'reconnecting') items.push(h('span', { class: 'alert tone-warn' }, 'live updates lost; reconnecting…'));
  replace(
    byId('alerts'),
    items.length ? items : h('span', { class: 'alert quiet' }, 'Nothing needs attention: every cluster healthy, no rollout waiting.'),
  );
}

function renderLive() {
  const el = byId('live');
  el.hidden = false;
  el.className = `live ${state.stream}`;
  el.textContent = state.stream === 'live' ? 'live' : state.stream === 'reconnecting' ? 'reconnecting' : 'offline';
}

/** @param {string} text */
function showError(text) {
  const el = byId('action-error');
  el.textContent = text;
  el.hidden = false;
}

// ---- actions -------------------------------------------------------------------------------------------

/**
 * Performs an action through the API, shows the server's refusal as it is (code, message, hint), and
 * reloads what it changed (the event stream would too; this is for a page whose stream is down).
 * @param {string} label @param {string} path @param {unknown} body @param {string} [method]
 */
async function act(label, path, body, method = 'POST') {
  byId('action-error').hidden = true;
  loadFailed = false;
  byId('action-info').hidden = true;
  try {
    const res = /** @type {{ hint?: string | null } | null} */ (await api(path, { method, body }));
    if (res && typeof res.hint === 'string' && res.hint) {
      byId('action-info').textContent = `${label}: ${res.hint}`;
      byId('action-info').hidden = false;
    }
    // done: let go of the control that sent it, so the section it is in can be redrawn
    if (document.activeElement instanceof HTMLInputElement) document.activeElement.blur();
    schedule('clusters', 'rollouts', 'flags', 'audit');
  } catch (err) {
    if (err instanceof ApiError) showError(`${label}: ${err.message}${err.hint ? ` — ${err.hint}` : ''} (${err.code})`);
    else showError(`${label}: ${String(err)}`);
  }
}

// ---- session -------------------------------------------------------------------------------------------

/** @param {string} [message] */
function signOut(message) {
  setToken(null);
  closeStream?.();
  closeStream = null;
  if (poller) clearInterval(poller);
  poller = null;
  state.stream = 'off';
  byId('app').hidden = true;
  byId('nav').hidden = true;
  byId('who').hidden = true;
  byId('live').hidden = true;
  byId('signout').hidden = true;
  byId('login').hidden = false;
  const err = byId('login-error');
  err.hidden = !message;
  err.textContent = message ?? '';
  /** @type {HTMLInputElement} */ (byId('token-input')).focus();
}

async function start() {
  if (!token()) return signOut();
  try {
    state.who = /** @type {typeof state.who} */ ((await api('/whoami')) ?? {});
  } catch (err) {
    return signOut(
      err instanceof ApiError && err.status !== 0 ? `Sign-in refused: ${err.message}` : `The server does not answer: ${String(err)}`,
    );
  }
  byId('login').hidden = true;
  byId('app').hidden = false;
  byId('nav').hidden = false;
  byId('signout').hidden = false;
  document.body.dataset.role = (state.who.roles ?? []).join(' ');
  renderHeader();
  await load(Object.keys(loaders));
  document.body.dataset.ready = 'true';
  closeStream = subscribe(
    ['routing', 'health', 'traffic', 'rollout', 'flag', 'audit'],
    (name, data) => {
      if (name === 'traffic') {
        state.lastTrafficEvent = Date.now();
        const d = /** @type {typeof state.traffic | null} */ (data);
        if (d && Array.isArray(d.flows)) {
          state.traffic = d;
          renderTraffic();
          renderHealth();
        } else schedule('traffic');
      } else if (name === 'health') {
        const d = /** @type {{ clusters?: typeof state.clusters } | null} */ (data);
        if (d && Array.isArray(d.clusters)) {
          state.clusters = d.clusters;
          for (const f of renders.clusters ?? []) f();
        } else schedule('clusters');
      } else if (name === 'routing') schedule('clusters');
      else if (name === 'rollout') schedule('rollouts', 'clusters');
      else if (name === 'flag') schedule('flags');
      else if (name === 'audit') schedule('audit');
    },
    (s) => {
      const was = state.stream;
      state.stream = s;
      renderLive();
      if (s !== was) renderAlerts();
      if (s === 'live' && was === 'reconnecting') schedule(...Object.keys(loaders)); // catch up on what the gap missed
    },
  );
  // Traffic is a rate over a window: refresh it even when no event says so (e.g. a server that only
  // sends events on change).
  let ticks = 0;
  poller = setInterval(() => {
    if (Date.now() - state.lastTrafficEvent > 4000) schedule('traffic');
    if (++ticks % 10 === 0) renderRollouts(); // "started 2 min ago" stays true
  }, 2000);
}

// ---- wiring --------------------------------------------------------------------------------------------

function initTheme() {
  const saved = localStorage.getItem('meridian.theme');
  if (saved === 'dark' || saved === 'light') document.documentElement.dataset.theme = saved;
  byId('theme').addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === 'dark'
      : matchMedia('(prefers-color-scheme: dark)').matches;
    const next = dark ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    localStorage.setItem('meridian.theme', next);
  });
}

byId('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = /** @type {HTMLInputElement} */ (byId('token-input'));
  const t = input.value.trim();
  input.value = '';
  if (!t) return;
  setToken(t);
  void start();
});
byId('signout').addEventListener('click', () => signOut());
// a section left alone while the user typed in it is redrawn once the focus leaves it — but not when the
// focus moves to a button in the same section (the user is clicking it: redrawing now would lose the click;
// the action reloads the section anyway)
document.addEventListener('focusout', (e) => {
  const stale = document.querySelector('[data-stale]');
  const next = /** @type {FocusEvent} */ (e).relatedTarget;
  if (!stale || (next instanceof Node && stale.contains(next))) return;
  setTimeout(() => {
    for (const f of [renderHealth, renderTraffic, renderRollouts, renderFlags, renderAudit, renderAlerts]) f();
  }, 0);
});
initTheme();
tokenFromFragment();
void start();
