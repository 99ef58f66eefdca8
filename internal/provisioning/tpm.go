package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// TPMChallengeLife is how long a TPM device has to answer its challenge.
const TPMChallengeLife = 5 * time.Minute

// TPMBegin is a TPM device's first step on the native protocol: its EK,
// the key it binds, and for a group its EK certificate chain. The request's
// registration ID may be "" (derived from the EK).
type TPMBegin struct {
	EKPublic []byte // TPM2B_PUBLIC
	BoundKey []byte // TPM2B_PUBLIC
	// EKCertificates is the EK certificate, then any intermediates (for
	// group enrollments by TPM vendor CA).
	EKCertificates [][]byte
}

func (TPMBegin) attestation() registry.AttestationType { return registry.TPM }

func (e TPMBegin) logAttrs() []any { return []any{"ek", tpm.EKHash(e.EKPublic)} }

// TPMChallenge is what the device gets back from its first step.
type TPMChallenge struct {
	RegistrationID  string
	ID              string
	CredentialBlob  []byte
	EncryptedSecret []byte
	Expires         time.Time
	// AuthenticationKey is the DPS flow's answer instead: the blob that
	// delivers an HMAC key into the TPM.
	AuthenticationKey []byte
}

// TPMAnswer is a TPM device's second step on the native protocol: the
// challenge it answers and the secret its TPM recovered.
type TPMAnswer struct {
	ChallengeID string
	Secret      []byte
}

func (TPMAnswer) attestation() registry.AttestationType { return registry.TPM }

// logAttrs names the challenge by a short hash: the ID is about 1.5 KiB,
// and one sent back may be anything up to the request's size.
func (e TPMAnswer) logAttrs() []any {
	sum := sha256.Sum256([]byte(e.ChallengeID))
	return []any{"challenge", hex.EncodeToString(sum[:8])}
}

// tpmChallengeState is what the first step hands the second, sealed
// under the data key into the challenge ID the device gets back (ADR 8):
// nothing is stored until the device proves its TPM.
type tpmChallengeState struct {
	RegistrationID string `json:"r"`
	EKHash         string `json:"ek"`
	GroupID        string `json:"g,omitempty"`
	BoundKey       []byte `json:"bk"`
	SecretHash     []byte `json:"sh"`
	Expires        int64  `json:"exp"` // Unix seconds
}

// maxChallengeIDLength bounds the challenge ID a device may send back.
const maxChallengeIDLength = 4096

// challenge checks the EK against the enrollments and the bound key's
// attributes, and issues a credential challenge bound to that key.
func (e TPMBegin) challenge(ctx context.Context, s *Service, req *Request) (*TPMChallenge, error) {
	now := s.Now()
	ek, err := tpm.ParsePublic("endorsement_key", e.EKPublic)
	if err != nil {
		return nil, err
	}
	if err := tpm.CheckEK(ek); err != nil {
		return nil, err
	}
	ekHash := tpm.EKHash(e.EKPublic)
	cl := claim{regID: req.RegistrationID, attType: registry.TPM, thumbprint: ekHash}
	ind, err := s.Enrollments.FindIndividualByThumbprint(ctx, ekHash)
	switch {
	case err == nil && ind.Mechanism == enrollment.MechanismTPM:
		if cl.regID == "" {
			cl.regID = ind.RegistrationID
		}
		if !strings.EqualFold(ind.RegistrationID, cl.regID) {
			return nil, fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "the endorsement key is enrolled under another registration ID")
		}
		cl.regID, cl.individual, cl.adoptFrom = ind.RegistrationID, true, ind.DeviceSettings.AdoptFrom
	case err != nil && !errors.Is(err, fault.ErrNotFound):
		return nil, err
	default:
		g, err := s.tpmGroup(ctx, ek, ekHash, e.EKCertificates, now)
		if err != nil {
			return nil, err
		}
		cl.groupID, cl.adoptFrom = g.ID, g.DeviceSettings.AdoptFrom
		// A group TPM's name is its EK's: the EK certificate proves the
		// EK, not a name, so a TPM of the group may not pick another
		// device's registration ID (or a sibling TPM's, EKs are public).
		derived := tpm.RegistrationID(e.EKPublic)
		if cl.regID != "" && !strings.EqualFold(cl.regID, derived) {
			return nil, fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid,
				"a TPM of an enrollment group registers under its EK-derived registration ID %q", derived)
		}
		cl.regID = derived
	}
	if err := enrollment.ValidateRegistrationID(cl.regID); err != nil {
		return nil, err
	}
	// Refuse early what the second step would refuse: another
	// enrollment's registration ID, or another TPM's registration.
	if _, err := s.admit(ctx, cl); err != nil {
		return nil, err
	}
	regID, groupID := cl.regID, cl.groupID
	bound, err := tpm.ParsePublic("bound_key", e.BoundKey)
	if err != nil {
		return nil, err
	}
	if err := tpm.CheckBoundKey(bound); err != nil {
		return nil, err
	}
	name, err := tpm.Name(bound)
	if err != nil {
		return nil, err
	}
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	cred, err := tpm.MakeCredential(r, ek, name)
	if err != nil {
		return nil, err
	}
	expires := now.Add(TPMChallengeLife)
	state, err := json.Marshal(tpmChallengeState{RegistrationID: regID, EKHash: ekHash, GroupID: groupID, BoundKey: e.BoundKey,
		SecretHash: cred.SecretHash, Expires: expires.Unix()})
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "encode challenge")
	}
	if s.Secrets == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.InternalError, "TPM attestation needs a data key")
	}
	sealed, err := s.Secrets.Challenges().Seal(state, secrets.TPMChallengeAAD)
	if err != nil {
		return nil, err
	}
	return &TPMChallenge{RegistrationID: regID, ID: base64.RawURLEncoding.EncodeToString(sealed),
		CredentialBlob: cred.CredentialBlob, EncryptedSecret: cred.EncryptedSecret, Expires: time.Unix(expires.Unix(), 0)}, nil
}

