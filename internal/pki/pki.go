// Package pki mints certificates: the development PKI that `serve --dev`
// generates, the CA, proof-of-possession and device certificates of the
// `zerotouch pki` helper commands, and the certificates tests mint. It is
// not used to verify anything.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Issued is a certificate with its private key.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewKey makes an ECDSA P-256 key.
func NewKey() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// Issue signs tmpl for pub with parent (self-signed when parent is nil, in
// which case key signs). It fills in the serial number if unset.
func Issue(tmpl *x509.Certificate, key crypto.Signer, parent *Issued) (*Issued, error) {
	if tmpl.SerialNumber == nil {
		sn, err := serial()
		if err != nil {
			return nil, err
		}
		tmpl.SerialNumber = sn
	}
	signerCert, signer := tmpl, key
	if parent != nil {
		signerCert, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key}, nil
}

// IssueFor signs tmpl for a public key whose private key is elsewhere (an
// EK in a TPM, say); the result carries no key.
func IssueFor(tmpl *x509.Certificate, pub crypto.PublicKey, parent *Issued) (*Issued, error) {
	if tmpl.SerialNumber == nil {
		sn, err := serial()
		if err != nil {
			return nil, err
		}
		tmpl.SerialNumber = sn
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.Cert, pub, parent.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert}, nil
}

// CATemplate is a CA certificate template valid from now-1h for validity.
func CATemplate(cn string, now time.Time, validity time.Duration) *x509.Certificate {
	return &x509.Certificate{
		Subject:   pkix.Name{CommonName: cn, Organization: []string{"Zerotouch"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
}

// LeafTemplate is a device (client authentication) certificate template
// whose subject CN is the registration ID.
func LeafTemplate(cn string, now time.Time, validity time.Duration) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// NewCA makes a CA (self-signed when parent is nil) with a fresh P-256 key.
func NewCA(cn string, parent *Issued, now time.Time, validity time.Duration) (*Issued, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	return Issue(CATemplate(cn, now, validity), key, parent)
}

// NewDevice makes a device certificate with a fresh P-256 key.
func NewDevice(registrationID string, parent *Issued, now time.Time, validity time.Duration) (*Issued, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	return Issue(LeafTemplate(registrationID, now, validity), key, parent)
}

// NewProof makes a proof-of-possession certificate for a CA: subject CN is
// the verification code, signed by the CA's key.
func NewProof(ca *Issued, code string, now time.Time) (*Issued, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: code},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	return Issue(tmpl, key, ca)
}

// NewServer makes a TLS server certificate for hosts (DNS names or IPs).
func NewServer(hosts []string, parent *Issued, now time.Time, validity time.Duration) (*Issued, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return Issue(tmpl, key, parent)
}

// CertPEM encodes certificates as PEM, in order.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFiles writes the certificate chain (the issued certificate, then
// chain) to certPath and the key to keyPath, readable only by the user.
func (i *Issued) WriteFiles(certPath, keyPath string, chain ...*x509.Certificate) error {
	keyPEM, err := KeyPEM(i.Key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, CertPEM(append([]*x509.Certificate{i.Cert}, chain...)...), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, keyPEM, 0o600)
}

// Load reads a certificate (the first of the file) and its private key.
func Load(certPath, keyPath string) (*Issued, error) {
	certs, err := LoadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM key", keyPath)
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", keyPath, key)
	}
	return &Issued{Cert: certs[0], Key: signer}, nil
}

// LoadCertificates reads every certificate of a PEM file, in order.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return certs, nil
}

// DevPKI is the development PKI of `serve --dev`.
type DevPKI struct {
	CAFile, CertFile, KeyFile string
}

// EnsureDev creates (or reuses, while valid for at least a week) a
// development CA and a server certificate for localhost, 127.0.0.1 and ::1
// in dir.
func EnsureDev(dir string, now time.Time) (*DevPKI, error) {
	d := &DevPKI{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	if cur, err := Load(d.CertFile, d.KeyFile); err == nil && now.Add(7*24*time.Hour).Before(cur.Cert.NotAfter) {
		if cas, err := LoadCertificates(d.CAFile); err == nil && len(cas) == 1 {
			// The server presents its chain (leaf, CA), so that clients can
			// pin the CA by its fingerprint (zerotouch context add); files
			// written before that hold only the leaf.
			if chain, err := LoadCertificates(d.CertFile); err == nil && len(chain) == 1 {
				if err := os.WriteFile(d.CertFile, CertPEM(chain[0], cas[0]), 0o644); err != nil {
					return nil, err
				}
			}
			return d, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := NewCA("Zerotouch development CA", nil, now, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	srv, err := NewServer([]string{"localhost", "127.0.0.1", "::1"}, ca, now, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.CAFile, CertPEM(ca.Cert), 0o644); err != nil {
		return nil, err
	}
	if err := srv.WriteFiles(d.CertFile, d.KeyFile, ca.Cert); err != nil {
		return nil, errors.Join(err, os.Remove(d.CAFile))
	}
	return d, nil
}
