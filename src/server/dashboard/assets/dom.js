/** A tiny DOM builder: elements from data, never HTML strings, so nothing the API returns can inject markup. */

/**
 * Creates an element. `attrs` keys: `class`, `text`, `on<event>` handlers, `dataset`, `style` (an object of
 * CSS properties), booleans (set when
 * true), anything else as an attribute. Children: nodes, strings, numbers, arrays, or null/false (skipped).
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style')
      Object.assign(el.style, v); // through the CSSOM: the CSP forbids style attributes
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {unknown[]} children */
function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/**
 * Replaces an element's children — unless the user is typing or choosing in a control inside it: a live
 * update must not throw away a half-written comment. The element is then marked `data-stale` and the
 * caller redraws it when the control loses focus (see app.js).
 * @param {HTMLElement} el
 * @param {...unknown} children
 */
export function replace(el, ...children) {
  const active = document.activeElement;
  if (active && el.contains(active) && (active instanceof HTMLInputElement || active instanceof HTMLSelectElement)) {
    el.dataset.stale = 'true';
    return;
  }
  delete el.dataset.stale;
  el.replaceChildren();
  append(el, children);
}

/** @param {string} id @returns {HTMLElement} */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}
