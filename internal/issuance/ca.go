package issuance

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// CAState is an issuing CA's life cycle.
type CAState string

// Issuing CA states.
const (
	// CAActive signs certificates.
	CAActive CAState = "active"
	// CAPending is an intermediate whose CSR waits for the operator's
	// offline root to sign it (Complete).
	CAPending CAState = "pending"
	// CADisabled signs nothing more; its CRL and OCSP stay published.
	CADisabled CAState = "disabled"
)

// CA is an issuing CA: its certificate, the chain above it, and its key
// sealed under the data key (never stored or returned in the clear).
type CA struct {
	Name  string
	State CAState
	// CertDER is the CA's certificate (empty while pending).
	CertDER []byte
	// ChainDER is the chain above the certificate, up to and including
	// the root (empty for a root).
	ChainDER [][]byte
	// CSRDER is a pending intermediate's CSR.
	CSRDER    []byte
	SealedKey []byte
	Etag      string
	Created   time.Time
	Updated   time.Time
}

// CAAAD binds an issuing CA's sealed key to its name.
func CAAAD(name string) string { return secrets.IssuingCAAAD(name) }

// Limits on what an operator uploads for an issuing CA.
const (
	MaxCAChain = 8
	MaxPEM     = 64 << 10
	// caValidity is a generated root's life.
	caValidity = 10 * 365 * 24 * time.Hour
)

// CAKeyType is the key of a CA generated inside Zerotouch.
type CAKeyType string

// CA key types.
const (
	CAKeyP256 CAKeyType = "ecdsa-p256"
	CAKeyP384 CAKeyType = "ecdsa-p384"
)

func generateKey(kt CAKeyType) (crypto.Signer, error) {
	switch kt {
	case "", CAKeyP256:
		// The default: Go signs and verifies P-256 about four times as fast
		// as P-384 (BenchmarkIssue), which keeps issuance cheap beside a
		// registration; 128-bit security suits short-lived certificates.
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case CAKeyP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fault.Invalidf("CA key type %q is not one of ecdsa-p256, ecdsa-p384", kt)
}

func seal(sealer *secrets.Sealer, name string, key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "encode CA key")
	}
	return sealer.Seal(der, CAAAD(name))
}

func subject(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{"Zerotouch"}}
}

// newKey checks a new CA's name and common name (defaulted) and makes its
// key.
func newKey(name, commonName string, kt CAKeyType) (string, crypto.Signer, error) {
	if err := enrollment.ValidateID("issuing CA name", name); err != nil {
		return "", nil, err
	}
	if commonName == "" {
		commonName = "Zerotouch issuing CA " + name
	}
	if err := checkCN(commonName); err != nil {
		return "", nil, err
	}
	key, err := generateKey(kt)
	return commonName, key, err
}

// NewRootCA generates a self-signed issuing CA inside Zerotouch.
func NewRootCA(sealer *secrets.Sealer, name, commonName string, kt CAKeyType, now time.Time) (*CA, error) {
	commonName, key, err := newKey(name, commonName, kt)
	if err != nil {
		return nil, err
	}
	serial, err := NewSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject(commonName),
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "sign CA certificate")
	}
	sealed, err := seal(sealer, name, key)
	if err != nil {
		return nil, err
	}
	return &CA{Name: name, State: CAActive, CertDER: der, SealedKey: sealed, Created: now, Updated: now}, nil
}

// NewIntermediateCA generates a key inside Zerotouch and a CSR for the
// operator's offline root to sign; Complete takes the signed certificate.
func NewIntermediateCA(sealer *secrets.Sealer, name, commonName string, kt CAKeyType, now time.Time) (*CA, error) {
	commonName, key, err := newKey(name, commonName, kt)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject(commonName)}, key)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "make CA CSR")
	}
	sealed, err := seal(sealer, name, key)
	if err != nil {
		return nil, err
	}
	return &CA{Name: name, State: CAPending, CSRDER: csr, SealedKey: sealed, Created: now, Updated: now}, nil
}

func checkCN(cn string) error {
	if len(cn) > 64 || strings.ContainsFunc(cn, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fault.Invalidf("common name must be at most 64 printable characters")
	}
	return nil
}

