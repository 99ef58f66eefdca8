// Package provisioning is the registration use case: attest the device,
// match its enrollment, allocate a hub shard, and record the registration
// and the registry identity in one atomic write. Transports (gRPC, REST, the
// DPS-compatible API) call it with evidence they extracted; it never sees
// protobuf or HTTP.
package provisioning

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/revocation"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// ShardSource lists the shards allocation chooses from.
type ShardSource interface {
	AllShards(ctx context.Context) ([]*allocation.Shard, error)
}

// Service registers devices. All fields are required except Log and
// MaxChainLength (default x509.DefaultMaxChainLength).
// EnrollmentStore is what registration reads of the enrollments.
type EnrollmentStore interface {
	enrollment.Lookup
	GetGroup(ctx context.Context, id string) (*enrollment.Group, error)
	ListGroups(ctx context.Context, p enrollment.Page) ([]*enrollment.Group, string, error)
	ListCAs(ctx context.Context, p enrollment.Page) ([]*enrollment.CA, string, error)
	// TrustVersion changes whenever a CA certificate or a group is
	// written (the cache of them, trust.go).
	TrustVersion(ctx context.Context) (uint64, error)
	GetIndividual(ctx context.Context, registrationID string) (*enrollment.Individual, error)
	// ReservedByIndividual reports whether an individual enrollment holds
	// the name as its registration ID or its device ID.
	ReservedByIndividual(ctx context.Context, name string) (bool, error)
	// GroupsVersion changes whenever a group is created, updated or
	// deleted (a cheap read: it tells caches of the groups to reload).
	GroupsVersion(ctx context.Context) (uint64, error)
}

type Service struct {
	Enrollments EnrollmentStore
	// Attempts takes refused requests (the failed-attempt log); nil
	// records none.
	Attempts AttemptRecorder
	// Secrets opens symmetric enrollment keys; nil turns symmetric keys off.
	Secrets *secrets.Sealer
	// SymmetricKeysDisabled turns symmetric-key attestation off service-wide.
	SymmetricKeysDisabled bool
	// Challenges holds TPM challenges between the two steps.
	Challenges attestation.ChallengeStore
	// Rand is the randomness source for challenges (crypto/rand when nil).
	Rand           io.Reader
	Shards         ShardSource
	Registry       registry.Store
	Now            func() time.Time
	MaxChainLength int
	// Paths caches verified issuing-CA-to-anchor paths (nil: every link
	// is verified every time); see x509att.PathCache for what it re-checks.
	Paths *x509att.PathCache
	Log   *slog.Logger
	// Limiter, if set, bounds requests per source address and
	// registrations per attested device.
	Limiter *ratelimit.Limiter
	// NearestRegions lists, for a client's region, the other regions in
	// order of preference (the geo policy).
	NearestRegions map[string][]string
	// WebhookClient calls custom allocation webhooks (http.DefaultClient
	// when nil); each call is bounded by its webhook's timeout.
	WebhookClient *http.Client
	// WebhookSyncBudget is how long a first registration waits for a
	// webhook before answering ASSIGNING and finishing in the background
	// (0: always wait for the webhook's own timeout).
	WebhookSyncBudget time.Duration
	// Observer, if set, counts registrations, rate-limit refusals and
	// webhook calls (metrics).
	Observer Observer
	// Issuer signs certificates for devices' CSRs and recognizes the
	// certificates it issued, for renewal (ADR 22); nil refuses CSRs.
	Issuer *issuance.Authority
	// Revocation checks an X.509 group device's verified chain against
	// CRLs and OCSP under the group's policy (ADR 23); nil checks none.
	Revocation RevocationChecker

	// assigning holds the registration keys whose webhook is deciding;
	// background counts those decisions, for Wait.
	assigning  sync.Map
	background sync.WaitGroup
	// symGroups caches the symmetric-key groups and their opened keys
	// (symkey.go); trust the CAs and groups that chains match (trust.go).
	symGroups symGroupCache
	trust     trustCache
}

