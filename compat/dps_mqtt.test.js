// The Azure IoT provisioning device SDK over MQTT (azure-iot-provisioning-device-mqtt,
// both Mqtt and MqttWs), unmodified, registering against a running Zerotouch.
// internal/e2e/mqtt_test.go starts the server, creates the enrollments, and
// runs this file with ZT_FIXTURE naming a JSON file that says where and what;
// trust comes from NODE_EXTRA_CA_CERTS. The transports build their URI from
// the host alone (mqtts://host, port 8883; wss://host:443/$iothub/websocket),
// so subclasses that add the test server's ports are the one change.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt, MqttWs } = require('azure-iot-provisioning-device-mqtt');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');
const { SharedAccessSignature } = require('azure-iot-common');

const fx = JSON.parse(fs.readFileSync(process.env.ZT_FIXTURE, 'utf8'));

class TestMqtt extends Mqtt {
  _getConnectionUri() { return 'mqtts://' + fx.host + ':' + fx.mqttPort; }
}

class TestMqttWs extends MqttWs {
  _getConnectionUri() { return 'wss://' + fx.host + ':' + fx.httpPort + '/$iothub/websocket'; }
}

function deriveKey(groupKeyB64, registrationId) {
  return crypto.createHmac('sha256', Buffer.from(groupKeyB64, 'base64')).update(registrationId, 'utf8').digest('base64');
}

// A security client that signs with an expired token.
class ExpiredSymmetricKey extends SymmetricKeySecurityClient {
  createSharedAccessSignature(idScope, callback) {
    const sas = SharedAccessSignature.create(idScope + '/registrations/' + this._registrationId, 'registration', this._symmetricKey, Math.floor(Date.now() / 1000) - 3600);
    if (callback) return callback(null, sas);
    return Promise.resolve(sas);
  }
}

for (const [name, Transport] of [['Mqtt', TestMqtt], ['MqttWs', TestMqttWs]]) {
  const d = fx.transports[name];

  function register(security, payload) {
    const client = ProvisioningDeviceClient.create(fx.host, fx.idScope, new Transport(), security);
    if (payload !== undefined) client.setProvisioningPayload(payload);
    return client.register();
  }

  function assertAssigned(result, registrationId, deviceId) {
    assert.strictEqual(result.status.toLowerCase(), 'assigned');
    assert.strictEqual(result.registrationId, registrationId);
    assert.strictEqual(result.deviceId, deviceId || registrationId);
    assert.strictEqual(result.assignedHub, fx.hub);
    assert.strictEqual(result.substatus, 'initialAssignment');
  }

  // CONNACK "not authorized" carries no reason; the server log has it.
  const notAuthorized = (err) => /Not authorized/i.test(err.message);

  test(name + ': symmetric key, individual enrollment, with a payload', async () => {
    const r = await register(new SymmetricKeySecurityClient(d.symIndividual.registrationId, d.symIndividual.primaryKey), { a: 1 });
    assertAssigned(r, d.symIndividual.registrationId);
    assert.ok(r.symmetricKey);
  });

  test(name + ': symmetric key, individual enrollment, secondary key', async () => {
    const r = await register(new SymmetricKeySecurityClient(d.symIndividual.registrationId, d.symIndividual.secondaryKey));
    assert.strictEqual(r.status, 'assigned');
  });

  test(name + ': symmetric key, enrollment group (derived key)', async () => {
    const id = d.symGroupDevice;
    const r = await register(new SymmetricKeySecurityClient(id, deriveKey(fx.symGroup.primaryKey, id)));
    assertAssigned(r, id);
    assert.strictEqual(r.symmetricKey.enrollmentGroupId, fx.symGroup.id);
  });

  test(name + ': X.509, enrollment group', async () => {
    const x = d.x509Group;
    const r = await register(new X509Security(x.registrationId, { cert: x.certChainPem, key: x.keyPem }));
    assertAssigned(r, x.registrationId);
    assert.strictEqual(r.x509.enrollmentGroupId, fx.x509GroupId);
  });

  test(name + ': X.509, individual enrollment', async () => {
    const x = d.x509Individual;
    const r = await register(new X509Security(x.registrationId, { cert: x.certChainPem, key: x.keyPem }));
    assertAssigned(r, x.registrationId, x.deviceId);
  });

  test(name + ': custom allocation: a slow webhook, polled by the SDK to its decision', { timeout: 60000 }, async () => {
    const id = d.slowDevice;
    const r = await register(new SymmetricKeySecurityClient(id, deriveKey(fx.slowGroup.primaryKey, id)), { model: 'slow' });
    assertAssigned(r, id);
    assert.deepStrictEqual(r.payload, { decidedBy: 'webhook' });
  });

  test(name + ': refused at CONNACK: wrong key', async () => {
    await assert.rejects(register(new SymmetricKeySecurityClient(d.symIndividual.registrationId, Buffer.alloc(32, 7).toString('base64'))), notAuthorized);
  });

  test(name + ': refused at CONNACK: expired SAS', async () => {
    await assert.rejects(register(new ExpiredSymmetricKey(d.symIndividual.registrationId, d.symIndividual.primaryKey)), notAuthorized);
  });

  test(name + ': refused at CONNACK: unknown device', async () => {
    await assert.rejects(register(new SymmetricKeySecurityClient('nobody-enrolled', Buffer.alloc(32, 9).toString('base64'))), notAuthorized);
  });

  test(name + ': refused at CONNACK: X.509 device of an unknown CA', async () => {
    const x = fx.x509Stranger;
    await assert.rejects(register(new X509Security(x.registrationId, { cert: x.certChainPem, key: x.keyPem })), notAuthorized);
  });

  test(name + ': refused: disabled enrollment (status "disabled")', async () => {
    await assert.rejects(register(new SymmetricKeySecurityClient(fx.symDisabled.registrationId, fx.symDisabled.primaryKey)),
      (err) => /disabled/.test(err.message));
  });

  test(name + ': refused on res/401 with the reason: a registration ID another enrollment owns', async () => {
    const x = fx.owned;
    await assert.rejects(register(new X509Security(x.registrationId, { cert: x.certChainPem, key: x.keyPem })),
      (err) => err.name === 'UnauthorizedError' && err.result && err.result.info.reason === 'REGISTRATION_ID_OWNED' &&
        err.result.message === 'registration refused: REGISTRATION_ID_OWNED');
  });
}
