package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// DPSTPMBegin is a TPM device's first request on the DPS-compatible API:
// its EK and SRK, without a token. It is answered with the
// authenticationKey blob that delivers a fresh HMAC key into that TPM.
type DPSTPMBegin struct {
	EKPublic  []byte // TPM2B_PUBLIC
	SRKPublic []byte // TPM2B_PUBLIC
}

func (DPSTPMBegin) attestation() registry.AttestationType { return registry.TPM }

func (e DPSTPMBegin) logAttrs() []any {
	return []any{"ek", tpm.EKHash(e.EKPublic), "dps_step", "challenge"}
}

// DPSTPMAnswer is the second request: the same keys, and a SAS signed by
// the key the first answer delivered into the TPM. Resource is what the
// token must be for ("{idScope}/registrations/{registrationId}").
type DPSTPMAnswer struct {
	EKPublic  []byte
	SRKPublic []byte
	Token     string
	Resource  string
}

func (DPSTPMAnswer) attestation() registry.AttestationType { return registry.TPM }

func (e DPSTPMAnswer) logAttrs() []any {
	return []any{"ek", tpm.EKHash(e.EKPublic), "dps_step", "register"}
}

type dpsTPMState struct {
	EKHash  string `json:"ek"`
	SRKHash string `json:"srk"`
	// SealedKey is the delivered HMAC key, sealed: the second request's
	// SAS must verify with it.
	SealedKey []byte `json:"k"`
}

func dpsChallengeID(regID string) string { return "dps-tpm:" + enrollment.Key(regID) }

func (s *Service) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

// parseDPSKeys checks the EK and SRK a DPS TPM device sent.
func parseDPSKeys(ekPublic, srkPublic []byte) (ek, srk *tpm2.TPMTPublic, err error) {
	if ek, err = tpm.ParsePublic("tpm.endorsementKey", ekPublic); err != nil {
		return nil, nil, err
	}
	if err := tpm.CheckEK(ek); err != nil {
		return nil, nil, err
	}
	if srk, err = tpm.ParsePublic("tpm.storageRootKey", srkPublic); err != nil {
		return nil, nil, err
	}
	if err := tpm.CheckSRK(srk); err != nil {
		return nil, nil, err
	}
	return ek, srk, nil
}

// challenge answers a DPS TPM device's first request with the
// authenticationKey blob that delivers a fresh HMAC key into its TPM (and
// only its TPM). DPS takes TPM devices by individual enrollment only.
func (e DPSTPMBegin) challenge(ctx context.Context, s *Service, req *Request) (*TPMChallenge, error) {
	if s.Secrets == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "the DPS TPM flow needs a data key")
	}
	ek, srk, err := parseDPSKeys(e.EKPublic, e.SRKPublic)
	if err != nil {
		return nil, err
	}
	if err := enrollment.ValidateRegistrationID(req.RegistrationID); err != nil {
		return nil, err
	}
	ekHash := tpm.EKHash(e.EKPublic)
	if err := s.Limiter.AllowEKChallenge(ctx, ekHash); err != nil {
		return nil, err
	}
	ind, err := s.tpmEnrollment(ctx, req.RegistrationID, ekHash)
	if err != nil {
		return nil, err
	}
	if _, err := s.admit(ctx, claim{regID: ind.RegistrationID, individual: true, attType: registry.TPM, thumbprint: ekHash}); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(s.rand(), key); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "key")
	}
	blob, err := tpm.AuthenticationKey(s.rand(), ek, srk, key)
	if err != nil {
		return nil, err
	}
	id := dpsChallengeID(req.RegistrationID)
	sealed, err := s.Secrets.Seal(key, id)
	if err != nil {
		return nil, err
	}
	state, _ := json.Marshal(dpsTPMState{EKHash: ekHash, SRKHash: tpm.EKHash(e.SRKPublic), SealedKey: sealed})
	now := s.Now()
	// A device that starts over replaces its outstanding challenge.
	if _, err := s.Challenges.TakeChallenge(ctx, id, now); err != nil && !errors.Is(err, fault.ErrNotFound) && fault.ReasonOf(err) != fault.ChallengeExpired {
		return nil, err
	}
	if err := s.Challenges.PutChallenge(ctx, &attestation.Challenge{ID: id, RegistrationID: req.RegistrationID, Data: state, Expires: now.Add(TPMChallengeLife)}); err != nil {
		return nil, err
	}
	return &TPMChallenge{RegistrationID: req.RegistrationID, AuthenticationKey: blob, Expires: now.Add(TPMChallengeLife)}, nil
}

// attest checks the second request's SAS against the delivered key (proof
// that the enrolled TPM imported it) and makes the authenticationKey blob
// that delivers the device's hub key.
func (e DPSTPMAnswer) attest(ctx context.Context, s *Service, req *Request) (*plan, error) {
	if s.Secrets == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "the DPS TPM flow needs a data key")
	}
	ek, srk, err := parseDPSKeys(e.EKPublic, e.SRKPublic)
	if err != nil {
		return nil, err
	}
	tok, err := symkey.Parse(e.Token)
	if err != nil {
		return nil, err
	}
	if err := tok.CheckResource(e.Resource); err != nil {
		return nil, err
	}
	now := s.Now()
	if err := tok.CheckExpiry(now); err != nil {
		return nil, err
	}
	id := dpsChallengeID(req.RegistrationID)
	c, err := s.Challenges.TakeChallenge(ctx, id, now)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "no outstanding TPM challenge; start over")
	case fault.ReasonOf(err) == fault.ChallengeExpired:
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeExpired, "the TPM challenge expired; start over")
	case err != nil:
		return nil, err
	}
	var state dpsTPMState
	if err := json.Unmarshal(c.Data, &state); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode challenge")
	}
	ekHash := tpm.EKHash(e.EKPublic)
	if state.EKHash != ekHash || state.SRKHash != tpm.EKHash(e.SRKPublic) {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the keys differ from the first request's")
	}
	key, err := s.Secrets.Open(state.SealedKey, id)
	if err != nil {
		return nil, err
	}
	if !tok.Verify(key) {
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the SAS token is not signed by the key delivered to the TPM")
	}
	ind, err := s.tpmEnrollment(ctx, req.RegistrationID, ekHash)
	if err != nil {
		return nil, err
	}
	if ind.Disabled {
		return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "the device's individual enrollment is disabled")
	}
	// The device's hub key, delivered into its TPM like the first key.
	hubKey := make([]byte, 32)
	if _, err := io.ReadFull(s.rand(), hubKey); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "hub key")
	}
	blob, err := tpm.AuthenticationKey(s.rand(), ek, srk, hubKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(hubKey)
	p := plan{regID: ind.RegistrationID, deviceID: ind.EffectiveDeviceID(), thumbprint: ekHash, attType: registry.TPM,
		individual: true, alloc: ind.Allocation, settings: ind.DeviceSettings,
		cred: registry.Credential{Type: registry.TPM, TPMEKHash: ekHash, SymmetricKeyHash: hex.EncodeToString(sum[:])}, authKey: blob}
	return &p, nil
}