// Wait waits until background decisions (slow webhooks) have written
// their registrations, or ctx ends; a graceful stop calls it before the
// store closes.
func (s *Service) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.background.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// X509Chain is X.509 evidence: the chain the device presented in the TLS
// handshake, leaf first. The registration ID, when the request names one,
// must equal the leaf's CN, compared case-insensitively.
type X509Chain struct {
	Chain []*x509.Certificate
}

func (X509Chain) attestation() registry.AttestationType { return registry.X509 }

func (e X509Chain) logAttrs() []any {
	if len(e.Chain) == 0 {
		return nil
	}
	return []any{"subject", e.Chain[0].Subject.String(), "thumbprint", enrollment.Thumbprint(e.Chain[0].Raw)}
}

// maxWriteAttempts bounds retries when concurrent registrations of the
// same device race on the store.
const maxWriteAttempts = 8

// attest verifies the chain and matches the enrollment.
func (e X509Chain) attest(ctx context.Context, s *Service, req *Request) (*plan, error) {
	now := s.Now()
	maxLen := s.MaxChainLength
	if maxLen <= 0 {
		maxLen = x509att.DefaultMaxChainLength
	}
	if len(e.Chain) == 0 {
		return nil, fault.New(fault.Unauthenticated, fault.CertificateMissing, "no credential: send a SAS token or a client certificate")
	}
	if err := x509att.CheckShape(e.Chain, maxLen); err != nil {
		return nil, err
	}
	leaf := e.Chain[0]
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
	if s.Issuer != nil {
		// A certificate Zerotouch issued renews; it matches no enrollment.
		ca, err := s.Issuer.IssuerOf(ctx, leaf)
		if err != nil {
			return nil, err
		}
		if ca != nil {
			p, notOurs, rerr := s.renewalPlan(ctx, leaf, ca, regID, now)
			if !notOurs {
				return p, rerr
			}
			// A serial the registration never held: the issuing CA also
			// signs manufacturer certificates (an imported CA), which
			// register as birth credentials if an enrollment trusts them.
			p, err := e.byEnrollment(ctx, s, regID, now)
			if r := fault.ReasonOf(err); err != nil && (r == fault.EnrollmentNotFound || r == fault.CertificateUntrusted) {
				return nil, rerr
			}
			return p, err
		}
	}
	return e.byEnrollment(ctx, s, regID, now)
}

// byEnrollment attests a chain by the enrollment that trusts it: an
// individual enrollment of its leaf, or a group of a CA in or above it.
func (e X509Chain) byEnrollment(ctx context.Context, s *Service, regID string, now time.Time) (*plan, error) {
	leaf := e.Chain[0]
	if err := x509att.CheckLeaf(leaf, now); err != nil {
		return nil, err
	}
	if err := x509att.CheckKeys(e.Chain); err != nil {
		return nil, err
	}

	presented := enrollment.Presented{}
	for _, c := range e.Chain {
		presented.Thumbprints = append(presented.Thumbprints, enrollment.Thumbprint(c.Raw))
	}
	if top := e.Chain[len(e.Chain)-1]; !x509att.IsSelfIssued(top) {
		presented.TopIssuerKey = enrollment.SubjectKey(top.RawIssuer)
	}
	lookup, err := s.trusted(ctx)
	if err != nil {
		return nil, err
	}
	match, err := enrollment.Resolve(ctx, lookup, presented)
	if err != nil {
		return nil, err
	}

	out := plan{regID: regID, thumbprint: presented.Thumbprints[0], attType: registry.X509}
	if ind := match.Individual; ind != nil && ind.Mechanism != enrollment.MechanismX509 {
		return nil, fault.New(fault.Unauthenticated, fault.CertificateUntrusted, "the certificate is not enrolled")
	} else if ind != nil {
		// The enrolled leaf is the trust anchor: TLS proved possession of
		// its key and the thumbprint matched exactly.
		if !strings.EqualFold(ind.RegistrationID, regID) {
			return nil, fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "the certificate is enrolled as %q, its CN is %q", ind.RegistrationID, regID)
		}
		if ind.Disabled {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "the device's individual enrollment is disabled")
		}
		out.deviceID, out.alloc, out.settings, out.individual = ind.EffectiveDeviceID(), ind.Allocation, ind.DeviceSettings, true
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
		var extra []*x509.Certificate
		for _, ca := range match.Intermediates {
			if c, err := ca.Certificate(); err == nil {
				extra = append(extra, c)
			}
		}
		path, err := s.Paths.Verify(e.Chain, match.Depth, extra, anchors, now)
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
		// Revocation is checked on the path as verified, cached or not,
		// every time (ADR 23); the chain is recorded as CRLs name it, so
		// that a later CRL finds the registration.
		if s.Revocation != nil {
			if err := s.Revocation.Check(ctx, path, anchor.Group.Revocation); err != nil {
				return nil, err
			}
		}
		out.deviceID, out.alloc, out.settings, out.groupID = regID, anchor.Group.Allocation, anchor.Group.DeviceSettings, anchor.Group.ID
		out.cred.CAThumbprint, out.cred.X509Chain = anchor.CA.Thumbprint, revocation.Refs(path)
	}
	out.cred.Type, out.cred.X509Thumbprint = registry.X509, out.thumbprint
	return &out, nil
}

