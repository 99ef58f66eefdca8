package tpm

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"slices"
	"time"

	"github.com/google/go-tpm/tpm2"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Limits on EK certificates a device presents.
const (
	MaxEKCertificateSize = 8 << 10
	MaxEKChainLength     = 4
)

var (
	oidSAN           = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidEKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 1} // tcg-kp-EKCertificate
)

func ekCertInvalid(err error, format string, args ...any) error {
	return fault.Wrap(fault.Unauthenticated, fault.TPMEKCertificateInvalid, err, format, args...)
}

// ParseEKCertificate parses an EK certificate as vendors ship them, leniently
// where the TCG profile requires it:
//   - a TCG NV index header (0x10 0x01, then a 16-bit length) before the DER
//     is removed, and zero or 0xFF padding after the DER is ignored;
//   - the TPM-specific subject alternative name, marked critical and holding
//     only a directoryName (TPM manufacturer, model, version), is accepted,
//     which Go's parser leaves as an unhandled critical extension.
//
// Anything else odd is refused with TPM_EK_CERTIFICATE_INVALID.
func ParseEKCertificate(b []byte) (*x509.Certificate, error) {
	if len(b) == 0 || len(b) > MaxEKCertificateSize {
		return nil, fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "EK certificate of %d bytes; 1-%d allowed", len(b), MaxEKCertificateSize)
	}
	if len(b) >= 4 && b[0] == 0x10 && b[1] == 0x01 {
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n > len(b)-4 {
			return nil, fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "EK certificate NV header declares %d bytes, %d follow", n, len(b)-4)
		}
		b = b[4 : 4+n]
	}
	in := cryptobyte.String(b)
	var der cryptobyte.String
	if !in.ReadASN1Element(&der, cbasn1.SEQUENCE) {
		return nil, fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "EK certificate is not DER")
	}
	for _, c := range in {
		if c != 0 && c != 0xff {
			return nil, fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "EK certificate has trailing data after the DER")
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, ekCertInvalid(err, "EK certificate does not parse")
	}
	if err := acceptTPMSAN(cert); err != nil {
		return nil, err
	}
	return cert, nil
}

// acceptTPMSAN removes a critical SAN from the unhandled extensions when it
// holds only directoryNames, as the TCG EK credential profile prescribes.
func acceptTPMSAN(cert *x509.Certificate) error {
	i := slices.IndexFunc(cert.UnhandledCriticalExtensions, func(o asn1.ObjectIdentifier) bool { return o.Equal(oidSAN) })
	if i < 0 {
		return nil
	}
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		names := cryptobyte.String(ext.Value)
		var seq cryptobyte.String
		if !names.ReadASN1(&seq, cbasn1.SEQUENCE) || !names.Empty() || seq.Empty() {
			return fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "EK certificate SAN is malformed")
		}
		for !seq.Empty() {
			var name cryptobyte.String
			var tag cbasn1.Tag
			if !seq.ReadAnyASN1(&name, &tag) || tag != cbasn1.Tag(4).ContextSpecific().Constructed() {
				return fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "EK certificate's critical SAN holds more than directoryNames")
			}
		}
	}
	cert.UnhandledCriticalExtensions = slices.Delete(slices.Clone(cert.UnhandledCriticalExtensions), i, i+1)
	return nil
}

// CheckEKCertificate checks that the certificate certifies this EK, and is
// meant for an EK when it says what it is meant for.
func CheckEKCertificate(cert *x509.Certificate, ek *tpm2.TPMTPublic) error {
	pub, err := tpm2.Pub(*ek)
	if err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "EK public area")
	}
	certKey, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !certKey.Equal(pub) {
		return fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "the EK certificate is for another key")
	}
	if len(cert.ExtKeyUsage) > 0 || len(cert.UnknownExtKeyUsage) > 0 {
		ok := slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) ||
			slices.ContainsFunc(cert.UnknownExtKeyUsage, func(o asn1.ObjectIdentifier) bool { return o.Equal(oidEKCertificate) })
		if !ok {
			return fault.New(fault.Unauthenticated, fault.TPMEKCertificateInvalid, "the certificate's extended key usage is not tcg-kp-EKCertificate")
		}
	}
	return nil
}

// VerifyEKChain verifies the EK certificate through the presented and
// uploaded intermediates to one of the vendor anchors at now.
func VerifyEKChain(leaf *x509.Certificate, intermediates, anchors []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, a := range anchors {
		roots.AddCert(a)
	}
	for _, c := range intermediates {
		inters.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, ekCertInvalid(err, "the EK certificate does not verify to the group's TPM vendor CA")
	}
	return chains[0], nil
}
