package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/zerotouch/zerotouch/internal/pki"
)

// DPS's MQTT topics (dps-protocol.md §3).
const (
	mqttRegister = "$dps/registrations/PUT/iotdps-register/?$rid="
	mqttAnswers  = "$dps/registrations/res/#"
	// ceilingScope is the ID scope a ceiling CONNECT names: not the
	// server's, so the server answers CONNACK before any attestation.
	ceilingScope = "bench-ceiling"
)

// mqttTimeout bounds one device's exchange (a hang guard).
const mqttTimeout = 30 * time.Second

// mqttConn is a bare MQTT 3.1.1 device connection (mochi's packet codec).
type mqttConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (m *mqttConn) send(pk packets.Packet) error {
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
	_, err = m.conn.Write(buf.Bytes())
	return err
}

func (m *mqttConn) read(want byte) (packets.Packet, error) {
	b, err := m.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	var fh packets.FixedHeader
	if err := fh.Decode(b); err != nil {
		return packets.Packet{}, err
	}
	if fh.Remaining, _, err = packets.DecodeLength(m.r); err != nil {
		return packets.Packet{}, err
	}
	body := make([]byte, fh.Remaining)
	if _, err := io.ReadFull(m.r, body); err != nil {
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
	}
	if err == nil && fh.Type != want {
		err = fmt.Errorf("MQTT packet type %d, want %d", fh.Type, want)
	}
	return pk, err
}

// dialMQTT opens a fresh TLS connection (a full handshake) and sends
// CONNECT as regID in scope, with password if any; it returns the
// CONNACK code.
func (c *Config) dialMQTT(ctx context.Context, tc *tls.Config, scope, regID, password string) (*mqttConn, byte, error) {
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", pickAddr(c.MQTTAddr))
	if err != nil {
		return nil, 0, err
	}
	conn := tls.Client(raw, tc)
	_ = conn.SetDeadline(time.Now().Add(mqttTimeout))
	m := &mqttConn{conn: conn, r: bufio.NewReader(conn)}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 180, ClientIdentifier: regID,
			UsernameFlag: true, Username: []byte(scope + "/registrations/" + regID + "/api-version=2019-03-31&ClientVersion=zerotouch-bench")}}
	if password != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(password)
	}
	if err := m.send(pk); err != nil {
		conn.Close()
		return nil, 0, err
	}
	ack, err := m.read(packets.Connack)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	return m, ack.ReasonCode, nil
}

// mqttOne is device i over DPS's MQTT protocol on a fresh TLS connection.
// The ceiling is the TLS handshake and CONNECT/CONNACK: the CONNECT names
// another ID scope, so it is answered before any attestation. A
// registration is the handshake, CONNECT with the device's credential
// (checked there), SUBSCRIBE, the register request and its answer.
func (c *Config) mqttOne(ctx context.Context, f *Fleet, i int) error {
	var dev *pki.Issued
	if len(f.Devices) > 0 {
		dev = f.Devices[i]
	}
	regID, _, token := c.identity(f, i, func(id string) string { return c.IDScope + "/registrations/" + id })
	scope := c.IDScope
	if c.Mode == "ceiling" {
		scope, token = ceilingScope, ""
	}
	m, code, err := c.dialMQTT(ctx, c.deviceTLS(f, dev), scope, regID, token)
	if err != nil {
		return err
	}
	defer m.conn.Close()
	if c.Mode == "ceiling" {
		if code != 5 {
			return fmt.Errorf("ceiling CONNACK %d, want 5 (not authorized)", code)
		}
		return nil
	}
	if code != 0 {
		return &ReasonError{Reason: "CONNACK_" + strconv.Itoa(int(code)), Msg: "the MQTT connection was refused"}
	}
	if err := m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: mqttAnswers, Qos: 1}}}); err != nil {
		return err
	}
	if _, err := m.read(packets.Suback); err != nil {
		return err
	}
	if err := m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 2,
		TopicName: mqttRegister + "1", Payload: []byte(`{"registrationId":"` + regID + `"}`)}); err != nil {
		return err
	}
	if _, err := m.read(packets.Puback); err != nil {
		return err
	}
	answer, err := m.read(packets.Publish)
	if err != nil {
		return err
	}
	_ = m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	rest, _ := strings.CutPrefix(answer.TopicName, "$dps/registrations/res/")
	status, _, _ := strings.Cut(rest, "/")
	n, _ := strconv.Atoi(status)
	if n != 200 {
		return &httpError{status: n, body: answer.Payload}
	}
	var body struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(answer.Payload, &body) != nil || body.Status != "assigned" {
		return fmt.Errorf("DPS over MQTT answered %s", answer.Payload)
	}
	return nil
}

// MQTTIdle opens n idle MQTT connections (TLS, CONNECT without a
// credential, SUBSCRIBE: a device between requests), and returns the
// servers' resident memory per connection: the growth of VmRSS, summed
// over ServerPIDs, divided by n. The connections are closed on return.
func MQTTIdle(ctx context.Context, c *Config, n int) (float64, error) {
	if len(c.ServerPIDs) == 0 || n < 1 {
		return 0, fmt.Errorf("bench: idle connections need server PIDs and n >= 1")
	}
	before, err := processRSS(c.ServerPIDs)
	if err != nil {
		return 0, err
	}
	conns := make([]*mqttConn, 0, n)
	defer func() {
		for _, m := range conns {
			m.conn.Close()
		}
	}()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range n {
		m, code, err := c.dialMQTT(ctx, c.DeviceTLS(), c.IDScope, fmt.Sprintf("bench-idle-%s-%07d", run, i), "")
		if err == nil && code != 0 {
			m.conn.Close()
			err = fmt.Errorf("CONNACK %d", code)
		}
		if err == nil {
			conns = append(conns, m)
			err = m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
				Filters: packets.Subscriptions{{Filter: mqttAnswers, Qos: 1}}})
		}
		if err == nil {
			_, err = m.read(packets.Suback)
		}
		if err != nil {
			return 0, fmt.Errorf("bench: idle connection %d: %w", i, err)
		}
		_ = m.conn.SetDeadline(time.Time{}) // idle from here on
	}
	after, err := processRSS(c.ServerPIDs)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}

// processRSS sums processes' resident memory (VmRSS) in bytes.
func processRSS(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, fmt.Errorf("server memory: %w", err)
		}
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("server memory: %q", line)
				}
				sum += kb << 10
			}
		}
	}
	return sum, nil
}
