// Package admin holds the operator use cases behind the management API:
// uploading and verifying CA certificates, creating and changing enrollment
// groups, individual enrollments and hub shards. It validates every
// operator-supplied field before anything is written, so that a refused
// request leaves nothing behind. Transports (gRPC/REST now, the DPS service
// API later) convert their messages to domain types and call it.
package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/attempts"
	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/revocation"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// Store is what the operator use cases read and write.
type Store interface {
	enrollment.Store
	allocation.Store
	allocation.ClusterStore
	registry.Store
	access.Store
	ipfilter.Store
}

// Service runs operator use cases against a store.
type Service struct {
	Store Store
	// Log records operator changes (mutate); nil records none.
	Log  *slog.Logger
	Now  func() time.Time
	Rand io.Reader
	// Secrets seals symmetric keys; nil refuses symmetric-key enrollments.
	Secrets *secrets.Sealer
	// Audit records every change (ADR 19); nil records none.
	Audit *audit.Log
	// Attempts reads the failed-attempt log (ADR 20); nil when it is off.
	Attempts *attempts.Log
	// Issuance keeps issuing CAs, credential policies and revocations
	// (ADR 22); nil turns certificate issuance off.
	Issuance issuance.Store
	// Revocation keeps the CRLs of uploaded CA certificates (ADR 23); nil
	// refuses CRL uploads.
	Revocation *revocation.Checker

	// touched is when this replica last recorded each key's use.
	touched sync.Map

	hubCAOnce sync.Once
	hubCA     *pki.Issued
	hubCAErr  error
}

// symmetricKeys fills in generated keys, checks them, and seals them.
func (s *Service) symmetricKeys(primary, secondary []byte, aad string) (*secrets.SymmetricKeys, []byte, error) {
	if s.Secrets == nil {
		return nil, nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "symmetric keys are turned off (no data key)")
	}
	keys := &secrets.SymmetricKeys{Primary: primary, Secondary: secondary}
	for _, k := range []*[]byte{&keys.Primary, &keys.Secondary} {
		if len(*k) == 0 {
			*k = make([]byte, 32)
			if _, err := io.ReadFull(s.Rand, *k); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := symkey.CheckKey("symmetric_key.primary_key", keys.Primary); err != nil {
		return nil, nil, err
	}
	if err := symkey.CheckKey("symmetric_key.secondary_key", keys.Secondary); err != nil {
		return nil, nil, err
	}
	sealed, err := s.Secrets.SealKeys(keys, aad)
	return keys, sealed, err
}

// CreateSymmetricIndividual creates a symmetric-key individual enrollment
// and returns its keys (shown once).
func (s *Service) CreateSymmetricIndividual(ctx context.Context, e *enrollment.Individual, primary, secondary []byte) (*enrollment.Individual, *secrets.SymmetricKeys, error) {
	if err := enrollment.ValidateRegistrationID(e.RegistrationID); err != nil {
		return nil, nil, fault.Wrap(fault.InvalidArgument, fault.RegistrationIDInvalid, err, "registration_id is not valid")
	}
	keys, sealed, err := s.symmetricKeys(primary, secondary, secrets.IndividualAAD(e.RegistrationID))
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256([]byte("symmetricKey:" + enrollment.Key(e.RegistrationID)))
	e.Mechanism, e.SealedKeys, e.Thumbprint = enrollment.MechanismSymmetricKey, sealed, hex.EncodeToString(sum[:])
	e, err = s.createIndividual(ctx, e)
	return e, keys, err
}

// CreateSymmetricGroup creates a symmetric-key enrollment group (no CA) and
// returns its keys (shown once).
func (s *Service) CreateSymmetricGroup(ctx context.Context, g *enrollment.Group, primary, secondary []byte) (*enrollment.Group, *secrets.SymmetricKeys, error) {
	if err := enrollment.ValidateID("id", g.ID); err != nil {
		return nil, nil, err
	}
	if g.CAName != "" {
		return nil, nil, fault.Invalidf("a symmetric-key group has no ca_certificate")
	}
	g.Mechanism = enrollment.MechanismSymmetricKey
	if err := checkAllowList(g); err != nil {
		return nil, nil, err
	}
	if err := g.Revocation.Validate(g.Mechanism); err != nil {
		return nil, nil, err
	}
	keys, sealed, err := s.symmetricKeys(primary, secondary, secrets.GroupAAD(g.ID))
	if err != nil {
		return nil, nil, err
	}
	g.SealedKeys = sealed
	if err := s.checkShards(ctx, g.Allocation); err != nil {
		return nil, nil, err
	}
	if err := s.checkSettings(ctx, g.DeviceSettings, nil); err != nil {
		return nil, nil, err
	}
	now := s.Now()
	g.Created, g.Updated = now, now
	if g.Etag, err = mutate(ctx, s, change{action: "CreateGroup", resource: g.ID}, func() (string, error) { return s.Store.CreateGroup(ctx, g) }); err != nil {
		return nil, nil, err
	}
	return g, keys, nil
}

// CreateCA uploads a CA certificate. It is unverified until VerifyCA.
func (s *Service) CreateCA(ctx context.Context, name, certPEM string) (*enrollment.CA, error) {
	if err := enrollment.ValidateID("name", name); err != nil {
		return nil, err
	}
	cert, err := enrollment.ParseCertificatePEM("certificate_pem", certPEM)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	if err := enrollment.CheckCACertificate(cert, now); err != nil {
		return nil, err
	}
	if err := x509att.CheckPublicKey(cert.PublicKey); err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.ReasonOf(err), err, "CA certificate key is not acceptable")
	}
	ca := enrollment.NewCA(name, cert, now)
	if ca.Etag, err = mutate(ctx, s, change{action: "CreateCA", resource: ca.Name}, func() (string, error) { return s.Store.CreateCA(ctx, ca) }); err != nil {
		return nil, err
	}
	return ca, nil
}

