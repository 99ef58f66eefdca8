package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
)

// hook seals the broker to DPS: it checks every CONNECT, allows only
// DPS's subscription and request topics, keeps every publish from
// reaching anyone, and hands requests to the server.
type hook struct {
	mochi.HookBase
	srv *Server
	// seq makes the connections' broker IDs unique.
	seq atomic.Uint64
}

// session is one authenticated connection: who it is and where from. It
// hangs on the connection (deviceConn.session), set before CONNACK and
// read only after.
type session struct {
	regID     string
	evidence  provisioning.Evidence // nil: the device sent no credential
	peer      string
	region    string
	transport provisioning.Transport
	// apiVersion is the CONNECT username's (a csr needs a recent one).
	apiVersion string
	inflight   atomic.Int32
}

func (h *hook) ID() string { return "zerotouch-dps" }

var provided = []byte{mochi.OnPacketRead, mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnPublished}

func (h *hook) Provides(b byte) bool { return bytes.IndexByte(provided, b) >= 0 }

// OnPacketRead drops a CONNECT's will before the broker reads it: the
// broker keeps no wills (a device's last words would reach nobody).
func (h *hook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Connect {
		pk.Connect.WillFlag, pk.Connect.WillRetain, pk.Connect.WillQos = false, false, 0
		pk.Connect.WillTopic, pk.Connect.WillPayload = "", nil
	}
	return pk, nil
}

// record puts a CONNECT refused before provisioning saw it in the
// failed-attempt log (and the refusal log line), under the registration ID
// the client claimed.
func (h *hook) record(dc *deviceConn, cl *mochi.Client, claimed string, err error) {
	if h.srv.cfg.Prov == nil {
		return
	}
	if u, perr := parseUsername(claimed); perr == nil {
		claimed = u.regID
	}
	h.srv.cfg.Prov.Refused(provisioning.Request{RegistrationID: claimed, Transport: dc.transport, Peer: cl.Net.Remote,
		RequestID: newRequestID()}, "connect", err)
}

// refuse answers CONNECT with a refusal and ends the connection (a
// CONNACK always comes first: a socket closed after CONNECT without one
// crashes the Node SDK).
func (h *hook) refuse(cl *mochi.Client, claimed string, code packets.Code, why string) error {
	h.srv.log.Info("mqtt connection refused", "peer", cl.Net.Remote, "client_id", cl.ID, "code", code.Reason, "why", why)
	if dc, ok := cl.Net.Conn.(*deviceConn); ok {
		h.record(dc, cl, claimed, fault.New(fault.InvalidArgument, fault.FieldInvalid, "%s", why))
	}
	if err := h.srv.broker.SendConnack(cl, code, false, nil); err != nil {
		return err
	}
	return code
}

// OnConnect checks what CONNECT says before credentials are looked at:
// MQTT 3.1.1, a client ID that is the username's registration ID. It
// takes away what the broker must not keep (a persistent session, an
// unbounded keepalive) and gives the client a broker ID of its own, so
// that no connection can take over another's session.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if _, ok := cl.Net.Conn.(*deviceConn); !ok {
		return h.refuse(cl, "", packets.ErrServerUnavailable, "not a device connection")
	}
	if pk.ProtocolVersion != 4 {
		return h.refuse(cl, pk.Connect.ClientIdentifier, packets.ErrUnsupportedProtocolVersion, fmt.Sprintf("MQTT protocol level %d; DPS speaks MQTT 3.1.1 (4)", pk.ProtocolVersion))
	}
	if u, err := parseUsername(string(pk.Connect.Username)); err == nil {
		if !strings.EqualFold(pk.Connect.ClientIdentifier, u.regID) {
			return h.refuse(cl, pk.Connect.ClientIdentifier, packets.ErrClientIdentifierNotValid, "the client ID is not the username's registration ID")
		}
		if enrollment.ValidateRegistrationID(u.regID) != nil {
			return h.refuse(cl, pk.Connect.ClientIdentifier, packets.ErrClientIdentifierNotValid, "the registration ID is not valid")
		}
	}
	cl.Properties.Clean = true
	if ka := h.srv.maxKeepalive(); cl.State.Keepalive == 0 || cl.State.Keepalive > ka {
		cl.State.Keepalive = ka
	}
	cl.ID = fmt.Sprintf("%s#%d", pk.Connect.ClientIdentifier, h.seq.Add(1))
	cl.Net.Conn.(*deviceConn).brokerID = cl.ID
	return nil
}

