package enrollment

import (
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// ParseCertificatePEM decodes exactly one PEM CERTIFICATE block of at most
// MaxCertificatePEM bytes. field names the input in error messages.
func ParseCertificatePEM(field, text string) (*x509.Certificate, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fault.Invalidf("%s is required", field)
	}
	if len(text) > MaxCertificatePEM {
		return nil, fault.Invalidf("%s is %d bytes, at most %d allowed", field, len(text), MaxCertificatePEM)
	}
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, fault.Invalidf("%s is not PEM", field)
	}
	if block.Type != "CERTIFICATE" {
		return nil, fault.Invalidf("%s holds a %q block, want CERTIFICATE", field, block.Type)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fault.Invalidf("%s must hold exactly one certificate", field)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "%s is not a valid X.509 certificate", field)
	}
	return cert, nil
}

// CheckCACertificate checks that cert may act as a CA for device
// certificates at time now.
func CheckCACertificate(cert *x509.Certificate, now time.Time) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fault.Invalidf("certificate is not a CA (basicConstraints CA:TRUE is missing)")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fault.Invalidf("CA certificate lacks the keyCertSign key usage")
	}
	if now.After(cert.NotAfter) {
		return fault.Invalidf("CA certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// NewCA builds a CA record from a parsed certificate.
func NewCA(name string, cert *x509.Certificate, now time.Time) *CA {
	return &CA{
		Name:       name,
		DER:        cert.Raw,
		Thumbprint: Thumbprint(cert.Raw),
		SubjectKey: SubjectKey(cert.RawSubject),
		Meta:       Meta{Created: now, Updated: now},
	}
}

// IssueVerificationCode sets a fresh single-use verification code on ca,
// replacing any earlier one, and returns it.
func (c *CA) IssueVerificationCode(rand io.Reader, now time.Time) (string, error) {
	var b [24]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fault.Wrap(fault.Internal, fault.InternalError, err, "generate verification code")
	}
	c.VerificationCode = strings.ToUpper(hex.EncodeToString(b[:]))
	c.CodeExpires = now.Add(VerificationCodeLife)
	c.Updated = now
	return c.VerificationCode, nil
}

// Verify checks a proof-of-possession certificate: its subject CN is the
// outstanding verification code, and the CA's key signed it. On success the
// CA is marked verified and the code is spent.
func (c *CA) Verify(proof *x509.Certificate, now time.Time) error {
	if c.VerificationCode == "" {
		return fault.New(fault.FailedPrecondition, fault.VerificationCodeStale, "no verification code outstanding; generate one first")
	}
	if now.After(c.CodeExpires) {
		return fault.New(fault.FailedPrecondition, fault.VerificationCodeStale, "the verification code expired; generate a new one")
	}
	if subtle.ConstantTimeCompare([]byte(proof.Subject.CommonName), []byte(c.VerificationCode)) != 1 {
		return fault.New(fault.InvalidArgument, fault.ProofInvalid, "proof certificate subject CN is not the verification code")
	}
	caCert, err := c.Certificate()
	if err != nil {
		return fault.Wrap(fault.Internal, fault.InternalError, err, "parse stored CA certificate")
	}
	if err := proof.CheckSignatureFrom(caCert); err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.ProofInvalid, err, "proof certificate is not signed by the CA's key")
	}
	if now.Before(proof.NotBefore) || now.After(proof.NotAfter) {
		return fault.New(fault.InvalidArgument, fault.ProofInvalid, "proof certificate is outside its validity period")
	}
	c.Verified = true
	c.VerificationCode = ""
	c.CodeExpires = time.Time{}
	c.Updated = now
	return nil
}
