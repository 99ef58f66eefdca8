package mqtt

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every registration kind DPS offers over MQTT, over TLS and over
// WebSockets: symmetric key (individual and group), X.509 (group), each
// registered and then polled, as the SDKs do.
func TestRegister(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, transport := range []string{"tls", "ws"} {
		t.Run(transport, func(t *testing.T) {
			f.t = t
			// Symmetric key, individual enrollment, with a payload.
			c := f.connectSAS(transport, "sym-1", f.symKey)
			a := c.register("1", map[string]any{"registrationId": "sym-1", "payload": map[string]int{"a": 1}})
			st := a.state()
			if a.status != http.StatusOK || a.body["status"] != "assigned" || st["registrationId"] != "sym-1" || st["deviceId"] != "sym-1" ||
				!strings.HasSuffix(st["assignedHub"].(string), ".example.com") || st["symmetricKey"] == nil {
				t.Fatalf("register: %d %s", a.status, a.raw)
			}
			opID := a.body["operationId"].(string)
			if p := c.poll("2", opID); p.status != http.StatusOK || p.body["operationId"] != opID || p.body["status"] != "assigned" {
				t.Fatalf("poll: %d %s", p.status, p.raw)
			}

			// Symmetric key, enrollment group (a derived key).
			id := "grp-" + transport
			c = f.connectSAS(transport, id, symkey.DeriveDeviceKey(f.grpKey, id))
			a = c.register("a1b2", map[string]any{"registrationId": id})
			if sk, _ := a.state()["symmetricKey"].(map[string]any); a.status != http.StatusOK || sk["enrollmentGroupId"] != "sym" {
				t.Fatalf("group register: %d %s", a.status, a.raw)
			}

			// X.509, enrollment group: the certificate from the TLS
			// handshake, no password.
			id = "x509-" + transport
			dev, err := pki.NewDevice(id, f.inter, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			c = f.dial(transport, f.clientTLS(dev, f.inter.Cert))
			if code := c.connect(connectOpts{clientID: id, username: usernameOf(id), keepalive: 60}); code != 0 {
				t.Fatalf("X.509 CONNACK %d", code)
			}
			c.subscribe(responseFilter)
			a = c.register("x", map[string]any{"registrationId": id})
			if x, _ := a.state()["x509"].(map[string]any); a.status != http.StatusOK || x["enrollmentGroupId"] != "acme" {
				t.Fatalf("X.509 register: %d %s", a.status, a.raw)
			}
			// Registering again is answered with the same registration.
			if again := c.register("y", nil); again.status != http.StatusOK || again.body["operationId"] != a.body["operationId"] {
				t.Fatalf("again: %d %s", again.status, again.raw)
			}
		})
	}
	f.t = t
	f.settled() // the subtests' connections are closed
}

// Bad credentials and malformed CONNECTs get a CONNACK refusal, then the
// connection ends: never a socket closed without CONNACK. Nothing of them
// stays in the broker.
func TestConnectRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	stranger, _ := pki.NewCA("Stranger", nil, time.Now(), time.Hour)
	strangerDev, _ := pki.NewDevice("stranger-dev", stranger, time.Now(), time.Hour)
	acmeDev, _ := pki.NewDevice("acme-dev", f.inter, time.Now(), time.Hour)
	const (
		refusedProtocol   = 1
		refusedIdentifier = 2
		notAuthorized     = 5
		v5Unsupported     = 0x84
	)
	good := sas("sym-1", f.symKey, time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name string
		dev  *pki.Issued
		opts connectOpts
		want byte
	}{
		{"wrong key", nil, connectOpts{clientID: "sym-1", username: usernameOf("sym-1"), password: sas("sym-1", bytes.Repeat([]byte{7}, 32), time.Now().Add(time.Hour))}, notAuthorized},
		{"expired token", nil, connectOpts{clientID: "sym-1", username: usernameOf("sym-1"), password: sas("sym-1", f.symKey, time.Now().Add(-time.Hour))}, notAuthorized},
		{"not a token", nil, connectOpts{clientID: "sym-1", username: usernameOf("sym-1"), password: "hunter2"}, notAuthorized},
		{"unknown device", nil, connectOpts{clientID: "nobody", username: usernameOf("nobody"), password: sas("nobody", f.symKey, time.Now().Add(time.Hour))}, notAuthorized},
		{"another ID scope", nil, connectOpts{clientID: "sym-1", username: "0neOTHER/registrations/sym-1/api-version=2019-03-31", password: good}, notAuthorized},
		{"no username", nil, connectOpts{clientID: "sym-1"}, notAuthorized},
		{"username not DPS's", nil, connectOpts{clientID: "sym-1", username: "sym-1", password: good}, notAuthorized},
		{"client ID is not the registration ID", nil, connectOpts{clientID: "someone-else", username: usernameOf("sym-1"), password: good}, refusedIdentifier},
		{"empty client ID", nil, connectOpts{username: usernameOf("sym-1"), password: good}, refusedIdentifier},
		{"invalid registration ID", nil, connectOpts{clientID: "bad id!", username: usernameOf("bad id!"), password: good}, refusedIdentifier},
		{"MQTT 3.1", nil, connectOpts{version: 3, clientID: "sym-1", username: usernameOf("sym-1"), password: good}, refusedProtocol},
		{"MQTT 5", nil, connectOpts{version: 5, clientID: "sym-1", username: usernameOf("sym-1"), password: good}, v5Unsupported},
		{"X.509 of an unknown CA", strangerDev, connectOpts{clientID: "stranger-dev", username: usernameOf("stranger-dev")}, notAuthorized},
		{"X.509 for another ID", acmeDev, connectOpts{clientID: "sym-2", username: usernameOf("sym-2")}, notAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			var chain []*x509.Certificate
			if tc.dev == acmeDev {
				chain = append(chain, f.inter.Cert)
			}
			c := f.dial("tls", f.clientTLS(tc.dev, chain...))
			if got := c.connect(tc.opts); got != tc.want {
				t.Fatalf("CONNACK %#x, want %#x", got, tc.want)
			}
			c.closed()
		})
	}
	if f.registered("sym-1") || f.registered("nobody") || f.registered("stranger-dev") {
		t.Fatal("a refused CONNECT registered a device")
	}
	f.t = t
	f.settled()
}

