// Registrations: search by registration ID (exact), device ID (the
// device-ID index), shard or enrollment group (server-side pages), live
// refresh; one device's record and history (audit records and refusals);
// disable, enable, delete to re-provision.

import * as api from '../api.js';
import {
  h, replace, section, table, when, badge, field, input, select, form, errorBox, confirmButton,
  pager, announce, enumText, shortHash, button, busy,
} from '../dom.js';
import { attestationText } from './enrollments.js';

const liveMs = 5000;

export function regStatus(r) {
  const st = enumText(r.status, 'REGISTRATION_STATUS_');
  return badge(st || 'unknown', st === 'assigned' ? 'ok' : st === 'disabled' || st === 'failed' ? 'off' : 'warn');
}

function enrollmentOf(r) {
  if (r.enrollmentGroupId) {
    return h('span', null, 'group ', h('a', { href: `#/groups?edit=${encodeURIComponent(r.enrollmentGroupId)}` }, r.enrollmentGroupId));
  }
  return r.individualEnrollment ? 'individual' : '';
}

const columns = [
  { title: 'Registration ID', cell: (r) => h('a', { href: `#/registrations?id=${encodeURIComponent(r.registrationId)}`, 'data-registration': r.registrationId }, r.registrationId) },
  { title: 'Device ID', cell: (r) => r.deviceId },
  { title: 'Shard', cell: (r) => r.shard },
  { title: 'Hub', cell: (r) => r.assignedHub },
  { title: 'Status', cell: regStatus },
  { title: 'Attestation', cell: (r) => attestationText(r.attestationType) },
  { title: 'Enrollment', cell: enrollmentOf },
  { title: 'Updated', cell: (r) => when(r.updateTime) },
];

export default function registrations(main, ctx) {
  const id = ctx.params.get('id');
  if (id) {
    const el = h('div');
    main.append(h('p', null, h('a', { href: '#/registrations' }, '← All registrations')), el);
    detail(el, id, ctx);
    return;
  }
  const by = [['device', 'Device ID'], ['shard', 'Shard'], ['group', 'Enrollment group'], ['id', 'Registration ID']];
  const current = by.find(([k]) => ctx.params.get(k)) || ['', ''];
  const kind = select([['', 'Everything'], ...by], current[0], { name: 'search-by' });
  const value = input({ name: 'search-value', type: 'search', value: current[0] ? ctx.params.get(current[0]) : '' });
  const search = form('Search registrations', [field('Search by', kind), field('Value (exact)', value)], 'Search', async () => {
    const v = value.value.trim();
    ctx.go(kind.value && v ? `#/registrations?${kind.value}=${encodeURIComponent(v)}` : '#/registrations');
  });
  search.classList.add('inline');
  const live = h('input', { type: 'checkbox', id: 'live', checked: true });
  const listBody = h('div', { 'aria-live': 'off' });
  const query = {};
  if (current[0] === 'device') {
    query.device_id = ctx.params.get('device');
  } else if (current[0] === 'shard') {
    query.shard = ctx.params.get('shard');
  } else if (current[0] === 'group') {
    query.enrollment_group_id = ctx.params.get('group');
  }
  const p = pager(async (token) => {
    const res = await api.page('/v1/registrations', query, 50, token);
    replace(listBody, table('Registrations', columns, res.registrations || [], current[0] ? 'No registration matches.' : 'No devices have registered yet.'));
    return res.nextPageToken;
  });
  main.append(section('Find registrations',
    search,
    h('div', { class: 'field check' }, live, h('label', { for: 'live' }, `Live: read this page again every ${liveMs / 1000} s`)),
    listBody, p.el));
  ctx.every(liveMs, () => {
    if (live.checked) {
      p.reload().catch((err) => replace(listBody, errorBox(err)));
    }
  });
}