// plan is what attestation and matching decided, and what the request
// adds for allocation.
type plan struct {
	regID, deviceID, groupID string
	// thumbprint identifies the device's credential: the leaf certificate
	// (X.509) or the EK (TPM).
	thumbprint string
	attType    registry.AttestationType
	individual bool
	alloc      enrollment.Allocation
	settings   enrollment.DeviceSettings
	cred       registry.Credential
	// authKey is the DPS TPM flow's hub key, delivered into the TPM.
	authKey []byte
	// counted: attestation already counted the attempt against the
	// registration's rate limit (a TPM answer, before it wrote its
	// single-use marker).
	counted bool
	// csr, when set, is the device's checked CSR, to be signed under
	// policy (ADR 22).
	csr    *x509.CertificateRequest
	policy *issuance.Policy
	// renewal is set when the device authenticated with a certificate
	// Zerotouch issued it.
	renewal *renewal
	// instance names the enrollment that admits the device (for an
	// issued certificate's record).
	instance string
	// From the request: the device's payload (for a webhook), its
	// region (the geo policy), and whether it can poll.
	payload json.RawMessage
	region  string
	canPoll bool
}

// sameCredential reports whether an identity already holds the credential.
func sameCredential(a, b registry.Credential) bool {
	return a.Type == b.Type && a.X509Thumbprint == b.X509Thumbprint && a.CAThumbprint == b.CAThumbprint &&
		a.TPMEKHash == b.TPMEKHash && bytes.Equal(a.TPMBoundKey, b.TPMBoundKey) && a.SymmetricKeyHash == b.SymmetricKeyHash &&
		(a.Issued == nil) == (b.Issued == nil) && (a.Issued == nil || a.Issued.Serial == b.Issued.Serial) &&
		slices.Equal(a.X509Chain, b.X509Chain) // so a registration made before the chain was recorded gets it (ADR 23)
}

// record makes the registration real: sticky on re-registration, one
// atomic write, safe against concurrent duplicates.
func (s *Service) record(ctx context.Context, p plan, now time.Time) (*registry.Registration, error) {
	reg, _, err := s.commit(ctx, p, now)
	return reg, err
}

