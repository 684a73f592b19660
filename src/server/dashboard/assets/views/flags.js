/** Feature flags by region: on/off and the percentage in each region, and an editor when the role may set them. */
import { h } from '../dom.js';

/** @typedef {{ name: string, default?: boolean, description?: string | null, regions?: Record<string, { enabled?: boolean, percent?: number, source?: string, updatedBy?: string }> }} Flag */

/**
 * @param {{ flags: Flag[], regions: string[], can: Record<string, boolean>, act: (label: string, path: string, body: unknown, method?: string) => void }} m
 */
export function flagsView(m) {
  if (!m.flags.length) return [h('p', { class: 'empty' }, 'No feature flags in this fleet.')];
  const regions = m.regions.length ? m.regions : [...new Set(m.flags.flatMap((f) => Object.keys(f.regions ?? {})))].sort();
  const table = h(
    'table',
    { class: 'data flags-table' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { scope: 'col' }, 'flag'),
        h('th', { scope: 'col' }, 'default'),
        regions.map((r) => h('th', { scope: 'col' }, r)),
      ),
    ),
    h(
      'tbody',
      null,
      m.flags.map((f) =>
        h(
          'tr',
          { 'data-flag': f.name },
          h('th', { scope: 'row', title: f.description ?? '' }, f.name),
          h('td', { class: 'muted' }, f.default ? 'on' : 'off'),
          regions.map((r) => {
            const s = f.regions?.[r];
            if (!s) return h('td', { class: 'muted', title: 'inherits the default' }, '·');
            const on = s.enabled !== false;
            const from =
              s.source === 'operator'
                ? `set by ${s.updatedBy ?? 'an operator'}`
                : s.source === 'default'
                  ? 'the default'
                  : 'from the fleet file';
            return h(
              'td',
              { class: `${on ? 'flag-on' : 'muted'} ${s.source === 'default' ? 'flag-default' : ''}`, 'data-region': r, title: from },
              on ? `on ${s.percent ?? 100} %` : 'off',
              s.source === 'operator' ? h('span', { class: 'tag', title: from }, 'set') : null,
            );
          }),
        ),
      ),
    ),
  );
  if (!m.can.flag) return [table];
  const form = h(
    'form',
    {
      class: 'inline-form flag-form',
      'aria-label': 'set a flag in a region',
      onsubmit: (/** @type {SubmitEvent} */ e) => {
        e.preventDefault();
        const d = new FormData(/** @type {HTMLFormElement} */ (e.currentTarget));
        const name = String(d.get('flag'));
        const region = String(d.get('region'));
        const enabled = d.get('enabled') === 'on';
        const percent = Number(d.get('percent'));
        m.act(
          `set ${name} in ${region}`,
          `/flags/${encodeURIComponent(name)}/regions/${encodeURIComponent(region)}`,
          { enabled, percent },
          'PUT',
        );
      },
    },
    h('label', { for: 'flag-name' }, 'Flag'),
    h(
      'select',
      { id: 'flag-name', name: 'flag' },
      m.flags.map((f) => h('option', { value: f.name }, f.name)),
    ),
    h('label', { for: 'flag-region' }, 'in'),
    h(
      'select',
      { id: 'flag-region', name: 'region' },
      regions.map((r) => h('option', { value: r }, r)),
    ),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'enabled', checked: true }), 'enabled'),
    h('label', { for: 'flag-percent' }, 'for'),
    h('input', {
      id: 'flag-percent',
      name: 'percent',
      type: 'number',
      min: '0',
      max: '100',
      step: '1',
      value: '100',
      class: 'narrow',
      required: true,
    }),
    h('span', null, '% of users'),
    h('button', { type: 'submit', class: 'primary' }, 'Set flag'),
  );
  return [table, form];
}
