// The failed-attempt log (refused device requests) and the audit log
// (operator changes): the filters and summaries the API offers, read a
// page at a time.

import * as api from '../api.js';
import { h, replace, section, table, when, badge, field, input, select, form, errorBox, pager, button, busy } from '../dom.js';

const liveMs = 5000;
const ranges = [['1', 'Last hour'], ['24', 'Last 24 hours'], ['168', 'Last 7 days'], ['2160', 'Last 90 days']];

function since(hours) {
  return new Date(Date.now() - Number(hours) * 3600 * 1000).toISOString();
}

// filterForm builds a filter form from [param, label, control] and calls
// apply with the values whenever it is submitted.
function filterForm(label, controls, apply) {
  const f = form(label, controls.map(([, text, c]) => field(text, c)), 'Apply filters', async () => {
    const values = {};
    for (const [name, , c] of controls) {
      values[name] = c.value.trim();
    }
    await apply(values);
  });
  f.classList.add('inline');
  return f;
}

export function failedAttempts(main, ctx) {
  const regId = input({ name: 'fa-registration-id', type: 'search', value: ctx.params.get('registration_id') || '' });
  const reason = input({ name: 'fa-reason', type: 'search', placeholder: 'e.g. ENROLLMENT_DISABLED' });
  const source = input({ name: 'fa-source', type: 'search', placeholder: '203.0.113.0/24' });
  const range = select(ranges, '24', { name: 'fa-range' });
  let filters = { registration_id: regId.value.trim(), reason: '', source: '', hours: '24' };
  const listBody = h('div');
  const p = pager(async (token) => {
    const res = await api.page('/v1/failedAttempts', {
      registration_id: filters.registration_id, reason: filters.reason, source: filters.source, start_time: since(filters.hours),
    }, 50, token);
    replace(listBody, table('Failed attempts', [
      { title: 'Time', cell: (a) => when(a.time) },
      { title: 'Registration ID', cell: (a) => h('a', { href: `#/registrations?id=${encodeURIComponent(a.registrationId)}` }, a.registrationId) },
      { title: 'Reason', cell: (a) => h('code', { 'data-reason': a.reason }, a.reason) },
      { title: 'Source', cell: (a) => a.source },
      { title: 'Transport', cell: (a) => a.transport },
      { title: 'Credential', cell: (a) => (a.credential ? h('code', { title: a.credential }, `${a.credential.slice(0, 12)}…`) : '') },
      { title: 'Request ID', cell: (a) => h('code', null, a.requestId) },
    ], res.failedAttempts || [], 'No refused device requests match.'));
    return res.nextPageToken;
  });
  const filterEl = filterForm('Filter failed attempts', [
    ['registration_id', 'Registration ID', regId], ['reason', 'Reason', reason], ['source', 'Source address or CIDR', source], ['hours', 'Time range', range],
  ], async (v) => { filters = v; await p.reset(); });

  const by = select([['reason', 'Reason'], ['source', 'Source address'], ['registration_id', 'Registration ID']], 'reason', { name: 'sum-by' });
  const top = input({ name: 'sum-top', type: 'number', min: '1', max: '100', value: '10' });
  const sumRange = select(ranges, '24', { name: 'sum-range' });
  const sumBody = h('div');
  const summary = async () => {
    try {
      const res = await api.call('GET', '/v1/failedAttempts:summarize', { query: { by: by.value, top: top.value, start_time: since(sumRange.value) } });
      const hours = res.hours || [];
      replace(sumBody,
        h('h3', null, 'Over the range'),
        table('Summary over the range', [
          { title: 'Key', cell: (c) => h('code', null, c.key) },
          { title: 'Refusals', cell: (c) => String(c.count), class: 'num' },
        ], res.total || [], 'No refusals in the range.'),
        h('h3', null, 'Per hour'),
        table('Summary per hour', [
          { title: 'Hour', cell: (c) => when(c.hour) },
          { title: 'Key', cell: (c) => h('code', null, c.key) },
          { title: 'Refusals', cell: (c) => String(c.count), class: 'num' },
        ], hours.slice(0, 50), 'No refusals in the range.'));
    } catch (err) {
      replace(sumBody, errorBox(err));
    }
  };
  const sumForm = form('Summarize failed attempts', [field('Count by', by), field('Top', top), field('Time range', sumRange)], 'Summarize', summary);
  sumForm.classList.add('inline');

  const live = h('input', { type: 'checkbox', id: 'fa-live', checked: true });
  main.append(
    section('Refused device requests', h('p', { class: 'hint' }, 'Every refused device request on any transport, newest hour first, with the request ID the device was answered with (DPS’s trackingId).'),
      filterEl,
      h('div', { class: 'field check' }, live, h('label', { for: 'fa-live' }, `Live: read this page and the summary again every ${liveMs / 1000} s`)),
      listBody, p.el),
    section('Summary', sumForm, sumBody));
  ctx.every(liveMs, () => {
    if (live.checked) {
      p.reload().catch((err) => replace(listBody, errorBox(err)));
      summary();
    }
  });
}

