package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// DPS's topics (dps-protocol.md §3).
const (
	topicPrefix    = "$dps/registrations/"
	responsePrefix = topicPrefix + "res/"
	// responseFilter is the one subscription a device may hold.
	responseFilter = responsePrefix + "#"
	registerTopic  = topicPrefix + "PUT/iotdps-register/"
	pollTopic      = topicPrefix + "GET/iotdps-get-operationstatus/"
	// maxRIDLength bounds the request ID echoed in an answer's topic.
	maxRIDLength = 128
)

type operation int

const (
	opUnknown operation = iota
	opRegister
	opPoll
)

// dpsRequest is what a request topic says.
type dpsRequest struct {
	op  operation
	rid string
	// operationID is the poll's operation, unescaped.
	operationID string
}

// parseTopic reads a request topic:
// $dps/registrations/PUT/iotdps-register/?$rid={rid} or
// $dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id};
// another path is opUnknown. ok is false when the request ID is missing
// or not safe to echo in the answer's topic (then rid is "").
func parseTopic(topic string) (r dpsRequest, ok bool) {
	path, query, _ := strings.Cut(topic, "?")
	switch path {
	case registerTopic:
		r.op = opRegister
	case pollTopic:
		r.op = opPoll
	}
	for kv := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "$rid":
			r.rid = v
		case "operationId":
			if id, err := url.QueryUnescape(v); err == nil {
				r.operationID = id
			}
		}
	}
	if !validRID(r.rid) {
		r.rid = ""
		return r, false
	}
	return r, true
}