// GenerateVerificationCode issues a fresh proof-of-possession code.
func (s *Service) GenerateVerificationCode(ctx context.Context, name, etag string) (*enrollment.CA, string, error) {
	ca, err := s.Store.GetCA(ctx, name)
	if err != nil {
		return nil, "", err
	}
	if etag != "" && etag != ca.Etag {
		return nil, "", fault.EtagMismatchf("CA certificate %q was changed by someone else", name)
	}
	code, err := ca.IssueVerificationCode(s.Rand, s.Now())
	if err != nil {
		return nil, "", err
	}
	if ca.Etag, err = mutate(ctx, s, change{action: "UpdateCA", resource: ca.Name, ifMatch: ca.Etag}, func() (string, error) { return s.Store.UpdateCA(ctx, ca) }); err != nil {
		return nil, "", err
	}
	return ca, code, nil
}

// VerifyCA checks the proof of possession and marks the CA verified.
func (s *Service) VerifyCA(ctx context.Context, name, etag, proofPEM string) (*enrollment.CA, error) {
	proof, err := enrollment.ParseCertificatePEM("certificate_pem", proofPEM)
	if err != nil {
		return nil, err
	}
	ca, err := s.Store.GetCA(ctx, name)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != ca.Etag {
		return nil, fault.EtagMismatchf("CA certificate %q was changed by someone else", name)
	}
	if err := ca.Verify(proof, s.Now()); err != nil {
		return nil, err
	}
	if ca.Etag, err = mutate(ctx, s, change{action: "UpdateCA", resource: ca.Name, ifMatch: ca.Etag}, func() (string, error) { return s.Store.UpdateCA(ctx, ca) }); err != nil {
		return nil, err
	}
	return ca, nil
}

