package mqtt

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
)

// testClient is a bare MQTT 3.1.1 device for the tests: mochi's packet
// codec on a real TLS (or WebSocket) connection, so that the tests can
// send what well-behaved SDKs never do.
type testClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	id   uint16
}

// readGuard keeps a broken test from hanging: no read waits longer.
const readGuard = 30 * time.Second

func dialTLS(t *testing.T, addr string, cfg *tls.Config) *testClient {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func dialWS(t *testing.T, wsURL string, cfg *tls.Config) *testClient {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: cfg, Subprotocols: []string{"mqtt"}, HandshakeTimeout: readGuard}
	ws, resp, err := d.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt", got)
	}
	c := &wsConn{Conn: ws.NetConn(), ws: ws}
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *testClient) send(pk packets.Packet) {
	c.t.Helper()
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = 4
	}
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		c.t.Fatalf("the test client does not send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads the next packet; err is the connection's end.
func (c *testClient) read() (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(readGuard))
	var fh packets.FixedHeader
	b, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	if err := fh.Decode(b); err != nil {
		return packets.Packet{}, err
	}
	if fh.Remaining, _, err = packets.DecodeLength(c.r); err != nil {
		return packets.Packet{}, err
	}
	body := make([]byte, fh.Remaining)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 4}
	switch fh.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Pingresp:
	default:
		err = errors.New("unexpected packet type " + strconv.Itoa(int(fh.Type)))
	}
	return pk, err
}

func (c *testClient) expect(typ byte) packets.Packet {
	c.t.Helper()
	pk, err := c.read()
	if err != nil {
		c.t.Fatalf("waiting for packet type %d: %v", typ, err)
	}
	if pk.FixedHeader.Type != typ {
		c.t.Fatalf("got packet type %d (%+v), want %d", pk.FixedHeader.Type, pk, typ)
	}
	return pk
}

// closed asserts that the server ends the connection without sending
// anything more.
func (c *testClient) closed() {
	c.t.Helper()
	pk, err := c.read()
	if err == nil {
		c.t.Fatalf("got packet type %d, want the connection closed", pk.FixedHeader.Type)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("the connection is still open after %s", readGuard)
	}
}

type connectOpts struct {
	clientID, username, password string
	keepalive                    uint16
	version                      byte
	will                         bool
}

// connect sends CONNECT and returns CONNACK's return code.
func (c *testClient) connect(o connectOpts) byte {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: o.version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: o.keepalive, ClientIdentifier: o.clientID}}
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = 4
	}
	if pk.ProtocolVersion == 3 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	if o.username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.username)
	}
	if o.password != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(o.password)
	}
	if o.will {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillRetain = true, responsePrefix+"200/?$rid=will", []byte(`{"will":1}`), true
	}
	c.send(pk)
	pk, err := c.read()
	if err != nil {
		c.t.Fatalf("waiting for CONNACK: %v", err)
	}
	if pk.FixedHeader.Type != packets.Connack {
		c.t.Fatalf("got packet type %d, want CONNACK", pk.FixedHeader.Type)
	}
	return pk.ReasonCode
}

// subscribe subscribes to filter at QoS 1 and returns SUBACK's code.
func (c *testClient) subscribe(filter string) byte {
	c.t.Helper()
	c.id++
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: c.id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
	ack := c.expect(packets.Suback)
	if ack.PacketID != c.id || len(ack.ReasonCodes) != 1 {
		c.t.Fatalf("SUBACK %+v", ack)
	}
	return ack.ReasonCodes[0]
}

// publish publishes at QoS 1 and waits for its PUBACK (the answer comes
// after it).
func (c *testClient) publish(topic string, payload []byte) {
	c.t.Helper()
	c.id++
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: c.id, TopicName: topic, Payload: payload})
	if ack := c.expect(packets.Puback); ack.PacketID != c.id {
		c.t.Fatalf("PUBACK for %d, want %d", ack.PacketID, c.id)
	}
}

// dpsAnswer is an answer as a device reads it.
type dpsAnswer struct {
	status     int
	rid        string
	retryAfter string
	body       map[string]any
	raw        string
}

func (a dpsAnswer) reason() string {
	info, _ := a.body["info"].(map[string]any)
	r, _ := info["reason"].(string)
	return r
}

func (a dpsAnswer) state() map[string]any {
	s, _ := a.body["registrationState"].(map[string]any)
	return s
}

// answer reads the next PUBLISH and parses it as Node's transport does:
// the topic against ^\$dps/registrations/res/(.*)/\?(.*)$, the payload as
// JSON.
func (c *testClient) answer() dpsAnswer {
	c.t.Helper()
	pk := c.expect(packets.Publish)
	rest, ok := strings.CutPrefix(pk.TopicName, responsePrefix)
	status, query, ok2 := strings.Cut(rest, "/?")
	if !ok || !ok2 {
		c.t.Fatalf("answer topic %q", pk.TopicName)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		c.t.Fatalf("answer topic %q: %v", pk.TopicName, err)
	}
	a := dpsAnswer{rid: q.Get("$rid"), retryAfter: q.Get("retry-after"), raw: string(pk.Payload)}
	if a.status, err = strconv.Atoi(status); err != nil {
		c.t.Fatalf("answer topic %q: status %v", pk.TopicName, err)
	}
	if err := json.Unmarshal(pk.Payload, &a.body); err != nil {
		c.t.Fatalf("answer body is not JSON: %q", pk.Payload)
	}
	return a
}

// register publishes a register request and returns its answer.
func (c *testClient) register(rid string, body any) dpsAnswer {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	c.publish(registerTopic+"?$rid="+rid, raw)
	a := c.answer()
	if a.rid != rid {
		c.t.Fatalf("answer for rid %q, want %q", a.rid, rid)
	}
	return a
}

// poll publishes an operation status request and returns its answer.
func (c *testClient) poll(rid, opID string) dpsAnswer {
	c.t.Helper()
	c.publish(pollTopic+"?$rid="+rid+"&operationId="+url.QueryEscape(opID), []byte(" "))
	a := c.answer()
	if a.rid != rid {
		c.t.Fatalf("answer for rid %q, want %q", a.rid, rid)
	}
	return a
}
