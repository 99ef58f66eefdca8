package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// DPS's MQTT topics (shared/reference/dps-protocol.md §3).
const (
	mqttRegisterTopic = "$dps/registrations/PUT/iotdps-register/?$rid="
	mqttPollTopic     = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
	mqttAnswers       = "$dps/registrations/res/#"
)

func mqttUsername(regID string) string {
	return idScope + "/registrations/" + regID + "/api-version=2019-03-31&ClientVersion=zerotouch-e2e"
}

func mqttSAS(regID string, key []byte) string {
	return symkey.Sign(key, idScope+"/registrations/"+regID, time.Now().Add(time.Hour), "registration")
}

// mqttDevice is a bare MQTT 3.1.1 DPS device (mochi's packet codec on a
// TLS connection), for what the SDKs cannot be made to do: drop the
// connection mid-operation, poll an operation ID across connections,
// register by the thousand.
type mqttDevice struct {
	t    testing.TB
	conn *tls.Conn
	r    *bufio.Reader
	id   uint16
}

func (e *env) mqttConnect(regID string, key []byte, cfg *tls.Config) (*mqttDevice, error) {
	if cfg == nil {
		cfg = e.clientTLS(nil)
	}
	c, err := tls.Dial("tcp", e.mqttAddr, cfg)
	if err != nil {
		return nil, err
	}
	d := &mqttDevice{t: e.t, conn: c, r: bufio.NewReader(c)}
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: regID,
			UsernameFlag: true, Username: []byte(mqttUsername(regID))}}
	if key != nil {
		connect.Connect.PasswordFlag, connect.Connect.Password = true, []byte(mqttSAS(regID, key))
	}
	if err := d.send(connect); err != nil {
		c.Close()
		return nil, err
	}
	ack, err := d.read()
	if err == nil && (ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0) {
		err = fmt.Errorf("CONNACK %d", ack.ReasonCode)
	}
	if err == nil {
		d.id++
		err = d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: d.id,
			Filters: packets.Subscriptions{{Filter: mqttAnswers, Qos: 1}}})
	}
	if err == nil {
		if ack, err = d.read(); err == nil && (ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] > 1) {
			err = fmt.Errorf("SUBACK %v", ack.ReasonCodes)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return d, nil
}

func (d *mqttDevice) send(pk packets.Packet) error {
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	}
	if err != nil {
		return err
	}
	_, err = d.conn.Write(buf.Bytes())
	return err
}

func (d *mqttDevice) read() (packets.Packet, error) {
	_ = d.conn.SetReadDeadline(time.Now().Add(time.Minute)) // a hang guard, not a timing assertion
	b, err := d.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	var fh packets.FixedHeader
	if err := fh.Decode(b); err != nil {
		return packets.Packet{}, err
	}
	if fh.Remaining, _, err = packets.DecodeLength(d.r); err != nil {
		return packets.Packet{}, err
	}
	body := make([]byte, fh.Remaining)
	if _, err := io.ReadFull(d.r, body); err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 4}
	switch fh.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	default:
		err = fmt.Errorf("unexpected packet type %d", fh.Type)
	}
	return pk, err
}

// mqttAnswer is a DPS answer: the topic's status and retry hint, the body.
type mqttAnswer struct {
	status     int
	retryAfter string
	body       map[string]any
	raw        string
}

