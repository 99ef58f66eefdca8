package tpm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// corpusTime is inside every corpus certificate's validity.
var corpusTime = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readPEM(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(read(t, name))
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSwtpmEKCertificates(t *testing.T) {
	root, issuer := readPEM(t, "swtpm-localca-root.pem"), readPEM(t, "swtpm-localca-issuer.pem")
	der := read(t, "swtpm-ek-rsa2048.der")
	cert, err := tpm.ParseEKCertificate(der)
	if err != nil {
		t.Fatalf("parse swtpm RSA EK certificate: %v", err)
	}
	if len(cert.UnhandledCriticalExtensions) != 0 {
		t.Fatalf("unhandled critical extensions left: %v", cert.UnhandledCriticalExtensions)
	}
	if _, err := tpm.VerifyEKChain(cert, []*x509.Certificate{issuer}, []*x509.Certificate{root}, corpusTime); err != nil {
		t.Fatalf("verify to the swtpm local CA: %v", err)
	}
	if _, err := tpm.VerifyEKChain(cert, nil, []*x509.Certificate{root}, corpusTime); fault.ReasonOf(err) != fault.TPMEKCertificateInvalid {
		t.Fatalf("without the intermediate: %v", err)
	}
	// The EK, rebuilt from the certificate's key with the TCG template, binds.
	spki, _ := x509.MarshalPKIXPublicKey(cert.PublicKey)
	ekBytes, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})))
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := tpm.ParsePublic("ek", ekBytes)
	if err := tpm.CheckEKCertificate(cert, ek); err != nil {
		t.Fatalf("bind to its EK: %v", err)
	}
	other, _ := tpm.ParsePublic("ek", softwareEK(t, true))
	if err := tpm.CheckEKCertificate(cert, other); fault.ReasonOf(err) != fault.TPMEKCertificateInvalid {
		t.Fatalf("bound to another EK: %v", err)
	}

	// The P-384 EK certificate parses, but such an EK is refused.
	p384, err := tpm.ParseEKCertificate(read(t, "swtpm-ek-eccp384.der"))
	if err != nil {
		t.Fatalf("parse swtpm P-384 EK certificate: %v", err)
	}
	spki, _ = x509.MarshalPKIXPublicKey(p384.PublicKey)
	if _, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))); fault.ReasonOf(err) != fault.KeyUnsupported {
		t.Fatalf("P-384 EK: %v", err)
	}
}

func TestOddEncodings(t *testing.T) {
	der := read(t, "swtpm-ek-rsa2048.der")
	nvHeader := append([]byte{0x10, 0x01, byte(len(der) >> 8), byte(len(der))}, der...)
	for name, b := range map[string][]byte{
		"NV header":             nvHeader,
		"zero padding":          append(append([]byte{}, der...), 0, 0, 0, 0),
		"0xFF padding":          append(append([]byte{}, der...), 0xff, 0xff),
		"NV header and padding": append(append([]byte{}, nvHeader...), 0, 0),
	} {
		cert, err := tpm.ParseEKCertificate(b)
		if err != nil || string(cert.Raw) != string(der) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"empty":            nil,
		"truncated":        der[:len(der)-10],
		"trailing garbage": append(append([]byte{}, der...), 'x'),
		"NV header lies":   append([]byte{0x10, 0x01, 0xff, 0xff}, der...),
		"oversized":        make([]byte, tpm.MaxEKCertificateSize+1),
		"not DER":          []byte("-----BEGIN CERTIFICATE-----"),
	} {
		if _, err := tpm.ParseEKCertificate(b); fault.ReasonOf(err) != fault.TPMEKCertificateInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// mintEK issues a certificate for pub with the given extensions.
func mintEK(t *testing.T, pub any, mutate func(*x509.Certificate)) []byte {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vendor"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: corpusTime.Add(-time.Hour), NotAfter: corpusTime.Add(time.Hour)}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: corpusTime.Add(-time.Hour), NotAfter: corpusTime.Add(time.Hour),
		KeyUsage: x509.KeyUsageKeyEncipherment}
	mutate(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestOddExtensions(t *testing.T) {
	ekBytes := softwareEK(t, false)
	ek, _ := tpm.ParsePublic("ek", ekBytes)
	pub, _ := tpm.PublicKey(ek)
	sanOID := asn1.ObjectIdentifier{2, 5, 29, 17}
	// An otherName (context tag 0), which Go leaves unhandled like the TPM
	// directoryName, but which the TCG profile does not allow.
	otherName, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 3})
	otherSAN, _ := asn1.Marshal([]asn1.RawValue{{Class: 2, Tag: 0, IsCompound: true, Bytes: otherName}})
	for name, tc := range map[string]struct {
		mutate func(*x509.Certificate)
		ok     bool
	}{
		"no EKU":         {func(*x509.Certificate) {}, true},
		"EK EKU":         {func(c *x509.Certificate) { c.UnknownExtKeyUsage = []asn1.ObjectIdentifier{{2, 23, 133, 8, 1}} }, true},
		"serverAuth EKU": {func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, false},
		"critical otherName SAN": {func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{{Id: sanOID, Critical: true, Value: otherSAN}}
		}, false},
	} {
		cert, err := tpm.ParseEKCertificate(mintEK(t, pub, tc.mutate))
		if err == nil {
			err = tpm.CheckEKCertificate(cert, ek)
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", name, err, tc.ok)
		}
	}
}

func FuzzParseEKCertificate(f *testing.F) {
	f.Add(read(f, "swtpm-ek-rsa2048.der"))
	f.Add(read(f, "swtpm-ek-eccp384.der"))
	f.Add([]byte{0x10, 0x01, 0x00, 0x02, 0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		cert, err := tpm.ParseEKCertificate(b)
		if err != nil {
			if fault.ReasonOf(err) != fault.TPMEKCertificateInvalid {
				t.Fatalf("unclassified: %v", err)
			}
			return
		}
		for _, o := range cert.UnhandledCriticalExtensions {
			if o.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
				t.Fatal("a critical SAN was accepted but left unhandled")
			}
		}
	})
}