// validRID accepts the request IDs devices use (UUIDs, counters): 1-128
// unreserved URI characters, which need no escaping in a topic and cannot
// be confused with its separators.
func validRID(rid string) bool {
	if rid == "" || len(rid) > maxRIDLength {
		return false
	}
	for i := 0; i < len(rid); i++ {
		if c := rid[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// username is what a CONNECT's username says:
// {idScope}/registrations/{registrationId}/api-version=…&ClientVersion=…
// (the query is optional, ClientVersion in any form).
type username struct {
	idScope, regID            string
	apiVersion, clientVersion string
}

var errUsername = errors.New("the username is not {idScope}/registrations/{registrationId}/api-version=…")

func parseUsername(u string) (username, error) {
	parts := strings.SplitN(u, "/", 4)
	if len(parts) < 3 || parts[0] == "" || parts[1] != "registrations" || parts[2] == "" {
		return username{}, errUsername
	}
	out := username{idScope: parts[0], regID: parts[2]}
	if len(parts) == 4 {
		for kv := range strings.SplitSeq(parts[3], "&") {
			k, v, _ := strings.Cut(kv, "=")
			switch strings.ToLower(k) {
			case "api-version":
				out.apiVersion = v
			case "clientversion":
				out.clientVersion = v
			}
		}
	}
	return out, nil
}

// answer is a DPS answer: the status (in the topic), the JSON body and
// the retry hint in seconds ("" for none).
type answer struct {
	status     int
	body       any
	retryAfter string
}

// handle answers one publish of a connected device. Requests run on
// their own goroutines, at most Limits.MaxInflight per connection; one
// more is answered 429.
func (s *Server) handle(cl *mochi.Client, sess *session, pk packets.Packet) {
	requestID := newRequestID()
	req, ok := parseTopic(pk.TopicName)
	switch {
	case !ok:
		s.write(cl, req.rid, s.fail(s.ctx, sess.regID, requestID, fault.Invalidf("the topic's $rid must be 1-%d letters, digits or -._~", maxRIDLength)))
		return
	case req.op == opUnknown:
		s.write(cl, req.rid, s.fail(s.ctx, sess.regID, requestID, fault.NotFoundf("no such operation: DPS's are %s and %s", registerTopic, pollTopic)))
		return
	}
	if sess.inflight.Add(1) > int32(s.limits.MaxInflight) {
		sess.inflight.Add(-1)
		s.write(cl, req.rid, s.fail(s.ctx, sess.regID, requestID, &fault.Error{Kind: fault.ResourceExhausted, Reason: fault.RateLimited,
			Msg: "too many requests in progress on this connection", RetryAfter: time.Second}))
		return
	}
	if !s.begin() {
		sess.inflight.Add(-1)
		s.write(cl, req.rid, s.fail(s.ctx, sess.regID, requestID, fault.New(fault.Unavailable, fault.StoreUnavailable, "the server is stopping")))
		return
	}
	go func() {
		defer s.ops.Done()
		defer sess.inflight.Add(-1)
		ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
		defer cancel()
		var a answer
		if req.op == opRegister {
			a = s.register(ctx, sess, pk.Payload, requestID)
		} else {
			a = s.poll(ctx, sess, req.operationID, requestID)
		}
		s.write(cl, req.rid, a)
	}()
}

// write publishes an answer to the requesting connection only, on
// $dps/registrations/res/{status}/?$rid={rid}[&retry-after={seconds}],
// at QoS 0 (the device's subscription is at most QoS 1; TCP delivers).
func (s *Server) write(cl *mochi.Client, rid string, a answer) {
	topic := responsePrefix + strconv.Itoa(a.status) + "/?$rid=" + rid
	if a.retryAfter != "" {
		topic += "&retry-after=" + a.retryAfter
	}
	body, err := json.Marshal(a.body)
	if err != nil { // the shapes below always marshal; a device must never get non-JSON
		body = []byte(`{}`)
	}
	if err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: body}); err != nil {
		s.log.Debug("mqtt answer not delivered", "peer", cl.Net.Remote, "topic", topic, "err", err)
	}
}

// registrationRequest is DPS's DeviceRegistration body over MQTT.
type registrationRequest struct {
	RegistrationID string          `json:"registrationId"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	// TPM is refused: DPS's TPM flow is HTTPS-only.
	TPM json.RawMessage `json:"tpm,omitempty"`
	// CSR asks for a certificate (api-version 2025-07-01-preview on).
	CSR string `json:"csr,omitempty"`
}

// register is PUT iotdps-register, answered as DPS's HTTPS API answers
// it: 200 assigned, 202 assigning (a slow custom allocation webhook; the
// device polls), 200 disabled, or an error body.
func (s *Server) register(ctx context.Context, sess *session, raw []byte, requestID string) answer {
	var body registrationRequest
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			return s.fail(ctx, sess.regID, requestID, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "the request body is not a DeviceRegistration"))
		}
	}
	if len(body.TPM) > 0 && string(body.TPM) != "null" {
		return s.fail(ctx, sess.regID, requestID, fault.New(fault.InvalidArgument, fault.AttestationUnsupported,
			"TPM attestation is HTTPS-only in DPS: register over the DPS HTTPS device API (PUT /%s/registrations/%s/register)", s.cfg.IDScope, sess.regID))
	}
	if body.RegistrationID != "" && !strings.EqualFold(body.RegistrationID, sess.regID) {
		return s.fail(ctx, sess.regID, requestID, fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "the body's registrationId is not the connection's"))
	}
	req := sess.request(requestID)
	req.Payload, req.CanPoll = body.Payload, true
	csr, err := dpsdevice.DecodeCSR(body.CSR, sess.apiVersion)
	if err != nil {
		return s.fail(ctx, sess.regID, requestID, err)
	}
	req.CSR = csr
	res, err := s.cfg.Prov.Register(ctx, req)
	if fault.ReasonOf(err) == fault.Assigning {
		return assigning(sess.regID, dpsdevice.AssigningOperationID(sess.regID, time.Now().Add(dpsdevice.AssigningFor)), err)
	}
	if err != nil {
		return s.fail(ctx, sess.regID, requestID, err)
	}
	state := dpsdevice.ToState(res.Registration)
	state.IssuedCertificateChain = dpsdevice.Chain(res.IssuedChain)
	return answer{status: http.StatusOK, body: dpsdevice.OperationStatus{OperationID: dpsdevice.OperationID(res.Registration), Status: "assigned", RegistrationState: state}}
}

// poll is GET iotdps-get-operationstatus: the device's registration, or
// its pending assignment while a webhook decides.
func (s *Server) poll(ctx context.Context, sess *session, opID, requestID string) answer {
	reg, err := s.cfg.Prov.Lookup(ctx, sess.request(requestID))
	if deadline, pending := dpsdevice.ParseAssigningOperationID(opID, sess.regID); pending {
		switch {
		case err == nil:
			opID = dpsdevice.OperationID(reg) // decided
		case fault.KindOf(err) == fault.NotFound && time.Now().Before(deadline):
			return assigning(sess.regID, opID, nil)
		case fault.KindOf(err) == fault.NotFound:
			return answer{status: http.StatusOK, body: dpsdevice.OperationStatus{OperationID: opID, Status: "failed", RegistrationState: &dpsdevice.RegistrationState{
				RegistrationID: sess.regID, Status: "failed", ErrorCode: 503000, ErrorMessage: "the assignment was not decided: " + string(fault.CustomAllocationFailed)}}}
		}
	}
	if err == nil && opID != dpsdevice.OperationID(reg) {
		err = fault.NotFoundf("no such operation")
	}
	if err != nil {
		return s.fail(ctx, sess.regID, requestID, err)
	}
	return answer{status: http.StatusOK, body: dpsdevice.OperationStatus{OperationID: opID, Status: "assigned", RegistrationState: dpsdevice.ToState(reg)}}
}

// fail answers an error as DPS's HTTPS API does (apierr.Classify is the
// one boundary): a disabled enrollment or registration is a completed
// operation whose status is "disabled"; a malformed request is told what
// is wrong with it, a refusal only its reason.
func (s *Server) fail(ctx context.Context, regID, requestID string, err error) answer {
	a := apierr.Classify(ctx, s.log, requestID, err, apierr.Operator)
	if a.Reason == fault.EnrollmentDisabled || a.Reason == fault.RegistrationDisabled {
		msg := "the enrollment is disabled"
		if a.Reason == fault.RegistrationDisabled {
			msg = "the registration is disabled"
		}
		return answer{status: http.StatusOK, body: dpsdevice.OperationStatus{OperationID: "0.disabled", Status: "disabled",
			RegistrationState: &dpsdevice.RegistrationState{RegistrationID: regID, Status: "disabled", ErrorCode: 401002, ErrorMessage: msg}}}
	}
	if a.DPSStatus != http.StatusBadRequest && a.DPSStatus != http.StatusNotFound {
		a.Message = "registration refused: " + string(a.Reason)
	}
	return answer{status: a.DPSStatus, retryAfter: a.RetryAfterSeconds(), body: a.DPSBody(requestID, time.Now())}
}

// assigning is 202 with status "assigning" and a retry hint, as DPS
// answers while it allocates.
func assigning(regID, opID string, err error) answer {
	wait := time.Second
	if fe, ok := fault.As(err); ok && fe.RetryAfter > 0 {
		wait = fe.RetryAfter
	}
	return answer{status: http.StatusAccepted, retryAfter: strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))),
		body: dpsdevice.OperationStatus{OperationID: opID, Status: "assigning", RegistrationState: &dpsdevice.RegistrationState{RegistrationID: regID, Status: "assigning"}}}
}

// newRequestID is a request's tracking ID (DPS's trackingId).
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---- DPS's device API, as the HTTPS API speaks it (dps-protocol.md §1) ----
//
// The operation IDs are those of the HTTPS API, so a device may register
// over one and poll over the other.
