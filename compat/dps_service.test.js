// The Azure IoT provisioning service SDK (azure-iot-provisioning-service),
// unmodified, managing enrollments on a running Zerotouch, and the device
// SDK registering against what it created. internal/e2e/compat_test.go
// starts the server, uploads and verifies the X.509 CA (a management-plane
// step the service SDK has no call for), and runs this file with ZT_FIXTURE
// naming a JSON file that says where and what. Trust comes from
// NODE_EXTRA_CA_CERTS; the port from an injected https.Agent.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');

const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const HttpBase = require('azure-iot-http-base').Http;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');

const fx = JSON.parse(fs.readFileSync(process.env.ZT_FIXTURE, 'utf8'));

function agent() {
  const a = new https.Agent({ keepAlive: false });
  a.defaultPort = fx.port; // https.Agent forces 443 in its constructor
  return a;
}

function serviceClient(connectionString) {
  const c = ProvisioningServiceClient.fromConnectionString(connectionString);
  c._restApiClient._http.setOptions({ http: { agent: agent() } });
  return c;
}

const svc = serviceClient(fx.connectionString);

function register(security) {
  const base = new HttpBase();
  base.setOptions({ http: { agent: agent() } });
  return ProvisioningDeviceClient.create(fx.host, fx.idScope, new Http(base), security).register();
}

// The service client's bulk call only works with a callback (an SDK bug).
const bulk = (op) => new Promise((resolve, reject) => svc.runBulkEnrollmentOperation(op, (err, r) => (err ? reject(err) : resolve(r))));

const deriveKey = (groupKey, id) => crypto.createHmac('sha256', Buffer.from(groupKey, 'base64')).update(id, 'utf8').digest('base64');

test('symmetric key, individual: created by the service client, registered by the device client', async () => {
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: 'svc-node-sym', deviceId: 'svc-node-sym-dev', attestation: { type: 'symmetricKey' },
    initialTwin: { tags: { site: 'lab' }, properties: { desired: { interval: 10 } } },
  });
  assert.strictEqual(e.registrationId, 'svc-node-sym');
  assert.ok(e.attestation.symmetricKey.primaryKey, 'generated keys are returned on create');
  assert.ok(e.etag);
  const { responseBody: mech } = await svc.getIndividualEnrollmentAttestationMechanism('svc-node-sym');
  assert.strictEqual(mech.symmetricKey.primaryKey, e.attestation.symmetricKey.primaryKey);
  const r = await register(new SymmetricKeySecurityClient('svc-node-sym', mech.symmetricKey.primaryKey));
  assert.strictEqual(r.status, 'assigned');
  assert.strictEqual(r.deviceId, 'svc-node-sym-dev');
  assert.strictEqual(r.assignedHub, fx.hub);
  assert.strictEqual(r.substatus, 'initialAssignment');
  const { responseBody: state } = await svc.getDeviceRegistrationState('svc-node-sym');
  assert.strictEqual(state.status, 'assigned');
  assert.strictEqual(state.deviceId, 'svc-node-sym-dev');
});

test('symmetric key, enrollment group (lower-case attestationmechanism path), derived device key', async () => {
  await svc.createOrUpdateEnrollmentGroup({ enrollmentGroupId: 'svc-node-symgroup', attestation: { type: 'symmetricKey' } });
  const { responseBody: mech } = await svc.getEnrollmentGroupAttestationMechanism('svc-node-symgroup');
  const id = 'svc-node-symgroup-dev';
  const r = await register(new SymmetricKeySecurityClient(id, deriveKey(mech.symmetricKey.primaryKey, id)));
  assert.strictEqual(r.status, 'assigned');
  assert.strictEqual(r.symmetricKey.enrollmentGroupId, 'svc-node-symgroup');
  const { responseBody: states } = await svc.createEnrollmentGroupDeviceRegistrationStateQuery({ query: 'SELECT * FROM enrollments' }, 'svc-node-symgroup', 10).next();
  assert.deepStrictEqual(states.map((s) => s.registrationId), [id]);
});

test('X.509, individual and group, created by the service client', async () => {
  const ind = fx.x509Individual;
  await svc.createOrUpdateIndividualEnrollment({ registrationId: ind.registrationId,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: ind.certChainPem } } } } });
  await svc.createOrUpdateEnrollmentGroup({ enrollmentGroupId: 'svc-node-x509', attestation: { type: 'x509', x509: { caReferences: { primary: fx.caName } } } });
  const r1 = await register(new X509Security(ind.registrationId, { cert: ind.certChainPem, key: ind.keyPem }));
  assert.strictEqual(r1.status, 'assigned');
  const g = fx.x509Group;
  const r2 = await register(new X509Security(g.registrationId, { cert: g.certChainPem, key: g.keyPem }));
  assert.strictEqual(r2.status, 'assigned');
  assert.strictEqual(r2.x509.enrollmentGroupId, 'svc-node-x509');
});