// Requests of connected devices that are refused get res/4xx with the
// reason (or 200 "disabled", as DPS answers a disabled enrollment); the
// connection stays up.
func TestRequestRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})

	// A disabled enrollment authenticates, and its registration is a
	// completed operation with status "disabled".
	c := f.connectSAS("tls", "sym-off", f.symKey)
	if a := c.register("1", map[string]any{"registrationId": "sym-off"}); a.status != http.StatusOK || a.body["status"] != "disabled" || a.state()["errorCode"] != 401002.0 {
		t.Fatalf("disabled: %d %s", a.status, a.raw)
	}

	c = f.connectSAS("tls", "sym-1", f.symKey)
	for _, tc := range []struct {
		name   string
		topic  string
		body   string
		status int
		reason string
		rid    string
	}{
		{"another registration ID in the body", registerTopic + "?$rid=1", `{"registrationId":"sym-2"}`, 400, "REGISTRATION_ID_INVALID", "1"},
		{"not JSON", registerTopic + "?$rid=2", `{"registrationId":`, 400, "FIELD_INVALID", "2"},
		{"TPM", registerTopic + "?$rid=3", `{"registrationId":"sym-1","tpm":{"endorsementKey":"AAAA","storageRootKey":"AAAA"}}`, 400, "ATTESTATION_UNSUPPORTED", "3"},
		{"payload over 4 KiB", registerTopic + "?$rid=4", `{"payload":"` + strings.Repeat("x", 5000) + `"}`, 400, "FIELD_INVALID", "4"},
		{"unknown operation", topicPrefix + "GET/iotdps-nothing/?$rid=5", " ", 404, "RESOURCE_NOT_FOUND", "5"},
		{"poll of an unknown operation", pollTopic + "?$rid=6&operationId=0.nothing", " ", 404, "RESOURCE_NOT_FOUND", "6"},
		{"no $rid", registerTopic, "{}", 400, "FIELD_INVALID", ""},
		{"a $rid unsafe in a topic", registerTopic + "?$rid=a%2Fb", "{}", 400, "FIELD_INVALID", ""},
	} {
		c.publish(tc.topic, []byte(tc.body))
		a := c.answer()
		if a.status != tc.status || a.reason() != tc.reason || a.rid != tc.rid || a.body["trackingId"] == "" {
			t.Errorf("%s: %d %s (rid %q), want %d %s", tc.name, a.status, a.raw, a.rid, tc.status, tc.reason)
		}
	}
	if f.registered("sym-1") {
		t.Fatal("a refused request registered the device")
	}
	if a := c.register("7", nil); a.status != http.StatusOK {
		t.Fatalf("the connection does not serve after refusals: %d %s", a.status, a.raw)
	}

	// A device with no credential connects, and is told on its first
	// request: TPM is HTTPS-only; anything else needs a credential.
	c = f.dial("tls", f.clientTLS(nil))
	if code := c.connect(connectOpts{clientID: "tpm-dev", username: usernameOf("tpm-dev"), keepalive: 60}); code != 0 {
		t.Fatalf("CONNACK %d", code)
	}
	c.subscribe(responseFilter)
	a := c.register("1", map[string]any{"registrationId": "tpm-dev", "tpm": map[string]string{"endorsementKey": "AAAA", "storageRootKey": "AAAA"}})
	if a.status != 400 || a.reason() != "ATTESTATION_UNSUPPORTED" || !strings.Contains(a.body["message"].(string), "HTTPS-only") {
		t.Fatalf("TPM: %d %s", a.status, a.raw)
	}
	if a := c.register("2", nil); a.status != 401 || a.reason() != "CERTIFICATE_MISSING" || a.body["message"] != "registration refused: CERTIFICATE_MISSING" {
		t.Fatalf("no credential: %d %s", a.status, a.raw)
	}
}

