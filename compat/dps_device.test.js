// The Azure IoT provisioning device SDK (HTTP transport), unmodified,
// registering against a running Zerotouch. internal/e2e/compat_test.go
// starts the server, creates the enrollments, and runs this file with
// ZT_FIXTURE naming a JSON file that says where and what; trust comes from
// NODE_EXTRA_CA_CERTS. The SDK cannot take a port in the host name, so an
// https.Agent whose defaultPort is set after construction is injected.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const HttpBase = require('azure-iot-http-base').Http;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');
const { SharedAccessSignature } = require('azure-iot-common');

const fx = JSON.parse(fs.readFileSync(process.env.ZT_FIXTURE, 'utf8'));

function transport() {
  const base = new HttpBase();
  const agent = new https.Agent({ keepAlive: false });
  agent.defaultPort = fx.port; // https.Agent forces 443 in its constructor
  base.setOptions({ http: { agent } });
  return new Http(base);
}

function register(security, payload) {
  const client = ProvisioningDeviceClient.create(fx.host, fx.idScope, transport(), security);
  if (payload !== undefined) client.setProvisioningPayload(payload);
  return client.register();
}

function deriveKey(groupKeyB64, registrationId) {
  return crypto.createHmac('sha256', Buffer.from(groupKeyB64, 'base64')).update(registrationId, 'utf8').digest('base64');
}

function assertAssigned(result, registrationId, deviceId) {
  assert.strictEqual(result.status.toLowerCase(), 'assigned');
  assert.strictEqual(result.registrationId, registrationId);
  assert.strictEqual(result.deviceId, deviceId || registrationId);
  assert.strictEqual(result.assignedHub, fx.hub);
  assert.strictEqual(result.substatus, 'initialAssignment');
}

// A security client that signs with an expired token.
class ExpiredSymmetricKey extends SymmetricKeySecurityClient {
  createSharedAccessSignature(idScope, callback) {
    const sas = SharedAccessSignature.create(idScope + '/registrations/' + this._registrationId, 'registration', this._symmetricKey, Math.floor(Date.now() / 1000) - 3600);
    if (callback) return callback(null, sas);
    return Promise.resolve(sas);
  }
}

test('symmetric key, individual enrollment', async () => {
  const r = await register(new SymmetricKeySecurityClient(fx.symIndividual.registrationId, fx.symIndividual.primaryKey));
  assertAssigned(r, fx.symIndividual.registrationId);
});

test('symmetric key, individual enrollment, secondary key, with a payload', async () => {
  const r = await register(new SymmetricKeySecurityClient(fx.symIndividual.registrationId, fx.symIndividual.secondaryKey), { a: 1 });
  assert.strictEqual(r.status, 'assigned');
});

test('symmetric key, enrollment group (derived key)', async () => {
  const id = 'node-sym-group-device';
  const r = await register(new SymmetricKeySecurityClient(id, deriveKey(fx.symGroup.primaryKey, id)));
  assertAssigned(r, id);
  assert.strictEqual(r.symmetricKey.enrollmentGroupId, fx.symGroup.id);
});

test('X.509, enrollment group', async () => {
  const d = fx.x509Group;
  const r = await register(new X509Security(d.registrationId, { cert: d.certChainPem, key: d.keyPem }));
  assertAssigned(r, d.registrationId);
  assert.strictEqual(r.x509.enrollmentGroupId, fx.x509GroupId);
});

test('X.509, individual enrollment', async () => {
  const d = fx.x509Individual;
  const r = await register(new X509Security(d.registrationId, { cert: d.certChainPem, key: d.keyPem }));
  assertAssigned(r, d.registrationId, d.deviceId);
});

test('refused: wrong key', async () => {
  await assert.rejects(register(new SymmetricKeySecurityClient(fx.symIndividual.registrationId, Buffer.alloc(32, 7).toString('base64'))),
    (err) => err.name === 'UnauthorizedError' && /SAS_INVALID/.test(err.message));
});

test('refused: expired SAS', async () => {
  await assert.rejects(register(new ExpiredSymmetricKey(fx.symIndividual.registrationId, fx.symIndividual.primaryKey)),
    (err) => err.name === 'UnauthorizedError' && /SAS_EXPIRED/.test(err.message));
});

test('refused: unknown device', async () => {
  await assert.rejects(register(new SymmetricKeySecurityClient('nobody-enrolled', Buffer.alloc(32, 9).toString('base64'))),
    (err) => err.name === 'UnauthorizedError');
});

test('refused: disabled enrollment', async () => {
  await assert.rejects(register(new SymmetricKeySecurityClient(fx.symDisabled.registrationId, fx.symDisabled.primaryKey)),
    (err) => /disabled/.test(err.message));
});

test('refused: X.509 device of an unknown CA', async () => {
  const d = fx.x509Stranger;
  await assert.rejects(register(new X509Security(d.registrationId, { cert: d.certChainPem, key: d.keyPem })),
    (err) => err.name === 'UnauthorizedError' && /CERTIFICATE_UNTRUSTED/.test(err.message));
});

test('custom allocation: a slow webhook, polled by the SDK to its decision', { timeout: 30000 }, async () => {
  const id = 'node-slow-webhook-device';
  const r = await register(new SymmetricKeySecurityClient(id, deriveKey(fx.slowGroup.primaryKey, id)));
  assertAssigned(r, id);
  assert.deepStrictEqual(r.payload, { decidedBy: 'webhook' });
});
