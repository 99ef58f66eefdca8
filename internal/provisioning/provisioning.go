// Package provisioning is the registration use case: attest the device,
// match its enrollment, allocate a hub shard, and record the registration
// and the registry identity in one atomic write. Transports (gRPC, REST, the
// DPS-compatible API) call it with evidence they extracted; it never sees
// protobuf or HTTP.
package provisioning

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// ShardSource lists the shards allocation chooses from.
type ShardSource interface {
	AllShards(ctx context.Context) ([]*allocation.Shard, error)
}

// Service registers devices. All fields are required except Log and
// MaxChainLength (default x509.DefaultMaxChainLength).
type Service struct {
	Enrollments    enrollment.Lookup
	Shards         ShardSource
	Registry       registry.Store
	Now            func() time.Time
	MaxChainLength int
	Log            *slog.Logger
	// Limiter, if set, bounds requests per source address and
	// registrations per attested device.
	Limiter *ratelimit.Limiter
}

// X509Request is an X.509 registration as a transport saw it.
type X509Request struct {
	// RegistrationID the device asked for; "" when the transport has none.
	// It must equal the leaf CN, compared case-insensitively.
	RegistrationID string
	// Chain is what the device presented in the TLS handshake, leaf first.
	Chain []*x509.Certificate
	// Peer is the client address, for the failed-attempt log.
	Peer string
}

// maxWriteAttempts bounds retries when concurrent registrations of the
// same device race on the store.
const maxWriteAttempts = 8

// RegisterX509 registers a device that authenticated with a certificate
// chain. Every refusal is a *fault.Error with a stable reason; no refusal
// writes anything.
func (s *Service) RegisterX509(ctx context.Context, req X509Request) (*registry.Registration, error) {
	reg, err := s.registerX509(ctx, req)
	if err != nil {
		s.logFailure(req, err)
	}
	return reg, err
}

func (s *Service) registerX509(ctx context.Context, req X509Request) (*registry.Registration, error) {
	if err := s.Limiter.AllowPeer(ctx, req.Peer); err != nil {
		return nil, err
	}
	now := s.Now()
	maxLen := s.MaxChainLength
	if maxLen <= 0 {
		maxLen = x509att.DefaultMaxChainLength
	}
	if err := x509att.CheckShape(req.Chain, maxLen); err != nil {
		return nil, err
	}
	leaf := req.Chain[0]
	regID, err := x509att.CommonName(leaf)
	if err != nil {
		return nil, err
	}
	if err := enrollment.ValidateRegistrationID(regID); err != nil {
		return nil, fault.Wrap(fault.Unauthenticated, fault.RegistrationIDInvalid, err, "the leaf certificate's CN is not a valid registration ID")
	}
	if req.RegistrationID != "" && !strings.EqualFold(req.RegistrationID, regID) {
		return nil, fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "registration ID %q does not match the certificate's CN", req.RegistrationID)
	}
	if err := x509att.CheckLeaf(leaf, now); err != nil {
		return nil, err
	}
	if err := x509att.CheckKeys(req.Chain); err != nil {
		return nil, err
	}

	presented := enrollment.Presented{}
	for _, c := range req.Chain {
		presented.Thumbprints = append(presented.Thumbprints, enrollment.Thumbprint(c.Raw))
	}
	if top := req.Chain[len(req.Chain)-1]; !x509att.IsSelfIssued(top) {
		presented.TopIssuerKey = enrollment.SubjectKey(top.RawIssuer)
	}
	match, err := enrollment.Resolve(ctx, s.Enrollments, presented)
	if err != nil {
		return nil, err
	}

	out := plan{regID: regID, thumbprint: presented.Thumbprints[0]}
	if ind := match.Individual; ind != nil {
		// The enrolled leaf is the trust anchor: TLS proved possession of
		// its key and the thumbprint matched exactly.
		if !strings.EqualFold(ind.RegistrationID, regID) {
			return nil, fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "the certificate is enrolled as %q, its CN is %q", ind.RegistrationID, regID)
		}
		if ind.Disabled {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "the device's individual enrollment is disabled")
		}
		out.deviceID, out.alloc, out.individual = ind.EffectiveDeviceID(), ind.Allocation, true
	} else {
		var anchors []*x509.Certificate
		verified := false
		for _, a := range match.Anchors {
			if !a.CA.Verified {
				continue
			}
			verified = true
			cert, err := a.CA.Certificate()
			if err != nil {
				return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "parse stored CA %q", a.CA.Name)
			}
			anchors = append(anchors, cert)
		}
		if !verified {
			return nil, fault.New(fault.Unauthenticated, fault.CANotVerified, "the enrollment group's CA certificate %q has not been verified by proof of possession", match.Anchors[0].CA.Name)
		}
		path, err := x509att.Verify(req.Chain, match.Depth, anchors, now)
		if err != nil {
			return nil, err
		}
		anchorThumb := enrollment.Thumbprint(path[len(path)-1].Raw)
		var anchor enrollment.Anchor
		for _, a := range match.Anchors {
			if a.CA.Thumbprint == anchorThumb {
				anchor = a
			}
		}
		if anchor.Group == nil {
			return nil, fault.New(fault.Internal, fault.InternalError, "verified path ends at an unexpected anchor")
		}
		if anchor.Group.Disabled {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "enrollment group %q is disabled", anchor.Group.ID)
		}
		out.deviceID, out.alloc, out.groupID, out.caThumbprint = regID, anchor.Group.Allocation, anchor.Group.ID, anchor.CA.Thumbprint
	}
	if err := s.Limiter.AllowRegistration(ctx, enrollment.Key(regID)); err != nil {
		return nil, err
	}
	return s.record(ctx, out, now)
}

