package provisioning

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/google/go-tpm/tpm2"

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

// DPS's TPM flow has no challenge ID: the second request carries only the
// EK, the SRK and a SAS signed by the key the first answer delivered into
// the TPM. That key is derived, not stored (ADR 8): from the data key, the
// EK, the SRK, the registration ID and a five-minute window. So a first
// request stores nothing, any replica checks the second, and no one who
// knows a TPM's (public) EK and SRK can replace or use up the key its
// device holds: every first request in a window delivers the same key,
// which only that TPM can import. A key is good for the window it was
// delivered in and the next (5 to 10 minutes); a SAS is used once.
const dpsKeyWindow = 5 * time.Minute

// dpsKey is the key delivered to a TPM in window w (Unix time / window).
func (s *Service) dpsKey(ekHash, srkHash, regID string, w int64) []byte {
	m := hmac.New(sha256.New, s.Secrets.DPSTPMKeyBase())
	fmt.Fprintf(m, "%s\n%s\n%s\n%d", ekHash, srkHash, enrollment.Key(regID), w)
	return m.Sum(nil)
}

func dpsWindow(t time.Time) int64 { return t.Unix() / int64(dpsKeyWindow/time.Second) }

// DPSDeliveredKey is the key the DPS TPM flow's first answer delivers, at
// time at, into the TPM with these EK and SRK (TPM2B_PUBLIC) for regID.
// Only that TPM can import it from the answer; a test that plays the TPM
// in software takes it from here instead.
func (s *Service) DPSDeliveredKey(ekPublic, srkPublic []byte, regID string, at time.Time) []byte {
	return s.dpsKey(tpm.EKHash(ekPublic), tpm.EKHash(srkPublic), regID, dpsWindow(at))
}

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
// authenticationKey blob that delivers the window's key (dpsKey) into its
// TPM, and only its TPM. It stores nothing. DPS takes TPM devices by
// individual enrollment only.
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
	ind, err := s.tpmEnrollment(ctx, req.RegistrationID, ekHash)
	if err != nil {
		return nil, err
	}
	if _, err := s.admit(ctx, claim{regID: ind.RegistrationID, individual: true, attType: registry.TPM, thumbprint: ekHash}); err != nil {
		return nil, err
	}
	key := s.dpsKey(ekHash, tpm.EKHash(e.SRKPublic), req.RegistrationID, dpsWindow(s.Now()))
	blob, err := tpm.AuthenticationKey(s.rand(), ek, srk, key)
	if err != nil {
		return nil, err
	}
	return &TPMChallenge{RegistrationID: req.RegistrationID, AuthenticationKey: blob, Expires: s.Now().Add(dpsKeyWindow)}, nil
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
	if err := enrollment.ValidateRegistrationID(req.RegistrationID); err != nil {
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
	// The key of this window or the one before; an older one is expired.
	ekHash, srkHash := tpm.EKHash(e.EKPublic), tpm.EKHash(e.SRKPublic)
	w := dpsWindow(now)
	var window int64 = -1
	for _, cand := range []int64{w, w - 1, w - 2, w - 3} {
		if tok.Verify(s.dpsKey(ekHash, srkHash, req.RegistrationID, cand)) {
			window = cand
			break
		}
	}
	switch {
	case window < 0:
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the SAS token is not signed by a key delivered to this TPM for this registration; start over")
	case window < w-1:
		return nil, fault.New(fault.Unauthenticated, fault.TPMChallengeExpired, "the key delivered to the TPM expired; start over")
	}
	used := sha256.Sum256(tok.Signature)
	marker := "dps-tpm-used:" + hex.EncodeToString(used[:16])
	if err := s.useOnce(ctx, marker, req.RegistrationID, time.Unix((window+2)*int64(dpsKeyWindow/time.Second), 0), now); err != nil {
		return nil, err
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
		cred: registry.Credential{Type: registry.TPM, TPMEKHash: ekHash, SymmetricKeyHash: hex.EncodeToString(sum[:])}, authKey: blob, counted: true}
	return &p, nil
}
