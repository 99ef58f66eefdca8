package provisioning

import (
	"context"
	"crypto/rand"
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

// TPMBeginRequest is a TPM device's first step.
type TPMBeginRequest struct {
	// RegistrationID, or "" to derive it from the EK.
	RegistrationID string
	EKPublic       []byte // TPM2B_PUBLIC
	BoundKey       []byte // TPM2B_PUBLIC
	// EKCertificates is the EK certificate, then any intermediates (for
	// group enrollments by TPM vendor CA).
	EKCertificates [][]byte
	Peer           string
}

// TPMChallenge is what the device gets back.
type TPMChallenge struct {
	RegistrationID  string
	ID              string
	CredentialBlob  []byte
	EncryptedSecret []byte
	Expires         time.Time
}

// TPMCompleteRequest is a TPM device's second step.
type TPMCompleteRequest struct {
	RegistrationID string
	ChallengeID    string
	Secret         []byte
	Peer           string
}

// tpmChallengeState is what the first step leaves for the second.
type tpmChallengeState struct {
	EKHash     string `json:"ek"`
	GroupID    string `json:"g,omitempty"`
	BoundKey   []byte `json:"bk"`
	SecretHash []byte `json:"sh"`
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

// BeginTPM checks the EK against the enrollments and the bound key's
// attributes, and issues a credential challenge bound to that key.
func (s *Service) BeginTPM(ctx context.Context, req TPMBeginRequest) (*TPMChallenge, error) {
	ch, err := s.beginTPM(ctx, req)
	if err != nil {
		s.logRefusal(req.Peer, req.RegistrationID, err, "step", "beginTpmAttestation", "ek", tpm.EKHash(req.EKPublic))
	}
	return ch, err
}

func (s *Service) beginTPM(ctx context.Context, req TPMBeginRequest) (*TPMChallenge, error) {
	if err := s.Limiter.AllowPeer(ctx, req.Peer); err != nil {
		return nil, err
	}
	now := s.Now()
	ek, err := tpm.ParsePublic("endorsement_key", req.EKPublic)
	if err != nil {
		return nil, err
	}
	if err := tpm.CheckEK(ek); err != nil {
		return nil, err
	}
	ekHash := tpm.EKHash(req.EKPublic)
	regID, groupID := req.RegistrationID, ""
	ind, err := s.Enrollments.FindIndividualByThumbprint(ctx, ekHash)
	switch {
	case err == nil && ind.Mechanism == enrollment.MechanismTPM:
		if regID == "" {
			regID = ind.RegistrationID
		}
		if _, err := s.tpmEnrollment(ctx, regID, ekHash); err != nil {
			return nil, err
		}
	case err != nil && !errors.Is(err, fault.ErrNotFound):
		return nil, err
	default:
		g, err := s.tpmGroup(ctx, ek, ekHash, req.EKCertificates, now)
		if err != nil {
			return nil, err
		}
		groupID = g.ID
		if regID == "" {
			regID = tpm.RegistrationID(req.EKPublic)
		}
	}
	if err := enrollment.ValidateRegistrationID(regID); err != nil {
		return nil, err
	}
	if err := s.checkSameTPM(ctx, regID, ekHash); err != nil {
		return nil, err
	}
	bound, err := tpm.ParsePublic("bound_key", req.BoundKey)
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
	state, err := json.Marshal(tpmChallengeState{EKHash: ekHash, GroupID: groupID, BoundKey: req.BoundKey, SecretHash: cred.SecretHash})
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "encode challenge")
	}
	c := &attestation.Challenge{ID: hex.EncodeToString(s.random()), RegistrationID: regID, Data: state, Expires: now.Add(TPMChallengeLife)}
	if err := c.Validate(now); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "challenge")
	}
	if err := s.Challenges.PutChallenge(ctx, c); err != nil {
		return nil, err
	}
	return &TPMChallenge{RegistrationID: regID, ID: c.ID, CredentialBlob: cred.CredentialBlob, EncryptedSecret: cred.EncryptedSecret, Expires: c.Expires}, nil
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

// checkSameTPM refuses a registration ID already registered by another TPM.
func (s *Service) checkSameTPM(ctx context.Context, regID, ekHash string) error {
	existing, err := s.Registry.GetRegistration(ctx, regID)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if existing.AttestationType == registry.TPM && existing.CredentialThumbprint != ekHash {
		s.log(slog.LevelWarn, "registration refused: a different TPM claims an existing registration (possible cloned or duplicated device)",
			"registration_id", regID, "registered_ek", existing.CredentialThumbprint, "presented_ek", ekHash)
		return fault.New(fault.PermissionDenied, fault.TPMEKMismatch, "the registration belongs to a different TPM")
	}
	return nil
}

// CompleteTPM takes the challenge (single use), checks the recovered
// secret in constant time, and registers the device with its bound key.
func (s *Service) CompleteTPM(ctx context.Context, req TPMCompleteRequest) (*registry.Registration, error) {
	reg, err := s.completeTPM(ctx, req)
	if err != nil {
		s.logRefusal(req.Peer, req.RegistrationID, err, "step", "completeTpmAttestation", "challenge_id", req.ChallengeID)
	}
	return reg, err
}

func (s *Service) completeTPM(ctx context.Context, req TPMCompleteRequest) (*registry.Registration, error) {
	if err := s.Limiter.AllowPeer(ctx, req.Peer); err != nil {
		return nil, err
	}
	now := s.Now()
	if req.ChallengeID == "" || len(req.ChallengeID) > attestation.MaxChallengeIDLength {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown challenge")
	}
	if len(req.Secret) > 2*tpm.SecretSize {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the secret has the wrong size")
	}
	c, err := s.Challenges.TakeChallenge(ctx, req.ChallengeID, now)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "unknown or already used challenge")
	case fault.ReasonOf(err) == fault.ChallengeExpired:
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeExpired, "the challenge expired; begin again")
	case err != nil:
		return nil, err
	}
	if !strings.EqualFold(c.RegistrationID, req.RegistrationID) {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the challenge was issued to another registration")
	}
	var state tpmChallengeState
	if err := json.Unmarshal(c.Data, &state); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode challenge")
	}
	if err := tpm.CheckSecret(state.SecretHash, req.Secret); err != nil {
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
	if err := s.Limiter.AllowRegistration(ctx, enrollment.Key(c.RegistrationID)); err != nil {
		return nil, err
	}
	return s.record(ctx, p, now)
}
