package issuance_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

func sealer(t *testing.T) *secrets.Sealer { return sealerB(t) }

func sealerB(t testing.TB) *secrets.Sealer {
	t.Helper()
	s, err := secrets.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func csrFor(t testing.TB, cn string, key crypto.Signer, exts ...pkix.Extension) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, ExtraExtensions: exts}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func p256(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func reason(err error) string {
	if err == nil {
		return ""
	}
	return string(fault.ReasonOf(err))
}

// TestCSRChecks: each malformed or disallowed CSR is its own named refusal.
func TestCSRChecks(t *testing.T) {
	pol := &issuance.Policy{Name: "p", IssuingCA: "ca"}
	pol.Normalize()
	good := csrFor(t, "dev-1", p256(t))
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-3] ^= 0xff
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	caExt, _ := asn1.Marshal(struct{ IsCA bool }{true})
	kuCertSign, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x04}, BitLength: 6}) // bit 5: keyCertSign
	for _, c := range []struct {
		name, want string
		der        []byte
		regID      string
	}{
		{"empty", "CSR_INVALID", nil, "dev-1"},
		{"garbage", "CSR_INVALID", []byte("not a csr"), "dev-1"},
		{"oversized", "CSR_INVALID", make([]byte, issuance.MaxCSR+1), "dev-1"},
		{"bad signature", "CSR_INVALID", tampered, "dev-1"},
		{"CN is another device", "CSR_SUBJECT_MISMATCH", good, "dev-2"},
		{"no CN", "CSR_SUBJECT_MISMATCH", csrFor(t, "", p256(t)), "dev-1"},
		{"RSA not allowed by default", "CSR_KEY_NOT_ALLOWED", csrFor(t, "dev-1", rsaKey), "dev-1"},
		{"Ed25519 not allowed by default", "CSR_KEY_NOT_ALLOWED", csrFor(t, "dev-1", edKey), "dev-1"},
		{"asks to be a CA", "CSR_EXTENSION_NOT_ALLOWED", csrFor(t, "dev-1", p256(t), pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Value: caExt}), "dev-1"},
		{"asks for keyCertSign", "CSR_EXTENSION_NOT_ALLOWED", csrFor(t, "dev-1", p256(t), pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Value: kuCertSign}), "dev-1"},
		{"good, CN in another case", "", csrFor(t, "DEV-1", p256(t)), "dev-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			csr, err := issuance.ParseCSR(c.der)
			if err == nil {
				err = issuance.CheckCSR(csr, c.regID, pol)
			}
			if got := reason(err); got != c.want {
				t.Fatalf("reason %q (%v), want %q", got, err, c.want)
			}
		})
	}
	pol.KeyTypes = []issuance.KeyType{issuance.RSA2048, issuance.Ed25519}
	for _, der := range [][]byte{csrFor(t, "dev-1", rsaKey), csrFor(t, "dev-1", edKey)} {
		csr, err := issuance.ParseCSR(der)
		if err == nil {
			err = issuance.CheckCSR(csr, "dev-1", pol)
		}
		if err != nil {
			t.Fatalf("a policy allowing RSA-2048 and Ed25519 refused: %v", err)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		p    issuance.Policy
		ok   bool
	}{
		{"defaults", issuance.Policy{Name: "p", IssuingCA: "ca"}, true},
		{"no CA", issuance.Policy{Name: "p"}, false},
		{"bad name", issuance.Policy{Name: "p/x", IssuingCA: "ca"}, false},
		{"unknown key type", issuance.Policy{Name: "p", IssuingCA: "ca", KeyTypes: []issuance.KeyType{"dsa-1024"}}, false},
		{"key type twice", issuance.Policy{Name: "p", IssuingCA: "ca", KeyTypes: []issuance.KeyType{"ecdsa-p256", "ECDSA-P256"}}, false},
		{"validity too short", issuance.Policy{Name: "p", IssuingCA: "ca", Validity: time.Minute}, false},
		{"validity too long", issuance.Policy{Name: "p", IssuingCA: "ca", Validity: 5 * 365 * 24 * time.Hour}, false},
		{"negative grace", issuance.Policy{Name: "p", IssuingCA: "ca", RenewalGrace: -time.Hour}, false},
		{"overlap too long", issuance.Policy{Name: "p", IssuingCA: "ca", Overlap: 30 * 24 * time.Hour}, false},
	} {
		p := c.p
		p.Normalize()
		if err := p.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// TestIssuingCAs: a generated root signs; an intermediate waits for its
// signed certificate and refuses one for another key; an import refuses
// a key that is not the certificate's.
func TestIssuingCAs(t *testing.T) {
	s, now := sealer(t), time.Now()
	root, err := issuance.NewRootCA(s, "root", "", "", now)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, _ := root.Certificate()
	rootKey, err := root.Signer(s)
	if err != nil {
		t.Fatal(err)
	}
	if !rootCert.IsCA || rootCert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		t.Fatalf("root: IsCA %v, key usage %v", rootCert.IsCA, rootCert.KeyUsage)
	}
	if _, err := root.Signer(sealer2(t)); err == nil {
		t.Fatal("another data key opened the CA key")
	}

	inter, err := issuance.NewIntermediateCA(s, "inter", "Fleet Issuing", issuance.CAKeyP256, now)
	if err != nil || inter.State != issuance.CAPending {
		t.Fatalf("intermediate: %v, state %s", err, inter.State)
	}
	csr, _ := x509.ParseCertificateRequest(inter.CSRDER)
	offline := &x509.Certificate{SerialNumber: big1(), Subject: csr.Subject, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour * 24 * 365),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	// A certificate for another key is refused.
	other := p256(t)
	wrong, _ := x509.CreateCertificate(rand.Reader, offline, rootCert, other.Public(), rootKey)
	if err := inter.Complete(s, pemOf(wrong, root.CertDER), now); err == nil {
		t.Fatal("Complete took a certificate for another key")
	}
	signed, _ := x509.CreateCertificate(rand.Reader, offline, rootCert, csr.PublicKey, rootKey)
	if err := inter.Complete(s, pemOf(signed, root.CertDER), now); err != nil {
		t.Fatal(err)
	}
	if inter.State != issuance.CAActive || len(inter.ChainDER) != 1 {
		t.Fatalf("after Complete: state %s, chain %d", inter.State, len(inter.ChainDER))
	}

	// Import: the certificate's own key works, another is refused.
	keyDER, _ := x509.MarshalPKCS8PrivateKey(rootKey)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if _, err := issuance.ImportCA(s, "imp", pemOf(root.CertDER), keyPEM, now); err != nil {
		t.Fatal(err)
	}
	otherDER, _ := x509.MarshalPKCS8PrivateKey(other)
	for name, in := range map[string][2]string{
		"other key":   {pemOf(root.CertDER), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}))},
		"no cert":     {"", keyPEM},
		"garbage key": {pemOf(root.CertDER), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
		"not a CA":    {pemOf(leafDER(t, rootCert, rootKey)), keyPEM},
		"no cRLSign":  {pemOf(selfSigned(t, rootKey, x509.KeyUsageCertSign)), keyPEM},
	} {
		if _, err := issuance.ImportCA(s, "imp", in[0], in[1], now); err == nil {
			t.Errorf("import with %s: accepted", name)
		}
	}
}

