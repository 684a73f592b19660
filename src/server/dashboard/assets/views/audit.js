/** The audit log, newest first, under its verification state: whether the hash chain is unbroken, and where it breaks. */
import { h } from '../dom.js';
import { clock } from '../format.js';

/** @typedef {{ seq: number, at: string, actor: unknown, action: string, subject: string, reason?: string | null, detail?: unknown, data?: unknown }} Entry */

/** @param {unknown} a */
function actor(a) {
  if (a && typeof a === 'object') {
    const o = /** @type {Record<string, unknown>} */ (a);
    return String(o.id ?? o.name ?? JSON.stringify(o));
  }
  return String(a ?? '?');
}

/** Long hashes cut to 12 characters: enough to tell them apart, short enough to scan. @param {string} v */
function short(v) {
  return /^[0-9a-f]{20,}$/.test(v) ? `${v.slice(0, 12)}…` : v;
}

/** A short one-line summary of a detail object. @param {unknown} d */
function summary(d) {
  if (d === null || d === undefined) return '';
  if (typeof d !== 'object') return String(d);
  const parts = Object.entries(/** @type {Record<string, unknown>} */ (d))
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
    .slice(0, 5)
    .map(([k, v]) => `${k}=${short(String(v))}`);
  return parts.join(' ');
}

/** @param {{ verified?: boolean, brokenAt?: number, problem?: string, entries?: Entry[] }} a */
export function auditState(a) {
  if (a.verified === false)
    return h(
      'span',
      { class: 'pill tone-bad', 'data-verified': 'false', title: a.problem ?? '' },
      `chain broken${a.brokenAt !== undefined ? ` at #${a.brokenAt}` : ''}`,
    );
  if (a.verified === true) return h('span', { class: 'pill tone-ok', 'data-verified': 'true' }, 'chain verified');
  return h('span', { class: 'pill' }, 'not verified');
}

/** @param {{ verified?: boolean, brokenAt?: number, entries?: Entry[] }} a */
export function auditView(a) {
  const entries = (a.entries ?? []).slice().sort((x, y) => y.seq - x.seq);
  if (!entries.length) return [h('p', { class: 'empty' }, 'The audit log is empty.')];
  return [
    h(
      'table',
      { class: 'data audit-table' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['#', 'time', 'who', 'what', 'subject', 'detail'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h(
        'tbody',
        null,
        entries.map((e) =>
          h(
            'tr',
            {
              'data-seq': String(e.seq),
              class: a.brokenAt === undefined ? '' : e.seq === a.brokenAt ? 'bad-row' : e.seq > a.brokenAt ? 'unverified' : '',
            },
            h('td', { class: 'num muted' }, String(e.seq)),
            h('td', { class: 'mono muted' }, clock(e.at)),
            h('td', null, actor(e.actor)),
            h('td', { class: 'mono' }, e.action),
            h('td', { class: 'mono' }, e.subject),
            h('td', { class: 'why' }, [e.reason ?? '', summary(e.detail ?? e.data)].filter(Boolean).join(' — ')),
          ),
        ),
      ),
    ),
  ];
}
