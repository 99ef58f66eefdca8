// CA certificates: upload, the proof-of-possession flow (generate a code,
// take the proof certificate), verification state, delete.

import * as api from '../api.js';
import {
  h, replace, section, disclosure, table, when, badge, field, input, textarea, button, form, errorBox,
  confirmButton, fileInto, pager, announce, shortHash, busy,
} from '../dom.js';

export function caState(c) {
  return c.verified ? badge('verified', 'ok') : badge('not verified', 'warn');
}

export default function cas(main, ctx) {
  const write = ctx.can('ServiceConfig');
  const selected = ctx.params.get('name');
  const listBody = h('div');
  const detail = h('div');
  const p = pager(async (token) => {
    const res = await api.page('/v1/caCertificates', {}, 50, token);
    replace(listBody, table('CA certificates', [
      { title: 'Name', cell: (c) => h('a', { href: `#/cas?name=${encodeURIComponent(c.name)}` }, c.name) },
      { title: 'Subject', cell: (c) => c.subject },
      { title: 'Expires', cell: (c) => when(c.notAfter) },
      { title: 'State', cell: caState },
    ], res.caCertificates || [], 'No CA certificates yet.'));
    return res.nextPageToken;
  });

  if (selected) {
    main.append(detail);
    showDetail(detail, selected, write, () => p.reload());
  }
  if (write) {
    main.append(uploadForm(ctx));
  }
  main.append(section('All CA certificates', listBody, p.el));
  p.reload().catch((err) => replace(listBody, errorBox(err)));
}

function uploadForm(ctx) {
  const name = input({ name: 'ca-name', required: true, maxlength: '128' });
  const pem = textarea({ name: 'ca-pem', required: true, placeholder: '-----BEGIN CERTIFICATE-----' });
  return disclosure('Upload a CA certificate', form('Upload a CA certificate', [
    field('Name', name, '1-128 of A-Z a-z 0-9 - . _ :'),
    field('Certificate (PEM)', pem, 'One CA certificate (basicConstraints CA:TRUE): a root or an intermediate.'),
    fileInto(pem, 'Or read it from a file'),
  ], 'Upload', async () => {
    const c = await api.call('POST', '/v1/caCertificates', { body: { name: name.value.trim(), certificatePem: pem.value } });
    announce(`CA ${c.name} uploaded`);
    ctx.go(`#/cas?name=${encodeURIComponent(c.name)}`);
  }));
}

async function showDetail(el, name, write, refreshList) {
  let c;
  try {
    c = await api.call('GET', `/v1/caCertificates/${encodeURIComponent(name)}`);
  } catch (err) {
    replace(el, errorBox(err));
    return;
  }
  const state = h('span', { 'data-ca-state': c.verified ? 'verified' : 'unverified' }, caState(c));
  const facts = h('dl', { class: 'facts' },
    h('dt', null, 'State'), h('dd', null, state),
    h('dt', null, 'Subject'), h('dd', null, c.subject),
    h('dt', null, 'Issuer'), h('dd', null, c.issuer),
    h('dt', null, 'SHA-256'), h('dd', null, shortHash(c.sha256Thumbprint)),
    h('dt', null, 'Valid'), h('dd', null, when(c.notBefore), ' to ', when(c.notAfter)),
    h('dt', null, 'Uploaded'), h('dd', null, when(c.createTime)));
  const parts = [facts];
  if (write && !c.verified) {
    parts.push(proofFlow(c, (v) => {
      replace(state, caState(v));
      state.setAttribute('data-ca-state', 'verified');
      refreshList();
    }));
  }
  if (write) {
    const out = h('div');
    parts.push(h('div', { class: 'actions' }, confirmButton('Delete', `Delete CA ${c.name}`, `Delete CA ${c.name}? Groups that name it must go first.`, async () => {
      try {
        await api.call('DELETE', `/v1/caCertificates/${encodeURIComponent(c.name)}`, { query: { etag: c.etag } });
        announce(`CA ${c.name} deleted`);
        window.location.hash = '#/cas';
      } catch (err) {
        replace(out, errorBox(err, () => showDetail(el, name, write, refreshList)));
      }
    })), out);
  }
  replace(el, section(`CA certificate ${c.name}`, parts));
}

// proofFlow: show a fresh verification code, take the proof certificate.
function proofFlow(c, verified) {
  const codeOut = h('div', { class: 'code-out' });
  const out = h('div');
  const gen = button('Generate verification code', () => busy(gen, async () => {
    replace(out);
    try {
      const res = await api.call('POST', `/v1/caCertificates/${encodeURIComponent(c.name)}:generateVerificationCode`, { body: {} });
      replace(codeOut,
        h('p', null, 'Verification code: ', h('code', { class: 'secret', 'data-verification-code': res.verificationCode }, res.verificationCode)),
        h('p', { class: 'hint' }, 'Sign a certificate whose subject CN is this code with the CA’s private key, for example ',
          h('code', null, `zerotouch pki proof --ca DIR --code ${res.verificationCode} --out proof.pem`),
          ', and give it below. The code is single-use and expires ', when(res.expireTime), '; a new code replaces it.'));
      announce('Verification code generated');
    } catch (err) {
      replace(out, errorBox(err));
    }
  }), 'primary', { id: 'generate-code' });
  const proof = textarea({ name: 'proof-pem', placeholder: '-----BEGIN CERTIFICATE-----' });
  const verify = form('Verify proof of possession', [
    field('Proof certificate (PEM)', proof, 'Subject CN = the verification code, signed by this CA’s key.'),
    fileInto(proof, 'Or read the proof from a file'),
  ], 'Verify', async () => {
    const v = await api.call('POST', `/v1/caCertificates/${encodeURIComponent(c.name)}:verify`, { body: { certificatePem: proof.value } });
    if (v.verified) {
      announce(`CA ${c.name} verified`);
      verified(v);
      replace(flow, h('p', { class: 'ok-text' }, 'Possession proven: the CA is verified and its groups admit devices.'));
    }
  });
  const flow = h('div', { class: 'proof-flow' },
    h('h3', null, 'Prove possession of the private key'),
    h('ol', null,
      h('li', null, gen, codeOut),
      h('li', null, verify)),
    out);
  return flow;
}