async function detail(el, id, ctx) {
  let r;
  try {
    r = await api.call('GET', `/v1/registrations/${encodeURIComponent(id)}`);
  } catch (err) {
    replace(el, err.status === 404 ? h('p', { role: 'status' }, `No registration ${id}.`) : errorBox(err));
    return;
  }
  const out = h('div');
  const facts = h('dl', { class: 'facts' },
    h('dt', null, 'Status'), h('dd', null, regStatus(r), ' ', enumText(r.substatus, 'REGISTRATION_SUBSTATUS_')),
    h('dt', null, 'Device ID'), h('dd', null, r.deviceId),
    h('dt', null, 'Shard'), h('dd', null, r.shard),
    h('dt', null, 'Hub'), h('dd', null, r.assignedHub),
    h('dt', null, 'Attestation'), h('dd', null, attestationText(r.attestationType)),
    h('dt', null, 'Enrollment'), h('dd', null, enrollmentOf(r)),
    h('dt', null, 'Credential'), h('dd', null, shortHash(r.credentialThumbprint)),
    h('dt', null, 'First registered'), h('dd', null, when(r.createTime)),
    h('dt', null, 'Last change'), h('dd', null, when(r.updateTime)));
  const parts = [facts];
  if (ctx.can('RegistrationStatusWrite')) {
    const disabled = r.status === 'REGISTRATION_STATUS_DISABLED';
    const toggle = button(disabled ? 'Enable device' : 'Disable device', () => busy(toggle, async () => {
      try {
        await api.call('POST', `/v1/registrations/${encodeURIComponent(r.registrationId)}:${disabled ? 'enable' : 'disable'}`, { body: { etag: r.etag } });
        announce(`Registration ${r.registrationId} ${disabled ? 'enabled' : 'disabled'}`);
        await detail(el, id, ctx);
      } catch (err) {
        replace(out, errorBox(err, () => detail(el, id, ctx)));
      }
    }), disabled ? '' : 'danger', { 'data-action': disabled ? 'enable' : 'disable' });
    parts.push(h('div', { class: 'actions' }, toggle, ' ',
      confirmButton('Delete', `Delete registration ${r.registrationId}`, `Delete ${r.registrationId}’s registration and identity, so that it provisions afresh?`, async () => {
        try {
          await api.call('DELETE', `/v1/registrations/${encodeURIComponent(r.registrationId)}`, { query: { etag: r.etag } });
          announce(`Registration ${r.registrationId} deleted`);
          ctx.go('#/registrations');
        } catch (err) {
          replace(out, errorBox(err, () => detail(el, id, ctx)));
        }
      })), out);
  }
  const history = [];
  if (ctx.can('AuditRead')) {
    const body = h('div');
    history.push(section('Operator changes (audit log)', body));
    api.call('GET', '/v1/auditRecords', { query: { resource: r.registrationId, page_size: 20 } }).then((res) => {
      replace(body, table('Operator changes', [
        { title: 'Time', cell: (a) => when(a.time) },
        { title: 'Action', cell: (a) => a.action },
        { title: 'By', cell: (a) => a.actorName || a.actorId },
        { title: 'Outcome', cell: (a) => (a.outcome === 'refused' ? badge(`refused ${a.reason}`, 'off') : badge(a.outcome, 'ok')) },
      ], res.records || [], 'No operator changes to this registration.'));
    }).catch((err) => replace(body, errorBox(err)));
  }
  const refused = h('div');
  history.push(section('Refused requests (last 7 days)', refused));
  api.call('GET', '/v1/failedAttempts', {
    query: { registration_id: r.registrationId, page_size: 20, start_time: new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString() },
  }).then((res) => {
    replace(refused, table('Refused requests', [
      { title: 'Time', cell: (a) => when(a.time) },
      { title: 'Reason', cell: (a) => h('code', null, a.reason) },
      { title: 'Source', cell: (a) => a.source },
      { title: 'Transport', cell: (a) => a.transport },
    ], res.failedAttempts || [], 'None.'));
  }).catch((err) => replace(refused, errorBox(err)));
  replace(el, section(`Registration ${r.registrationId}`, parts), h('div', { class: 'grid' }, history));
}