// request publishes at QoS 1 on the topic for a new rid, waits for the
// PUBACK and then the answer to that rid.
func (d *mqttDevice) request(topicFor func(rid string) string, payload []byte) (mqttAnswer, error) {
	d.id++
	rid := strconv.Itoa(int(d.id))
	if err := d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: d.id, TopicName: topicFor(rid), Payload: payload}); err != nil {
		return mqttAnswer{}, err
	}
	if ack, err := d.read(); err != nil || ack.FixedHeader.Type != packets.Puback || ack.PacketID != d.id {
		return mqttAnswer{}, fmt.Errorf("PUBACK: %+v %v", ack.FixedHeader, err)
	}
	pk, err := d.read()
	if err != nil || pk.FixedHeader.Type != packets.Publish {
		return mqttAnswer{}, fmt.Errorf("answer: %+v %v", pk.FixedHeader, err)
	}
	rest, _ := strings.CutPrefix(pk.TopicName, "$dps/registrations/res/")
	status, query, _ := strings.Cut(rest, "/?")
	q, _ := url.ParseQuery(query)
	a := mqttAnswer{retryAfter: q.Get("retry-after"), raw: string(pk.Payload)}
	if a.status, err = strconv.Atoi(status); err != nil || q.Get("$rid") != rid {
		return a, fmt.Errorf("answer topic %q for rid %s", pk.TopicName, rid)
	}
	if err := json.Unmarshal(pk.Payload, &a.body); err != nil {
		return a, fmt.Errorf("answer %q is not JSON", pk.Payload)
	}
	return a, nil
}

func (d *mqttDevice) register(payload string) (mqttAnswer, error) {
	return d.request(func(rid string) string { return mqttRegisterTopic + rid }, []byte(payload))
}

// poll asks for an operation's status, as the SDKs do (the payload is a
// space).
func (d *mqttDevice) poll(opID string) (mqttAnswer, error) {
	return d.request(func(rid string) string { return mqttPollTopic + rid + "&operationId=" + url.QueryEscape(opID) }, []byte(" "))
}

func (d *mqttDevice) close() {
	_ = d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	d.conn.Close()
}

