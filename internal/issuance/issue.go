package issuance

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// MaxCSR bounds a device's CSR (DER).
const MaxCSR = 16 << 10

// oidBasicConstraints and oidKeyUsage are the extensions a CSR may not use
// to ask for CA powers.
var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// ParseCSR decodes and checks a device's PKCS#10 CSR (DER) on its own:
// size, encoding, its self-signature, and that it asks for no CA powers.
// CheckCSR then holds it against the registration and the policy.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, fault.New(fault.InvalidArgument, fault.CSRInvalid, "the CSR is empty")
	}
	if len(der) > MaxCSR {
		return nil, fault.New(fault.InvalidArgument, fault.CSRInvalid, "the CSR is %d bytes, at most %d allowed", len(der), MaxCSR)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.CSRInvalid, err, "the CSR is not a PKCS#10 certificate request (DER)")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.CSRInvalid, err, "the CSR's signature does not verify")
	}
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA bool `asn1:"optional"`
				Max  int  `asn1:"optional,default:-1"`
			}
			if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil || bc.IsCA {
				return nil, fault.New(fault.InvalidArgument, fault.CSRExtensionNotAllowed, "the CSR asks to be a CA (basicConstraints)")
			}
		case ext.Id.Equal(oidKeyUsage):
			var bits asn1.BitString
			if _, err := asn1.Unmarshal(ext.Value, &bits); err != nil || bits.At(5) == 1 || bits.At(6) == 1 {
				return nil, fault.New(fault.InvalidArgument, fault.CSRExtensionNotAllowed, "the CSR asks for keyCertSign or cRLSign")
			}
		}
	}
	return csr, nil
}

// CheckCSR holds a parsed CSR against the registration ID and the policy:
// its CN is the registration ID (compared case-insensitively, as
// registration IDs are), and its key type is one the policy allows.
func CheckCSR(csr *x509.CertificateRequest, regID string, p *Policy) error {
	if cn := csr.Subject.CommonName; !strings.EqualFold(cn, regID) {
		return fault.New(fault.InvalidArgument, fault.CSRSubjectMismatch, "the CSR's CN %q is not the registration ID %q", truncate(cn, 128), regID)
	}
	kt := KeyTypeOf(csr.PublicKey)
	if kt == "" || !containsKeyType(p.EffectiveKeyTypes(), kt) {
		name := string(kt)
		if name == "" {
			name = "an unsupported key"
		}
		return fault.New(fault.InvalidArgument, fault.CSRKeyNotAllowed, "credential policy %q does not allow %s (allowed: %s)", p.Name, name, joinTypes(p.EffectiveKeyTypes()))
	}
	return nil
}

func containsKeyType(ks []KeyType, k KeyType) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func joinTypes(ks []KeyType) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "?") + "…"
	}
	return s
}

// Issued is a certificate Zerotouch signed for a device.
type Issued struct {
	Leaf *x509.Certificate
	// Chain is leaf, issuing CA, ..., root (DER), as DPS's
	// issuedCertificateChain orders it.
	Chain [][]byte
}

// Serial is the certificate's serial as lowercase hex.
func (i *Issued) Serial() string { return SerialHex(i.Leaf.SerialNumber) }

// Thumbprint is the hex SHA-256 of the certificate.
func (i *Issued) Thumbprint() string {
	sum := sha256.Sum256(i.Leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// SerialHex writes a serial number as lowercase hex.
func SerialHex(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// ParseSerial reads a serial written by SerialHex (or with colons, or in
// upper case, as openssl prints them).
func ParseSerial(s string) (*big.Int, error) {
	s = strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), ":", ""))
	if s == "" || len(s) > 40 {
		return nil, fault.Invalidf("serial must be 1-20 octets in hex")
	}
	b, err := hex.DecodeString(strings.Repeat("0", len(s)%2) + s)
	if err != nil {
		return nil, fault.Invalidf("serial %q is not hex", truncate(s, 48))
	}
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		return nil, fault.Invalidf("serial 0 is not one Zerotouch issues")
	}
	return n, nil
}

// URLs are where relying parties find an issuing CA's CRL and OCSP
// responder; they go into every certificate it issues.
type URLs struct {
	CRL  string
	OCSP string
}

// Issue signs a certificate for the CSR's key: CN = the registration ID
// (as registered), client authentication, valid from now for
// the policy's validity but never past the CA's. It copies nothing else
// from the CSR.
func Issue(ca *CA, caCert *x509.Certificate, key crypto.Signer, csr *x509.CertificateRequest, regID string, p *Policy, urls URLs, now time.Time) (*Issued, error) {
	serial, err := NewSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(p.Validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	ku := x509.KeyUsageDigitalSignature
	if KeyTypeOf(csr.PublicKey) == RSA2048 || KeyTypeOf(csr.PublicKey) == RSA3072 || KeyTypeOf(csr.PublicKey) == RSA4096 {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: regID},
		NotBefore:             now.Add(-5 * time.Minute), // clock skew on the device
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if urls.CRL != "" {
		tmpl.CRLDistributionPoints = []string{urls.CRL}
	}
	if urls.OCSP != "" {
		tmpl.OCSPServer = []string{urls.OCSP}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, csr.PublicKey, key)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "sign the device certificate")
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "parse the issued certificate")
	}
	chain := append([][]byte{der, ca.CertDER}, ca.ChainDER...)
	return &Issued{Leaf: leaf, Chain: chain}, nil
}
