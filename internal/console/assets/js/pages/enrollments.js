// Enrollment groups and individual enrollments: list (server-side pages;
// find by exact ID), create (X.509, TPM, symmetric key; symmetric keys
// shown once), edit, disable/enable, delete. Every change sends the etag
// the page read, so a concurrent change is refused (ETAG_MISMATCH) and
// shown as such, never overwritten.

import * as api from '../api.js';
import {
  h, replace, uid, section, disclosure, table, when, badge, field, input, select, textarea, button, form,
  errorBox, confirmButton, pager, announce, enumText, secret, shortHash, busy,
} from '../dom.js';

const policies = [
  ['ALLOCATION_POLICY_HASHED', 'Weighted hashing'],
  ['ALLOCATION_POLICY_GEO', 'Geo (nearest region)'],
  ['ALLOCATION_POLICY_STATIC', 'Static (one shard)'],
  ['ALLOCATION_POLICY_CUSTOM', 'Custom webhook'],
];
const fallbacks = [['ALLOCATION_POLICY_UNSPECIFIED', 'None: refuse the device'], ['ALLOCATION_POLICY_HASHED', 'Weighted hashing'],
  ['ALLOCATION_POLICY_GEO', 'Geo'], ['ALLOCATION_POLICY_STATIC', 'Static']];
const reprovision = [
  ['REPROVISION_POLICY_MIGRATE', 'Move and migrate device data'],
  ['REPROVISION_POLICY_RESET', 'Move and reset to the enrollment’s initial state'],
  ['REPROVISION_POLICY_NEVER', 'Never move'],
];

export function statusBadge(e) {
  return e.provisioningStatus === 'PROVISIONING_STATUS_DISABLED' ? badge('disabled', 'off') : badge('enabled', 'ok');
}

export function attestationText(t) {
  return { ATTESTATION_TYPE_X509: 'X.509', ATTESTATION_TYPE_TPM: 'TPM', ATTESTATION_TYPE_SYMMETRIC_KEY: 'Symmetric key' }[t] || 'X.509';
}

