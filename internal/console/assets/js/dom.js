// DOM helpers. Everything the API returns reaches the page as text
// (textContent, text nodes, attribute values): never as markup. No helper
// here parses HTML.

import { APIError } from './api.js';

let nextId = 0;

// uid makes an element ID for label/control pairs.
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

const properties = new Set(['value', 'checked', 'disabled', 'selected', 'required', 'readOnly', 'multiple', 'hidden', 'open']);

// h builds an element. props: attributes (strings), "class", "for",
// "text" (textContent), "on" ({event: handler}), and the properties above.
// children: nodes, strings (as text) or arrays of them.
export function h(tag, props, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) {
      continue;
    }
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) {
        el.addEventListener(ev, fn);
      }
    } else if (k === 'text') {
      el.textContent = String(v);
    } else if (k === 'class') {
      el.setAttribute('class', v);
    } else if (k === 'for') {
      el.htmlFor = v;
    } else if (properties.has(k)) {
      el[k] = v;
    } else if (k.startsWith('on') || k === 'style' || k === 'srcdoc') {
      throw new Error(`h: ${k} is not allowed (handlers go in "on", styles in CSS)`);
    } else if (k === 'href' && !/^(#|\/|https?:)/.test(String(v))) {
      throw new Error('h: only #, / and http(s) links');
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// append adds children (nodes, or anything else as text).
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === undefined || c === null || c === false) {
      continue;
    }
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// replace empties el and adds children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// announce says text to screen readers (the polite status region).
export function announce(text) {
  const s = document.getElementById('status');
  if (s) {
    s.textContent = '';
    window.setTimeout(() => { s.textContent = text; }, 50);
  }
}

// field is a labelled control: label text, the control (given an ID if it
// has none), and an optional hint tied to it with aria-describedby.
export function field(label, control, hint) {
  if (!control.id) {
    control.id = uid('f');
  }
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hid = uid('hint');
    control.setAttribute('aria-describedby', hid);
    parts.push(h('p', { class: 'hint', id: hid }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

// input is an <input>; select an <select> of [value, label] pairs.
export function input(props) {
  return h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', ...props });
}

export function select(options, value, props) {
  const s = h('select', props);
  for (const [v, label] of options) {
    s.append(h('option', { value: v, selected: v === value }, label));
  }
  return s;
}

export function textarea(props) {
  return h('textarea', { rows: 6, spellcheck: 'false', autocomplete: 'off', ...props });
}

// button is a <button type="button"> with a click handler; kind is
// "primary", "danger" or "" (secondary).
export function button(label, onClick, kind, props) {
  return h('button', { type: 'button', class: `btn ${kind || ''}`.trim(), ...props, on: { click: onClick } }, label);
}

// busy disables a button while fn runs.
export async function busy(btn, fn) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}

// badge is a short state label.
export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}`.trim() }, text);
}

// enumText turns PROVISIONING_STATUS_ENABLED into "enabled".
export function enumText(v, prefix) {
  if (!v) {
    return '';
  }
  return String(v).replace(prefix, '').replace(/_/g, ' ').toLowerCase();
}

// when formats a timestamp (RFC 3339) in the browser's time zone, with the
// exact UTC time as a tooltip.
export function when(ts) {
  if (!ts) {
    return h('span', { class: 'muted' }, '—');
  }
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) {
    return String(ts);
  }
  const pad = (n) => String(n).padStart(2, '0');
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, text);
}

// table renders rows under columns [{title, cell(row) -> node|string,
// class}]; caption names the table for assistive technology.
export function table(caption, columns, rows, empty) {
  const t = h('table', { class: 'data' }, h('caption', { class: 'visually-hidden' }, caption));
  t.append(h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.title)))));
  const body = h('tbody');
  if (rows.length === 0) {
    body.append(h('tr', null, h('td', { colspan: columns.length, class: 'empty' }, empty || 'Nothing here yet.')));
  }
  for (const r of rows) {
    body.append(h('tr', null, columns.map((c) => h('td', { class: c.class }, c.cell(r)))));
  }
  t.append(body);
  return h('div', { class: 'table-wrap' }, t);
}

// pager keeps the page tokens of a server-side paged list: the list is
// never read whole. load(token) must return the response's nextPageToken.
export function pager(load) {
  const tokens = [''];
  let at = 0;
  let next = '';
  const prev = button('Previous page', async () => { if (at > 0) { at -= 1; await run(); } }, '', { 'data-pager': 'prev' });
  const fwd = button('Next page', async () => { if (next) { tokens[at + 1] = next; at += 1; await run(); } }, '', { 'data-pager': 'next' });
  const where = h('span', { class: 'muted' });
  const nav = h('div', { class: 'pager', role: 'group', 'aria-label': 'Pages' }, prev, where, fwd);
  // Reads are serialized, so that a live refresh and a page change never
  // land out of order (the last one asked for is the one shown).
  let chain = Promise.resolve();
  async function read() {
    next = (await load(tokens[at])) || '';
    prev.disabled = at === 0;
    fwd.disabled = next === '';
    where.textContent = `Page ${at + 1}`;
  }
  function run() {
    const p = chain.then(read);
    chain = p.catch(() => {});
    return p;
  }
  return {
    el: nav,
    // reload reads the current page again; reset goes back to the first.
    reload: run,
    reset: async () => { at = 0; await run(); },
  };
}

// errorBox shows a refusal plainly: what was refused, the reason code and
// the request ID to look it up in the logs. An etag conflict says what
// happened and offers to reload.
export function errorBox(err, reload) {
  if (!(err instanceof APIError)) {
    return h('div', { class: 'error', role: 'alert' }, h('strong', null, 'Error: '), String(err && err.message ? err.message : err));
  }
  const parts = [];
  if (err.reason === 'ETAG_MISMATCH' || err.status === 409 && err.code === 10) {
    parts.push(h('strong', null, 'Changed by someone else. '),
      'It was changed since this page read it, so nothing was written (ETAG_MISMATCH). Reload to see the current version, then make your change again.');
  } else if (err.reason === 'PERMISSION_DENIED' || err.status === 403 && err.code === 7) {
    parts.push(h('strong', null, 'Not allowed. '), 'Your access key lacks the permission for this (PERMISSION_DENIED). ', err.message);
  } else {
    parts.push(h('strong', null, `Refused: ${err.reason || `HTTP ${err.status}`}. `), err.message);
  }
  if (err.requestId) {
    parts.push(' ', h('span', { class: 'muted' }, `Request ID ${err.requestId}.`));
  }
  if (reload) {
    parts.push(' ', button('Reload', reload));
  }
  return h('div', { class: 'error', role: 'alert', 'data-reason': err.reason }, parts);
}

// confirmButton is a destructive action that asks first, in place: the
// button (named ariaLabel for assistive technology, "Delete group x")
// turns into the question, "Yes" and "Cancel".
export function confirmButton(label, ariaLabel, question, action) {
  const wrap = h('span', { class: 'confirm' });
  const start = button(label, () => {
    const yes = button(`Yes, ${label.toLowerCase()}`, async () => {
      await busy(yes, action);
      replace(wrap, start);
    }, 'danger');
    const no = button('Cancel', () => { replace(wrap, start); start.focus(); });
    replace(wrap, h('span', { class: 'question' }, question), ' ', yes, ' ', no);
    yes.focus();
  }, 'danger', { 'aria-label': ariaLabel });
  wrap.append(start);
  return wrap;
}

// secret shows a value that the server returns once, with a copy button.
export function secret(label, value) {
  const code = h('code', { class: 'secret', tabindex: '0', 'aria-label': label }, value);
  const copy = button('Copy', async () => {
    try {
      await navigator.clipboard.writeText(value);
      announce(`${label} copied`);
    } catch {
      const r = document.createRange();
      r.selectNodeContents(code);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(r);
      announce(`${label} selected; copy it with the keyboard`);
    }
  });
  return h('div', { class: 'field' }, h('span', { class: 'label' }, label), h('div', { class: 'secret-row' }, code, copy));
}

// fileInto adds a file picker that reads a (PEM) file into a textarea.
export function fileInto(area, label) {
  const picker = h('input', { type: 'file', accept: '.pem,.crt,.cer,.txt' });
  picker.addEventListener('change', async () => {
    const f = picker.files && picker.files[0];
    if (f) {
      area.value = await f.text();
      announce(`${f.name} read`);
    }
  });
  return field(label, picker);
}

// section is a titled part of a page.
export function section(title, ...children) {
  const id = uid('s');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

// disclosure is a titled part of a page that starts closed (the forms
// that create things, below or above the lists they add to).
export function disclosure(title, ...children) {
  const id = uid('s');
  return h('details', { class: 'card disclosure', 'data-title': title },
    h('summary', null, h('h2', { id }, title)),
    h('div', { role: 'group', 'aria-labelledby': id }, children));
}

// form wraps controls so that Enter submits; onSubmit gets the event's
// form and runs with the submit button disabled.
export function form(label, children, submitLabel, onSubmit) {
  const submit = h('button', { type: 'submit', class: 'btn primary' }, submitLabel);
  const out = h('div', { class: 'form-result' });
  const f = h('form', { 'aria-label': label, novalidate: true }, children, h('div', { class: 'actions' }, submit), out);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(out);
    try {
      await busy(submit, () => onSubmit(out));
    } catch (err) {
      replace(out, errorBox(err));
    }
  });
  return f;
}

// shortHash shows the start of a long hex value, the whole in a tooltip.
export function shortHash(hex) {
  if (!hex) {
    return '';
  }
  return h('code', { title: hex }, hex.length > 16 ? `${hex.slice(0, 16)}…` : hex);
}
