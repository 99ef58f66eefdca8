// The Azure IoT TPM security client (azure-iot-security-tpm, tss.js),
// unmodified, with swtpm listening on TCP 2323 (where tss.js looks when no
// /dev/tpm* exists), registering through Zerotouch's DPS-compatible API.
// internal/e2e/compat_test.go starts swtpm and the server; this test
// enrolls the TPM's EK through Zerotouch's REST management API first.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const https = require('node:https');

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const HttpBase = require('azure-iot-http-base').Http;
const { TpmSecurityClient } = require('azure-iot-security-tpm');

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

function enroll(registrationId, ek) {
  const body = JSON.stringify({ registrationId, tpm: { endorsementKey: ek.toString('base64') } });
  return new Promise((resolve, reject) => {
    const req = https.request({ host: fx.host, port: fx.port, method: 'POST', path: '/v1/enrollments',
      headers: { 'Authorization': 'Bearer ' + fx.ownerKey, 'Content-Type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(data)) : reject(new Error(res.statusCode + ' ' + data))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// The TPM client's getters take callbacks only.
const call = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));

test('TPM, individual enrollment, DPS flow', { timeout: 60000 }, async () => {
  const security = new TpmSecurityClient();
  const ek = await call((cb) => security.getEndorsementKey(cb));
  const registrationId = await call((cb) => security.getRegistrationId(cb));
  const enrollment = await enroll(registrationId, ek);
  assert.strictEqual(enrollment.registrationId, registrationId, 'Zerotouch derives the same registration ID from the EK as the SDK');
  const client = ProvisioningDeviceClient.create(fx.host, fx.idScope, transport(), security);
  const result = await client.register();
  const state = result.registrationState || result;
  assert.strictEqual(state.status, 'assigned');
  assert.strictEqual(state.registrationId, registrationId);
  assert.strictEqual(state.assignedHub, fx.hub);
  assert.ok(state.tpm && state.tpm.authenticationKey, 'the hub key is delivered into the TPM');
  security._tpm.close(); // tss.js keeps its TCP connection to the TPM open otherwise
});