// TestMQTTAzureSDK runs the real npm package azure-iot-provisioning-device-mqtt
// (Mqtt and MqttWs) with azure-iot-provisioning-device and the X.509 and
// symmetric-key security clients against Zerotouch's MQTT listener and its
// WebSocket endpoint: symmetric keys and X.509, individual and group, a
// slow custom allocation webhook (assigning, polled), and the refusals.
func TestMQTTAzureSDK(t *testing.T) {
	dir := requireCompat(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "azure-iot-provisioning-device-mqtt")); err != nil {
		msg := "compat/node_modules lacks azure-iot-provisioning-device-mqtt (cd compat && npm ci --ignore-scripts)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second) // the webhook's slowness (> the 200 ms budget, < its 3 s timeout), not a wait for a condition
		w.Write([]byte(`{"iotHubHostName":"node-shard.hubs.example.com","payload":{"decidedBy":"webhook"}}`))
	}))
	defer hook.Close()
	e := startWith(t, options{webhooks: hook.Client(), webhookBudget: 200 * time.Millisecond})
	e.createShard("node-shard", 1)
	now := time.Now()
	root, _ := pki.NewCA("MQTT Node Root", nil, now, 24*time.Hour)
	inter, _ := pki.NewCA("MQTT Node Issuing", root, now, 24*time.Hour)
	e.uploadCA("mqtt-node-root", root, true)
	e.createGroup("mqtt-node-x509", "mqtt-node-root")
	enr := pb.NewEnrollmentServiceClient(e.admin)
	b64 := base64.StdEncoding.EncodeToString
	symGroup, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "mqtt-node-sym", AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY}})
	if err != nil {
		t.Fatal(err)
	}
	slowGroup, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "mqtt-node-slow",
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
		Allocation:      &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Webhook: &pb.Webhook{Url: hook.URL, TimeoutSeconds: 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	symOff, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "mqtt-sym-off", SymmetricKey: &pb.SymmetricKeyAttestation{},
		ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED}})
	if err != nil {
		t.Fatal(err)
	}
	// An individual enrollment (of another certificate) reserves
	// "mqtt-owned": a device of the X.509 group with that CN authenticates,
	// and its registration is refused on res/401 (ADR 17).
	if _, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "mqtt-owned",
		CertificatePem: string(pki.CertPEM(leaf(t, pki.LeafTemplate("mqtt-owned", now, time.Hour), nil).Cert))}}); err != nil {
		t.Fatal(err)
	}
	ownedDev, _ := pki.NewDevice("mqtt-owned", inter, now, time.Hour)
	stranger, _ := pki.NewCA("MQTT Stranger", nil, now, time.Hour)
	strangerDev, _ := pki.NewDevice("mqtt-x509-stranger", stranger, now, time.Hour)

	transports := map[string]any{}
	var registered []string
	for _, name := range []string{"Mqtt", "MqttWs"} {
		p := strings.ToLower(name)
		sym, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: p + "-sym-device", SymmetricKey: &pb.SymmetricKeyAttestation{}}})
		if err != nil {
			t.Fatal(err)
		}
		groupDev, _ := pki.NewDevice(p+"-x509-device", inter, now, time.Hour)
		self := leaf(t, pki.LeafTemplate(p+"-x509-individual", now, time.Hour), nil)
		if _, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: p + "-x509-individual",
			DeviceId: p + "-x509-individual-dev", CertificatePem: string(pki.CertPEM(self.Cert))}}); err != nil {
			t.Fatal(err)
		}
		individual := x509Device(t, self)
		individual.DeviceID = p + "-x509-individual-dev"
		transports[name] = map[string]any{
			"symIndividual":  compatDevice{RegistrationID: p + "-sym-device", PrimaryKey: b64(sym.GetSymmetricKey().GetPrimaryKey()), SecondaryKey: b64(sym.GetSymmetricKey().GetSecondaryKey())},
			"symGroupDevice": p + "-sym-group-device",
			"slowDevice":     p + "-slow-device",
			"x509Group":      x509Device(t, groupDev, inter),
			"x509Individual": individual,
		}
		registered = append(registered, p+"-sym-device", p+"-sym-group-device", p+"-slow-device", p+"-x509-device", p+"-x509-individual-dev")
	}
	runNode(t, dir, e, "dps_mqtt.test.js", map[string]any{
		"host": "localhost", "mqttPort": portOf(t, e.mqttAddr), "httpPort": portOf(t, e.httpAddr), "idScope": idScope, "hub": "node-shard.hubs.example.com",
		"symGroup":     compatDevice{ID: "mqtt-node-sym", PrimaryKey: b64(symGroup.GetSymmetricKey().GetPrimaryKey())},
		"slowGroup":    compatDevice{ID: "mqtt-node-slow", PrimaryKey: b64(slowGroup.GetSymmetricKey().GetPrimaryKey())},
		"symDisabled":  compatDevice{RegistrationID: "mqtt-sym-off", PrimaryKey: b64(symOff.GetSymmetricKey().GetPrimaryKey())},
		"x509GroupId":  "mqtt-node-x509",
		"x509Stranger": x509Device(t, strangerDev, stranger),
		"owned":        x509Device(t, ownedDev, inter),
		"transports":   transports,
	})
	for _, id := range []string{"mqtt-sym-off", "nobody-enrolled", "mqtt-x509-stranger", "mqtt-owned"} {
		e.assertNoRegistration(id)
	}
	for _, id := range registered {
		if _, err := e.store.GetIdentity(t.Context(), id); err != nil {
			t.Errorf("%s: no identity: %v", id, err)
		}
	}
}

