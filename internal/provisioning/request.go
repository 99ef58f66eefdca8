package provisioning

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/registry"
	"strings"
)

// Transport names the wire a registration came over (for logs and
// metrics); it changes nothing in the decision.
type Transport string

// The transports.
const (
	TransportGRPC Transport = "grpc"
	TransportREST Transport = "rest"
	// TransportDPS is the DPS-compatible device API over HTTPS.
	TransportDPS Transport = "dps-https"
	// TransportMQTT and TransportMQTTWS are DPS's device protocol over
	// MQTT, on its own TLS listener and over WebSockets.
	TransportMQTT   Transport = "dps-mqtt"
	TransportMQTTWS Transport = "dps-mqtt-ws"
)

// Request is one registration step as a transport saw it: everything that
// drives the registration, and nothing in the context. A transport only
// translates its wire format into a Request; which mechanism attests the
// device is the Evidence's type.
type Request struct {
	// RegistrationID the device asked for; "" when the transport has none
	// (then the evidence names it: the leaf's CN, the TPM's EK).
	RegistrationID string
	// Evidence is the device's proof: X509Chain, SASToken, TPMAnswer or
	// DPSTPMAnswer to register; TPMBegin or DPSTPMBegin for a TPM's first
	// step (BeginTPM).
	Evidence Evidence
	// Payload is the device's JSON payload, handed to a custom allocation
	// webhook (at most MaxPayload bytes).
	Payload json.RawMessage
	// Region is where the transport located the client (its address, or a
	// trusted edge proxy's header), for the geo policy; "" if unknown.
	Region string
	// CanPoll says the device can poll an operation (DPS's device API): a
	// slow webhook then answers ASSIGNING and finishes in the background.
	// Elsewhere the webhook is waited for.
	CanPoll   bool
	Transport Transport
	// RequestID is the request's tracking ID (DPS's trackingId), for logs.
	RequestID string
	// Peer is the client's address ("ip:port"), for rate limits and logs.
	Peer string
	// CSR is the device's PKCS#10 certificate request (DER), if it asks
	// for an operational certificate (ADR 22).
	CSR []byte
}

// Evidence is a device's proof of identity. Each mechanism is one type in
// this package, which verifies it and matches its enrollment.
type Evidence interface {
	// attestation names the mechanism, for logs.
	attestation() registry.AttestationType
	// logAttrs are what a refusal log line says of the evidence (never a
	// secret).
	logAttrs() []any
}

// attestor is evidence that completes an attestation: verified, it yields
// the enrollment match that registration then records.
type attestor interface {
	Evidence
	attest(ctx context.Context, s *Service, req *Request) (*plan, error)
}

// challenger is evidence that begins a two-step attestation.
type challenger interface {
	Evidence
	challenge(ctx context.Context, s *Service, req *Request) (*TPMChallenge, error)
}

// Result is a registration and what its mechanism hands back.
type Result struct {
	Registration *registry.Registration
	// TPMBoundKey is the device key a native TPM registration bound.
	TPMBoundKey []byte
	// AuthenticationKey delivers the device's hub key into its TPM (the
	// DPS TPM flow).
	AuthenticationKey []byte
	// IssuedChain is the certificate issued for the request's CSR: leaf,
	// issuing CA, ..., root (DER); nil without a CSR.
	IssuedChain [][]byte
}

// check validates what every request carries, before any work.
func (req *Request) check() error {
	if req.Evidence == nil {
		return fault.New(fault.Unauthenticated, fault.CertificateMissing, "no credential: send a client certificate, a SAS token or a TPM attestation")
	}
	if len(req.CSR) > issuance.MaxCSR {
		return fault.New(fault.InvalidArgument, fault.CSRInvalid, "the CSR is larger than %d bytes", issuance.MaxCSR)
	}
	if len(req.Payload) > MaxPayload {
		return fault.Invalidf("payload is larger than %d bytes", MaxPayload)
	}
	if bytes.Equal(bytes.TrimSpace(req.Payload), []byte("null")) {
		req.Payload = nil
	}
	return nil
}

// Register attests the device by its evidence, matches its enrollment,
// applies the ownership rule, allocates its shard and records it in one
// atomic write. Every refusal is a *fault.Error with a stable reason and
// writes nothing.
func (s *Service) Register(ctx context.Context, req Request) (*Result, error) {
	start := time.Now()
	res, err := s.register(ctx, &req)
	d := time.Since(start)
	if err != nil {
		s.logRefusal(&req, "register", err, "duration", d)
		s.observe(&req, nil, err, d)
		return nil, err
	}
	// One line per registration: who, over what, where it went, how long;
	// the metrics count the same step here.
	reg := res.Registration
	s.observe(&req, reg, nil, d)
	attrs := []any{"registration_id", reg.RegistrationID, "device_id", reg.DeviceID, "attestation", string(reg.AttestationType),
		"transport", string(req.Transport), "outcome", "assigned", "substatus", string(reg.Substatus), "shard", reg.Shard,
		"peer", req.Peer, "duration", d}
	if req.RequestID != "" {
		attrs = append(attrs, "request_id", req.RequestID)
	}
	if reg.GroupID != "" {
		attrs = append(attrs, "enrollment_group", reg.GroupID)
	}
	s.log(slog.LevelInfo, "registration", attrs...)
	return res, nil
}

