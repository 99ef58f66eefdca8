// Overview: new devices per minute (live), refusals by reason, shards'
// load against capacity and their hubs' acknowledged lag, CA certificates
// and issuing CAs near expiry, manufacturer CRLs stale or nearly due.
// Every read is bounded: shards (a few pages at most), one summary, one
// page of refusals, one page of CAs (and the CRL of each CA on it, at
// most maxCrlReads), the issuing CAs. Nothing scans registrations.

import * as api from '../api.js';
import { h, replace, section, table, when, badge, enumText, errorBox } from '../dom.js';
import { barChart } from '../chart.js';
import { issuingCaState, expiry } from './certificates.js';

const pollMs = 5000;
const windowMinutes = 30;
const maxShardPages = 4; // 4 x 500 shards
const caPage = 100; // the CA certificates read, and so the most CRLs read
const crlReaders = 4; // CRL reads at a time
const day = 24 * 3600 * 1000;

// shardsAll reads every shard, bounded.
export async function shardsAll() {
  const out = [];
  let token = '';
  for (let i = 0; i < maxShardPages; i++) {
    const res = await api.page('/v1/shards', {}, 500, token);
    out.push(...(res.shards || []));
    token = res.nextPageToken || '';
    if (!token) {
      break;
    }
  }
  return out;
}

// perMinute turns device-count samples into new devices per minute over
// the last windowMinutes (a negative step, devices deleted, counts 0).
export function perMinute(samples, now) {
  const end = Math.floor(now / 60000);
  const buckets = new Map();
  for (let m = end - windowMinutes + 1; m <= end; m++) {
    buckets.set(m, 0);
  }
  for (let i = 1; i < samples.length; i++) {
    const m = Math.floor(samples[i].t / 60000);
    if (buckets.has(m)) {
      buckets.set(m, buckets.get(m) + Math.max(0, samples[i].devices - samples[i - 1].devices));
    }
  }
  // Minutes before the first sample have no data (null), not zero.
  const first = samples.length ? Math.floor(samples[0].t / 60000) : end + 1;
  return [...buckets.entries()].map(([m, n]) => ({ minute: m, count: m >= first ? n : null }));
}

function shardLoad(s) {
  const devices = Number(s.devices || 0);
  const cap = Number(s.capacity || 0);
  if (!cap) {
    return h('span', null, `${devices} (no capacity set)`);
  }
  const pct = Math.round((100 * devices) / cap);
  return h('span', { class: 'load' },
    h('meter', { min: '0', max: String(cap), value: String(devices), high: String(Math.round(cap * 0.8)), optimum: '0', 'aria-label': `Shard ${s.id} load` }),
    ` ${devices} / ${cap} (${pct}%)`);
}

export function shardLag(s) {
  if (!s.hubCluster) {
    return h('span', { class: 'muted' }, 'no hub cluster');
  }
  const lag = Number(s.assignmentLogHead || 0) - Number(s.assignmentAcknowledged || 0);
  return h('span', { class: lag > 1000 ? 'warn' : '' }, `${lag} event${lag === 1 ? '' : 's'} behind`);
}

export function shardState(s) {
  const st = enumText(s.state, 'SHARD_STATE_');
  return badge(st, st === 'active' ? 'ok' : st === 'draining' ? 'warn' : 'off');
}

