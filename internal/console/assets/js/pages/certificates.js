// Certificates: Zerotouch's own PKI for devices (docs/certificates.md).
// Issuing CAs (create one that generates its key and a self-signed root;
// disable, enable, delete), credential policies (create, delete), the
// revocation of a registration's certificates, and each issuing CA's
// revocations. Intermediate CAs (a CSR for an offline root) and imported
// CAs (a certificate and its private key) are left to the CLI and the API:
// a CA's private key is not pasted into a browser.

import * as api from '../api.js';
import {
  h, replace, section, disclosure, table, when, badge, field, input, select, textarea, button, form, errorBox,
  confirmButton, announce, enumText, busy, uid,
} from '../dom.js';

// The device key types a policy may allow (IssuanceService), the CA key
// types, and the RFC 5280 reason codes RevokeCertificates takes.
export const keyTypes = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ed25519'];
const defaultKeyTypes = ['ecdsa-p256', 'ecdsa-p384'];
const caKeyTypes = [['ecdsa-p256', 'ECDSA P-256 (default)'], ['ecdsa-p384', 'ECDSA P-384 (about four times the CPU per certificate)']];
export const reasons = [[0, 'unspecified'], [1, 'keyCompromise'], [3, 'affiliationChanged'], [4, 'superseded'],
  [5, 'cessationOfOperation'], [9, 'privilegeWithdrawn']];
// At most this many of a CA's revocations are read and drawn (one page).
const maxRevocationRows = 200;

export function reasonText(code) {
  const n = Number(code || 0);
  const r = reasons.find(([c]) => c === n);
  return r ? `${r[1]} (${n})` : `code ${n}`;
}

export function issuingCaState(c) {
  const st = enumText(c.state, 'ISSUING_CA_STATE_') || 'unknown';
  return h('span', { 'data-issuing-ca-state': st }, badge(st, st === 'active' ? 'ok' : st === 'pending' ? 'warn' : 'off'));
}

// seconds reads a protobuf JSON duration ("3600s", "1.5s").
function seconds(d) {
  const m = /^(-?\d+(?:\.\d+)?)s$/.exec(String(d || ''));
  return m ? Number(m[1]) : 0;
}

