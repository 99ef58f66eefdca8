package secrets

import (
	"encoding/json"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// Key custody: what is sealed or derived under the data key, for which
// purpose, bound to which record. Every package that seals, opens or
// derives a key does it through these names, so a sealed value cannot be
// opened for another record or purpose.

// SymmetricKeys are an enrollment's primary and secondary keys.
type SymmetricKeys struct {
	Primary   []byte `json:"p"`
	Secondary []byte `json:"s"`
}

// IndividualAAD binds an individual enrollment's sealed keys to its
// registration ID (case-folded, as lookups are).
func IndividualAAD(registrationID string) string { return "ind:" + enrollment.Key(registrationID) }

// GroupAAD binds a group's sealed keys to it.
func GroupAAD(id string) string { return "grp:" + id }

// SASKeyAAD binds an access key's DPS shared access key to the key.
func SASKeyAAD(keyID string) string { return "sas:" + keyID }

// SASKeySecondaryAAD binds an access key's secondary DPS shared access key
// to the key.
func SASKeySecondaryAAD(keyID string) string { return "sas:" + keyID + ":secondary" }

// IssuingCAAAD binds an issuing CA's sealed private key to its name
// (ADR 22).
func IssuingCAAAD(name string) string { return "issuing-ca:" + name }

// TPMChallengeAAD binds a sealed TPM challenge to its purpose.
const TPMChallengeAAD = "tpm-challenge:v1"

// Challenges is the sealer of TPM challenges (ADR 8): a key derived from
// the data key, so that values a device can ask for without limit are
// never sealed under the key that seals enrollment keys.
func (s *Sealer) Challenges() *Sealer {
	s.challengesOnce.Do(func() {
		c, err := New(s.Derive("tpm-challenge-seal:v1"))
		if err != nil {
			panic(err) // Derive makes 32 bytes
		}
		s.challenges = c
	})
	return s.challenges
}

// DPSTPMKeyBase is the key under which the DPS TPM flow derives the keys
// it delivers into TPMs (ADR 8).
func (s *Sealer) DPSTPMKeyBase() []byte { return s.Derive("dps-tpm-key:v1") }

// AuditKey MACs the audit chain (ADR 19).
func (s *Sealer) AuditKey() []byte { return s.Derive("audit-chain:v1") }

// SealKeys seals an enrollment's keys for the record aad names.
func (s *Sealer) SealKeys(k *SymmetricKeys, aad string) ([]byte, error) {
	plain, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	return s.Seal(plain, aad)
}

// OpenKeys unseals an enrollment's keys.
func (s *Sealer) OpenKeys(sealed []byte, aad string) (*SymmetricKeys, error) {
	plain, err := s.Open(sealed, aad)
	if err != nil {
		return nil, err
	}
	var k SymmetricKeys
	if err := json.Unmarshal(plain, &k); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode sealed keys")
	}
	return &k, nil
}

// WebhookSecret is a custom allocation webhook's signing secret: derived
// from the data key, one per webhook URL, the same on every replica.
func (s *Sealer) WebhookSecret(url string) []byte { return s.Derive("webhook-secret:" + url) }
