package x509_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	cx509 "crypto/x509"
	"testing"
	"time"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
)

func TestCheckPublicKey(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, tc := range map[string]struct {
		pub    any
		reason fault.Reason
	}{
		"P-256":    {&p256.PublicKey, ""},
		"P-384":    {&p384.PublicKey, ""},
		"Ed25519":  {edPub, ""},
		"RSA-2048": {&rsa2048.PublicKey, ""},
		"RSA-1024": {&rsa1024.PublicKey, fault.KeyTooWeak},
		"P-521":    {&p521.PublicKey, fault.KeyUnsupported},
		"unknown":  {"a string", fault.KeyUnsupported},
	} {
		err := x509att.CheckPublicKey(tc.pub)
		if tc.reason == "" && err != nil || tc.reason != "" && fault.ReasonOf(err) != tc.reason {
			t.Errorf("%s: %v, want %q", name, err, tc.reason)
		}
	}
}

func TestVerifyPathLengthConstraint(t *testing.T) {
	now := time.Now()
	tmpl := pki.CATemplate("Root", now, time.Hour)
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true // the root may sign only leaves
	key, _ := pki.NewKey()
	root, _ := pki.Issue(tmpl, key, nil)
	inter, _ := pki.NewCA("Inter", root, now, time.Hour)
	dev, _ := pki.NewDevice("dev", inter, now, time.Hour)
	_, err := x509att.Verify([]*cx509.Certificate{dev.Cert, inter.Cert}, 2, nil, []*cx509.Certificate{root.Cert}, now)
	if fault.ReasonOf(err) != fault.ChainTooLong {
		t.Fatalf("path length violation: %v", err)
	}
	direct, _ := pki.NewDevice("dev", root, now, time.Hour)
	if _, err := x509att.Verify([]*cx509.Certificate{direct.Cert}, 1, nil, []*cx509.Certificate{root.Cert}, now); err != nil {
		t.Fatalf("leaf under a pathlen-0 root: %v", err)
	}
}

func TestVerifyExpiredIntermediate(t *testing.T) {
	now := time.Now()
	root, _ := pki.NewCA("Root", nil, now, 48*time.Hour)
	tmpl := pki.CATemplate("Inter", now, time.Hour)
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	key, _ := pki.NewKey()
	inter, _ := pki.Issue(tmpl, key, root)
	dev, _ := pki.NewDevice("dev", inter, now, time.Hour)
	_, err := x509att.Verify([]*cx509.Certificate{dev.Cert, inter.Cert}, 2, nil, []*cx509.Certificate{root.Cert}, now)
	if fault.ReasonOf(err) != fault.CertificateExpired {
		t.Fatalf("expired intermediate: %v", err)
	}
}

func FuzzLeafChecks(f *testing.F) {
	now := time.Now()
	root, _ := pki.NewCA("Root", nil, now, time.Hour)
	dev, _ := pki.NewDevice("dev-1", root, now, time.Hour)
	f.Add(dev.Cert.Raw)
	f.Add(root.Cert.Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := cx509.ParseCertificate(der)
		if err != nil {
			return
		}
		cn, err := x509att.CommonName(cert)
		if err == nil && cn != cert.Subject.CommonName {
			t.Fatalf("CommonName %q, subject CN %q", cn, cert.Subject.CommonName)
		}
		for _, e := range []error{x509att.CheckLeaf(cert, now), x509att.CheckPublicKey(cert.PublicKey), err} {
			if e != nil && fault.KindOf(e) != fault.Unauthenticated {
				t.Fatalf("unclassified refusal: %v", e)
			}
		}
	})
}

func BenchmarkVerifyChain(b *testing.B) {
	now := time.Now()
	root, _ := pki.NewCA("Root", nil, now, time.Hour)
	inter, _ := pki.NewCA("Inter", root, now, time.Hour)
	dev, _ := pki.NewDevice("dev", inter, now, time.Hour)
	chain := []*cx509.Certificate{dev.Cert, inter.Cert}
	anchors := []*cx509.Certificate{root.Cert}
	for b.Loop() {
		if _, err := x509att.Verify(chain, 2, nil, anchors, now); err != nil {
			b.Fatal(err)
		}
	}
}