// commit is record, and the certificate it issued for the plan's CSR.
func (s *Service) commit(ctx context.Context, p plan, now time.Time) (*registry.Registration, *issuance.Issued, error) {
	cred := p.cred
	c := p.claim()
	reserved, err := s.reserved(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	// A CSR is signed once, after the checks that can refuse the device
	// and before its write, so a retried write records the certificate
	// the device gets.
	var iss *issuance.Issued
	sign := func() error {
		if p.csr == nil || iss != nil {
			return nil
		}
		var err error
		iss, err = s.Issuer.Issue(ctx, p.policy, p.csr, p.regID)
		return err
	}
	for range maxWriteAttempts {
		existing, err := s.Registry.GetRegistration(ctx, p.regID)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			if p.renewal != nil {
				return nil, nil, fault.New(fault.Unauthenticated, fault.CertificateUntrusted, "the certificate's registration no longer exists; register with the device's own credential")
			}
			if err := s.owns(c, reserved, nil); err != nil {
				return nil, nil, err
			}
			if err := sign(); err != nil {
				return nil, nil, err
			}
			if iss != nil {
				cred.Issued = issuedInfo(iss, p, now)
			}
			reg, err := s.create(ctx, p, cred, now)
			if fault.ReasonOf(err) == fault.ResourceExists {
				continue // a concurrent registration of this device won; use its result
			}
			return reg, iss, err
		case err != nil:
			return nil, nil, err
		}
		if err := s.owns(c, reserved, existing); err != nil {
			return nil, nil, err
		}
		if existing.Status == registry.Disabled {
			return nil, nil, fault.New(fault.PermissionDenied, fault.RegistrationDisabled, "the registration is disabled")
		}
		if err := p.renewal.stillCurrent(existing); err != nil {
			return nil, nil, err
		}
		ident, err := s.Registry.GetIdentity(ctx, existing.DeviceID)
		if err != nil {
			return nil, nil, err
		}
		// The device's issued certificates stay with it only while the
		// same birth credential registers under the same enrollment (or
		// it renews): another credential or enrollment taking the ID over
		// gets none of them, and they are revoked.
		keep := p.renewal != nil || existing.CredentialThumbprint == p.thumbprint && existing.GroupID == p.groupID && existing.Individual == p.individual
		if p.renewal != nil {
			if ident.Status != registry.IdentityEnabled {
				return nil, nil, fault.New(fault.PermissionDenied, fault.RegistrationDisabled, "the device's identity is disabled; register with the device's own credential")
			}
			// A renewal keeps the device's birth credential; only the
			// issued certificate changes.
			cred = ident.Credential
		}
		if err := sign(); err != nil {
			return nil, nil, err
		}
		var revoke []*registry.IssuedCertificate
		issued, superseded := existing.Issued, existing.Superseded
		if !keep {
			for _, old := range []*registry.IssuedCertificate{existing.Issued, existing.Superseded} {
				if old != nil {
					gone := *old
					gone.At = time.Time{} // revoked now
					revoke = append(revoke, &gone)
				}
			}
			issued, superseded = nil, nil
		}
		cred.Issued = issued
		if iss != nil {
			cred.Issued = issuedInfo(iss, p, now)
		}
		target, ans, err := s.reprovision(ctx, p, existing)
		if err != nil {
			return nil, nil, err
		}
		if iss == nil && keep && target == nil && existing.CredentialThumbprint == p.thumbprint && existing.GroupID == p.groupID && existing.Individual == p.individual &&
			existing.AttestationType == p.attType && sameCredential(ident.Credential, cred) && ident.Status == registry.IdentityEnabled {
			return existing, nil, nil // idempotent: nothing changed
		}
		// Same device: a new credential (a renewed certificate, a new bound
		// key), a new enrollment, or a move. The device ID stays.
		upd := *existing
		upd.CredentialThumbprint, upd.GroupID, upd.Individual, upd.AttestationType, upd.Updated = p.thumbprint, p.groupID, p.individual, p.attType, now
		upd.Issued, upd.Superseded = issued, superseded
		if iss != nil {
			prev := &registry.Registration{Issued: issued, Superseded: superseded}
			var more []*registry.IssuedCertificate
			upd.Issued, upd.Superseded, more = supersede(prev, cred.Issued, now)
			revoke = append(revoke, more...)
		}
		// The enrollment admitted the device, so its identity is enabled
		// (it may have been disabled with an enrollment since re-enabled).
		ident.Credential, ident.Version, ident.Updated, ident.Status = cred, registry.NextVersion(ident.Version, now), now, registry.IdentityEnabled
		if target != nil {
			upd.Shard, upd.AssignedHub, ident.Shard = target.ID, target.Hostname, target.ID
			switch {
			case target.ID == existing.InitialShard:
				upd.Substatus = registry.ReprovisionedToInitialAssignment
			case p.settings.Reprovision == enrollment.ReprovisionReset:
				upd.Substatus = registry.DeviceDataReset
			default:
				upd.Substatus = registry.DeviceDataMigrated
			}
			if p.settings.Reprovision == enrollment.ReprovisionReset {
				ident.InitialTwin, ident.IoTEdge = p.settings.InitialTwin, p.settings.IoTEdge
			}
			if ans != nil {
				upd.Payload = ans.payload
				if ans.twin != nil {
					ident.InitialTwin = ans.twin
				}
			}
			s.log(slog.LevelInfo, "device re-provisioned", "registration_id", p.regID, "from", existing.Shard, "to", target.ID, "substatus", upd.Substatus)
		}
		etag, err := s.Registry.UpdateRegistration(ctx, &upd, ident)
		if fault.KindOf(err) == fault.Conflict {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		upd.Etag = etag
		s.revokeSuperseded(ctx, upd.RegistrationID, revoke, p.policy, now)
		return &upd, iss, nil
	}
	return nil, nil, fault.New(fault.Unavailable, fault.StoreUnavailable, "too many concurrent changes to registration %q; retry", p.regID)
}

func (s *Service) create(ctx context.Context, p plan, cred registry.Credential, now time.Time) (*registry.Registration, error) {
	key := enrollment.Key(p.regID)
	if _, busy := s.assigning.Load(key); busy {
		return nil, assigningError(time.Second)
	}
	shard, ans, err := s.allocate(ctx, p)
	var pa *pendingAssignment
	if errors.As(err, &pa) {
		// The webhook finishes in the background; the registration is
		// written then, and the device finds it when it polls.
		s.assigning.Store(key, true)
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			defer s.assigning.Delete(key)
			sh, ans, err := pa.wait()
			if err == nil {
				_, err = s.write(context.WithoutCancel(ctx), p, cred, now, sh, ans)
			}
			if err != nil && fault.ReasonOf(err) != fault.ResourceExists {
				s.log(slog.LevelWarn, "background custom allocation failed", "registration_id", p.regID, "err", err)
			}
		}()
		return nil, assigningError(pa.retryAfter)
	}
	if err != nil {
		return nil, err
	}
	return s.write(ctx, p, cred, now, shard, ans)
}