// requireMosquitto finds Debian's mosquitto-clients (installed by
// scripts/test.sh), or skips (fails under CI).
func requireMosquitto(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub", "mosquitto_rr"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not installed (apt-get install -y mosquitto-clients)"
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// TestMQTTMosquitto registers as a bare MQTT device would, with Debian's
// mosquitto-clients (a client nobody here wrote, not Azure's), by topic:
// mosquitto_pub publishes a register request; mosquitto_rr (pub and sub on
// one connection, as DPS answers on the requesting connection only)
// registers and polls, reading the answers; with a SAS password and with
// an X.509 client certificate. The refusals: a wrong password at CONNACK, a
// subscription outside DPS's.
func TestMQTTMosquitto(t *testing.T) {
	requireMosquitto(t)
	e := start(t)
	e.createShard("mosq-shard", 1)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	sym, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "mosq-sym", SymmetricKey: &pb.SymmetricKeyAttestation{}}})
	if err != nil {
		t.Fatal(err)
	}
	key := sym.GetSymmetricKey().GetPrimaryKey()
	now := time.Now()
	root, _ := pki.NewCA("Mosquitto Root", nil, now, 24*time.Hour)
	inter, _ := pki.NewCA("Mosquitto Issuing", root, now, 24*time.Hour)
	e.uploadCA("mosq-root", root, true)
	e.createGroup("mosq-x509", "mosq-root")
	dev, _ := pki.NewDevice("mosq-x509-device", inter, now, time.Hour)

	work := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", pki.CertPEM(e.serverCA.Cert))
	keyPEM, err := pki.KeyPEM(dev.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := write("dev.pem", append(pki.CertPEM(dev.Cert), pki.CertPEM(inter.Cert)...))
	keyFile := write("dev-key.pem", keyPEM)
	port := strconv.Itoa(portOf(t, e.mqttAddr))
	run := func(tool string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang guard
		defer cancel()
		cmd := exec.CommandContext(ctx, tool, append([]string{"-h", "localhost", "-p", port, "--cafile", caFile, "-V", "mqttv311", "-q", "1"}, args...)...)
		out, err := cmd.CombinedOutput()
		t.Logf("%s %s:\n%s", tool, strings.Join(args, " "), out)
		return string(out), err
	}
	// rr is one request and its answer: "topic payload" (-v).
	// mosquitto_rr subscribes to the answer's topic (it takes no wildcard):
	// the status expected, 200.
	rr := func(regID string, creds []string, topic, rid, payload string) (string, map[string]any) {
		t.Helper()
		args := append([]string{"-i", regID, "-u", mqttUsername(regID), "-t", topic, "-e", "$dps/registrations/res/200/?$rid=" + rid, "-m", payload, "-v", "-W", "30"}, creds...)
		out, err := run("mosquitto_rr", args...)
		if err != nil {
			t.Fatalf("mosquitto_rr: %v", err)
		}
		topicOut, body, _ := strings.Cut(strings.TrimSpace(out), " ")
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("answer %q is not JSON", body)
		}
		return topicOut, m
	}

	for _, tc := range []struct {
		regID, group string
		creds        []string
	}{
		{"mosq-sym", "", []string{"-P", mqttSAS("mosq-sym", key)}},
		{"mosq-x509-device", "mosq-x509", []string{"--cert", certFile, "--key", keyFile}},
	} {
		// mosquitto_pub: the register request by topic. It reads no
		// answer, but the request it got PUBACK for is carried out.
		if _, err := run("mosquitto_pub", append([]string{"-i", tc.regID, "-u", mqttUsername(tc.regID), "-t", mqttRegisterTopic + "pub1", "-m", `{"registrationId":"` + tc.regID + `"}`}, tc.creds...)...); err != nil {
			t.Fatalf("mosquitto_pub: %v", err)
		}
		for i := 0; ; i++ {
			if _, err := e.store.GetIdentity(t.Context(), tc.regID); err == nil {
				break
			} else if i > 3000 { // 30 s at least
				t.Fatalf("mosquitto_pub's registration of %s: %v", tc.regID, err)
			}
			time.Sleep(10 * time.Millisecond) // until the acknowledged request is carried out
		}
		// mosquitto_rr: register (the registration mosquitto_pub made) and
		// poll its operation.
		topic, body := rr(tc.regID, tc.creds, mqttRegisterTopic+"rr1", "rr1", `{"registrationId":"`+tc.regID+`"}`)
		st, _ := body["registrationState"].(map[string]any)
		if topic != "$dps/registrations/res/200/?$rid=rr1" || body["status"] != "assigned" || st["assignedHub"] != "mosq-shard.hubs.example.com" {
			t.Fatalf("%s register: %s %v", tc.regID, topic, body)
		}
		if x, _ := st["x509"].(map[string]any); tc.group != "" && x["enrollmentGroupId"] != tc.group {
			t.Fatalf("%s: %v", tc.regID, st)
		}
		opID := body["operationId"].(string)
		topic, body = rr(tc.regID, tc.creds, mqttPollTopic+"rr2&operationId="+opID, "rr2", " ")
		if topic != "$dps/registrations/res/200/?$rid=rr2" || body["operationId"] != opID || body["status"] != "assigned" {
			t.Fatalf("%s poll: %s %v", tc.regID, topic, body)
		}
	}

	// Refusals: a wrong SAS at CONNACK; a subscription outside DPS's.
	out, err := run("mosquitto_pub", "-i", "mosq-sym", "-u", mqttUsername("mosq-sym"), "-P", mqttSAS("mosq-sym", bytes.Repeat([]byte{1}, 32)), "-t", mqttRegisterTopic+"x", "-m", "{}")
	if err == nil || !strings.Contains(strings.ToLower(out), "not authori") {
		t.Fatalf("wrong password: %v %s", err, out)
	}
	out, err = run("mosquitto_sub", "-i", "mosq-sym", "-u", mqttUsername("mosq-sym"), "-P", mqttSAS("mosq-sym", key), "-t", "#", "-C", "1", "-W", "30")
	if !strings.Contains(out, "All subscription requests were denied") {
		t.Fatalf("subscription to #: %v %s", err, out)
	}
}