// Nothing a device publishes reaches another client: only DPS's response
// filter can be subscribed to, answers go to the requesting connection
// only, publishes are never forwarded or retained, wills are dropped.
func TestSealed(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	a := f.connectSAS("tls", "grp-a", symkey.DeriveDeviceKey(f.grpKey, "grp-a"))
	for _, filter := range []string{"#", "+/registrations/res/#", "$dps/#", "$dps/registrations/+/#", "$SYS/#", "$share/g/" + responseFilter, registerTopic + "?$rid=1", "devices/grp-a/#"} {
		if code := a.subscribe(filter); code != 0x80 {
			t.Errorf("SUBSCRIBE %q: %#x, want 0x80 (refused)", filter, code)
		}
	}

	// Narrower filters within DPS's responses are allowed (they deliver
	// nothing either).
	for _, filter := range []string{responsePrefix + "+/#", responsePrefix + "200/?$rid=a1"} {
		if code := a.subscribe(filter); code != 1 {
			t.Errorf("SUBSCRIBE %q: %#x, want 1", filter, code)
		}
	}

	// Another device, with a will, registers; publishes on a response
	// topic (QoS 0: dropped) and a retained request.
	b := f.dial("tls", f.clientTLS(nil))
	if code := b.connect(connectOpts{clientID: "grp-b", username: usernameOf("grp-b"), password: sas("grp-b", symkey.DeriveDeviceKey(f.grpKey, "grp-b"), time.Now().Add(time.Hour)),
		keepalive: 60, will: true}); code != 0 {
		t.Fatalf("CONNACK with a will: %d", code)
	}
	b.subscribe(responseFilter)
	if r := b.register("b1", nil); r.status != http.StatusOK {
		t.Fatalf("b: %d %s", r.status, r.raw)
	}
	b.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: responsePrefix + "200/?$rid=a1", Payload: []byte(`{"forged":true}`)})
	b.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true}, PacketID: 99, TopicName: registerTopic + "?$rid=b2", Payload: []byte(`{}`)})
	b.expect(packets.Puback)
	b.answer()
	b.conn.Close() // gone without DISCONNECT: a will would be sent now

	// a's first message is the answer to its own request.
	if r := a.register("a1", nil); r.status != http.StatusOK || r.state()["registrationId"] != "grp-a" {
		t.Fatalf("a: %d %s", r.status, r.raw)
	}
	// A new subscriber gets nothing retained.
	c := f.connectSAS("ws", "grp-c", symkey.DeriveDeviceKey(f.grpKey, "grp-c"))
	if r := c.register("c1", nil); r.state()["registrationId"] != "grp-c" {
		t.Fatalf("c: %d %s", r.status, r.raw)
	}

	// A QoS 1 publish outside DPS's topics is refused the MQTT 3.1.1 way:
	// the connection closes.
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7, TopicName: "devices/grp-c/messages/events/", Payload: []byte("hi")})
	c.closed()
}