// checkShards refuses an allocation naming shards that do not exist.
func (s *Service) checkShards(ctx context.Context, a enrollment.Allocation) error {
	if err := a.Validate(); err != nil {
		return err
	}
	for _, id := range a.ShardNames() {
		if _, err := s.Store.GetShard(ctx, id); err != nil {
			if errors.Is(err, fault.ErrNotFound) {
				return fault.New(fault.InvalidArgument, fault.FieldInvalid, "allocation names shard %q, which does not exist", id)
			}
			return err
		}
	}
	return nil
}

// checkAllowList validates and normalises a TPM group's EK allow-list.
func checkAllowList(g *enrollment.Group) error {
	if g.EffectiveMechanism() != enrollment.MechanismTPM {
		if len(g.EKAllowList) > 0 {
			return fault.Invalidf("tpm_ek_allow_list is only for TPM groups")
		}
		return nil
	}
	if len(g.EKAllowList) > enrollment.MaxEKAllowList {
		return fault.Invalidf("tpm_ek_allow_list has %d entries, at most %d allowed; enroll larger sets individually", len(g.EKAllowList), enrollment.MaxEKAllowList)
	}
	seen := make(map[string]bool, len(g.EKAllowList))
	for i, h := range g.EKAllowList {
		if !enrollment.ValidThumbprint(h) {
			return fault.Invalidf("tpm_ek_allow_list[%d] is not 64 hex digits", i)
		}
		h = strings.ToLower(h)
		if seen[h] {
			return fault.Invalidf("tpm_ek_allow_list lists %s twice", h)
		}
		seen[h] = true
		g.EKAllowList[i] = h
	}
	return nil
}

// CreateGroup creates an enrollment group on an existing CA.
func (s *Service) CreateGroup(ctx context.Context, g *enrollment.Group) (*enrollment.Group, error) {
	if err := enrollment.ValidateID("id", g.ID); err != nil {
		return nil, err
	}
	if err := enrollment.ValidateID("ca_certificate", g.CAName); err != nil {
		return nil, err
	}
	g.Mechanism = g.EffectiveMechanism()
	if err := checkAllowList(g); err != nil {
		return nil, err
	}
	if err := g.Revocation.Validate(g.Mechanism); err != nil {
		return nil, err
	}
	if err := s.checkShards(ctx, g.Allocation); err != nil {
		return nil, err
	}
	if err := s.checkSettings(ctx, g.DeviceSettings, nil); err != nil {
		return nil, err
	}
	now := s.Now()
	g.Created, g.Updated = now, now
	var err error
	if g.Etag, err = mutate(ctx, s, change{action: "CreateGroup", resource: g.ID}, func() (string, error) { return s.Store.CreateGroup(ctx, g) }); err != nil {
		return nil, err
	}
	return g, nil
}

// UpdateGroup writes the mutable fields of g (Disabled, Allocation) if
// g.Etag is current.
func (s *Service) UpdateGroup(ctx context.Context, g *enrollment.Group) (*enrollment.Group, error) {
	if g.Etag == "" {
		return nil, fault.Invalidf("etag is required to update an enrollment group")
	}
	if err := checkAllowList(g); err != nil {
		return nil, err
	}
	if err := g.Revocation.Validate(g.EffectiveMechanism()); err != nil {
		return nil, err
	}
	if err := s.checkShards(ctx, g.Allocation); err != nil {
		return nil, err
	}
	var was []string
	if cur, err := s.Store.GetGroup(ctx, g.ID); err == nil {
		was = cur.AdoptFrom
	}
	if err := s.checkSettings(ctx, g.DeviceSettings, was); err != nil {
		return nil, err
	}
	g.Updated = s.Now()
	var err error
	if g.Etag, err = mutate(ctx, s, change{action: "UpdateGroup", resource: g.ID, ifMatch: g.Etag, summary: fmt.Sprintf("disabled=%t", g.Disabled)}, func() (string, error) { return s.Store.UpdateGroup(ctx, g) }); err != nil {
		return nil, err
	}
	if err := s.syncIdentities(ctx, registry.Filter{GroupID: g.ID}, "", !g.Disabled); err != nil {
		return nil, err
	}
	return s.Store.GetGroup(ctx, g.ID)
}

