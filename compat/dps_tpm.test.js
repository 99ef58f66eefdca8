// The Azure IoT TPM security client (azure-iot-security-tpm, tss.js),
// unmodified, with swtpm listening on TCP 2323 (where tss.js looks when no
// /dev/tpm* exists), registering through Zerotouch's DPS-compatible API.
// internal/e2e/compat_test.go starts swtpm and the server; this test
// enrolls the TPM's EK with the DPS service client first.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const https = require('node:https');

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const HttpBase = require('azure-iot-http-base').Http;
const { TpmSecurityClient } = require('azure-iot-security-tpm');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');

const fx = JSON.parse(fs.readFileSync(process.env.ZT_FIXTURE, 'utf8'));

function agent() {
  const a = new https.Agent({ keepAlive: false });
  a.defaultPort = fx.port;
  return a;
}

function transport() {
  const base = new HttpBase();
  base.setOptions({ http: { agent: agent() } });
  return new Http(base);
}

const svc = ProvisioningServiceClient.fromConnectionString(fx.connectionString);
svc._restApiClient._http.setOptions({ http: { agent: agent() } });

async function enroll(registrationId, ek) {
  const { responseBody } = await svc.createOrUpdateIndividualEnrollment({ registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } } });
  return responseBody;
}

// The TPM client's getters take callbacks only.
const call = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));

test('TPM, individual enrollment, DPS flow', { timeout: 60000 }, async (t) => {
  const security = new TpmSecurityClient();
  t.after(() => security._tpm.close()); // tss.js keeps its TCP connection to the TPM open otherwise
  const ek = await call((cb) => security.getEndorsementKey(cb));
  const registrationId = await call((cb) => security.getRegistrationId(cb));
  // Refused first: the registration ID enrolled with another TPM's EK.
  await enroll(registrationId, Buffer.from(fx.otherEk, 'base64'));
  // (The SDK reads any 401 to its first PUT as the challenge, so a refusal
  // without an authentication key surfaces as its FormatError.)
  await assert.rejects(ProvisioningDeviceClient.create(fx.host, fx.idScope, transport(), security).register(),
    (err) => err.name === 'UnauthorizedError' || err.name === 'FormatError');
  await svc.deleteIndividualEnrollment(registrationId);
  const enrollment = await enroll(registrationId, ek);
  assert.strictEqual(enrollment.attestation.tpm.endorsementKey, ek.toString('base64'));
  assert.strictEqual(enrollment.registrationId, registrationId);
  const client = ProvisioningDeviceClient.create(fx.host, fx.idScope, transport(), security);
  const result = await client.register();
  const state = result.registrationState || result;
  assert.strictEqual(state.status, 'assigned');
  assert.strictEqual(state.registrationId, registrationId);
  assert.strictEqual(state.assignedHub, fx.hub);
  assert.ok(state.tpm && state.tpm.authenticationKey, 'the hub key is delivered into the TPM');
});