// Throttling is res/429 with retry-after, on a connection that stays up.
func TestThrottled(t *testing.T) {
	limiter := &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now, PerIP: ratelimit.Rule{Limit: 2, Window: time.Hour}}
	f := newFixture(t, fixtureOptions{limiter: limiter})
	c := f.connectSAS("tls", "sym-1", f.symKey) // the CONNECT's authentication counts
	if a := c.register("1", nil); a.status != http.StatusOK {
		t.Fatalf("first: %d %s", a.status, a.raw)
	}
	a := c.register("2", nil)
	if a.status != http.StatusTooManyRequests || a.reason() != "RATE_LIMITED" || a.retryAfter == "" {
		t.Fatalf("throttled: %d %s retry-after %q", a.status, a.raw, a.retryAfter)
	}
	if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 {
		t.Fatalf("retry-after %q", a.retryAfter)
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.expect(packets.Pingresp)
	// A throttled CONNECT is let in: the device learns of the limit on
	// its request, where it can retry.
	d := f.connectSAS("tls", "sym-1", f.symKey)
	if a := d.register("3", nil); a.status != http.StatusTooManyRequests {
		t.Fatalf("after a throttled CONNECT: %d %s", a.status, a.raw)
	}
}

// blockingWebhook is a custom allocation webhook that answers once
// released.
func blockingWebhook(t *testing.T) (*httptest.Server, func()) {
	release := make(chan struct{})
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte(`{"iotHubHostName":"shard-b.example.com","payload":{"decidedBy":"webhook"}}`))
	}))
	var released bool
	open := func() {
		if !released {
			released = true
			close(release)
		}
	}
	t.Cleanup(func() { open(); hook.Close() })
	return hook, open
}

// A request over the connection's in-flight limit is answered 429 at once;
// the one in progress is answered when it is done.
func TestInflightLimit(t *testing.T) {
	hook, release := blockingWebhook(t)
	f := newFixture(t, fixtureOptions{webhook: hook, limits: Limits{MaxInflight: 1}})
	c := f.connectSAS("tls", "slow-1", symkey.DeriveDeviceKey(f.slowKey, "slow-1"))
	c.publish(registerTopic+"?$rid=1", []byte(`{}`)) // waits for the webhook
	c.publish(registerTopic+"?$rid=2", []byte(`{}`))
	if a := c.answer(); a.rid != "2" || a.status != http.StatusTooManyRequests || a.retryAfter != "1" {
		t.Fatalf("over the limit: rid %s %d %s retry-after %q", a.rid, a.status, a.raw, a.retryAfter)
	}
	release()
	if a := c.answer(); a.rid != "1" || a.status != http.StatusOK || a.state()["assignedHub"] != "shard-b.example.com" {
		t.Fatalf("in progress: rid %s %d %s", a.rid, a.status, a.raw)
	}
}

// A slow custom allocation webhook: 202 assigning with retry-after, the
// device polls the operation to its decision, across a reconnect: a
// device that goes away mid-operation leaves no partial state.
func TestAssigningAndReconnect(t *testing.T) {
	hook, release := blockingWebhook(t)
	f := newFixture(t, fixtureOptions{webhook: hook, budget: 100 * time.Millisecond})
	key := symkey.DeriveDeviceKey(f.slowKey, "slow-2")
	c := f.connectSAS("tls", "slow-2", key)
	a := c.register("1", map[string]any{"registrationId": "slow-2", "payload": map[string]string{"model": "x"}})
	opID, _ := a.body["operationId"].(string)
	if a.status != http.StatusAccepted || a.body["status"] != "assigning" || !strings.HasPrefix(opID, "0.assigning.") || a.retryAfter == "" {
		t.Fatalf("register: %d %s retry-after %q", a.status, a.raw, a.retryAfter)
	}
	if p := c.poll("2", opID); p.status != http.StatusAccepted || p.retryAfter != "1" {
		t.Fatalf("poll while deciding: %d %s", p.status, p.raw)
	}
	c.conn.Close() // gone mid-operation, without DISCONNECT
	if f.registered("slow-2") {
		t.Fatal("registered before the webhook decided")
	}
	release()
	d := f.connectSAS("ws", "slow-2", key)
	for i := 0; ; i++ {
		p := d.poll("p"+strconv.Itoa(i), opID)
		if p.status == http.StatusOK {
			if p.body["status"] != "assigned" || p.state()["assignedHub"] != "shard-b.example.com" {
				t.Fatalf("decided: %s", p.raw)
			}
			var payload map[string]string
			raw, _ := json.Marshal(p.state()["payload"])
			if json.Unmarshal(raw, &payload); payload["decidedBy"] != "webhook" {
				t.Fatalf("payload %s", raw)
			}
			break
		}
		if p.status != http.StatusAccepted || i > 200 {
			t.Fatalf("poll %d: %d %s", i, p.status, p.raw)
		}
		time.Sleep(50 * time.Millisecond) // between polls, until the background decision lands
	}
	if !f.registered("slow-2") {
		t.Fatal("not registered after the decision")
	}
}

