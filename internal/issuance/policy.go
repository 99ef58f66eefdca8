package issuance

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"slices"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// KeyType is a kind of device key a credential policy allows.
type KeyType string

// The key types a device may ask a certificate for.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
	Ed25519   KeyType = "ed25519"
)

// KeyTypes lists every key type, in the order help texts name them.
var KeyTypes = []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096, Ed25519}

// KeyTypeOf names a public key's type, or "" for one no policy can allow
// (another curve, an RSA size other than 2048, 3072 or 4096).
func KeyTypeOf(pub any) KeyType {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256
		case elliptic.P384():
			return ECDSAP384
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	case ed25519.PublicKey:
		return Ed25519
	}
	return ""
}

// Bounds and defaults of a credential policy.
const (
	DefaultValidity = 7 * 24 * time.Hour
	MinValidity     = time.Hour
	MaxValidity     = 398 * 24 * time.Hour
	// DefaultOverlap is how long a superseded certificate stays valid
	// after its renewal, for connections already open with it.
	DefaultOverlap = time.Hour
	MaxOverlap     = 7 * 24 * time.Hour
	MaxGrace       = 90 * 24 * time.Hour
	// MaxPolicies and MaxIssuingCAs bound what an operator can create.
	MaxPolicies   = 1000
	MaxIssuingCAs = 100
)

// Policy is a credential policy: which issuing CA signs a device's CSR,
// for which keys, for how long. Enrollments name one
// (enrollment.DeviceSettings.CredentialPolicy).
type Policy struct {
	Name      string
	IssuingCA string
	// KeyTypes the device's key may have; empty means ECDSA P-256 and
	// P-384.
	KeyTypes []KeyType
	// Validity of an issued certificate (never past the issuing CA's).
	Validity time.Duration
	// RenewalGrace: a device may renew with its issued certificate for
	// this long after it expired (0: only while it is valid).
	RenewalGrace time.Duration
	// Overlap: a superseded certificate is revoked this long after its
	// renewal.
	Overlap time.Duration
	// RevokeOnDisable revokes a device's issued certificate when its
	// registration is deleted or disabled.
	RevokeOnDisable bool
	Etag            string
	Created         time.Time
	Updated         time.Time
}

// EffectiveKeyTypes is KeyTypes with the default applied.
func (p *Policy) EffectiveKeyTypes() []KeyType {
	if len(p.KeyTypes) == 0 {
		return []KeyType{ECDSAP256, ECDSAP384}
	}
	return p.KeyTypes
}

// Normalize fills defaults.
func (p *Policy) Normalize() {
	if p.Validity == 0 {
		p.Validity = DefaultValidity
	}
	if p.Overlap == 0 {
		p.Overlap = DefaultOverlap
	}
	for i, k := range p.KeyTypes {
		p.KeyTypes[i] = KeyType(strings.ToLower(string(k)))
	}
}

// Validate checks the policy's shape (not whether its CA exists).
func (p *Policy) Validate() error {
	if err := enrollment.ValidateID("credential policy name", p.Name); err != nil {
		return err
	}
	if err := enrollment.ValidateID("issuing CA", p.IssuingCA); err != nil {
		return err
	}
	if len(p.KeyTypes) > len(KeyTypes) {
		return fault.Invalidf("keyTypes names %d types, at most %d exist", len(p.KeyTypes), len(KeyTypes))
	}
	for i, k := range p.KeyTypes {
		if !slices.Contains(KeyTypes, k) {
			return fault.Invalidf("key type %q is not one of %s", k, joinKeyTypes())
		}
		if slices.Contains(p.KeyTypes[:i], k) {
			return fault.Invalidf("key type %q is named twice", k)
		}
	}
	if p.Validity < MinValidity || p.Validity > MaxValidity {
		return fault.Invalidf("validity %s is not between %s and %s", p.Validity, MinValidity, MaxValidity)
	}
	if p.Overlap < 0 || p.Overlap > MaxOverlap {
		return fault.Invalidf("overlap %s is not between 0 and %s", p.Overlap, MaxOverlap)
	}
	if p.RenewalGrace < 0 || p.RenewalGrace > MaxGrace {
		return fault.Invalidf("renewal grace %s is not between 0 and %s", p.RenewalGrace, MaxGrace)
	}
	return nil
}

func joinKeyTypes() string {
	s := make([]string, len(KeyTypes))
	for i, k := range KeyTypes {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