// durationText shows a protobuf JSON duration as days, hours, minutes.
export function durationText(d) {
  let s = Math.round(seconds(d));
  if (s === 0) {
    return '0';
  }
  const parts = [];
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]]) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)} ${unit}`);
      s %= n;
    }
  }
  return parts.join(' ');
}

// parseDuration reads what an operator types ("7d", "36h", "90m",
// "1d12h", "0") into a protobuf JSON duration; empty is undefined (the
// server's default). Anything else throws, naming the field.
export function parseDuration(label, text) {
  const t = String(text || '').trim().toLowerCase();
  if (t === '') {
    return undefined;
  }
  if (t === '0') {
    return '0s';
  }
  if (!/^(\d+(\.\d+)?\s*(d|h|m|min|s)\s*)+$/.test(t)) {
    throw new Error(`${label}: "${text}" is not a duration such as 7d, 36h, 90m or 1d12h`);
  }
  let s = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)\s*(d|h|min|m|s)/g)) {
    s += Number(m[1]) * { d: 86400, h: 3600, min: 60, m: 60, s: 1 }[m[2]];
  }
  return `${Math.round(s)}s`;
}

export default function certificates(main, ctx) {
  const write = ctx.can('ServiceConfig');
  // Revoking needs RegistrationStatusWrite as well as ServiceConfig.
  const revoke = write && ctx.can('RegistrationStatusWrite');
  const selected = ctx.params.get('ca');
  const msg = h('div');
  const casBody = h('div');
  const policiesBody = h('div');
  const detail = h('div');
  // The issuing CAs as last read: the policy form offers their names.
  let cas = [];
  const caChoices = [];

  const setState = async (c, verb) => {
    try {
      const v = await api.call('POST', `/v1/issuingCas/${encodeURIComponent(c.name)}:${verb}`, { body: { etag: c.etag } });
      replace(msg);
      announce(`Issuing CA ${v.name} ${verb}d`);
      await loadCas();
      if (selected === v.name) {
        showDetail(detail, selected, ctx, loadCas);
      }
    } catch (err) {
      // Reload: the box goes once the list is read again, so a click
      // after it acts on the current etags.
      replace(msg, errorBox(err, async () => { await loadCas(); replace(msg); }));
    }
  };
  const stateButton = (c, label, verb) => {
    const b = button(label, () => busy(b, () => setState(c, verb)), '',
      { 'data-action': verb, 'aria-label': `${label} issuing CA ${c.name}` });
    return b;
  };
  const caColumns = [
    { title: 'Name', cell: (c) => h('a', { href: `#/certificates?ca=${encodeURIComponent(c.name)}`, 'data-issuing-ca': c.name }, c.name) },
    { title: 'State', cell: issuingCaState },
    { title: 'Subject', cell: (c) => c.subject || h('span', { class: 'muted' }, '— (pending)') },
    { title: 'Expires', cell: (c) => expiry(c.notAfter) },
    { title: 'CRL URL', cell: (c) => (c.crlUrl ? h('code', null, c.crlUrl) : '') },
  ];
  if (write) {
    caColumns.push({
      title: 'Actions',
      cell: (c) => h('span', { class: 'row-actions' },
        c.state === 'ISSUING_CA_STATE_ACTIVE' ? stateButton(c, 'Disable', 'disable') : null,
        c.state === 'ISSUING_CA_STATE_DISABLED' ? stateButton(c, 'Enable', 'enable') : null),
    });
  }

  async function loadCas() {
    try {
      const res = await api.call('GET', '/v1/issuingCas');
      cas = res.issuingCas || [];
      replace(casBody, table('Issuing CAs', caColumns, cas, 'No issuing CAs yet: devices asking for a certificate are refused.'));
      for (const fill of caChoices) {
        fill(cas);
      }
    } catch (err) {
      replace(casBody, errorBox(err));
    }
  }

  const policyColumns = [
    { title: 'Name', cell: (p) => h('span', { 'data-policy': p.name }, p.name) },
    { title: 'Issuing CA', cell: (p) => h('a', { href: `#/certificates?ca=${encodeURIComponent(p.issuingCa)}` }, p.issuingCa) },
    { title: 'Key types', cell: (p) => (p.keyTypes || []).join(', ') },
    { title: 'Validity', cell: (p) => durationText(p.validity) },
    { title: 'Renewal grace', cell: (p) => durationText(p.renewalGrace) },
    { title: 'Overlap', cell: (p) => durationText(p.overlap) },
    { title: 'Revoke on disable', cell: (p) => (p.revokeOnDisable ? 'yes' : 'no') },
  ];
  if (write) {
    policyColumns.push({
      title: 'Actions',
      cell: (p) => confirmButton('Delete', `Delete credential policy ${p.name}`,
        `Delete policy ${p.name}? Enrollments that name it must let go of it first.`, async () => {
          try {
            await api.call('DELETE', `/v1/credentialPolicies/${encodeURIComponent(p.name)}`, { query: { etag: p.etag } });
            replace(msg);
            announce(`Credential policy ${p.name} deleted`);
            await loadPolicies();
          } catch (err) {
            replace(msg, errorBox(err, async () => { await loadPolicies(); replace(msg); }));
          }
        }),
    });
  }

  async function loadPolicies() {
    try {
      const res = await api.call('GET', '/v1/credentialPolicies');
      replace(policiesBody, table('Credential policies', policyColumns, res.credentialPolicies || [],
        'No credential policies yet. An enrollment names one (credential policy) for its devices to get certificates.'));
    } catch (err) {
      replace(policiesBody, errorBox(err));
    }
  }

  main.append(h('p', { class: 'hint page-intro' }, 'Zerotouch’s own PKI for devices’ operational certificates: an issuing CA signs them, a credential policy says what a device may ask for, and an enrollment names the policy. Each issuing CA publishes its CRL and an OCSP responder.'));
  if (selected) {
    main.append(h('p', null, h('a', { href: '#/certificates' }, '← All issuing CAs')), detail);
    showDetail(detail, selected, ctx, loadCas);
  }
  main.append(msg);
  if (write) {
    main.append(h('div', { class: 'grid' }, createIssuingCa(loadCas), createPolicy(caChoices, loadPolicies)));
  }
  main.append(section('Issuing CAs', casBody), section('Credential policies', policiesBody));
  if (revoke) {
    main.append(revokeForm());
  } else if (write) {
    main.append(h('p', { class: 'muted' }, 'Revoking a registration’s certificates also needs the RegistrationStatusWrite permission, which your key does not have.'));
  }
  loadCas();
  loadPolicies();
}

