// Package x509 verifies devices' X.509 certificate chains: chain shape, the
// leaf's validity window and usages, the algorithm floor, and path
// verification to the trust anchors an enrollment names; and it checks the
// CRLs and OCSP answers that say whether a certificate was revoked (ADR
// 23), without fetching or keeping them.
//
// It is a domain package (standard library and internal/fault only). It does
// not decide which anchors apply; the enrollment package does.
package x509

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	cx509 "crypto/x509"
	"encoding/asn1"
	"errors"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Algorithm floor and ceilings. RSA keys above MaxRSABits are refused to
// bound the verification cost a device can impose.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
	// DefaultMaxChainLength bounds the certificates a device may present,
	// leaf included.
	DefaultMaxChainLength = 5
)

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// CheckShape refuses an empty chain and one longer than maxLen.
func CheckShape(chain []*cx509.Certificate, maxLen int) error {
	if len(chain) == 0 {
		return fault.New(fault.Unauthenticated, fault.CertificateMissing, "no client certificate was presented")
	}
	if len(chain) > maxLen {
		return fault.New(fault.Unauthenticated, fault.ChainTooLong, "%d certificates presented, at most %d allowed", len(chain), maxLen)
	}
	return nil
}

// CommonName returns the leaf's single subject CN. A subject with no CN or
// with several is refused: the CN is the registration ID and must be
// unambiguous.
func CommonName(leaf *cx509.Certificate) (string, error) {
	var cns []string
	for _, atv := range leaf.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			s, ok := atv.Value.(string)
			if !ok {
				return "", fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "subject CN is not a string")
			}
			cns = append(cns, s)
		}
	}
	if len(cns) != 1 {
		return "", fault.New(fault.Unauthenticated, fault.RegistrationIDInvalid, "leaf subject must have exactly one CN, has %d", len(cns))
	}
	return cns[0], nil
}

// CheckPublicKey enforces the algorithm floor: RSA 2048-8192 bits, ECDSA
// P-256 or P-384, or Ed25519.
func CheckPublicKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return fault.New(fault.Unauthenticated, fault.KeyTooWeak, "RSA key of %d bits; at least %d required", bits, MinRSABits)
		}
		if bits > MaxRSABits {
			return fault.New(fault.Unauthenticated, fault.KeyUnsupported, "RSA key of %d bits; at most %d supported", bits, MaxRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fault.New(fault.Unauthenticated, fault.KeyUnsupported, "ECDSA curve %s; P-256 or P-384 required", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fault.New(fault.Unauthenticated, fault.KeyUnsupported, "unsupported public key type %T", pub)
	}
	return nil
}

// CheckKeys applies CheckPublicKey to every certificate of the chain.
func CheckKeys(chain []*cx509.Certificate) error {
	for _, c := range chain {
		if err := CheckPublicKey(c.PublicKey); err != nil {
			return err
		}
	}
	return nil
}

// CheckLeaf checks the leaf's validity window at now, that it is not a CA,
// that its key usage (if present) allows digital signatures, and that its
// extended key usage names clientAuth (or any). A leaf without an extended
// key usage extension is refused: device certificates must say what they
// are for.
func CheckLeaf(leaf *cx509.Certificate, now time.Time) error {
	if err := checkValidity(leaf, now); err != nil {
		return err
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return fault.New(fault.Unauthenticated, fault.CertificateUsage, "the leaf certificate is a CA certificate")
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&cx509.KeyUsageDigitalSignature == 0 {
		return fault.New(fault.Unauthenticated, fault.CertificateUsage, "the leaf's key usage lacks digitalSignature")
	}
	for _, u := range leaf.ExtKeyUsage {
		if u == cx509.ExtKeyUsageClientAuth || u == cx509.ExtKeyUsageAny {
			return nil
		}
	}
	return fault.New(fault.Unauthenticated, fault.CertificateUsage, "the leaf's extended key usage lacks clientAuth")
}

func checkValidity(c *cx509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fault.New(fault.Unauthenticated, fault.CertificateNotYetValid, "certificate %q is not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fault.New(fault.Unauthenticated, fault.CertificateExpired, "certificate %q expired at %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Verify builds and verifies a path from the leaf chain[0] through the
// presented intermediates chain[1:depth] (and uploaded ones, extra) to one
// of anchors, at time now, for client authentication. RFC 5280 path length
// and name constraints apply. It returns the verified path, leaf first,
// anchor last.
func Verify(chain []*cx509.Certificate, depth int, extra, anchors []*cx509.Certificate, now time.Time) ([]*cx509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fault.New(fault.Unauthenticated, fault.CertificateMissing, "no client certificate was presented")
	}
	if depth < 1 || depth > len(chain) || len(anchors) == 0 {
		return nil, fault.New(fault.Internal, fault.InternalError, "verify: bad depth %d for %d certificates and %d anchors", depth, len(chain), len(anchors))
	}
	roots := cx509.NewCertPool()
	for _, a := range anchors {
		roots.AddCert(a)
	}
	inters := cx509.NewCertPool()
	for _, c := range chain[1:depth] {
		inters.AddCert(c)
	}
	for _, c := range extra {
		inters.AddCert(c)
	}
	chains, err := chain[0].Verify(cx509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []cx509.ExtKeyUsage{cx509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, classify(err, append(chain[:depth:depth], extra...), anchors, now)
	}
	return chains[0], nil
}

// classify turns a crypto/x509 verification error into a reasoned fault.
func classify(err error, presented, anchors []*cx509.Certificate, now time.Time) error {
	var inv cx509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case cx509.Expired:
			for _, c := range append(append([]*cx509.Certificate(nil), presented...), anchors...) {
				if e := checkValidity(c, now); e != nil {
					return fault.Wrap(fault.Unauthenticated, fault.ReasonOf(e), err, "a certificate in the chain is outside its validity period")
				}
			}
			return fault.Wrap(fault.Unauthenticated, fault.CertificateExpired, err, "a certificate in the chain is outside its validity period")
		case cx509.TooManyIntermediates:
			return fault.Wrap(fault.Unauthenticated, fault.ChainTooLong, err, "the chain exceeds a CA's path length constraint")
		case cx509.IncompatibleUsage:
			return fault.Wrap(fault.Unauthenticated, fault.CertificateUsage, err, "a certificate in the chain does not allow client authentication")
		}
		return fault.Wrap(fault.Unauthenticated, fault.CertificateUntrusted, err, "the certificate chain is not valid")
	}
	return fault.Wrap(fault.Unauthenticated, fault.CertificateUntrusted, err, "the certificate chain does not verify to the enrollment's CA")
}

// IsSelfIssued reports whether c names itself as issuer.
func IsSelfIssued(c *cx509.Certificate) bool {
	return string(c.RawIssuer) == string(c.RawSubject)
}
