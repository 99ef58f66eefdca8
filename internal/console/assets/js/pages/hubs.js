// Hubs and shards: hub clusters, shards with weight, state (drain), load
// against capacity and the hub's acknowledged lag.

import * as api from '../api.js';
import {
  h, replace, section, disclosure, table, when, field, input, textarea, form, errorBox, confirmButton, pager, announce, button, busy,
} from '../dom.js';
import { shardState, shardLag } from './overview.js';

export default function hubs(main, ctx) {
  const write = ctx.can('ServiceConfig');
  const msg = h('div');
  const shardsBody = h('div');
  const clustersBody = h('div');

  const patchShard = async (s, mask, body, what) => {
    try {
      await api.call('PATCH', `/v1/shards/${encodeURIComponent(s.id)}`, { query: { update_mask: mask }, body: { etag: s.etag, ...body } });
      replace(msg);
      await shards.reload();
      announce(`Shard ${s.id}: ${what}`);
    } catch (err) {
      replace(msg, errorBox(err, () => shards.reload()));
    }
  };
  const stateButton = (s, label, state, kind) => {
    const b = button(label, () => busy(b, () => patchShard(s, 'state', { state }, label.toLowerCase())), kind,
      { 'data-action': label.toLowerCase(), 'aria-label': `${label} shard ${s.id}` });
    return b;
  };
  const weightCell = (s) => {
    if (!write) {
      return String(s.weight);
    }
    const w = input({ type: 'number', min: '1', max: '1000', value: String(s.weight), class: 'narrow', 'aria-label': `Weight of shard ${s.id}` });
    const save = button('Set', () => busy(save, () => patchShard(s, 'weight', { weight: Number(w.value) }, `weight ${w.value}`)), '', { 'aria-label': `Set the weight of shard ${s.id}` });
    return h('span', { class: 'row-actions' }, w, save);
  };
  const load = (s) => (Number(s.capacity) ? `${s.devices || 0} / ${s.capacity}` : `${s.devices || 0}`);
  const shardColumns = [
    { title: 'Shard', cell: (s) => s.id },
    { title: 'Hostname', cell: (s) => s.hostname },
    { title: 'Region', cell: (s) => s.region || '' },
    { title: 'Weight', cell: weightCell },
    { title: 'State', cell: shardState },
    { title: 'Devices / capacity', cell: load, class: 'num' },
    { title: 'Hub cluster', cell: (s) => s.hubCluster || '' },
    { title: 'Hub lag', cell: shardLag },
  ];
  if (write) {
    shardColumns.push({
      title: 'Actions',
      cell: (s) => {
        const st = s.state || 'SHARD_STATE_ACTIVE';
        return h('span', { class: 'row-actions' },
          st !== 'SHARD_STATE_DRAINING' ? stateButton(s, 'Drain', 'SHARD_STATE_DRAINING', '') : null,
          st !== 'SHARD_STATE_ACTIVE' ? stateButton(s, 'Activate', 'SHARD_STATE_ACTIVE', '') : null,
          st !== 'SHARD_STATE_DISABLED' ? stateButton(s, 'Disable', 'SHARD_STATE_DISABLED', '') : null,
          confirmButton('Delete', `Delete shard ${s.id}`, `Delete shard ${s.id}? Only a shard without devices can go.`, async () => {
            try {
              await api.call('DELETE', `/v1/shards/${encodeURIComponent(s.id)}`, { query: { etag: s.etag } });
              announce(`Shard ${s.id} deleted`);
              await shards.reload();
            } catch (err) {
              replace(msg, errorBox(err, () => shards.reload()));
            }
          }));
      },
    });
  }
  const shards = pager(async (token) => {
    const res = await api.page('/v1/shards', {}, 50, token);
    replace(shardsBody, table('Shards', shardColumns, res.shards || [], 'No shards yet: devices cannot be assigned.'));
    return res.nextPageToken;
  });

  const clusterColumns = [
    { title: 'Cluster', cell: (c) => c.id },
    { title: 'Pinned certificates', cell: (c) => String((c.certificateThumbprints || []).length), class: 'num' },
    { title: 'Created', cell: (c) => when(c.createTime) },
    { title: 'Shards', cell: () => 'see the shards list' },
  ];
  if (write) {
    clusterColumns.push({
      title: 'Actions',
      cell: (c) => confirmButton('Delete', `Delete hub cluster ${c.id}`, `Delete hub cluster ${c.id}? It must own no shard.`, async () => {
        try {
          await api.call('DELETE', `/v1/hubClusters/${encodeURIComponent(c.id)}`, { query: { etag: c.etag } });
          announce(`Hub cluster ${c.id} deleted`);
          await clusters.reload();
        } catch (err) {
          replace(msg, errorBox(err, () => clusters.reload()));
        }
      }),
    });
  }
  const clusters = pager(async (token) => {
    const res = await api.page('/v1/hubClusters', {}, 50, token);
    replace(clustersBody, table('Hub clusters', clusterColumns, res.hubClusters || [], 'No hub clusters yet.'));
    return res.nextPageToken;
  });

  if (write) {
    main.append(h('div', { class: 'grid' }, createShard(() => shards.reload()), createCluster(() => clusters.reload())));
  }
  main.append(msg, section('Shards', shardsBody, shards.el), section('Hub clusters', clustersBody, clusters.el));
  shards.reload().catch((err) => replace(shardsBody, errorBox(err)));
  clusters.reload().catch((err) => replace(clustersBody, errorBox(err)));
}

function createShard(reload) {
  const id = input({ name: 'shard-id', required: true });
  const host = input({ name: 'shard-hostname', required: true, placeholder: 'hub1.example.com' });
  const weight = input({ name: 'shard-weight', type: 'number', min: '1', max: '1000', value: '100' });
  const region = input({ name: 'shard-region', placeholder: 'eu-west' });
  const capacity = input({ name: 'shard-capacity', type: 'number', min: '0', value: '0' });
  const cluster = input({ name: 'shard-cluster' });
  return disclosure('Create a shard', form('Create a shard', [
    field('Shard ID', id), field('Device-facing hostname', host), field('Weight (1-1000)', weight),
    field('Region (for the geo policy; optional)', region), field('Capacity (devices; 0 = unlimited)', capacity),
    field('Hub cluster (optional)', cluster),
  ], 'Create shard', async () => {
    const s = await api.call('POST', '/v1/shards', {
      body: { id: id.value.trim(), hostname: host.value.trim(), weight: Number(weight.value), region: region.value.trim(), capacity: Number(capacity.value || 0), hubCluster: cluster.value.trim() },
    });
    announce(`Shard ${s.id} created`);
    id.value = '';
    host.value = '';
    await reload();
  }));
}

function createCluster(reload) {
  const id = input({ name: 'cluster-id', required: true });
  const pems = textarea({ name: 'cluster-pems', rows: 4, placeholder: '-----BEGIN CERTIFICATE----- (optional)' });
  return disclosure('Create a hub cluster', form('Create a hub cluster', [
    field('Cluster ID', id, 'The CN of its nodes’ client certificates.'),
    field('Nodes’ client certificates to pin (PEM, optional)', pems, 'Or issue them later from CSRs: zerotouch hub-cluster issue-cert.'),
  ], 'Create cluster', async () => {
    const blocks = pems.value.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) || [];
    const c = await api.call('POST', '/v1/hubClusters', { body: { id: id.value.trim(), certificatePems: blocks } });
    announce(`Hub cluster ${c.id} created`);
    id.value = '';
    await reload();
  }));
}