// expiry is a not-after time, marked when it is past or within 30 days.
export function expiry(notAfter) {
  if (!notAfter) {
    return h('span', { class: 'muted' }, '—');
  }
  const left = new Date(notAfter).getTime() - Date.now();
  if (left <= 0) {
    return h('span', null, when(notAfter), ' ', badge('expired', 'bad'));
  }
  const days = Math.floor(left / 86400000);
  if (days < 30) {
    return h('span', null, when(notAfter), ' ', badge(days === 0 ? 'less than a day left' : `${days} day${days === 1 ? '' : 's'} left`, 'warn'));
  }
  return when(notAfter);
}

function createIssuingCa(reload) {
  const name = input({ name: 'issuing-ca-name', required: true, maxlength: '128' });
  const cn = input({ name: 'issuing-ca-cn', placeholder: 'Zerotouch issuing CA NAME' });
  const keyType = select(caKeyTypes, 'ecdsa-p256', { name: 'issuing-ca-key-type' });
  return disclosure('Create an issuing CA', form('Create an issuing CA', [
    field('Name', name, '1-128 of A-Z a-z 0-9 - . _ :. Certificates name it in their CRL and OCSP URLs.'),
    field('Subject CN (optional)', cn, 'Default: Zerotouch issuing CA NAME.'),
    field('Key type', keyType),
    h('p', { class: 'hint' }, 'This makes a key and a self-signed root inside Zerotouch; the key is sealed and never leaves it. ',
      'An intermediate signed by your offline root (',
      h('code', null, 'zerotouch issuing-ca create NAME --mode intermediate --csr-out ca.csr'), ', then ',
      h('code', null, 'issuing-ca complete'), ') and an imported CA (',
      h('code', null, '--mode import --cert ca.pem --key ca-key.pem'),
      ') are made with the CLI or the API (IssuanceService.CreateIssuingCa): a CA’s private key does not belong in a browser.'),
  ], 'Create issuing CA', async () => {
    const body = { name: name.value.trim(), mode: 'ISSUING_CA_MODE_GENERATE', keyType: keyType.value };
    if (cn.value.trim()) {
      body.commonName = cn.value.trim();
    }
    const c = await api.call('POST', '/v1/issuingCas', { body });
    announce(`Issuing CA ${c.name} created`);
    name.value = '';
    cn.value = '';
    keyType.value = 'ecdsa-p256';
    await reload();
  }));
}