// plan is what attestation and matching decided.
type plan struct {
	regID, deviceID, thumbprint, caThumbprint, groupID string
	individual                                         bool
	alloc                                              enrollment.Allocation
}

// record makes the registration real: sticky on re-registration, one
// atomic write, safe against concurrent duplicates.
func (s *Service) record(ctx context.Context, p plan, now time.Time) (*registry.Registration, error) {
	cred := registry.Credential{Type: registry.X509, X509Thumbprint: p.thumbprint, CAThumbprint: p.caThumbprint}
	for range maxWriteAttempts {
		existing, err := s.Registry.GetRegistration(ctx, p.regID)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			reg, err := s.create(ctx, p, cred, now)
			if fault.ReasonOf(err) == fault.ResourceExists {
				continue // a concurrent registration of this device won; use its result
			}
			return reg, err
		case err != nil:
			return nil, err
		}
		if existing.CredentialThumbprint == p.thumbprint && existing.GroupID == p.groupID && existing.Individual == p.individual {
			return existing, nil // idempotent: nothing changed
		}
		// Same device, new credential (a renewed certificate) or a new
		// enrollment: keep the shard and device ID, update the credential.
		ident, err := s.Registry.GetIdentity(ctx, existing.DeviceID)
		if err != nil {
			return nil, err
		}
		upd := *existing
		upd.CredentialThumbprint, upd.GroupID, upd.Individual, upd.Updated = p.thumbprint, p.groupID, p.individual, now
		ident.Credential, ident.Version, ident.Updated = cred, ident.Version+1, now
		etag, err := s.Registry.UpdateRegistration(ctx, &upd, ident)
		if fault.KindOf(err) == fault.Conflict {
			continue
		}
		if err != nil {
			return nil, err
		}
		upd.Etag = etag
		return &upd, nil
	}
	return nil, fault.New(fault.Unavailable, fault.StoreUnavailable, "too many concurrent changes to registration %q; retry", p.regID)
}

func (s *Service) create(ctx context.Context, p plan, cred registry.Credential, now time.Time) (*registry.Registration, error) {
	shard, err := s.allocate(ctx, p)
	if err != nil {
		return nil, err
	}
	reg := &registry.Registration{
		RegistrationID: p.regID, DeviceID: p.deviceID, Shard: shard.ID, AssignedHub: shard.Hostname,
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509,
		GroupID: p.groupID, Individual: p.individual, CredentialThumbprint: p.thumbprint, Created: now, Updated: now,
	}
	ident := &registry.Identity{
		DeviceID: p.deviceID, RegistrationID: p.regID, Shard: shard.ID, Status: registry.IdentityEnabled,
		Credential: cred, Version: 1, Created: now, Updated: now,
	}
	etag, err := s.Registry.CreateRegistration(ctx, reg, ident)
	if err != nil {
		return nil, err
	}
	reg.Etag = etag
	return reg, nil
}

func (s *Service) allocate(ctx context.Context, p plan) (*allocation.Shard, error) {
	all, err := s.Shards.AllShards(ctx)
	if err != nil {
		return nil, err
	}
	candidates := all
	if len(p.alloc.Shards) > 0 {
		candidates = slices.DeleteFunc(slices.Clone(all), func(sh *allocation.Shard) bool {
			return !slices.Contains(p.alloc.Shards, sh.ID)
		})
	}
	switch p.alloc.Policy {
	case enrollment.PolicyStatic:
		return allocation.Static(p.alloc.StaticShard, candidates)
	default:
		return allocation.Hashed(enrollment.Key(p.regID), candidates)
	}
}

// logFailure records a refused attempt: who, from where, why. The device
// gets only the reason; the log gets the detail. No secrets are logged.
func (s *Service) logFailure(req X509Request, err error) {
	if s.Log == nil {
		return
	}
	attrs := []any{"peer", req.Peer, "reason", string(fault.ReasonOf(err)), "detail", err.Error()}
	if len(req.Chain) > 0 {
		attrs = append(attrs, "subject", req.Chain[0].Subject.String(), "thumbprint", enrollment.Thumbprint(req.Chain[0].Raw))
	}
	if req.RegistrationID != "" {
		attrs = append(attrs, "registration_id", req.RegistrationID)
	}
	level := slog.LevelWarn
	if fault.KindOf(err) == fault.Internal || fault.KindOf(err) == fault.Unavailable {
		level = slog.LevelError
	}
	s.Log.Log(context.Background(), level, "registration refused", attrs...)
}