export function audit(main, ctx) {
  const actor = input({ name: 'au-actor', type: 'search', placeholder: 'access key ID' });
  const action = input({ name: 'au-action', type: 'search', placeholder: 'e.g. UpdateEnrollmentGroup' });
  const resource = input({ name: 'au-resource', type: 'search', value: ctx.params.get('resource') || '' });
  const outcome = select([['', 'Any'], ['done', 'Done'], ['refused', 'Refused']], '', { name: 'au-outcome' });
  const range = select(ranges, '168', { name: 'au-range' });
  let filters = { actor_id: '', action: '', resource: resource.value.trim(), outcome: '', hours: '168' };
  const listBody = h('div');
  const p = pager(async (token) => {
    const res = await api.page('/v1/auditRecords', {
      actor_id: filters.actor_id, action: filters.action, resource: filters.resource, outcome: filters.outcome, start_time: since(filters.hours),
    }, 50, token);
    replace(listBody, table('Audit records', [
      { title: '#', cell: (a) => String(a.seq), class: 'num' },
      { title: 'Time', cell: (a) => when(a.time) },
      { title: 'By', cell: (a) => h('span', { title: a.actorId }, a.actorName || a.actorId) },
      { title: 'Action', cell: (a) => a.action },
      { title: 'Resource', cell: (a) => a.resource },
      { title: 'Outcome', cell: (a) => (a.outcome === 'refused' ? badge(`refused: ${a.reason}`, 'off') : badge(a.outcome, 'ok')) },
      { title: 'Surface', cell: (a) => `${a.surface} ${a.source}` },
      { title: 'What changed', cell: (a) => a.summary },
    ], res.records || [], 'No audit records match.'));
    return res.nextPageToken;
  });
  const filterEl = filterForm('Filter audit records', [
    ['actor_id', 'Actor (key ID)', actor], ['action', 'Action', action], ['resource', 'Resource', resource], ['outcome', 'Outcome', outcome], ['hours', 'Time range', range],
  ], async (v) => { filters = v; await p.reset(); });
  const verifyOut = h('div');
  const verify = button('Verify the whole chain', () => busy(verify, async () => {
    try {
      const v = await api.call('POST', '/v1/auditRecords:verify', { body: {} });
      replace(verifyOut, v.intact
        ? h('p', { class: 'ok-text', role: 'status' }, `Intact: ${v.records} records from #${v.anchorSeq} to #${v.headSeq}. Head MAC `, h('code', null, v.headMac), ' (note it elsewhere to detect a later truncation).')
        : h('div', { class: 'error', role: 'alert' }, h('strong', null, 'The chain is broken. '),
          (v.problems || []).map((pr) => h('span', null, `#${pr.seq}: ${pr.reason}. `))));
    } catch (err) {
      replace(verifyOut, errorBox(err));
    }
  }), '', { id: 'verify-audit' });
  main.append(section('Operator changes, newest first', filterEl, listBody, p.el),
    section('Integrity', h('p', { class: 'hint' }, 'Reads every record from the anchor to the head: slow on a long log.'), verify, verifyOut));
  p.reload().catch((err) => replace(listBody, errorBox(err)));
}