function createPolicy(caChoices, reload) {
  const name = input({ name: 'policy-name', required: true, maxlength: '128' });
  const ca = h('select', { name: 'policy-issuing-ca', required: true });
  caChoices.push((cas) => {
    const keep = ca.value;
    replace(ca, cas.length === 0 ? h('option', { value: '' }, 'No issuing CA yet: create one first') : null,
      cas.map((c) => h('option', { value: c.name, selected: c.name === keep },
        c.state === 'ISSUING_CA_STATE_ACTIVE' ? c.name : `${c.name} (${enumText(c.state, 'ISSUING_CA_STATE_')})`)));
  });
  const boxes = keyTypes.map((k) => {
    const b = h('input', { type: 'checkbox', name: 'policy-key-type', value: k, checked: defaultKeyTypes.includes(k), id: uid('kt') });
    return { b, el: h('div', { class: 'field check' }, b, h('label', { for: b.id }, k)) };
  });
  const validity = input({ name: 'policy-validity', value: '7d' });
  const grace = input({ name: 'policy-renewal-grace', value: '0' });
  const overlap = input({ name: 'policy-overlap', value: '1h' });
  const revokeOnDisable = h('input', { type: 'checkbox', name: 'policy-revoke-on-disable', id: uid('rod') });
  return disclosure('Create a credential policy', form('Create a credential policy', [
    field('Name', name, '1-128 of A-Z a-z 0-9 - . _ :. Enrollments name it (credential policy).'),
    field('Issuing CA', ca, 'The CA that signs its certificates.'),
    h('fieldset', null, h('legend', null, 'Device key types allowed'), boxes.map((x) => x.el)),
    field('Validity', validity, 'Of each certificate: 1h to 398d (e.g. 7d, 36h); never past the issuing CA’s own expiry.'),
    field('Renewal grace', grace, 'How long after expiry a device may still renew with its certificate (0: not at all).'),
    field('Overlap', overlap, 'How long a superseded certificate stays valid after its renewal (at most 7d).'),
    h('div', { class: 'field check' }, revokeOnDisable,
      h('label', { for: revokeOnDisable.id }, 'Revoke a device’s certificates when its registration is disabled or deleted')),
  ], 'Create policy', async () => {
    const kinds = boxes.filter((x) => x.b.checked).map((x) => x.b.value);
    if (kinds.length === 0) {
      throw new Error('Allow at least one device key type.');
    }
    const body = {
      name: name.value.trim(),
      issuingCa: ca.value,
      keyTypes: kinds,
      validity: parseDuration('Validity', validity.value),
      renewalGrace: parseDuration('Renewal grace', grace.value),
      overlap: parseDuration('Overlap', overlap.value),
      revokeOnDisable: revokeOnDisable.checked,
    };
    const p = await api.call('POST', '/v1/credentialPolicies', { body });
    announce(`Credential policy ${p.name} created`);
    name.value = '';
    await reload();
  }));
}

// revokeForm revokes every certificate a registration holds, after asking.
function revokeForm() {
  const regId = input({ name: 'revoke-registration-id', required: true, maxlength: '128' });
  const reason = select(reasons.map(([c, t]) => [String(c), `${t} (${c})`]), '0', { name: 'revoke-reason' });
  const f = form('Revoke certificates', [
    field('Registration ID', regId, 'Every certificate it holds, current and superseded, is revoked now and listed on its CA’s CRL; the registration lets go of them and its hub gets the change. The device can register again with its birth credential.'),
    field('Reason (RFC 5280)', reason),
  ], 'Revoke…', async (out) => {
    const id = regId.value.trim();
    const code = Number(reason.value);
    if (!id) {
      throw new Error('Give the registration ID.');
    }
    const yes = button('Yes, revoke', () => busy(yes, async () => {
      try {
        const res = await api.call('POST', '/v1/certificates:revoke', { body: { registrationId: id, reason: code } });
        const revs = res.revocations || [];
        announce(`${revs.length} certificate${revs.length === 1 ? '' : 's'} of ${id} revoked`);
        replace(out, h('p', { role: 'status', class: 'ok-text' }, `Revoked ${revs.length} certificate${revs.length === 1 ? '' : 's'} of ${id}.`),
          revocationTable(`Certificates of ${id} revoked`, revs, true));
      } catch (err) {
        replace(out, errorBox(err));
      }
    }), 'danger', { 'data-action': 'confirm-revoke' });
    const no = button('Cancel', () => { replace(out); regId.focus(); });
    replace(out, h('div', { class: 'confirm' }, h('span', { class: 'question' }, `Revoke every certificate ${id} holds (${reasonText(code)})? This cannot be undone.`), ' ', yes, ' ', no));
    yes.focus();
  });
  return section('Revoke a registration’s certificates', f);
}

