package x509_test

import (
	"crypto"
	"crypto/rand"
	cx509 "crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// signCRL makes a CRL issued by ca revoking serials, valid from now for
// validity, with extra extensions.
func signCRL(t testing.TB, ca *pki.Issued, number int64, now time.Time, validity time.Duration, serials []*big.Int, exts ...pkix.Extension) []byte {
	t.Helper()
	tmpl := &cx509.RevocationList{Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(validity), ExtraExtensions: exts}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, cx509.RevocationListEntry{SerialNumber: s, RevocationTime: now.Add(-time.Minute)})
	}
	der, err := cx509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newCA(t testing.TB, cn string, parent *pki.Issued) *pki.Issued {
	t.Helper()
	ca, err := pki.NewCA(cn, parent, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func idpExt(t testing.TB, v any) pkix.Extension {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: der}
}

func TestCheckCRL(t *testing.T) {
	now := time.Now()
	ca, other := newCA(t, "Acme Root", nil), newCA(t, "Other Root", nil)
	dev, err := pki.NewDevice("dev-1", ca, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := signCRL(t, ca, 7, now, time.Hour, []*big.Int{dev.Cert.SerialNumber, big.NewInt(42)})

	crl, err := x509att.CheckCRL(good, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := crl.Lookup(dev.Cert.SerialNumber); !ok || crl.Len() != 2 || !crl.Has("2a") || crl.Number.Int64() != 7 {
		t.Fatalf("CRL read wrong: len %d, number %v", crl.Len(), crl.Number)
	}
	if !crl.Fresh(now) || crl.Fresh(now.Add(2*time.Hour)) || !crl.Covers(dev.Cert) {
		t.Fatal("freshness or scope wrong")
	}
	if crl.Issuer != x509att.NameKey(dev.Cert.RawIssuer) {
		t.Fatal("issuer key is not the leaf's issuer name key")
	}

	// Every refusal.
	noNext, err := cx509.CreateRevocationList(rand.Reader, &cx509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff
	delta := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: []byte{2, 1, 1}}
	unknownCritical := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}
	type idpFlags struct {
		OnlyUsers bool `asn1:"optional,tag:1"`
		OnlyCAs   bool `asn1:"optional,tag:2"`
		Indirect  bool `asn1:"optional,tag:4"`
	}
	for name, tc := range map[string]struct {
		der    []byte
		issuer *cx509.Certificate
		want   string
	}{
		"another CA":        {good, other.Cert, "issuer is not"},
		"tampered":          {tampered, ca.Cert, "not signed"},
		"garbage":           {[]byte("not a CRL"), ca.Cert, "does not parse"},
		"no nextUpdate":     {noNext, ca.Cert, "nextUpdate"},
		"delta":             {signCRL(t, ca, 2, now, time.Hour, nil, delta), ca.Cert, "delta"},
		"unknown critical":  {signCRL(t, ca, 2, now, time.Hour, nil, unknownCritical), ca.Cert, "unknown critical"},
		"indirect":          {signCRL(t, ca, 2, now, time.Hour, nil, idpExt(t, idpFlags{Indirect: true})), ca.Cert, "indirect"},
		"neither users nor": {signCRL(t, ca, 2, now, time.Hour, nil, idpExt(t, idpFlags{OnlyUsers: true, OnlyCAs: true})), ca.Cert, "neither"},
	} {
		if _, err := x509att.CheckCRL(tc.der, tc.issuer); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}

	// Scope: a CRL of CA certificates only does not cover a leaf.
	caOnly, err := x509att.CheckCRL(signCRL(t, ca, 3, now, time.Hour, nil, idpExt(t, idpFlags{OnlyCAs: true})), ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if caOnly.Covers(dev.Cert) || !caOnly.Covers(newCA(t, "Issuing", ca).Cert) {
		t.Error("onlyContainsCACerts scope not applied")
	}

	// Newer: by number, then by thisUpdate.
	older, _ := x509att.CheckCRL(signCRL(t, ca, 6, now.Add(time.Minute), time.Hour, nil), ca.Cert)
	if !crl.Newer(older) || older.Newer(crl) {
		t.Error("CRL number order wrong")
	}
}

func TestDecodeCRL(t *testing.T) {
	ca := newCA(t, "Acme Root", nil)
	der := signCRL(t, ca, 1, time.Now(), time.Hour, nil)
	pemCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	for name, tc := range map[string]struct {
		in []byte
		ok bool
	}{
		"DER":         {der, true},
		"PEM":         {pemCRL, true},
		"certificate": {pki.CertPEM(ca.Cert), false},
		"two blocks":  {append(append([]byte(nil), pemCRL...), pemCRL...), false},
		"empty":       {nil, false},
		"text":        {[]byte("hello"), false},
		"huge":        {make([]byte, x509att.MaxCRLBytes+1), false},
	} {
		got, err := x509att.DecodeCRL(tc.in)
		if (err == nil) != tc.ok || tc.ok && string(got) != string(der) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCheckOCSP(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "Acme Root", nil)
	dev, err := pki.NewDevice("dev-1", ca, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := pki.NewDevice("dev-2", ca, now, time.Hour)
	respond := func(signer *pki.Issued, embed bool, tmpl ocsp.Response) []byte {
		t.Helper()
		if tmpl.SerialNumber == nil {
			tmpl.SerialNumber = dev.Cert.SerialNumber
		}
		if embed {
			tmpl.Certificate = signer.Cert
		}
		der, err := ocsp.CreateResponse(ca.Cert, signer.Cert, tmpl, signer.Key.(crypto.Signer))
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	delegated, err := pki.Issue(&cx509.Certificate{Subject: pkix.Name{CommonName: "OCSP responder"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []cx509.ExtKeyUsage{cx509.ExtKeyUsageOCSPSigning}, KeyUsage: cx509.KeyUsageDigitalSignature}, mustKey(t), ca)
	if err != nil {
		t.Fatal(err)
	}
	notForOCSP, err := pki.NewDevice("not-a-responder", ca, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509att.OCSPRequest(dev.Cert, ca.Cert); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		der     []byte
		revoked bool
		ok      bool
	}{
		"good":               {respond(ca, false, ocsp.Response{Status: ocsp.Good, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}), false, true},
		"revoked":            {respond(ca, false, ocsp.Response{Status: ocsp.Revoked, RevokedAt: now, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}), true, true},
		"stale revoked":      {respond(ca, false, ocsp.Response{Status: ocsp.Revoked, RevokedAt: now, ThisUpdate: now.Add(-3 * time.Hour), NextUpdate: now.Add(-2 * time.Hour)}), true, true},
		"delegated":          {respond(delegated, true, ocsp.Response{Status: ocsp.Good, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}), false, true},
		"no nextUpdate":      {respond(ca, false, ocsp.Response{Status: ocsp.Good, ThisUpdate: now.Add(-time.Minute)}), false, true},
		"old, no nextUpdate": {respond(ca, false, ocsp.Response{Status: ocsp.Good, ThisUpdate: now.Add(-2 * time.Hour)}), false, false},
		"stale good":         {respond(ca, false, ocsp.Response{Status: ocsp.Good, ThisUpdate: now.Add(-3 * time.Hour), NextUpdate: now.Add(-time.Hour)}), false, false},
		"future":             {respond(ca, false, ocsp.Response{Status: ocsp.Good, ThisUpdate: now.Add(time.Hour), NextUpdate: now.Add(2 * time.Hour)}), false, false},
		"unknown":            {respond(ca, false, ocsp.Response{Status: ocsp.Unknown, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}), false, false},
		"other serial":       {respond(ca, false, ocsp.Response{Status: ocsp.Good, SerialNumber: other.Cert.SerialNumber, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}), false, false},
		"not a responder":    {respond(notForOCSP, true, ocsp.Response{Status: ocsp.Good, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}), false, false},
		"self-appointed":     {respond(newCA(t, "Mallory", nil), false, ocsp.Response{Status: ocsp.Good, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}), false, false},
		"garbage":            {[]byte{0x30, 0x03, 0x0a, 0x01, 0x00}, false, false},
	} {
		a, err := x509att.CheckOCSP(tc.der, dev.Cert, ca.Cert, now)
		if (err == nil) != tc.ok || err == nil && a.Revoked != tc.revoked {
			t.Errorf("%s: answer %+v, err %v; want ok %t, revoked %t", name, a, err, tc.ok, tc.revoked)
		}
	}
}

func mustKey(t testing.TB) crypto.Signer {
	k, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzCheckCRL feeds CRLs (DER or PEM) to the decoder and the checks and
// asserts what a caller relies on: no panic; nothing accepted that the
// issuer did not sign or that names another issuer; an accepted CRL is
// current-shaped (nextUpdate after thisUpdate) and answers consistently
// for every serial it lists.
func FuzzCheckCRL(f *testing.F) {
	ca := newCA(f, "Fuzz Root", nil)
	now := time.Now()
	f.Add(signCRL(f, ca, 1, now, time.Hour, []*big.Int{big.NewInt(1), big.NewInt(1 << 40)}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: signCRL(f, ca, 2, now, time.Hour, nil)}))
	f.Add(signCRL(f, ca, 3, now, time.Hour, nil, idpExt(f, struct {
		OnlyUsers bool `asn1:"optional,tag:1"`
	}{true})))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		der, err := x509att.DecodeCRL(data)
		if err != nil {
			return
		}
		crl, err := x509att.CheckCRL(der, ca.Cert)
		if err != nil {
			return
		}
		rl, err := cx509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("accepted a CRL that does not parse: %v", err)
		}
		if err := rl.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatalf("accepted a CRL the CA did not sign: %v", err)
		}
		if crl.Issuer != x509att.NameKey(ca.Cert.RawSubject) || !crl.NextUpdate.After(crl.ThisUpdate) {
			t.Fatal("accepted a CRL of another issuer or without a nextUpdate after thisUpdate")
		}
		for _, s := range crl.Serials() {
			n, ok := new(big.Int).SetString(s, 16)
			if !ok {
				t.Fatalf("serial %q is not hex", s)
			}
			if _, listed := crl.Lookup(n); !listed {
				t.Fatalf("serial %s listed but not found", s)
			}
		}
	})
}