// A TPM challenge is stateless until it is answered: the first step seals
// what the second needs into the challenge ID, so a first step stores
// nothing, and no one who knows a TPM's (public) EK can replace, evict or
// use up that TPM's open challenge, nor fill a store with challenges. A
// TPM may hold any number of open challenges. Single use is enforced when
// the challenge is answered correctly: a marker keyed by the challenge,
// kept until the challenge expires, refuses a second use. Only the TPM
// holding the EK can recover the secret, so only it can write markers.
func tpmUsedMarker(sealed []byte) string {
	sum := sha256.Sum256(sealed)
	return "tpm-used:" + hex.EncodeToString(sum[:16])
}

// openChallenge opens a challenge ID a device sent back.
func (s *Service) openChallenge(id string, now time.Time) (*tpmChallengeState, []byte, error) {
	if len(id) == 0 || len(id) > maxChallengeIDLength || s.Secrets == nil {
		return nil, nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown challenge")
	}
	sealed, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return nil, nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown challenge")
	}
	plain, err := s.Secrets.Challenges().Open(sealed, secrets.TPMChallengeAAD)
	if err != nil {
		return nil, nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown challenge (not issued by this service)")
	}
	var state tpmChallengeState
	if err := json.Unmarshal(plain, &state); err != nil {
		return nil, nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode challenge")
	}
	if !now.Before(time.Unix(state.Expires, 0)) {
		return nil, nil, fault.New(fault.Unauthenticated, fault.TPMChallengeExpired, "the challenge expired; begin again")
	}
	return &state, sealed, nil
}

// countRegistration counts an attempt against the registration's rate
// limit.
func (s *Service) countRegistration(ctx context.Context, regID string) error {
	return s.limited(RulePerRegistration, s.Limiter.AllowRegistration(ctx, enrollment.Key(regID)))
}

// useOnce records that a challenge (or DPS key) was answered, until it
// expires; a second answer is refused. The attempt is counted against the
// registration's rate limit first: a device can make any number of
// answers to its own challenges (a DPS SAS with another expiry is another
// answer), and each would otherwise leave a marker.
func (s *Service) useOnce(ctx context.Context, marker, regID string, expires, now time.Time) error {
	if err := s.countRegistration(ctx, regID); err != nil {
		return err
	}
	err := s.Challenges.PutChallenge(ctx, &attestation.Challenge{ID: marker, RegistrationID: regID, Data: []byte{1}, Expires: expires})
	switch {
	case fault.KindOf(err) == fault.AlreadyExists:
		return fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the challenge was already used; begin again")
	case err != nil:
		return err
	}
	return nil
}

// tpmEnrollment finds the individual TPM enrollment of this EK and checks
// it is enrolled under regID.
func (s *Service) tpmEnrollment(ctx context.Context, regID, ekHash string) (*enrollment.Individual, error) {
	ind, err := s.Enrollments.FindIndividualByThumbprint(ctx, ekHash)
	if errors.Is(err, fault.ErrNotFound) || err == nil && ind.Mechanism != enrollment.MechanismTPM {
		return nil, fault.New(fault.Unauthenticated, fault.TPMEKUnknown, "the endorsement key is not enrolled")
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(ind.RegistrationID, regID) {
		return nil, fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "the endorsement key is enrolled under another registration ID")
	}
	return ind, nil
}