test('etag: update with the current etag, 412 (InvalidEtagError) with a stale one, then disable', async () => {
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({ registrationId: 'svc-node-etag', attestation: { type: 'symmetricKey' } });
  const key = e.attestation.symmetricKey.primaryKey;
  const { responseBody: cur } = await svc.getIndividualEnrollment('svc-node-etag');
  const { responseBody: upd } = await svc.createOrUpdateIndividualEnrollment({ ...cur, deviceId: 'svc-node-etag-dev' });
  assert.notStrictEqual(upd.etag, cur.etag);
  await assert.rejects(svc.createOrUpdateIndividualEnrollment({ ...cur, provisioningStatus: 'disabled' }), (err) => err.name === 'InvalidEtagError');
  await svc.createOrUpdateIndividualEnrollment({ ...upd, provisioningStatus: 'disabled' });
  await assert.rejects(register(new SymmetricKeySecurityClient('svc-node-etag', key)), (err) => /disabled/.test(err.message));
  await assert.rejects(svc.deleteIndividualEnrollment('svc-node-etag', cur.etag), (err) => err.name === 'InvalidEtagError');
  await svc.deleteIndividualEnrollment('svc-node-etag');
  await assert.rejects(svc.getIndividualEnrollment('svc-node-etag'), (err) => /Not found/.test(err.message));
});

test('query with paging, and bulk with per-item errors', async () => {
  const r = await bulk({ mode: 'create', enrollments: [
    { registrationId: 'svc-node-bulk-1', attestation: { type: 'symmetricKey' } },
    { registrationId: 'svc-node-bulk-2', attestation: { type: 'symmetricKey' } },
    { registrationId: 'svc-node-sym', attestation: { type: 'symmetricKey' } },
  ] });
  assert.strictEqual(r.isSuccessful, false);
  assert.strictEqual(r.errors.length, 1);
  assert.strictEqual(r.errors[0].registrationId, 'svc-node-sym');
  assert.strictEqual(r.errors[0].errorCode, 409000);
  const query = svc.createIndividualEnrollmentQuery({ query: 'SELECT * FROM enrollments' }, 2);
  const ids = [];
  let pages = 0;
  // Query.next() as a promise forgets the continuation token (an SDK bug:
  // it restarts from the first page), so the token is passed explicitly.
  while (query.hasMoreResults && pages < 50) {
    const { responseBody: page } = await query.next(query.continuationToken);
    pages++;
    assert.ok(page.length <= 2);
    ids.push(...page.map((e) => e.registrationId));
  }
  assert.ok(pages >= 2, 'the continuation token carried the query over pages');
  for (const id of ['svc-node-bulk-1', 'svc-node-bulk-2', 'svc-node-sym', fx.x509Individual.registrationId]) {
    assert.ok(ids.includes(id), id + ' is listed');
  }
  assert.strictEqual(new Set(ids).size, ids.length, 'no enrollment twice');
  const del = await bulk({ mode: 'delete', enrollments: [{ registrationId: 'svc-node-bulk-1' }, { registrationId: 'svc-node-bulk-2' }] });
  assert.strictEqual(del.isSuccessful, true);
});

test('registration state: get and delete', async () => {
  const { responseBody: state } = await svc.getDeviceRegistrationState('svc-node-sym');
  await svc.deleteDeviceRegistrationState('svc-node-sym', state.etag);
  await assert.rejects(svc.getDeviceRegistrationState('svc-node-sym'), (err) => /Not found/.test(err.message));
});

test('refused: a wrong shared access key, and a read-only policy writing', async () => {
  const wrong = fx.connectionString.replace(/SharedAccessKey=[^;]+/, 'SharedAccessKey=' + Buffer.alloc(32, 1).toString('base64'));
  await assert.rejects(serviceClient(wrong).getIndividualEnrollment('svc-node-sym'), (err) => err.name === 'UnauthorizedError');
  const reader = serviceClient(fx.readerConnectionString);
  await reader.getEnrollmentGroup('svc-node-symgroup');
  await assert.rejects(reader.createOrUpdateIndividualEnrollment({ registrationId: 'svc-node-denied', attestation: { type: 'symmetricKey' } }),
    (err) => err.name === 'UnauthorizedError' && /PERMISSION_DENIED|EnrollmentWrite/.test(err.message));
});