// OnConnectAuthenticate checks the username's ID scope and the
// credential: a SAS token as the password, else the TLS client
// certificate. Credentials that provisioning does not accept (kind
// Unauthenticated) are refused here with CONNACK "not authorized"; any
// other outcome (a disabled enrollment, a rate limit, a store outage) is
// the answer to the device's register request. A device with no
// credential at all is let in, to be told why on its first request (TPM
// is HTTPS-only; no credential).
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	dc := cl.Net.Conn.(*deviceConn) // OnConnect refused any other
	u, err := parseUsername(string(pk.Connect.Username))
	if err != nil || u.idScope != h.srv.cfg.IDScope {
		h.srv.log.Info("mqtt connection refused", "peer", cl.Net.Remote, "client_id", pk.Connect.ClientIdentifier,
			"code", "not authorized", "why", "the username is not {idScope}/registrations/{registrationId}/… of this ID scope")
		h.record(dc, cl, pk.Connect.ClientIdentifier, fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "the username is not of this ID scope"))
		return false
	}
	sess := &session{regID: u.regID, peer: cl.Net.Remote, transport: dc.transport, apiVersion: u.apiVersion}
	if h.srv.cfg.Locate != nil {
		sess.region = h.srv.cfg.Locate(cl.Net.Remote, dc.header)
	}
	switch certs := dc.peerCertificates(); {
	case len(pk.Connect.Password) > 0:
		sess.evidence = provisioning.SASToken{Token: string(pk.Connect.Password), Resource: h.srv.resource(u.regID)}
	case len(certs) > 0:
		sess.evidence = provisioning.X509Chain{Chain: certs}
	}
	if sess.evidence != nil {
		ctx, cancel := context.WithTimeout(h.srv.ctx, h.srv.limits.ConnectTimeout)
		err := h.srv.cfg.Prov.Authenticate(ctx, sess.request(newRequestID()))
		cancel()
		if err != nil && fault.KindOf(err) == fault.Unauthenticated {
			return false // provisioning logged why
		}
	}
	dc.session = sess
	return true
}

// OnACLCheck allows publishing on DPS's request topics and subscribing
// within DPS's responses ($dps/registrations/res/#, as the SDKs do, or a
// narrower filter or topic, as a bare request-response client such as
// mosquitto_rr does), and nothing else. Subscriptions deliver nothing:
// answers are written to their connection directly, and no publish is
// ever forwarded.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write {
		return strings.HasPrefix(topic, topicPrefix) && !strings.HasPrefix(topic, responsePrefix)
	}
	return strings.HasPrefix(topic, responsePrefix)
}

// OnPublish keeps every publish from being forwarded or retained; the
// broker still acknowledges it (PUBACK for QoS 1).
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, packets.CodeSuccessIgnore
}

// OnPublished runs once the publish is acknowledged: the request is
// answered after its PUBACK. Requests in progress when the device goes
// away finish (their answers go nowhere): a request the broker
// acknowledged is carried out, and a registration is one atomic write
// either way.
func (h *hook) OnPublished(cl *mochi.Client, pk packets.Packet) {
	if dc, ok := cl.Net.Conn.(*deviceConn); ok && dc.session != nil {
		h.srv.handle(cl, dc.session, pk)
	}
}

// request is a provisioning request of the session's device.
func (s *session) request(requestID string) provisioning.Request {
	return provisioning.Request{RegistrationID: s.regID, Evidence: s.evidence, Region: s.region, Transport: s.transport,
		RequestID: requestID, Peer: s.peer}
}

// resource is what a device's SAS token must be for, as on DPS's HTTPS
// API.
func (s *Server) resource(regID string) string { return s.cfg.IDScope + "/registrations/" + regID }