// The connection limits: per source address (closed before the TLS
// handshake), packet size, idle time, the CONNECT deadline.
func TestLimits(t *testing.T) {
	f := newFixture(t, fixtureOptions{limits: Limits{MaxConnectionsPerIP: 2, MaxPacketBytes: 1024, IdleTimeout: 3 * time.Second, ConnectTimeout: 2 * time.Second}})
	first := f.connectSAS("tls", "sym-1", f.symKey)
	f.connectSAS("tls", "sym-1", f.symKey) // the same device twice: no takeover
	if _, err := tls.Dial("tcp", f.addr, f.clientTLS(nil)); err == nil {
		t.Fatal("a third connection from the address was served")
	}
	if resp, err := wsDialStatus(f, f.clientTLS(nil)); err == nil || resp != http.StatusServiceUnavailable {
		t.Fatalf("a third connection over WebSockets: %d %v", resp, err)
	}
	if a := first.register("1", nil); a.status != http.StatusOK {
		t.Fatalf("the first connection: %d %s", a.status, a.raw)
	}
	// A closed connection gives its place back.
	released := func() {
		t.Helper()
		for i := 0; f.srv.conns.open() > 1; i++ {
			if i > 3000 { // 30 s at least
				t.Fatal("a closed connection still counts")
			}
			time.Sleep(10 * time.Millisecond) // until the server sees the close
		}
	}
	first.conn.Close()
	released()

	big := f.connectSAS("tls", "sym-1", f.symKey)
	big.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1, TopicName: registerTopic + "?$rid=1", Payload: bytes.Repeat([]byte(" "), 2048)})
	big.closed()
	released()

	// A client that says keepalive 0 is still closed once idle.
	idle := f.dial("tls", f.clientTLS(nil))
	if code := idle.connect(connectOpts{clientID: "sym-1", username: usernameOf("sym-1"), password: sas("sym-1", f.symKey, time.Now().Add(time.Hour))}); code != 0 {
		t.Fatalf("CONNACK %d", code)
	}
	idle.closed()
	released()

	// A connection that never sends CONNECT is closed.
	silent := f.dial("tls", f.clientTLS(nil))
	silent.closed()
}

func wsDialStatus(f *fixture, cfg *tls.Config) (int, error) {
	d := websocket.Dialer{TLSClientConfig: cfg, Subprotocols: []string{"mqtt"}, HandshakeTimeout: readGuard}
	ws, resp, err := d.Dial(f.wsURL, nil)
	if err == nil {
		ws.Close()
	}
	if resp == nil {
		return 0, err
	}
	return resp.StatusCode, err
}

// MQTT over WebSockets needs the subprotocol mqtt.
func TestWebSocketNeedsMQTT(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	d := websocket.Dialer{TLSClientConfig: f.clientTLS(nil), Subprotocols: []string{"chat"}, HandshakeTimeout: readGuard}
	if _, resp, err := d.Dial(f.wsURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("without mqtt: %v %v", resp, err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: f.clientTLS(nil)}}).Get(strings.Replace(f.wsURL, "wss:", "https:", 1))
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Stopping the server ends its connections and its goroutines (goleak
// checks the rest), and answers nothing once stopped.
func TestShutdown(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.connectSAS("tls", "sym-1", f.symKey)
	w := f.connectSAS("ws", "sym-1", f.symKey)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	c.closed()
	w.closed()
	if _, err := net.DialTimeout("tcp", f.addr, time.Second); err == nil {
		t.Fatal("still listening")
	}
	if code, _ := wsDialStatus(f, f.clientTLS(nil)); code != http.StatusServiceUnavailable {
		t.Fatalf("WebSockets after the stop: %d", code)
	}
}