func (s *Service) register(ctx context.Context, req *Request) (*Result, error) {
	var csr *x509.CertificateRequest
	if len(req.CSR) > 0 {
		// A CSR that cannot be valid is refused before attestation, which
		// may spend a single-use TPM challenge.
		var err error
		if csr, err = issuance.ParseCSR(req.CSR); err != nil {
			return nil, err
		}
	}
	ctx = s.readAhead(ctx, req)
	p, err := s.attest(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := s.checkCSR(ctx, csr, p); err != nil {
		return nil, err
	}
	if !p.counted {
		if err := s.countRegistration(ctx, p.regID); err != nil {
			return nil, err
		}
	}
	reg, iss, err := s.commit(ctx, *p, s.Now())
	if err != nil {
		return nil, err
	}
	res := &Result{Registration: reg, TPMBoundKey: p.cred.TPMBoundKey, AuthenticationKey: p.authKey}
	if iss != nil {
		res.IssuedChain = iss.Chain
	}
	return res, nil
}

// Lookup attests like Register and returns the device's own registration
// without writing anything (DPS's status lookup and operation poll).
func (s *Service) Lookup(ctx context.Context, req Request) (*registry.Registration, error) {
	p, err := s.attest(ctx, &req)
	if err != nil {
		s.logRefusal(&req, "lookup", err)
		return nil, err
	}
	return s.lookup(ctx, *p)
}

// Authenticate attests like Register and writes and reads nothing else: a
// transport that authenticates a connection before its requests (MQTT's
// CONNECT) calls it. A refusal is logged like Register's.
func (s *Service) Authenticate(ctx context.Context, req Request) error {
	if _, err := s.attest(ctx, &req); err != nil {
		s.logRefusal(&req, "connect", err)
		return err
	}
	return nil
}

// BeginTPM is a TPM's first step: req.Evidence is TPMBegin (the native
// protocol) or DPSTPMBegin (DPS's).
func (s *Service) BeginTPM(ctx context.Context, req Request) (*TPMChallenge, error) {
	ch, err := s.beginTPM(ctx, &req)
	if err != nil {
		s.logRefusal(&req, "begin", err)
	}
	return ch, err
}

func (s *Service) beginTPM(ctx context.Context, req *Request) (*TPMChallenge, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	c, ok := req.Evidence.(challenger)
	if !ok {
		return nil, fault.Invalidf("%s evidence does not begin an attestation", req.Evidence.attestation())
	}
	if err := s.limited(RulePerIP, s.Limiter.AllowPeer(ctx, req.Peer)); err != nil {
		return nil, err
	}
	if err := s.limited(RuleTPMChallengesPerIP, s.Limiter.AllowChallenge(ctx, req.Peer)); err != nil {
		return nil, err
	}
	return c.challenge(ctx, s, req)
}

// attest checks the request, counts it against its address and verifies
// its evidence.
func (s *Service) attest(ctx context.Context, req *Request) (*plan, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	a, ok := req.Evidence.(attestor)
	if !ok {
		return nil, fault.Invalidf("%s evidence begins an attestation; it does not complete one", req.Evidence.attestation())
	}
	if err := s.limited(RulePerIP, s.Limiter.AllowPeer(ctx, req.Peer)); err != nil {
		return nil, err
	}
	p, err := a.attest(ctx, s, req)
	if err != nil {
		return nil, err
	}
	p.payload, p.region, p.canPoll = req.Payload, req.Region, req.CanPoll
	return p, nil
}

// logRefusal records a refused step: who, from where, over what, why. The
// device gets only the reason; the log gets the detail. No secrets are
// logged.
// Refused logs and records (failed-attempt log) a device request that a
// transport refused before it reached the use case: a malformed MQTT
// CONNECT, say.
func (s *Service) Refused(req Request, step string, err error) { s.logRefusal(&req, step, err) }

func (s *Service) logRefusal(req *Request, step string, err error, more ...any) {
	attrs := []any{"step", step, "transport", string(req.Transport), "peer", req.Peer, "outcome", "refused",
		"reason", string(fault.ReasonOf(err)), "detail", err.Error()}
	attrs = append(attrs, more...)
	if req.RequestID != "" {
		attrs = append(attrs, "request_id", req.RequestID)
	}
	if id := req.RegistrationID; len(id) > 128 {
		// A claimed ID is the caller's: log a bounded part of it.
		attrs = append(attrs, "registration_id", strings.ToValidUTF8(id[:128], "?"), "registration_id_len", len(id))
	} else if id != "" {
		attrs = append(attrs, "registration_id", id)
	}
	if req.Evidence != nil {
		attrs = append(attrs, "attestation", string(req.Evidence.attestation()))
		attrs = append(attrs, req.Evidence.logAttrs()...)
	}
	s.recordRefusal(req, step, err)
	level := slog.LevelWarn
	switch k := fault.KindOf(err); {
	case fault.ReasonOf(err) == fault.Assigning:
		level = slog.LevelInfo // a slow webhook deciding: the device polls
	case k == fault.Internal || k == fault.Unavailable:
		level = slog.LevelError
	}
	s.log(level, "registration refused", attrs...)
}
