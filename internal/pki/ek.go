package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"
)

// TCG object identifiers of an EK certificate (TCG EK Credential Profile).
var (
	oidTPMManufacturer = asn1.ObjectIdentifier{2, 23, 133, 2, 1}
	oidTPMModel        = asn1.ObjectIdentifier{2, 23, 133, 2, 2}
	oidTPMVersion      = asn1.ObjectIdentifier{2, 23, 133, 2, 3}
	oidEKCertificate   = asn1.ObjectIdentifier{2, 23, 133, 8, 1} // tcg-kp-EKCertificate
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// NewEKCertificate makes an evaluation EK certificate for a TPM's
// endorsement key (RSA or ECDSA), issued by a TPM vendor CA, shaped as
// vendors ship them: an empty subject, the TPM's manufacturer, model and
// version in a critical subject alternative name (a directoryName),
// extended key usage tcg-kp-EKCertificate, and key usage
// keyEncipherment (RSA) or keyAgreement (ECC). The result has no key: the
// EK's private part never leaves the TPM.
func NewEKCertificate(ek crypto.PublicKey, issuer *Issued, now time.Time, validity time.Duration) (*Issued, error) {
	usage := x509.KeyUsageKeyEncipherment
	switch ek.(type) {
	case *rsa.PublicKey:
	case *ecdsa.PublicKey:
		usage = x509.KeyUsageKeyAgreement
	default:
		return nil, fmt.Errorf("an EK certificate is for an RSA or ECC key, not %T", ek)
	}
	attrs, err := asn1.Marshal(pkix.RDNSequence{{
		{Type: oidTPMManufacturer, Value: "id:5A544348"}, // "ZTCH": no registered vendor
		{Type: oidTPMModel, Value: "zerotouch-evaluation"},
		{Type: oidTPMVersion, Value: "id:00010000"},
	}})
	if err != nil {
		return nil, err
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: attrs}})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		KeyUsage: usage, BasicConstraintsValid: true,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oidEKCertificate},
		ExtraExtensions:    []pkix.Extension{{Id: oidSubjectAltName, Critical: true, Value: san}},
	}
	return IssueFor(tmpl, ek, issuer)
}