// A device that goes away mid-operation leaves no partial state: one that
// got 202 assigning and dropped its connection polls its operation from a
// new one; one that dropped right after its PUBACK (its request is carried
// out, the answer goes nowhere) registers again to read it. Every
// registration and identity exist together or not at all.
func TestMQTTDisconnectMidOperation(t *testing.T) {
	release := make(chan struct{})
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte(`{"iotHubHostName":"drop-shard.hubs.example.com"}`))
	}))
	defer hook.Close()
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	e := startWith(t, options{webhooks: hook.Client(), webhookBudget: 100 * time.Millisecond})
	e.createShard("drop-shard", 1)
	g, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "mqtt-drop",
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
		Allocation:      &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Webhook: &pb.Webhook{Url: hook.URL, TimeoutSeconds: 20}}}})
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(id string) []byte { return symkey.DeriveDeviceKey(g.GetSymmetricKey().GetPrimaryKey(), id) }
	consistent := func(id string) bool {
		t.Helper()
		_, errReg := e.store.GetRegistration(context.Background(), id)
		_, errID := e.store.GetIdentity(context.Background(), id)
		if (errReg == nil) != (errID == nil) {
			t.Fatalf("partial state for %s: registration %v, identity %v", id, errReg, errID)
		}
		return errReg == nil
	}

	// One gets 202 assigning, then its connection drops.
	a, err := e.mqttConnect("drop-a", keyOf("drop-a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := a.register(`{"registrationId":"drop-a"}`)
	opID, _ := ans.body["operationId"].(string)
	if err != nil || ans.status != http.StatusAccepted || !strings.HasPrefix(opID, "0.assigning.") {
		t.Fatalf("register: %v %d %s", err, ans.status, ans.raw)
	}
	a.conn.Close()
	// The other drops right after its PUBACK, before any answer.
	b, err := e.mqttConnect("drop-b", keyOf("drop-b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.id++
	if err := b.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: b.id, TopicName: mqttRegisterTopic + "1", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if ack, err := b.read(); err != nil || ack.FixedHeader.Type != packets.Puback {
		t.Fatalf("PUBACK: %v", err)
	}
	b.conn.Close()
	if consistent("drop-a") || consistent("drop-b") {
		t.Fatal("registered before the webhook decided")
	}
	open()

	// drop-a reconnects and polls its operation to the decision.
	a, err = e.mqttConnect("drop-a", keyOf("drop-a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	for i := 0; ; i++ {
		p, err := a.poll(opID)
		if err != nil {
			t.Fatal(err)
		}
		if p.status == http.StatusOK && p.body["status"] == "assigned" {
			break
		}
		if p.status != http.StatusAccepted || i > 400 {
			t.Fatalf("poll %d: %d %s", i, p.status, p.raw)
		}
		time.Sleep(50 * time.Millisecond) // between polls, until the background decision lands
	}
	if !consistent("drop-a") {
		t.Fatal("drop-a: assigned but not registered")
	}
	// drop-b registers again (and polls if its first request is still
	// being decided).
	b, err = e.mqttConnect("drop-b", keyOf("drop-b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	ans, err = b.register(`{}`)
	for i := 0; err == nil && ans.status == http.StatusAccepted; i++ {
		if i > 400 {
			t.Fatalf("drop-b still assigning: %s", ans.raw)
		}
		time.Sleep(50 * time.Millisecond) // between polls
		ans, err = b.poll(ans.body["operationId"].(string))
	}
	if err != nil || ans.status != http.StatusOK || ans.body["status"] != "assigned" {
		t.Fatalf("drop-b: %v %d %s", err, ans.status, ans.raw)
	}
	if !consistent("drop-b") {
		t.Fatal("drop-b: assigned but not registered")
	}

	// The operations are the HTTPS API's: drop-a's, polled over HTTPS; one
	// registered over HTTPS, polled over MQTT.
	status, _, raw := e.dpsCall(http.MethodGet, "/"+idScope+"/registrations/drop-a/operations/"+url.PathEscape(opID), mqttSAS("drop-a", keyOf("drop-a")), "", nil)
	if status != http.StatusOK || !strings.Contains(string(raw), `"status":"assigned"`) {
		t.Fatalf("drop-a's operation over HTTPS: %d %s", status, raw)
	}
	status, _, raw = e.dpsCall(http.MethodPut, "/"+idScope+"/registrations/drop-c/register", mqttSAS("drop-c", keyOf("drop-c")), `{"registrationId":"drop-c"}`, nil)
	var op struct {
		OperationID string `json:"operationId"`
	}
	if err := json.Unmarshal(raw, &op); err != nil || status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("drop-c over HTTPS: %d %s", status, raw)
	}
	c, err := e.mqttConnect("drop-c", keyOf("drop-c"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if p, err := c.poll(op.OperationID); err != nil || p.status != http.StatusOK && p.status != http.StatusAccepted || p.body["operationId"] == nil {
		t.Fatalf("drop-c's operation over MQTT: %v %d %s", err, p.status, p.raw)
	}
}

// TestMQTTHerd registers a herd of MQTT devices, each on a fresh TLS
// connection (full handshake, CONNECT, SUBSCRIBE, register, DISCONNECT),
// many at once: every one succeeds. (The load tool runs the 10,000.)
func TestMQTTHerd(t *testing.T) {
	devices, concurrency := 2000, 64
	if testing.Short() {
		devices = 500
	}
	e := start(t)
	e.createShard("herd-shard", 1)
	g, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "mqtt-herd",
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY}})
	if err != nil {
		t.Fatal(err)
	}
	groupKey := g.GetSymmetricKey().GetPrimaryKey()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // bounds the run; the herd stops with it
	defer cancel()
	var ok atomic.Int64
	var mu sync.Mutex
	var failures []string
	next := make(chan int)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id := "herd-" + strconv.Itoa(i)
				err := func() error {
					// No session cache: every device does a full handshake.
					cfg := e.clientTLS(nil)
					d, err := e.mqttConnect(id, symkey.DeriveDeviceKey(groupKey, id), cfg)
					if err != nil {
						return err
					}
					defer d.close()
					a, err := d.register(`{"registrationId":"` + id + `"}`)
					if err != nil {
						return err
					}
					if a.status != http.StatusOK || a.body["status"] != "assigned" {
						return errors.New(a.raw)
					}
					return nil
				}()
				if err != nil {
					mu.Lock()
					failures = append(failures, id+": "+err.Error())
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	start := time.Now()
feed:
	for i := range devices {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	t.Logf("%d MQTT devices registered in %s, %d at a time, each on a fresh TLS connection", ok.Load(), time.Since(start).Round(time.Millisecond), concurrency)
	if int(ok.Load()) != devices || len(failures) > 0 {
		if len(failures) > 5 {
			failures = failures[:5]
		}
		t.Fatalf("%d of %d registered; first failures: %v", ok.Load(), devices, failures)
	}
	if _, err := e.store.GetIdentity(t.Context(), "herd-"+strconv.Itoa(devices-1)); err != nil {
		t.Fatal(err)
	}
}