// CreateTPMIndividual creates an individual TPM enrollment from the EK as
// TPM2B_PUBLIC or as a PEM public key; an empty registration ID is derived
// from the EK.
func (s *Service) CreateTPMIndividual(ctx context.Context, e *enrollment.Individual, ekPublic []byte, ekPEM string) (*enrollment.Individual, error) {
	switch {
	case len(ekPublic) > 0 && ekPEM != "":
		return nil, fault.Invalidf("give tpm.endorsement_key or tpm.endorsement_key_pem, not both")
	case ekPEM != "":
		var err error
		if ekPublic, err = tpm.EKFromPEM(ekPEM); err != nil {
			return nil, err
		}
	case len(ekPublic) == 0:
		return nil, fault.Invalidf("tpm.endorsement_key or tpm.endorsement_key_pem is required")
	}
	ek, err := tpm.ParsePublic("tpm.endorsement_key", ekPublic)
	if err != nil {
		return nil, err
	}
	if err := tpm.CheckEK(ek); err != nil {
		return nil, err
	}
	if e.RegistrationID == "" {
		e.RegistrationID = tpm.RegistrationID(ekPublic)
	}
	e.Mechanism, e.EKPublic, e.Thumbprint = enrollment.MechanismTPM, ekPublic, tpm.EKHash(ekPublic)
	return s.createIndividual(ctx, e)
}

// CreateIndividual creates an individual enrollment from a leaf
// certificate (PEM) or its SHA-256 thumbprint.
func (s *Service) CreateIndividual(ctx context.Context, e *enrollment.Individual, certPEM string) (*enrollment.Individual, error) {
	if err := enrollment.ValidateRegistrationID(e.RegistrationID); err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.RegistrationIDInvalid, err, "registration_id is not valid")
	}
	if e.DeviceID != "" {
		if err := enrollment.ValidateID("device_id", e.DeviceID); err != nil {
			return nil, err
		}
	}
	switch {
	case certPEM != "":
		cert, err := enrollment.ParseCertificatePEM("certificate_pem", certPEM)
		if err != nil {
			return nil, err
		}
		cn, err := x509att.CommonName(cert)
		if err != nil || !strings.EqualFold(cn, e.RegistrationID) {
			return nil, fault.Invalidf("the certificate's subject CN must equal registration_id %q", e.RegistrationID)
		}
		thumb := enrollment.Thumbprint(cert.Raw)
		if e.Thumbprint != "" && !strings.EqualFold(e.Thumbprint, thumb) {
			return nil, fault.Invalidf("sha256_thumbprint does not match certificate_pem")
		}
		e.Thumbprint = thumb
	case e.Thumbprint != "":
		if !enrollment.ValidThumbprint(e.Thumbprint) {
			return nil, fault.Invalidf("sha256_thumbprint must be 64 hex digits")
		}
		e.Thumbprint = strings.ToLower(e.Thumbprint)
	default:
		return nil, fault.Invalidf("certificate_pem or sha256_thumbprint is required")
	}
	e.Mechanism = enrollment.MechanismX509
	return s.createIndividual(ctx, e)
}

func (s *Service) createIndividual(ctx context.Context, e *enrollment.Individual) (*enrollment.Individual, error) {
	if err := enrollment.ValidateRegistrationID(e.RegistrationID); err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.RegistrationIDInvalid, err, "registration_id is not valid")
	}
	if e.DeviceID != "" {
		if err := enrollment.ValidateID("device_id", e.DeviceID); err != nil {
			return nil, err
		}
	}
	if err := s.checkShards(ctx, e.Allocation); err != nil {
		return nil, err
	}
	if err := s.checkSettings(ctx, e.DeviceSettings, nil); err != nil {
		return nil, err
	}
	if err := s.checkDeviceIDFree(ctx, e); err != nil {
		return nil, err
	}
	if IsValidateOnly(ctx) {
		return e, s.checkIndividualFree(ctx, e)
	}
	now := s.Now()
	e.Created, e.Updated = now, now
	var err error
	if e.Etag, err = mutate(ctx, s, change{action: "CreateIndividual", resource: e.RegistrationID, summary: "attestation=" + string(e.Mechanism)}, func() (string, error) { return s.Store.CreateIndividual(ctx, e) }); err != nil {
		return nil, err
	}
	return e, nil
}