export default function overview(main, ctx) {
  const rate = section('New devices per minute');
  const refusals = section('Refusals by reason (last 24 hours)');
  const recent = section('Latest refusals');
  const shards = section('Shards');
  const expiring = section('CA certificates expiring within 30 days');
  const issuing = section('Issuing CAs expiring within 30 days');
  const crls = section('Manufacturer CRLs stale or due within 24 hours');
  const grid = h('div', { class: 'grid' });
  main.append(grid);

  shards.classList.add('wide');
  recent.classList.add('wide');
  crls.classList.add('wide');
  const config = ctx.can('ServiceConfig');
  const status = ctx.can('RegistrationStatusRead');
  grid.append(
    config ? rate : h('p', { class: 'muted' }, 'Shards, the live device rate, CA expiry and CRLs need the ServiceConfig permission.'),
    status ? refusals : h('p', { class: 'muted' }, 'Refusals need the RegistrationStatusRead permission.'),
    config ? shards : null,
    status ? recent : null,
    config ? expiring : null,
    config ? issuing : null,
    config ? crls : null);

  const rateBody = h('div');
  const shardsBody = h('div');
  rate.append(rateBody);
  shards.append(shardsBody);
  const refusalsBody = h('div');
  refusals.append(refusalsBody);
  const recentBody = h('div');
  recent.append(recentBody, h('p', null, h('a', { href: '#/failed-attempts' }, 'All failed attempts')));
  const expiringBody = h('div');
  expiring.append(expiringBody);
  const issuingBody = h('div');
  issuing.append(issuingBody, h('p', null, h('a', { href: '#/certificates' }, 'All issuing CAs')));
  const crlsBody = h('div');
  crls.append(crlsBody);

  async function pollShards() {
    let list;
    try {
      list = await shardsAll();
    } catch (err) {
      replace(shardsBody, errorBox(err));
      return;
    }
    const now = Date.now();
    const devices = list.reduce((n, s) => n + Number(s.devices || 0), 0);
    const samples = ctx.session.samples;
    samples.push({ t: now, devices });
    while (samples.length > 0 && samples[0].t < now - (windowMinutes + 1) * 60000) {
      samples.shift();
    }
    const buckets = perMinute(samples, now);
    let recentNew = 0;
    for (let i = 1; i < samples.length; i++) {
      if (samples[i].t > now - 60000) {
        recentNew += Math.max(0, samples[i].devices - samples[i - 1].devices);
      }
    }
    replace(rateBody,
      h('p', { class: 'figures' },
        h('span', { class: 'figure' }, h('strong', { 'data-figure': 'devices' }, String(devices)), ' devices registered'),
        h('span', { class: 'figure' }, h('strong', { 'data-figure': 'last-minute' }, String(recentNew)), ' new in the last 60 s')),
      barChart('New devices per minute', buckets.map((b) => ({
        label: new Date(b.minute * 60000).toTimeString().slice(0, 5),
        value: b.count,
      }))),
      h('p', { class: 'hint' }, `Counted from the shards’ device counts every ${pollMs / 1000} s since you signed in (net of deletions).`));
    replace(shardsBody, table('Shards', [
      { title: 'Shard', cell: (s) => s.id },
      { title: 'State', cell: shardState },
      { title: 'Weight', cell: (s) => String(s.weight), class: 'num' },
      { title: 'Load / capacity', cell: shardLoad },
      { title: 'Hub cluster', cell: (s) => s.hubCluster || '' },
      { title: 'Hub lag (acknowledged)', cell: shardLag },
    ], list, 'No shards yet: devices cannot be assigned. Create one under Hubs and shards.'));
  }

  async function pollRefusals() {
    const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
    try {
      const sum = await api.call('GET', '/v1/failedAttempts:summarize', { query: { by: 'reason', start_time: since, top: 10 } });
      replace(refusalsBody, table('Refusals by reason', [
        { title: 'Reason', cell: (c) => h('code', null, c.key) },
        { title: 'Refusals', cell: (c) => String(c.count), class: 'num' },
      ], sum.total || [], 'No refused device requests in the last 24 hours.'));
    } catch (err) {
      replace(refusalsBody, errorBox(err));
    }
    try {
      const res = await api.page('/v1/failedAttempts', {}, 10, '');
      replace(recentBody, table('Latest refusals', [
        { title: 'Time', cell: (a) => when(a.time) },
        { title: 'Registration ID', cell: (a) => a.registrationId },
        { title: 'Reason', cell: (a) => h('code', { 'data-reason': a.reason }, a.reason) },
        { title: 'Source', cell: (a) => a.source },
        { title: 'Transport', cell: (a) => a.transport },
      ], res.failedAttempts || [], 'None.'));
    } catch (err) {
      replace(recentBody, errorBox(err));
    }
  }

  // readExpiry reads the first page of CA certificates (those expiring
  // within 30 days), the issuing CAs (likewise), and the CRL uploaded for
  // each CA of that page (those past or within 24 hours of their
  // nextUpdate; a CA without one answers 404 and is left out).
  async function readExpiry() {
    const now = Date.now();
    let list = [];
    let more = false;
    try {
      const res = await api.page('/v1/caCertificates', {}, caPage, '');
      list = res.caCertificates || [];
      more = Boolean(res.nextPageToken);
      const soon = list.filter((c) => c.notAfter && new Date(c.notAfter).getTime() < now + 30 * day);
      replace(expiringBody, table('CA certificates expiring soon', [
        { title: 'Name', cell: (c) => h('a', { href: `#/cas?name=${encodeURIComponent(c.name)}` }, c.name) },
        { title: 'Subject', cell: (c) => c.subject },
        { title: 'Expires', cell: (c) => expiry(c.notAfter) },
      ], soon, more ? `None on the first ${caPage} CA certificates.` : 'None.'));
    } catch (err) {
      replace(expiringBody, errorBox(err));
      replace(crlsBody, h('p', { class: 'muted' }, 'The CRLs are read for the CA certificates listed, which could not be read.'));
      list = null;
    }
    readIssuing(now);
    if (list !== null) {
      readCrls(list, more, now);
    }
  }

  async function readIssuing(now) {
    try {
      const res = await api.call('GET', '/v1/issuingCas');
      const soon = (res.issuingCas || []).filter((c) => c.notAfter && new Date(c.notAfter).getTime() < now + 30 * day);
      replace(issuingBody, table('Issuing CAs expiring soon', [
        { title: 'Name', cell: (c) => h('a', { href: `#/certificates?ca=${encodeURIComponent(c.name)}`, 'data-issuing-ca': c.name }, c.name) },
        { title: 'State', cell: issuingCaState },
        { title: 'Subject', cell: (c) => c.subject },
        { title: 'Expires', cell: (c) => expiry(c.notAfter) },
      ], soon, 'None.'));
    } catch (err) {
      replace(issuingBody, errorBox(err));
    }
  }

  async function readCrls(list, more, now) {
    const found = [];
    let failure = null;
    let next = 0;
    const reader = async () => {
      while (next < list.length) {
        const c = list[next];
        next += 1;
        try {
          found.push(await api.call('GET', `/v1/caCertificates/${encodeURIComponent(c.name)}/crl`));
        } catch (err) {
          if (err.status !== 404) {
            failure = failure || err;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(crlReaders, list.length) }, reader));
    const due = found.filter((c) => !c.nextUpdate || new Date(c.nextUpdate).getTime() < now + day)
      .sort((a, b) => new Date(a.nextUpdate || 0).getTime() - new Date(b.nextUpdate || 0).getTime());
    const state = (c) => (c.nextUpdate && new Date(c.nextUpdate).getTime() > now
      ? badge('due within 24 h', 'warn')
      : badge('stale', 'bad'));
    replace(crlsBody, table('Manufacturer CRLs stale or due soon', [
      { title: 'CA certificate', cell: (c) => h('a', { href: `#/cas?name=${encodeURIComponent(c.caCertificate)}`, 'data-crl': c.caCertificate }, c.caCertificate) },
      { title: 'State', cell: state },
      { title: 'Next update', cell: (c) => when(c.nextUpdate) },
      { title: 'CRL number', cell: (c) => c.crlNumber || '', class: 'num' },
      { title: 'Revoked', cell: (c) => String(c.revokedCount || 0), class: 'num' },
    ], due, `None of the ${found.length} uploaded CRL${found.length === 1 ? '' : 's'}${more ? ` of the first ${caPage} CA certificates` : ''}.`),
    h('p', { class: 'hint' }, 'A stale CRL still refuses what it lists, but devices whose certificates it covers are refused (REVOCATION_UNKNOWN) in groups with required checking until a newer one is uploaded: ',
      h('code', null, 'zerotouch ca crl upload NAME --crl FILE'), '.'),
    more ? h('p', { class: 'hint' }, `Only the CRLs of the first ${caPage} CA certificates are read here.`) : null,
    failure ? errorBox(failure) : null);
  }

  if (ctx.can('ServiceConfig')) {
    ctx.every(pollMs, pollShards);
    readExpiry();
  }
  if (ctx.can('RegistrationStatusRead')) {
    ctx.every(pollMs, pollRefusals);
  }
}