// assigningError tells the device to come back: its assignment is being
// decided.
func assigningError(retry time.Duration) error {
	err := fault.New(fault.Unavailable, fault.Assigning, "the device's assignment is being decided; poll again")
	err.RetryAfter = max(time.Second, min(retry, 5*time.Second))
	return err
}

// write records a new registration and its identity on shard.
func (s *Service) write(ctx context.Context, p plan, cred registry.Credential, now time.Time, shard *allocation.Shard, ans *webhookAnswer) (*registry.Registration, error) {
	reg := &registry.Registration{
		RegistrationID: p.regID, DeviceID: p.deviceID, Shard: shard.ID, AssignedHub: shard.Hostname,
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: p.attType,
		GroupID: p.groupID, Individual: p.individual, CredentialThumbprint: p.thumbprint, InitialShard: shard.ID, Created: now, Updated: now,
		Issued: cred.Issued,
	}
	ident := &registry.Identity{
		DeviceID: p.deviceID, RegistrationID: p.regID, Shard: shard.ID, Status: registry.IdentityEnabled,
		Credential: cred, InitialTwin: p.settings.InitialTwin, IoTEdge: p.settings.IoTEdge, Version: registry.NextVersion(0, now), Created: now, Updated: now,
	}
	if ans != nil {
		reg.Payload = ans.payload
		if ans.twin != nil {
			ident.InitialTwin = ans.twin
		}
	}
	etag, err := s.Registry.CreateRegistration(ctx, reg, ident)
	if err != nil {
		return nil, err
	}
	reg.Etag = etag
	return reg, nil
}