// selfSigned is a CA certificate for key with the given key usage.
func selfSigned(t *testing.T, key crypto.Signer, ku x509.KeyUsage) []byte {
	tmpl := &x509.Certificate{SerialNumber: newBig(11), Subject: pkix.Name{CommonName: "ku"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: ku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func sealer2(t *testing.T) *secrets.Sealer {
	k := make([]byte, 32)
	k[0] = 1
	s, err := secrets.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func big1() *bigInt { return newBig(7) }

func pemOf(ders ...[]byte) string {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return string(out)
}

func leafDER(t *testing.T, ca *x509.Certificate, key crypto.Signer) []byte {
	k := p256(t)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: newBig(9), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}, ca, k.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestAuthority: issue under a policy, publish a CRL and answer OCSP for
// good and revoked certificates, through a real embedded store.
func TestAuthority(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(t.TempDir() + "/z.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	store := docs.Issuance{D: st}
	s, now := sealer(t), time.Now()
	ca, err := issuance.NewRootCA(s, "fleet", "", issuance.CAKeyP256, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateIssuingCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	pol := &issuance.Policy{Name: "short", IssuingCA: "fleet", Validity: 2 * time.Hour}
	pol.Normalize()
	if _, err := store.CreatePolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	a := &issuance.Authority{Store: store, Sealer: s, BaseURL: "https://pki.example.com"}
	if _, err := a.Policy(ctx, "none"); reason(err) != "CREDENTIAL_POLICY_MISSING" {
		t.Fatalf("missing policy: %v", err)
	}
	if _, err := a.Policy(ctx, ""); reason(err) != "CREDENTIAL_POLICY_MISSING" {
		t.Fatalf("no policy: %v", err)
	}
	p, err := a.Policy(ctx, "short")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id string) *issuance.Issued {
		csr, err := issuance.ParseCSR(csrFor(t, id, p256(t)))
		if err != nil {
			t.Fatal(err)
		}
		iss, err := a.Issue(ctx, p, csr, id)
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	good, bad := issue("dev-good"), issue("dev-bad")
	caCert, _ := ca.Certificate()
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	if _, err := good.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify as a client certificate: %v", err)
	}
	if good.Leaf.Subject.CommonName != "dev-good" || good.Leaf.NotAfter.Sub(now) > 2*time.Hour+time.Minute || good.Leaf.IsCA {
		t.Fatalf("issued: CN %q, notAfter %s, CA %v", good.Leaf.Subject.CommonName, good.Leaf.NotAfter, good.Leaf.IsCA)
	}
	if got := good.Leaf.CRLDistributionPoints; len(got) != 1 || got[0] != "https://pki.example.com/pki/fleet/crl" {
		t.Fatalf("CRL DP %v", got)
	}
	if got := good.Leaf.OCSPServer; len(got) != 1 || got[0] != "https://pki.example.com/pki/fleet/ocsp" {
		t.Fatalf("OCSP %v", got)
	}
	if a2, _ := a.IssuerOf(ctx, good.Leaf); a2 == nil || a2.Name != "fleet" {
		t.Fatalf("IssuerOf the issued certificate: %v", a2)
	}
	if a2, _ := a.IssuerOf(ctx, caCert); a2 != nil {
		t.Fatal("IssuerOf the CA's own (self-signed) certificate is itself")
	}

	// A revocation in the future (a superseded certificate's overlap) is
	// not yet listed; one now is.
	if _, err := store.Revoke(ctx, &issuance.Revocation{IssuingCA: "fleet", Serial: good.Serial(), RevokedAt: now.Add(time.Hour), NotAfter: good.Leaf.NotAfter}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Revoke(ctx, &issuance.Revocation{IssuingCA: "fleet", Serial: bad.Serial(), RevokedAt: now, Reason: issuance.ReasonKeyCompromise, NotAfter: bad.Leaf.NotAfter}); err != nil {
		t.Fatal(err)
	}
	der, err := a.CRL(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(caCert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(bad.Leaf.SerialNumber) != 0 {
		t.Fatalf("CRL lists %d entries, want only the revoked one", len(crl.RevokedCertificateEntries))
	}
	if !crl.NextUpdate.After(now) {
		t.Fatal("CRL has no nextUpdate in the future")
	}

	for _, c := range []struct {
		leaf *issuance.Issued
		want int
		hash crypto.Hash
	}{{good, ocsp.Good, crypto.SHA1}, {bad, ocsp.Revoked, crypto.SHA1}, {good, ocsp.Good, crypto.SHA256}, {bad, ocsp.Revoked, crypto.SHA256}} {
		req, err := ocsp.CreateRequest(c.leaf.Leaf, caCert, &ocsp.RequestOptions{Hash: c.hash})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := a.OCSP(ctx, "fleet", req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponseForCert(raw, c.leaf.Leaf, caCert)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != c.want {
			t.Errorf("OCSP status %d, want %d", resp.Status, c.want)
		}
	}
	// A request about another issuer is "unauthorized"; garbage is
	// "malformedRequest".
	other, _ := issuance.NewRootCA(s, "other", "", "", now)
	otherCert, _ := other.Certificate()
	req, _ := ocsp.CreateRequest(good.Leaf, otherCert, nil)
	if raw, _ := a.OCSP(ctx, "fleet", req); string(raw) != string(ocsp.UnauthorizedErrorResponse) {
		t.Error("a request naming another issuer was answered")
	}
	if raw, _ := a.OCSP(ctx, "fleet", []byte("junk")); string(raw) != string(ocsp.MalformedRequestErrorResponse) {
		t.Error("a malformed request was not answered malformedRequest")
	}
}

func FuzzParseCSR(f *testing.F) {
	f.Add(csrFor(f, "dev-1", p256(f)))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := issuance.ParseCSR(der)
		if err != nil {
			if fault.ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		if csr.CheckSignature() != nil {
			t.Fatal("ParseCSR accepted a CSR whose signature fails")
		}
	})
}

// TestRevocationHorizon: a superseded certificate's entry goes a CRL's
// life after it expired; an operator's revocation stays past any renewal
// grace (it is what stops a current certificate renewing).
func TestRevocationHorizon(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(t.TempDir() + "/z.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	store := docs.Issuance{D: st}
	s := sealer(t)
	clock := time.Now()
	ca, _ := issuance.NewRootCA(s, "ca", "", "", clock)
	if _, err := store.CreateIssuingCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	expired := clock.Add(-3 * 24 * time.Hour)
	for serial, reason := range map[string]int{"0a": issuance.ReasonSuperseded, "0b": issuance.ReasonKeyCompromise} {
		if _, err := store.Revoke(ctx, &issuance.Revocation{IssuingCA: "ca", Serial: serial, RevokedAt: expired.Add(-time.Hour), Reason: reason, NotAfter: expired}); err != nil {
			t.Fatal(err)
		}
	}
	a := &issuance.Authority{Store: store, Sealer: s, Now: func() time.Time { return clock }}
	der, err := a.CRL(ctx, "ca")
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ParseRevocationList(der)
	if len(crl.RevokedCertificateEntries) != 1 || issuance.SerialHex(crl.RevokedCertificateEntries[0].SerialNumber) != "0b" {
		t.Fatalf("CRL lists %d entries, want only the key compromise", len(crl.RevokedCertificateEntries))
	}
	if _, err := store.GetRevocation(ctx, "ca", "0a"); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("the expired superseded entry was kept: %v", err)
	}
}