// tpmGroup finds the TPM enrollment group whose vendor CA the EK
// certificate chains to, and verifies that chain. TPM vendor CAs need no
// proof of possession: the operator's upload is the trust decision.
func (s *Service) tpmGroup(ctx context.Context, ek *tpm2.TPMTPublic, ekHash string, ders [][]byte, now time.Time) (*enrollment.Group, error) {
	if len(ders) == 0 {
		return nil, fault.New(fault.Unauthenticated, fault.TPMEKUnknown, "the endorsement key is not enrolled, and no EK certificate was presented")
	}
	if len(ders) > tpm.MaxEKChainLength {
		return nil, fault.New(fault.Unauthenticated, fault.ChainTooLong, "%d EK certificates presented, at most %d allowed", len(ders), tpm.MaxEKChainLength)
	}
	certs := make([]*x509.Certificate, len(ders))
	presented := enrollment.Presented{}
	for i, der := range ders {
		c, err := tpm.ParseEKCertificate(der)
		if err != nil {
			return nil, err
		}
		certs[i] = c
		presented.Thumbprints = append(presented.Thumbprints, enrollment.Thumbprint(c.Raw))
	}
	if err := tpm.CheckEKCertificate(certs[0], ek); err != nil {
		return nil, err
	}
	if top := certs[len(certs)-1]; string(top.RawIssuer) != string(top.RawSubject) {
		presented.TopIssuerKey = enrollment.SubjectKey(top.RawIssuer)
	}
	lookup, err := s.trusted(ctx)
	if err != nil {
		return nil, err
	}
	match, err := enrollment.ResolveGroup(ctx, lookup, presented, enrollment.MechanismTPM)
	if err != nil {
		return nil, fault.Wrap(fault.Unauthenticated, fault.TPMEKUnknown, err, "the endorsement key is not enrolled, and its certificate leads to no TPM enrollment group")
	}
	var anchors, inters []*x509.Certificate
	for _, a := range match.Anchors {
		c, err := a.CA.Certificate()
		if err != nil {
			return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "parse stored CA %q", a.CA.Name)
		}
		anchors = append(anchors, c)
	}
	inters = append(inters, certs[1:match.Depth]...)
	for _, ca := range match.Intermediates {
		if c, err := ca.Certificate(); err == nil {
			inters = append(inters, c)
		}
	}
	path, err := tpm.VerifyEKChain(certs[0], inters, anchors, now)
	if err != nil {
		return nil, err
	}
	top := enrollment.Thumbprint(path[len(path)-1].Raw)
	for _, a := range match.Anchors {
		if a.CA.Thumbprint == top {
			if !a.Group.AllowsEK(ekHash) {
				return nil, fault.New(fault.Unauthenticated, fault.TPMEKUnknown, "the endorsement key is not on the group's allow-list")
			}
			return a.Group, nil
		}
	}
	return nil, fault.New(fault.Internal, fault.InternalError, "verified EK chain ends at an unexpected anchor")
}

// attest takes the challenge (single use), checks the recovered secret in
// constant time, and matches the enrollment again (it may have changed
// since the first step); the device registers with its bound key.
func (e TPMAnswer) attest(ctx context.Context, s *Service, req *Request) (*plan, error) {
	now := s.Now()
	if len(e.Secret) > 2*tpm.SecretSize {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the secret has the wrong size")
	}
	state, sealed, err := s.openChallenge(e.ChallengeID, now)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(state.RegistrationID, req.RegistrationID) {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the challenge was issued to another registration")
	}
	if err := tpm.CheckSecret(state.SecretHash, e.Secret); err != nil {
		return nil, err
	}
	if err := s.useOnce(ctx, tpmUsedMarker(sealed), state.RegistrationID, time.Unix(state.Expires, 0), now); err != nil {
		return nil, err
	}
	p := plan{regID: state.RegistrationID, thumbprint: state.EKHash, attType: registry.TPM, counted: true,
		cred: registry.Credential{Type: registry.TPM, TPMEKHash: state.EKHash, TPMBoundKey: state.BoundKey}}
	// The enrollment may have changed since the first step.
	if state.GroupID != "" {
		g, err := s.Enrollments.GetGroup(ctx, state.GroupID)
		if errors.Is(err, fault.ErrNotFound) {
			return nil, fault.New(fault.Unauthenticated, fault.EnrollmentNotFound, "the enrollment group is gone")
		}
		if err != nil {
			return nil, err
		}
		if g.Disabled {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "enrollment group %q is disabled", g.ID)
		}
		if !g.AllowsEK(state.EKHash) {
			return nil, fault.New(fault.Unauthenticated, fault.TPMEKUnknown, "the endorsement key is not on the group's allow-list")
		}
		p.deviceID, p.alloc, p.settings, p.groupID = state.RegistrationID, g.Allocation, g.DeviceSettings, g.ID
	} else {
		ind, err := s.tpmEnrollment(ctx, state.RegistrationID, state.EKHash)
		if err != nil {
			return nil, err
		}
		if ind.Disabled {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "the device's individual enrollment is disabled")
		}
		p.deviceID, p.alloc, p.settings, p.individual = ind.EffectiveDeviceID(), ind.Allocation, ind.DeviceSettings, true
	}
	return &p, nil
}