// reprovision decides, for a device that registers again, whether it
// moves (DPS's reprovisionPolicy): it returns the shard to move to, or nil
// to stay. With ReprovisionNever the device stays. Otherwise the
// enrollment's allocation is evaluated again; a device stays where it is
// when that gives its current shard, or when its shard is draining (which
// keeps its devices) and still allowed by the enrollment. When no shard is
// available the device stays on its shard if that is still usable.
func (s *Service) reprovision(ctx context.Context, p plan, existing *registry.Registration) (*allocation.Shard, *webhookAnswer, error) {
	if p.settings.Reprovision == enrollment.ReprovisionNever {
		return nil, nil, nil
	}
	all, err := s.Shards.AllShards(ctx)
	if err != nil {
		return nil, nil, err
	}
	allowed := func(id string) bool { return len(p.alloc.Shards) == 0 || slices.Contains(p.alloc.Shards, id) }
	var current *allocation.Shard
	for _, sh := range all {
		if sh.ID == existing.Shard {
			current = sh
		}
	}
	usable := current != nil && allowed(current.ID) && current.State != allocation.Disabled &&
		(p.alloc.Policy != enrollment.PolicyStatic || current.ID == p.alloc.StaticShard)
	if usable && current.State == allocation.Draining {
		return nil, nil, nil
	}
	if current != nil && current.Devices > 0 {
		// The device is on its shard already: it does not count against
		// that shard's capacity when deciding where it belongs.
		c := *current
		c.Devices--
		all = slices.Clone(all)
		all[slices.Index(all, current)] = &c
	}
	target, ans, err := s.pick(ctx, p, all, existing)
	switch {
	case err != nil && usable:
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	case target.ID == existing.Shard:
		return nil, nil, nil
	}
	return target, ans, nil
}

func (s *Service) allocate(ctx context.Context, p plan) (*allocation.Shard, *webhookAnswer, error) {
	all, err := s.Shards.AllShards(ctx)
	if err != nil {
		return nil, nil, err
	}
	return s.pick(ctx, p, all, nil)
}

// pick applies the enrollment's allocation policy to the shards; a custom
// policy's webhook may add a payload and a twin. existing is the device's
// registration when it registers again.
func (s *Service) pick(ctx context.Context, p plan, all []*allocation.Shard, existing *registry.Registration) (*allocation.Shard, *webhookAnswer, error) {
	candidates := all
	if len(p.alloc.Shards) > 0 {
		candidates = slices.DeleteFunc(slices.Clone(all), func(sh *allocation.Shard) bool {
			return !slices.Contains(p.alloc.Shards, sh.ID)
		})
	}
	var sh *allocation.Shard
	var err error
	switch p.alloc.Policy {
	case enrollment.PolicyCustom:
		return s.custom(ctx, p, candidates, existing)
	case enrollment.PolicyStatic:
		sh, err = allocation.Static(p.alloc.StaticShard, candidates)
	case enrollment.PolicyGeo:
		var regions []string
		if r := p.region; r != "" {
			regions = append([]string{r}, s.NearestRegions[r]...)
		}
		sh, err = allocation.Geo(enrollment.Key(p.regID), regions, candidates)
	default:
		sh, err = allocation.Hashed(enrollment.Key(p.regID), candidates)
	}
	return sh, nil, err
}

func (s *Service) log(level slog.Level, msg string, attrs ...any) {
	if s.Log != nil {
		s.Log.Log(context.Background(), level, msg, attrs...)
	}
}