function lines(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

// allocationFields are the controls of an enrollment's allocation; value()
// reads them back as the API's Allocation.
function allocationFields(a) {
  a = a || {};
  const policy = select(policies, a.policy || 'ALLOCATION_POLICY_HASHED', { name: 'policy' });
  const staticShard = input({ name: 'static-shard', value: a.staticShard || '' });
  const shards = input({ name: 'shards', value: (a.shards || []).join(', ') });
  const url = input({ name: 'webhook-url', type: 'url', value: (a.webhook && a.webhook.url) || '' });
  const timeout = input({ name: 'webhook-timeout', type: 'number', min: '0', max: '30', value: String((a.webhook && a.webhook.timeoutSeconds) || 0) });
  const fallback = select(fallbacks, (a.webhook && a.webhook.fallbackPolicy) || 'ALLOCATION_POLICY_UNSPECIFIED', { name: 'webhook-fallback' });
  const staticF = field('Static shard', staticShard, 'The shard for the static policy (or a static fallback).');
  const hookF = h('div', null, field('Webhook URL', url, 'https:// only.'), field('Webhook timeout (seconds, 0 = 5)', timeout), field('When the webhook fails', fallback));
  const show = () => {
    staticF.hidden = !(policy.value === 'ALLOCATION_POLICY_STATIC' || fallback.value === 'ALLOCATION_POLICY_STATIC');
    hookF.hidden = policy.value !== 'ALLOCATION_POLICY_CUSTOM';
  };
  policy.addEventListener('change', show);
  fallback.addEventListener('change', show);
  show();
  return {
    el: h('fieldset', null, h('legend', null, 'Allocation'), field('Policy', policy), field('Shards it may use (comma-separated; empty: all)', shards), staticF, hookF),
    value() {
      const out = { policy: policy.value, shards: lines(shards.value) };
      if (staticShard.value.trim() && !staticF.hidden) {
        out.staticShard = staticShard.value.trim();
      }
      if (policy.value === 'ALLOCATION_POLICY_CUSTOM') {
        out.webhook = { url: url.value.trim(), timeoutSeconds: Number(timeout.value || 0), fallbackPolicy: fallback.value };
      }
      return out;
    },
  };
}

// settingsFields are the device settings both kinds of enrollment carry.
function settingsFields(e) {
  e = e || {};
  const rp = select(reprovision, e.reprovisionPolicy || 'REPROVISION_POLICY_MIGRATE', { name: 'reprovision' });
  const edge = h('input', { type: 'checkbox', name: 'iot-edge', checked: Boolean(e.iotEdge), id: uid('edge') });
  const twin = textarea({ name: 'initial-twin', rows: 4, value: e.initialTwin || '', placeholder: '{"tags": {}, "properties": {"desired": {}}}' });
  return {
    el: h('fieldset', null, h('legend', null, 'Device settings'),
      field('Re-provisioning', rp),
      h('div', { class: 'field check' }, edge, h('label', { for: edge.id }, 'IoT Edge devices')),
      field('Initial twin (JSON)', twin, 'tags and properties.desired only; at most 32 KiB.')),
    value() {
      return { reprovisionPolicy: rp.value, iotEdge: edge.checked, initialTwin: twin.value.trim() };
    },
  };
}

// ---------------------------------------------------------------------------
// Enrollment groups

export function groups(main, ctx) {
  const write = ctx.can('EnrollmentWrite');
  const editing = ctx.params.get('edit');
  if (editing) {
    const el = h('div');
    main.append(el);
    editGroup(el, editing, ctx);
    return;
  }
  const listBody = h('div');
  const found = h('div');
  const rowActions = (g) => {
    if (!write) {
      return '';
    }
    const out = h('span', { class: 'row-actions' });
    const disabled = g.provisioningStatus === 'PROVISIONING_STATUS_DISABLED';
    const toggle = button(disabled ? 'Enable' : 'Disable', () => busy(toggle, async () => {
      try {
        await api.call('PATCH', `/v1/enrollmentGroups/${encodeURIComponent(g.id)}`, {
          query: { update_mask: 'provisioning_status' },
          body: { etag: g.etag, provisioningStatus: disabled ? 'PROVISIONING_STATUS_ENABLED' : 'PROVISIONING_STATUS_DISABLED' },
        });
        announce(`Group ${g.id} ${disabled ? 'enabled' : 'disabled'}`);
        await p.reload();
      } catch (err) {
        replace(found, errorBox(err, () => p.reload()));
      }
    }), '', { 'data-action': disabled ? 'enable' : 'disable', 'aria-label': `${disabled ? 'Enable' : 'Disable'} group ${g.id}` });
    out.append(toggle, ' ', h('a', { class: 'btn', href: `#/groups?edit=${encodeURIComponent(g.id)}`, 'aria-label': `Edit group ${g.id}` }, 'Edit'), ' ',
      confirmButton('Delete', `Delete group ${g.id}`, `Delete group ${g.id}? Its devices’ identities are deleted too.`, async () => {
        try {
          await api.call('DELETE', `/v1/enrollmentGroups/${encodeURIComponent(g.id)}`, { query: { etag: g.etag } });
          announce(`Group ${g.id} deleted`);
          await p.reload();
        } catch (err) {
          replace(found, errorBox(err, () => p.reload()));
        }
      }));
    return out;
  };
  const columns = [
    { title: 'ID', cell: (g) => h('a', { href: `#/groups?edit=${encodeURIComponent(g.id)}`, 'data-id': g.id }, g.id) },
    { title: 'Attestation', cell: (g) => attestationText(g.attestationType) },
    { title: 'CA certificate', cell: (g) => g.caCertificate || h('span', { class: 'muted' }, '—') },
    { title: 'Status', cell: statusBadge },
    { title: 'Allocation', cell: (g) => enumText(g.allocation && g.allocation.policy, 'ALLOCATION_POLICY_') || 'hashed' },
    { title: 'Devices', cell: (g) => h('a', { href: `#/registrations?group=${encodeURIComponent(g.id)}` }, 'Registrations') },
    { title: 'Updated', cell: (g) => when(g.updateTime) },
  ];
  if (write) {
    columns.push({ title: 'Actions', cell: rowActions });
  }
  const p = pager(async (token) => {
    const res = await api.page('/v1/enrollmentGroups', {}, 50, token);
    replace(listBody, table('Enrollment groups', columns, res.enrollmentGroups || [], 'No enrollment groups yet.'));
    return res.nextPageToken;
  });

  const id = input({ name: 'find-group', type: 'search' });
  const finder = form('Find a group', [field('Group ID (exact)', id)], 'Find', async (out) => {
    if (!id.value.trim()) {
      await p.reset();
      return;
    }
    try {
      const g = await api.call('GET', `/v1/enrollmentGroups/${encodeURIComponent(id.value.trim())}`);
      replace(out, table('Found group', columns, [g]));
    } catch (err) {
      replace(out, err.status === 404 ? h('p', { role: 'status' }, `No group ${id.value.trim()}.`) : errorBox(err));
    }
  });
  finder.classList.add('inline');

  if (write) {
    main.append(createGroup(ctx, () => p.reload()));
  }
  main.append(section('All groups', finder, found, listBody, p.el));
  p.reload().catch((err) => replace(listBody, errorBox(err)));
}

function createGroup(ctx, reload) {
  const id = input({ name: 'group-id', required: true, maxlength: '128' });
  const kinds = [['ATTESTATION_TYPE_X509', 'X.509: devices whose certificate chains to a CA'],
    ['ATTESTATION_TYPE_TPM', 'TPM: EK certificates chaining to a TPM vendor CA'],
    ['ATTESTATION_TYPE_SYMMETRIC_KEY', 'Symmetric key (evaluation): a group key derives device keys']];
  const radios = kinds.map(([v, label], i) => {
    const r = h('input', { type: 'radio', name: 'group-attestation', value: v, checked: i === 0, id: `group-att-${i}` });
    return { r, el: h('div', { class: 'field check' }, r, h('label', { for: r.id }, label)) };
  });
  const kind = () => radios.find((x) => x.r.checked).r.value;
  const caSelect = h('div');
  const ca = input({ name: 'group-ca', list: 'ca-names' });
  const caField = field('CA certificate', ca, 'The name of an uploaded CA certificate (for X.509, verified by proof of possession).');
  const allow = textarea({ name: 'tpm-allow', rows: 3 });
  const allowField = field('EK allow list (hex SHA-256 of TPM2B_PUBLIC, one per line; empty: any)', allow);
  const disabled = h('input', { type: 'checkbox', name: 'group-disabled', id: 'group-disabled' });
  const alloc = allocationFields();
  const settings = settingsFields();
  const keysOut = h('div');
  const show = () => {
    caField.hidden = kind() === 'ATTESTATION_TYPE_SYMMETRIC_KEY';
    allowField.hidden = kind() !== 'ATTESTATION_TYPE_TPM';
  };
  for (const x of radios) {
    x.r.addEventListener('change', show);
  }
  show();
  if (ctx.can('ServiceConfig')) {
    // Suggest the CA names of the first page (a datalist; any name can be typed).
    api.page('/v1/caCertificates', {}, 100, '').then((res) => {
      caSelect.append(h('datalist', { id: 'ca-names' }, (res.caCertificates || []).map((c) => h('option', { value: c.name }, c.verified ? 'verified' : 'not verified'))));
    }).catch(() => {});
  }
  return disclosure('Create an enrollment group', form('Create an enrollment group', [
    field('Group ID', id, '1-128 of A-Z a-z 0-9 - . _ :'),
    h('fieldset', null, h('legend', null, 'Attestation'), radios.map((x) => x.el)),
    caField, caSelect, allowField,
    alloc.el, settings.el,
    h('div', { class: 'field check' }, disabled, h('label', { for: 'group-disabled' }, 'Create it disabled')),
    keysOut,
  ], 'Create group', async () => {
    replace(keysOut);
    const body = { id: id.value.trim(), attestationType: kind(), allocation: alloc.value(), ...settings.value() };
    if (disabled.checked) {
      body.provisioningStatus = 'PROVISIONING_STATUS_DISABLED';
    }
    if (kind() !== 'ATTESTATION_TYPE_SYMMETRIC_KEY') {
      body.caCertificate = ca.value.trim();
    }
    if (kind() === 'ATTESTATION_TYPE_TPM') {
      body.tpmEkAllowList = lines(allow.value);
    }
    const g = await api.call('POST', '/v1/enrollmentGroups', { body });
    announce(`Group ${g.id} created`);
    id.value = '';
    if (g.symmetricKey && g.symmetricKey.primaryKey) {
      replace(keysOut, symmetricKeys(g.symmetricKey, `group ${g.id}`));
    }
    await reload();
  }));
}

// symmetricKeys shows keys that the server returns once.
function symmetricKeys(k, what) {
  return h('div', { class: 'once', role: 'alert', 'data-once': 'symmetric-keys' },
    h('p', null, h('strong', null, `The keys of ${what}, shown this once. `), 'Copy them now: Zerotouch keeps them sealed and never shows them again.'),
    secret('Primary key (base64)', k.primaryKey),
    secret('Secondary key (base64)', k.secondaryKey));
}

async function editGroup(el, id, ctx, notice) {
  let g;
  try {
    g = await api.call('GET', `/v1/enrollmentGroups/${encodeURIComponent(id)}`);
  } catch (err) {
    replace(el, errorBox(err));
    return;
  }
  const write = ctx.can('EnrollmentWrite');
  const facts = h('dl', { class: 'facts' },
    h('dt', null, 'Attestation'), h('dd', null, attestationText(g.attestationType)),
    h('dt', null, 'CA certificate'), h('dd', null, g.caCertificate || '—'),
    h('dt', null, 'Status'), h('dd', null, statusBadge(g)),
    h('dt', null, 'Created'), h('dd', null, when(g.createTime)),
    h('dt', null, 'Updated'), h('dd', null, when(g.updateTime)),
    h('dt', null, 'Etag'), h('dd', null, h('code', null, g.etag)));
  const parts = [facts];
  if (write) {
    const status = select([['PROVISIONING_STATUS_ENABLED', 'Enabled'], ['PROVISIONING_STATUS_DISABLED', 'Disabled']],
      g.provisioningStatus === 'PROVISIONING_STATUS_DISABLED' ? 'PROVISIONING_STATUS_DISABLED' : 'PROVISIONING_STATUS_ENABLED', { name: 'status' });
    const alloc = allocationFields(g.allocation);
    const settings = settingsFields(g);
    const sas = h('input', { type: 'checkbox', id: 'edit-sas', checked: Boolean(g.disableDeviceSas) });
    const paths = ['provisioning_status', 'allocation', 'reprovision_policy', 'iot_edge', 'initial_twin', 'disable_device_sas'];
    parts.push(form(`Edit group ${g.id}`, [
      field('Status', status), alloc.el, settings.el,
      h('div', { class: 'field check' }, sas, h('label', { for: 'edit-sas' }, 'Refuse its SAS tokens (keep the keys)')),
    ], 'Save changes', async (out) => {
      try {
        const body = { etag: g.etag, provisioningStatus: status.value, allocation: alloc.value(), disableDeviceSas: sas.checked, ...settings.value() };
        g = await api.call('PATCH', `/v1/enrollmentGroups/${encodeURIComponent(g.id)}`, { query: { update_mask: paths.join(',') }, body });
        announce(`Group ${g.id} saved`);
        await editGroup(el, id, ctx, h('p', { class: 'ok-text', role: 'status' }, 'Saved.'));
      } catch (err) {
        replace(out, errorBox(err, () => editGroup(el, id, ctx)));
      }
    }));
  }
  replace(el, h('p', null, h('a', { href: '#/groups' }, '← All groups')), notice, section(`Group ${g.id}`, parts));
}

// ---------------------------------------------------------------------------
// Individual enrollments

export function enrollments(main, ctx) {
  const write = ctx.can('EnrollmentWrite');
  const listBody = h('div');
  const msg = h('div');
  const rowActions = (e) => {
    const out = h('span', { class: 'row-actions' });
    const disabled = e.provisioningStatus === 'PROVISIONING_STATUS_DISABLED';
    const toggle = button(disabled ? 'Enable' : 'Disable', () => busy(toggle, async () => {
      try {
        await api.call('PATCH', `/v1/enrollments/${encodeURIComponent(e.registrationId)}`, {
          query: { update_mask: 'provisioning_status' },
          body: { etag: e.etag, provisioningStatus: disabled ? 'PROVISIONING_STATUS_ENABLED' : 'PROVISIONING_STATUS_DISABLED' },
        });
        announce(`Enrollment ${e.registrationId} ${disabled ? 'enabled' : 'disabled'}`);
        await p.reload();
      } catch (err) {
        replace(msg, errorBox(err, () => p.reload()));
      }
    }), '', { 'data-action': disabled ? 'enable' : 'disable', 'aria-label': `${disabled ? 'Enable' : 'Disable'} enrollment ${e.registrationId}` });
    out.append(toggle, ' ', confirmButton('Delete', `Delete enrollment ${e.registrationId}`, `Delete the enrollment of ${e.registrationId}?`, async () => {
      try {
        await api.call('DELETE', `/v1/enrollments/${encodeURIComponent(e.registrationId)}`, { query: { etag: e.etag } });
        announce(`Enrollment ${e.registrationId} deleted`);
        await p.reload();
      } catch (err) {
        replace(msg, errorBox(err, () => p.reload()));
      }
    }));
    return out;
  };
  const columns = [
    { title: 'Registration ID', cell: (e) => h('a', { href: `#/registrations?id=${encodeURIComponent(e.registrationId)}` }, e.registrationId) },
    { title: 'Device ID', cell: (e) => e.deviceId || e.registrationId },
    { title: 'Attestation', cell: (e) => attestationText(e.attestationType) },
    { title: 'Credential', cell: (e) => shortHash(e.sha256Thumbprint) },
    { title: 'Status', cell: statusBadge },
    { title: 'Updated', cell: (e) => when(e.updateTime) },
  ];
  if (write) {
    columns.push({ title: 'Actions', cell: rowActions });
  }
  const p = pager(async (token) => {
    const res = await api.page('/v1/enrollments', {}, 50, token);
    replace(listBody, table('Individual enrollments', columns, res.enrollments || [], 'No individual enrollments yet.'));
    return res.nextPageToken;
  });
  const id = input({ name: 'find-enrollment', type: 'search' });
  const finder = form('Find an enrollment', [field('Registration ID (exact)', id)], 'Find', async (out) => {
    if (!id.value.trim()) {
      await p.reset();
      return;
    }
    try {
      const e = await api.call('GET', `/v1/enrollments/${encodeURIComponent(id.value.trim())}`);
      replace(out, table('Found enrollment', columns, [e]));
    } catch (err) {
      replace(out, err.status === 404 ? h('p', { role: 'status' }, `No enrollment ${id.value.trim()}.`) : errorBox(err));
    }
  });
  finder.classList.add('inline');
  if (write) {
    main.append(createEnrollment(() => p.reload()));
  }
  main.append(section('All individual enrollments', finder, msg, listBody, p.el));
  p.reload().catch((err) => replace(listBody, errorBox(err)));
}

function createEnrollment(reload) {
  const regId = input({ name: 'registration-id', maxlength: '128' });
  const devId = input({ name: 'device-id', maxlength: '128' });
  const kinds = [['x509', 'X.509 leaf certificate'], ['tpm', 'TPM endorsement key'], ['symkey', 'Symmetric key (evaluation)']];
  const radios = kinds.map(([v, label], i) => {
    const r = h('input', { type: 'radio', name: 'enrollment-attestation', value: v, checked: i === 0, id: `enr-att-${i}` });
    return { r, el: h('div', { class: 'field check' }, r, h('label', { for: r.id }, label)) };
  });
  const kind = () => radios.find((x) => x.r.checked).r.value;
  const pem = textarea({ name: 'leaf-pem', rows: 4, placeholder: '-----BEGIN CERTIFICATE-----' });
  const thumb = input({ name: 'leaf-thumbprint' });
  const ek = textarea({ name: 'tpm-ek', rows: 3 });
  const x509F = h('div', null, field('Leaf certificate (PEM)', pem), field('Or its SHA-256 thumbprint (hex)', thumb));
  const tpmF = field('Endorsement key: TPM2B_PUBLIC in base64, or a PEM public key', ek, 'The registration ID may be left empty: it is derived from the EK.');
  const alloc = allocationFields();
  const settings = settingsFields();
  const keysOut = h('div');
  const show = () => {
    x509F.hidden = kind() !== 'x509';
    tpmF.hidden = kind() !== 'tpm';
  };
  for (const x of radios) {
    x.r.addEventListener('change', show);
  }
  show();
  return disclosure('Create an individual enrollment', form('Create an individual enrollment', [
    field('Registration ID', regId, 'The device certificate’s subject CN; may be empty for a TPM.'),
    field('Device ID (empty: the registration ID)', devId),
    h('fieldset', null, h('legend', null, 'Attestation'), radios.map((x) => x.el)),
    x509F, tpmF, alloc.el, settings.el, keysOut,
  ], 'Create enrollment', async () => {
    replace(keysOut);
    const body = { registrationId: regId.value.trim(), deviceId: devId.value.trim(), allocation: alloc.value(), ...settings.value() };
    if (kind() === 'x509') {
      if (pem.value.trim()) {
        body.certificatePem = pem.value;
      } else {
        body.sha256Thumbprint = thumb.value.trim();
      }
    } else if (kind() === 'tpm') {
      const v = ek.value.trim();
      body.tpm = v.startsWith('-----BEGIN') ? { endorsementKeyPem: v } : { endorsementKey: v.replace(/\s+/g, '') };
    } else {
      body.symmetricKey = {};
    }
    const e = await api.call('POST', '/v1/enrollments', { body });
    announce(`Enrollment ${e.registrationId} created`);
    regId.value = '';
    devId.value = '';
    if (e.symmetricKey && e.symmetricKey.primaryKey) {
      replace(keysOut, symmetricKeys(e.symmetricKey, `enrollment ${e.registrationId}`));
    } else {
      replace(keysOut, h('p', { class: 'ok-text', role: 'status' }, `Created ${e.registrationId}.`));
    }
    await reload();
  }));
}
