package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
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

func (e TPMAnswer) logAttrs() []any { return []any{"challenge_id", e.ChallengeID} }

// tpmChallengeState is what the first step leaves for the second.
type tpmChallengeState struct {
	EKHash     string `json:"ek"`
	GroupID    string `json:"g,omitempty"`
	BoundKey   []byte `json:"bk"`
	SecretHash []byte `json:"sh"`
	// Nonce is the part of the device's challenge ID after the EK hash.
	Nonce string `json:"n"`
}

func (s *Service) random() []byte {
	b := make([]byte, 16)
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	_, _ = r.Read(b)
	return b
}

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
	if err := s.Limiter.AllowEKChallenge(ctx, ekHash); err != nil {
		return nil, err
	}
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
		if cl.regID == "" {
			cl.regID = tpm.RegistrationID(e.EKPublic)
		}
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
	nonce := hex.EncodeToString(s.random())
	state, err := json.Marshal(tpmChallengeState{EKHash: ekHash, GroupID: groupID, BoundKey: e.BoundKey, SecretHash: cred.SecretHash, Nonce: nonce})
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "encode challenge")
	}
	c := &attestation.Challenge{ID: tpmChallengeSlot(ekHash), RegistrationID: regID, Data: state, Expires: now.Add(TPMChallengeLife)}
	if err := c.Validate(now); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "challenge")
	}
	if err := s.replaceChallenge(ctx, c, now); err != nil {
		return nil, err
	}
	return &TPMChallenge{RegistrationID: regID, ID: ekHash + nonce, CredentialBlob: cred.CredentialBlob, EncryptedSecret: cred.EncryptedSecret, Expires: c.Expires}, nil
}

// A TPM has one open challenge at a time: it is stored under a slot named
// by the EK, and a new first step replaces the one before. So one EK (or
// one address with a few EKs) cannot fill the challenge store, and the
// store holds at most one challenge per enrolled TPM. The device's
// challenge ID is the EK hash followed by a random nonce, which the second
// step must match.
func tpmChallengeSlot(ekHash string) string { return "tpm:" + ekHash }

// tpmChallengeIDLength is the length of a challenge ID given to a device:
// the EK hash (64 hex digits) and the nonce (32).
const tpmChallengeIDLength = 64 + 32

// parseChallengeID splits a device's challenge ID into its slot and nonce.
func parseChallengeID(id string) (slot, nonce string, ok bool) {
	if len(id) != tpmChallengeIDLength {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return tpmChallengeSlot(strings.ToLower(id[:64])), strings.ToLower(id[64:]), true
}

// replaceChallenge stores c, replacing the challenge in its slot (a
// device that starts over, or a concurrent first step of the same TPM).
func (s *Service) replaceChallenge(ctx context.Context, c *attestation.Challenge, now time.Time) error {
	for range 3 {
		if _, err := s.Challenges.TakeChallenge(ctx, c.ID, now); err != nil && !errors.Is(err, fault.ErrNotFound) && fault.ReasonOf(err) != fault.ChallengeExpired {
			return err
		}
		err := s.Challenges.PutChallenge(ctx, c)
		if fault.KindOf(err) != fault.AlreadyExists {
			return err
		}
	}
	return fault.New(fault.Unavailable, fault.StoreUnavailable, "too many concurrent first steps for this TPM; retry")
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
	match, err := enrollment.ResolveGroup(ctx, s.Enrollments, presented, enrollment.MechanismTPM)
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
	slot, nonce, ok := parseChallengeID(e.ChallengeID)
	if !ok {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown challenge")
	}
	if len(e.Secret) > 2*tpm.SecretSize {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the secret has the wrong size")
	}
	c, err := s.Challenges.TakeChallenge(ctx, slot, now)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown or already used challenge")
	case fault.ReasonOf(err) == fault.ChallengeExpired:
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeExpired, "the challenge expired; begin again")
	case err != nil:
		return nil, err
	}
	var state tpmChallengeState
	if err := json.Unmarshal(c.Data, &state); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode challenge")
	}
	// A wrong nonce is not an answer to this challenge (a replaced one, or
	// a guess by someone who knows the EK): the challenge goes back for its
	// device. A wrong secret for the right nonce uses it up.
	if subtle.ConstantTimeCompare([]byte(state.Nonce), []byte(nonce)) != 1 {
		if err := s.Challenges.PutChallenge(ctx, c); err != nil && fault.KindOf(err) != fault.AlreadyExists {
			s.log(slog.LevelWarn, "could not restore a TPM challenge after a wrong challenge ID", "registration_id", c.RegistrationID, "err", err)
		}
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown, replaced or already used challenge")
	}
	if !strings.EqualFold(c.RegistrationID, req.RegistrationID) {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the challenge was issued to another registration")
	}
	if err := tpm.CheckSecret(state.SecretHash, e.Secret); err != nil {
		return nil, err
	}
	p := plan{regID: c.RegistrationID, thumbprint: state.EKHash, attType: registry.TPM,
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
		p.deviceID, p.alloc, p.settings, p.groupID = c.RegistrationID, g.Allocation, g.DeviceSettings, g.ID
	} else {
		ind, err := s.tpmEnrollment(ctx, c.RegistrationID, state.EKHash)
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
