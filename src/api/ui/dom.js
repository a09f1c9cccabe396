// Small DOM tools. Rows are kept by key and cells redrawn only when their data changed, so a
// poll every second neither moves the focus nor swaps a button under the pointer. Text goes in
// through textContent only: nothing from the API is parsed as HTML.

/** An element: h('span', { class: 'badge' }, 'RUNNING', child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A status as text and colour: the word is always there. */
export function badge(text, tone) {
  return h('span', { class: `badge tone-${tone}` }, text);
}

/** A bar for a share (0..1) beside its text; the text carries the figure, the bar only shows it. */
export function bar(share, text) {
  const pct = Math.max(0, Math.min(100, Math.round(share * 100)));
  const tone = pct >= 90 ? 'bad' : pct >= 75 ? 'warn' : 'ok';
  const fill = h('span', { class: `bar-fill tone-${tone}` });
  fill.style.width = `${pct}%`;
  return h('span', { class: 'usage' }, h('span', { class: 'bar', 'aria-hidden': 'true' }, fill), h('span', {}, text));
}

/**
 * Redraws an element when its model (plain data) differs from the one it shows. `draw(model)`
 * returns the new children.
 */
export function repaint(el, model, draw) {
  const sig = JSON.stringify(model);
  if (el.dataset.sig === sig) return;
  el.dataset.sig = sig;
  el.replaceChildren(...[draw(model)].flat().filter((c) => c !== undefined && c !== null));
}

/** repaint for a table cell: one wrapper, so the phone layout's label and value stay two grid items. */
export function paint(cell, model, draw) {
  repaint(cell, model, (m) => h('div', { class: 'value' }, draw(m)));
}

/** A row of cells labelled by the table's headers (the phone layout shows the labels). */
export function row(table, key) {
  const labels = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
  const tr = h('tr');
  tr.dataset.key = key;
  for (const label of labels) tr.append(h('td', { 'data-label': label }));
  return tr;
}

/**
 * Makes the table body hold one row per item, in order: rows are found by key, made when new
 * (`make(key)`), filled by `fill(row, item)`, and removed when their item is gone.
 */
export function syncRows(tbody, items, keyOf, make, fill) {
  const existing = new Map([...tbody.rows].map((r) => [r.dataset.key, r]));
  let next = tbody.firstElementChild;
  for (const item of items) {
    const key = keyOf(item);
    const tr = existing.get(key) ?? make(key);
    existing.delete(key);
    fill(tr, item);
    if (tr === next) next = next.nextElementSibling;
    else tbody.insertBefore(tr, next);
  }
  for (const stale of existing.values()) stale.remove();
}
