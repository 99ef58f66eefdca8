// The console's shell: sign-in, navigation and the hash router. Pages are
// modules under pages/; each renders into <main> and returns a function
// that stops what it started (timers).

import * as api from './api.js';
import { h, replace, field, input, errorBox, announce, button } from './dom.js';
import overview from './pages/overview.js';
import cas from './pages/cas.js';
import certificates from './pages/certificates.js';
import { groups, enrollments } from './pages/enrollments.js';
import registrations from './pages/registrations.js';
import { failedAttempts, audit } from './pages/logs.js';
import hubs from './pages/hubs.js';

// Pages, with the permission a key needs to read each. Write controls
// inside a page ask ctx.can() for theirs.
const pages = [
  { path: 'overview', title: 'Overview', render: overview, needs: null },
  { path: 'cas', title: 'CA certificates', render: cas, needs: 'ServiceConfig' },
  { path: 'certificates', title: 'Certificates', render: certificates, needs: 'ServiceConfig' },
  { path: 'groups', title: 'Enrollment groups', render: groups, needs: 'EnrollmentRead' },
  { path: 'enrollments', title: 'Individual enrollments', render: enrollments, needs: 'EnrollmentRead' },
  { path: 'registrations', title: 'Registrations', render: registrations, needs: 'RegistrationStatusRead' },
  { path: 'failed-attempts', title: 'Failed attempts', render: failedAttempts, needs: 'RegistrationStatusRead' },
  { path: 'audit', title: 'Audit log', render: audit, needs: 'AuditRead' },
  { path: 'hubs', title: 'Hubs and shards', render: hubs, needs: 'ServiceConfig' },
];

const root = document.getElementById('app');
let caller = null;
let stop = () => {};
// samples of the fleet's device count, kept across page changes (the
// overview's per-minute chart), forgotten on sign-out.
const session = { samples: [] };

function can(permission) {
  return caller !== null && caller.permissions.includes(permission);
}

// route parses "#/registrations?id=x" into the page and its parameters.
function route() {
  const hash = window.location.hash || '';
  const [path, q] = hash.replace(/^#\/?/, '').split('?');
  return { path: path || 'overview', params: new URLSearchParams(q || '') };
}

function signInView(message) {
  stop();
  stop = () => {};
  caller = null;
  session.samples = [];
  document.title = 'Sign in · Zerotouch console';
  const key = input({ type: 'password', name: 'access-key', id: 'access-key', autocomplete: 'off', required: true });
  const out = h('div');
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Sign in');
  const f = h('form', { class: 'signin card', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Zerotouch console'),
    h('p', null, 'Sign in with an access key (ztk.…). The console acts only with its permissions, through the same API as the CLI.'),
    field('Access key', key, 'Kept in this page’s memory only: reloading or closing the page signs you out.'),
    h('div', { class: 'actions' }, submit),
    out);
  if (message) {
    out.append(h('div', { class: 'error', role: 'alert' }, message));
  }
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(out);
    submit.disabled = true;
    try {
      const me = await api.signIn(key.value);
      key.value = '';
      caller = { id: me.id, name: me.name, permissions: me.permissions || [] };
      if (!window.location.hash.startsWith('#/')) {
        window.location.hash = '#/overview';
      }
      render();
    } catch (err) {
      key.value = '';
      replace(out, err instanceof api.APIError && err.status === 401
        ? h('div', { class: 'error', role: 'alert', 'data-reason': err.reason }, h('strong', null, 'The key was refused. '), 'Check that it is whole and has not expired, been rotated or deleted (UNAUTHENTICATED).')
        : errorBox(err));
      key.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('main', { id: 'main', class: 'signin-main' }, f));
  key.focus();
}

function render() {
  if (!api.signedIn() || caller === null) {
    signInView();
    return;
  }
  stop();
  const timers = [];
  stop = () => { for (const t of timers) window.clearInterval(t); timers.length = 0; };
  const { path, params } = route();
  const page = pages.find((p) => p.path === path) || pages[0];

  const nav = h('nav', { 'aria-label': 'Console' }, h('ul', null, pages.map((p) => {
    const allowed = p.needs === null || can(p.needs);
    return h('li', null, allowed
      ? h('a', {
        href: `#/${p.path}`,
        'aria-current': p === page ? 'page' : null,
        // The current page's link reads the page afresh (no hash change).
        on: { click: (ev) => { if (window.location.hash === `#/${p.path}`) { ev.preventDefault(); render(); focusMain(); } } },
      }, p.title)
      : h('span', { class: 'muted', title: `Needs ${p.needs}` }, p.title));
  })));
  const header = h('header', { class: 'top' },
    h('a', { class: 'skip', href: '#main', on: { click: (ev) => { ev.preventDefault(); main.focus(); } } }, 'Skip to content'),
    h('span', { class: 'brand' }, 'Zerotouch'),
    h('span', { class: 'who' }, 'Signed in as ', h('strong', null, caller.name || caller.id), ' ',
      h('span', { class: 'muted', 'data-permissions': caller.permissions.join(' ') }, `(${caller.permissions.join(', ') || 'no permissions'})`)),
    button('Sign out', () => { api.signOut(); window.location.hash = ''; signInView(); announce('Signed out'); }, '', { id: 'sign-out' }));
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(root, header, h('div', { class: 'layout' }, nav, main));
  document.title = `${page.title} · Zerotouch console`;

  main.append(h('h1', null, page.title));
  if (page.needs !== null && !can(page.needs)) {
    main.append(h('p', { class: 'error', role: 'alert' }, `This page needs the ${page.needs} permission, which your key does not have.`));
    return;
  }
  const ctx = {
    can,
    params,
    session,
    caller,
    // every runs fn now and then every ms until the page changes.
    every(ms, fn) {
      fn();
      timers.push(window.setInterval(fn, ms));
    },
    go(hash) { window.location.hash = hash; },
  };
  try {
    page.render(main, ctx);
  } catch (err) {
    main.append(errorBox(err));
  }
}

api.whenSignedOut(() => signInView('The server no longer takes this key (it expired, or was rotated or deleted). Sign in again.'));
function focusMain() {
  const main = document.getElementById('main');
  if (main) {
    main.focus();
  }
}

window.addEventListener('hashchange', () => {
  if (window.location.hash.startsWith('#/')) {
    render();
    focusMain();
  }
});
signInView();