// checkSettings validates an enrollment's device settings. Adoption moves
// registrations from other enrollments (ADR 17), which otherwise takes an
// operator's delete: a caller making AdoptFrom name a group it did not
// name before (was, the stored list of an update) must hold
// RegistrationStatusWrite as well as the enrollment permission. Keeping
// or narrowing the list needs nothing more.
func (s *Service) checkSettings(ctx context.Context, d enrollment.DeviceSettings, was []string) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if err := s.checkCredentialPolicy(ctx, d.CredentialPolicy); err != nil {
		return err
	}
	widens := slices.ContainsFunc(d.AdoptFrom, func(id string) bool { return !slices.Contains(was, id) })
	if c := CallerOf(ctx); widens && c != nil && c.Key != nil && !c.Key.Has(access.RegistrationWrite) {
		return fault.New(fault.PermissionDenied, fault.PermissionDeniedR,
			"adoptFrom moves registrations from other enrollments; the access key also needs the %s permission", access.RegistrationWrite)
	}
	return nil
}

// checkDeviceIDFree refuses an individual enrollment whose device ID is
// already the hub identity of another registration (typically a group
// device registered under that name before the enrollment existed): its
// device could never register. The store refuses names other individual
// enrollments reserve; this covers the registry.
func (s *Service) checkDeviceIDFree(ctx context.Context, e *enrollment.Individual) error {
	if e.DeviceID == "" || enrollment.Key(e.DeviceID) == enrollment.Key(e.RegistrationID) {
		return nil // the registration ID's own identity: no read (bulk imports)
	}
	id, err := s.Store.GetIdentity(ctx, e.DeviceID)
	switch {
	case errors.Is(err, fault.ErrNotFound):
	case err != nil:
		return err
	case enrollment.Key(id.RegistrationID) != enrollment.Key(e.RegistrationID):
		return fault.New(fault.AlreadyExists, fault.DeviceIDConflict,
			"device ID %q is the hub identity of registration %q; delete that registration first", id.DeviceID, id.RegistrationID)
	}
	// Reserved names fold case, hub device IDs do not: a group device
	// registered as "gw-1" holds the name "GW-1" too (its registration
	// ID is its device ID, and registration IDs fold case).
	reg, err := s.Store.GetRegistration(ctx, e.DeviceID)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return nil
	case err != nil:
		return err
	case enrollment.Key(reg.RegistrationID) != enrollment.Key(e.RegistrationID):
		return fault.New(fault.AlreadyExists, fault.DeviceIDConflict,
			"device ID %q names registration %q (its registration ID, in any case); delete that registration first", e.DeviceID, reg.RegistrationID)
	}
	return nil
}

// UpdateIndividual writes the mutable fields of e (DeviceID, Disabled,
// Allocation) if e.Etag is current.
func (s *Service) UpdateIndividual(ctx context.Context, e *enrollment.Individual) (*enrollment.Individual, error) {
	if e.Etag == "" {
		return nil, fault.Invalidf("etag is required to update an enrollment")
	}
	if e.DeviceID != "" {
		if err := enrollment.ValidateID("device_id", e.DeviceID); err != nil {
			return nil, err
		}
	}
	if err := s.checkShards(ctx, e.Allocation); err != nil {
		return nil, err
	}
	var was []string
	if cur, err := s.Store.GetIndividual(ctx, e.RegistrationID); err == nil {
		was = cur.AdoptFrom
	}
	if err := s.checkSettings(ctx, e.DeviceSettings, was); err != nil {
		return nil, err
	}
	if err := s.checkDeviceIDFree(ctx, e); err != nil {
		return nil, err
	}
	e.Updated = s.Now()
	if _, err := mutate(ctx, s, change{action: "UpdateIndividual", resource: e.RegistrationID, ifMatch: e.Etag, summary: fmt.Sprintf("device_id=%q disabled=%t", e.DeviceID, e.Disabled)}, func() (string, error) { return s.Store.UpdateIndividual(ctx, e) }); err != nil {
		return nil, err
	}
	if err := s.syncIdentities(ctx, registry.Filter{}, e.RegistrationID, !e.Disabled); err != nil {
		return nil, err
	}
	return s.Store.GetIndividual(ctx, e.RegistrationID)
}