function revocationTable(caption, revs, withCa) {
  const now = Date.now();
  const columns = [
    { title: 'Serial', cell: (r) => h('code', { 'data-serial': r.serial }, r.serial) },
    { title: 'Registration ID', cell: (r) => (r.registrationId ? h('a', { href: `#/registrations?id=${encodeURIComponent(r.registrationId)}` }, r.registrationId) : '') },
    { title: 'Reason', cell: (r) => reasonText(r.reason) },
    {
      title: 'Revoked',
      cell: (r) => (r.revokeTime && new Date(r.revokeTime).getTime() > now
        ? h('span', null, when(r.revokeTime), ' ', badge('at the overlap’s end', 'warn'))
        : when(r.revokeTime)),
    },
    { title: 'Certificate expires', cell: (r) => when(r.notAfter) },
  ];
  if (withCa) {
    columns.unshift({ title: 'Issuing CA', cell: (r) => h('a', { href: `#/certificates?ca=${encodeURIComponent(r.issuingCa)}` }, r.issuingCa) });
  }
  return table(caption, columns, revs, 'No revocations.');
}

async function showDetail(el, name, ctx, refreshList) {
  let c;
  try {
    c = await api.call('GET', `/v1/issuingCas/${encodeURIComponent(name)}`);
  } catch (err) {
    replace(el, errorBox(err));
    return;
  }
  const write = ctx.can('ServiceConfig');
  const facts = h('dl', { class: 'facts' },
    h('dt', null, 'State'), h('dd', null, issuingCaState(c)),
    h('dt', null, 'Subject'), h('dd', null, c.subject || '—'),
    h('dt', null, 'Expires'), h('dd', null, expiry(c.notAfter)),
    h('dt', null, 'CRL URL'), h('dd', null, c.crlUrl ? h('code', null, c.crlUrl) : '—'),
    h('dt', null, 'OCSP URL'), h('dd', null, c.ocspUrl ? h('code', null, c.ocspUrl) : '—'),
    h('dt', null, 'Created'), h('dd', null, when(c.createTime)),
    h('dt', null, 'Updated'), h('dd', null, when(c.updateTime)));
  const parts = [facts];
  if (c.state === 'ISSUING_CA_STATE_PENDING' && c.csrPem) {
    parts.push(field('CSR for your offline root (PEM)', textarea({ name: 'issuing-ca-csr', readOnly: true, value: c.csrPem, rows: 8 }),
      'Sign it with your offline root, then give the certificate and the chain above it: zerotouch issuing-ca complete NAME --cert FILE.'));
  }
  if (write) {
    const out = h('div');
    parts.push(h('div', { class: 'actions' }, confirmButton('Delete', `Delete issuing CA ${c.name}`,
      `Delete issuing CA ${c.name}? Only a CA no credential policy names can go; its CRL and OCSP stop.`, async () => {
        try {
          await api.call('DELETE', `/v1/issuingCas/${encodeURIComponent(c.name)}`, { query: { etag: c.etag } });
          announce(`Issuing CA ${c.name} deleted`);
          ctx.go('#/certificates');
        } catch (err) {
          replace(out, errorBox(err, () => showDetail(el, name, ctx, refreshList)));
        }
      })), out);
  }
  const revsBody = h('div', null, h('p', { class: 'muted' }, 'Reading…'));
  parts.push(h('h3', null, `Revocations of ${c.name}`), revsBody);
  replace(el, section(`Issuing CA ${c.name}`, parts));
  try {
    const res = await api.call('GET', `/v1/issuingCas/${encodeURIComponent(c.name)}/revocations?pageSize=${maxRevocationRows}`);
    const revs = res.revocations || [];
    replace(revsBody, revocationTable(`Revocations of ${c.name}`, revs, false),
      res.nextPageToken
        ? h('p', { class: 'hint' }, `The first ${maxRevocationRows} revocations by serial are shown. The CRL (${c.crlUrl}) lists them all.`)
        : h('p', { class: 'hint' }, 'A superseded certificate’s revocation takes effect when its policy’s overlap ends; entries stay a day after the certificate expired (others 91 days).'));
  } catch (err) {
    replace(revsBody, errorBox(err));
  }
}