// ImportCA takes an issuing CA's certificate chain (PEM, the CA first,
// then what is above it) and its private key (PEM PKCS#8, PKCS#1 or SEC 1).
func ImportCA(sealer *secrets.Sealer, name, chainPEM, keyPEM string, now time.Time) (*CA, error) {
	if err := enrollment.ValidateID("issuing CA name", name); err != nil {
		return nil, err
	}
	certs, err := parseChainPEM("certificate", chainPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	if err := checkCAChain(certs, key.Public(), now); err != nil {
		return nil, err
	}
	sealed, err := seal(sealer, name, key)
	if err != nil {
		return nil, err
	}
	ca := &CA{Name: name, State: CAActive, CertDER: certs[0].Raw, SealedKey: sealed, Created: now, Updated: now}
	for _, c := range certs[1:] {
		ca.ChainDER = append(ca.ChainDER, c.Raw)
	}
	return ca, nil
}

// Complete turns a pending intermediate active with the certificate the
// operator's root signed for its CSR (PEM: the certificate, then the chain
// above it up to the root).
func (ca *CA) Complete(sealer *secrets.Sealer, chainPEM string, now time.Time) error {
	if ca.State != CAPending {
		return fault.New(fault.FailedPrecondition, fault.FieldInvalid, "issuing CA %q is not waiting for a signed certificate", ca.Name)
	}
	certs, err := parseChainPEM("certificate", chainPEM)
	if err != nil {
		return err
	}
	key, err := ca.Signer(sealer)
	if err != nil {
		return err
	}
	if err := checkCAChain(certs, key.Public(), now); err != nil {
		return err
	}
	ca.State, ca.CertDER, ca.CSRDER, ca.ChainDER, ca.Updated = CAActive, certs[0].Raw, nil, nil, now
	for _, c := range certs[1:] {
		ca.ChainDER = append(ca.ChainDER, c.Raw)
	}
	return nil
}

// checkCAChain checks an issuing CA's chain: the first certificate holds
// pub and may sign certificates and CRLs, and each certificate is signed
// by the next.
func checkCAChain(certs []*x509.Certificate, pub crypto.PublicKey, now time.Time) error {
	leaf := certs[0]
	if err := enrollment.CheckCACertificate(leaf, now); err != nil {
		return err
	}
	if leaf.KeyUsage&x509.KeyUsageCertSign == 0 || leaf.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return fault.Invalidf("the CA certificate's key usage must include keyCertSign and cRLSign (it signs certificates and their CRL)")
	}
	if len(leaf.SubjectKeyId) == 0 {
		return fault.Invalidf("the CA certificate has no subject key identifier (its CRL and certificates name it)")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if k, ok := pub.(equaler); !ok || !k.Equal(leaf.PublicKey) {
		return fault.Invalidf("the certificate is not for the CA's key")
	}
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "certificate %d of the chain is not signed by certificate %d", i+1, i+2)
		}
	}
	return nil
}

func parseChainPEM(field, text string) ([]*x509.Certificate, error) {
	if len(text) > MaxPEM {
		return nil, fault.Invalidf("%s is %d bytes, at most %d allowed", field, len(text), MaxPEM)
	}
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fault.Invalidf("%s holds a %q block, want CERTIFICATE", field, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "%s: certificate %d is not valid X.509", field, len(out)+1)
		}
		out = append(out, c)
		if len(out) > MaxCAChain {
			return nil, fault.Invalidf("%s holds more than %d certificates", field, MaxCAChain)
		}
	}
	if len(out) == 0 {
		return nil, fault.Invalidf("%s holds no PEM CERTIFICATE", field)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fault.Invalidf("%s has trailing data after its last certificate", field)
	}
	return out, nil
}

func parseKeyPEM(text string) (crypto.Signer, error) {
	if len(text) > MaxPEM {
		return nil, fault.Invalidf("key is %d bytes, at most %d allowed", len(text), MaxPEM)
	}
	block, rest := pem.Decode([]byte(text))
	if block == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fault.Invalidf("key must be exactly one PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fault.Invalidf("key holds a %q block, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "key is not a valid private key")
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return nil, fault.New(fault.InvalidArgument, fault.KeyTooWeak, "CA key curve is not P-256, P-384 or P-521")
		}
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fault.New(fault.InvalidArgument, fault.KeyTooWeak, "CA RSA key is %d bits, at least 2048 required", k.N.BitLen())
		}
		return k, nil
	}
	return nil, fault.Invalidf("CA key must be ECDSA or RSA")
}

// Certificate parses the CA's certificate.
func (ca *CA) Certificate() (*x509.Certificate, error) {
	if len(ca.CertDER) == 0 {
		return nil, fault.New(fault.FailedPrecondition, fault.FieldInvalid, "issuing CA %q has no certificate yet", ca.Name)
	}
	return x509.ParseCertificate(ca.CertDER)
}

// Signer opens the CA's key.
func (ca *CA) Signer(sealer *secrets.Sealer) (crypto.Signer, error) {
	der, err := sealer.Open(ca.SealedKey, CAAAD(ca.Name))
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "open issuing CA %q key", ca.Name)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode issuing CA %q key", ca.Name)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fault.New(fault.Internal, fault.InternalError, "issuing CA %q key cannot sign", ca.Name)
	}
	return s, nil
}

// ChainPEM is the CA's certificate and the chain above it, as PEM.
func (ca *CA) ChainPEM() string {
	var b strings.Builder
	for _, der := range append([][]byte{ca.CertDER}, ca.ChainDER...) {
		if len(der) > 0 {
			pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
	}
	return b.String()
}

// NewSerial draws a random positive 128-bit serial number (RFC 5280 allows
// 20 octets; 16 random ones make serials unguessable and unique).
func NewSerial(r io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "draw a serial number")
	}
	b[0] &= 0x7f
	b[0] |= 0x01 // never a leading zero octet, never zero
	return new(big.Int).SetBytes(b[:]), nil
}