// CreateShard creates a hub shard.
func (s *Service) CreateShard(ctx context.Context, sh *allocation.Shard) (*allocation.Shard, error) {
	if err := enrollment.ValidateID("id", sh.ID); err != nil {
		return nil, err
	}
	if err := sh.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkCluster(ctx, sh.Cluster); err != nil {
		return nil, err
	}
	now := s.Now()
	sh.Created, sh.Updated = now, now
	var err error
	if sh.Etag, err = mutate(ctx, s, change{action: "CreateShard", resource: sh.ID}, func() (string, error) { return s.Store.CreateShard(ctx, sh) }); err != nil {
		return nil, err
	}
	return sh, nil
}

// UpdateShard writes a shard's hostname, weight and state if sh.Etag is
// current.
func (s *Service) UpdateShard(ctx context.Context, sh *allocation.Shard) (*allocation.Shard, error) {
	if sh.Etag == "" {
		return nil, fault.Invalidf("etag is required to update a shard")
	}
	if err := sh.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkCluster(ctx, sh.Cluster); err != nil {
		return nil, err
	}
	sh.Updated = s.Now()
	if _, err := mutate(ctx, s, change{action: "UpdateShard", resource: sh.ID, ifMatch: sh.Etag}, func() (string, error) { return s.Store.UpdateShard(ctx, sh) }); err != nil {
		return nil, err
	}
	return s.Store.GetShard(ctx, sh.ID)
}

// checkCluster refuses a shard naming a hub cluster that does not exist.
func (s *Service) checkCluster(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if _, err := s.Store.GetCluster(ctx, id); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return fault.New(fault.FailedPrecondition, fault.ResourceNotFound, "hub cluster %q does not exist", id)
		}
		return err
	}
	return nil
}

// CreateCluster creates a hub cluster with its pinned client certificates.
func (s *Service) CreateCluster(ctx context.Context, c *allocation.Cluster) (*allocation.Cluster, error) {
	if err := enrollment.ValidateID("id", c.ID); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	now := s.Now()
	c.Created, c.Updated = now, now
	var err error
	if c.Etag, err = mutate(ctx, s, change{action: "CreateCluster", resource: c.ID}, func() (string, error) { return s.Store.CreateCluster(ctx, c) }); err != nil {
		return nil, err
	}
	return c, nil
}

// UpdateCluster replaces a hub cluster's pinned certificates if c.Etag is
// current.
func (s *Service) UpdateCluster(ctx context.Context, c *allocation.Cluster) (*allocation.Cluster, error) {
	if c.Etag == "" {
		return nil, fault.Invalidf("etag is required to update a hub cluster")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.Updated = s.Now()
	if _, err := mutate(ctx, s, change{action: "UpdateCluster", resource: c.ID, ifMatch: c.Etag}, func() (string, error) { return s.Store.UpdateCluster(ctx, c) }); err != nil {
		return nil, err
	}
	return s.Store.GetCluster(ctx, c.ID)
}

// Parallel runs fn(0) … fn(n-1) on a few workers and waits: bulk
// operations write their items concurrently (each item is its own
// transaction), whichever transport they came from.
func Parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(n, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}
