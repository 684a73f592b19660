/** Numbers with their units, times relative to now, and the state → colour mapping used everywhere. */

/** @param {number | null | undefined} rps */
export function rate(rps) {
  if (rps === null || rps === undefined || !Number.isFinite(rps)) return '—';
  if (rps >= 100) return `${Math.round(rps)} req/s`;
  if (rps >= 10) return `${rps.toFixed(1)} req/s`;
  return `${rps.toFixed(2)} req/s`;
}

/** A ratio (0.012) as a percentage ("1.2 %"). @param {number | null | undefined} r */
export function pct(r, digits = 1) {
  if (r === null || r === undefined || !Number.isFinite(r)) return '—';
  const v = r * 100;
  if (v !== 0 && Math.abs(v) < 0.1) return `${v.toFixed(2)} %`;
  return `${v.toFixed(digits)} %`;
}

/** @param {number | null | undefined} ms */
export function millis(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

/** A value in a unit the judge names (ratio, ms, s, number). @param {unknown} v @param {unknown} unit */
export function valueIn(v, unit) {
  if (typeof v !== 'number') return '—';
  if (unit === 'ratio') return pct(v, 2);
  if (unit === 'ms') return millis(v);
  if (unit === 's') return millis(v * 1000);
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

/** "12 s ago", "3 min ago", or the date. @param {string | number | null | undefined} at @param {number} [now] */
export function ago(at, now = Date.now()) {
  if (at === null || at === undefined) return '—';
  const t = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(t)) return String(at);
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 16).replace('T', ' ');
}

/** ISO time as "HH:MM:SS" (UTC, as the CLI and logs print). @param {string | null | undefined} at */
export function clock(at) {
  if (!at) return '—';
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? String(at) : `${d.toISOString().slice(11, 19)} UTC`;
}

/**
 * The tone of a state word: `ok` (quiet green), `bad` (red: failed, unhealthy), `warn` (amber: paused,
 * degraded, rolled back), `act` (blue: waits for a person), `run` (in progress), `idle` (nothing to see,
 * or a deliberate state such as drained: an operator's choice is not an alarm).
 * @param {string | null | undefined} state
 * @returns {'ok' | 'bad' | 'warn' | 'act' | 'run' | 'idle'}
 */
export function tone(state) {
  switch (state) {
    case 'healthy':
    case 'pass':
    case 'promoted':
    case 'verified':
    case 'within':
      return 'ok';
    case 'unhealthy':
    case 'fail':
    case 'failed':
    case 'error':
    case 'broken':
    case 'exceeded':
      return 'bad';
    case 'paused':
    case 'degraded':
    case 'rolled-back':
    case 'rolling-back':
    case 'inconclusive':
    case 'no-data':
    case 'unproven':
      return 'warn';
    case 'awaiting-approval':
      return 'act';
    case 'running':
    case 'in-progress':
    case 'deploying':
    case 'waiting':
      return 'run';
    default:
      return 'idle';
  }
}

/** A short revision id. @param {string | null | undefined} id */
export function rev(id) {
  return id ? String(id).slice(0, 12) : '—';
}
