package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
)

func TestCreateCA(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	good := mintCA(t, "Acme Root")
	ca, err := s.CreateCA(ctx, "acme", certPEM(good.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if ca.Verified || ca.Etag == "" || ca.Thumbprint != enrollment.Thumbprint(good.Cert.Raw) {
		t.Fatalf("created: %+v", ca)
	}

	expired, err := pki.NewCA("Old Root", nil, time.Now().Add(-48*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := pki.Issue(pki.CATemplate("Weak Root", time.Now(), time.Hour), rsaKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	odd, err := pki.Issue(pki.CATemplate("P-224 Root", time.Now(), time.Hour), p224, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mintDevice(t, "dev-1", good)
	cases := []struct {
		name, ca, pem string
		want          fault.Reason
	}{
		{"no name", "", certPEM(good.Cert), fault.FieldInvalid},
		{"bad name", "acme root", certPEM(good.Cert), fault.FieldInvalid},
		{"no certificate", "other", "", fault.FieldInvalid},
		{"not PEM", "other", "MIIB...", fault.FieldInvalid},
		{"two certificates", "other", certPEM(good.Cert) + certPEM(leaf.Cert), fault.FieldInvalid},
		{"not a CA", "other", certPEM(leaf.Cert), fault.FieldInvalid},
		{"expired", "other", certPEM(expired.Cert), fault.FieldInvalid},
		{"RSA-1024", "other", certPEM(weak.Cert), fault.KeyTooWeak},
		{"P-224", "other", certPEM(odd.Cert), fault.KeyUnsupported},
		{"name taken", "acme", certPEM(mintCA(t, "Other Root").Cert), fault.ResourceExists},
		{"certificate taken", "other", certPEM(good.Cert), fault.ResourceExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := s.CreateCA(ctx, tc.ca, tc.pem)
			reason(t, err, tc.want)
			if k := fault.KindOf(err); k != fault.InvalidArgument && k != fault.AlreadyExists {
				t.Fatalf("kind %v", k)
			}
			unchanged(t, s, before, tc.name)
		})
	}
}

// TestProofOfPossession walks a CA from upload to verified through every
// refusal on the way; none changes the CA.
func TestProofOfPossession(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	now := time.Now()
	s.Now = func() time.Time { return now }
	issued := mintCA(t, "Acme Root")
	ca, err := s.CreateCA(ctx, "acme", certPEM(issued.Cert))
	if err != nil {
		t.Fatal(err)
	}
	proofOf := func(signer *pki.Issued, code string) string {
		p, err := pki.NewProof(signer, code, now)
		if err != nil {
			t.Fatal(err)
		}
		return certPEM(p.Cert)
	}
	refused := func(what string, err error, want fault.Reason) {
		t.Helper()
		before := snapshot(t, s)
		reason(t, err, want)
		unchanged(t, s, before, what)
	}
	_, err = s.VerifyCA(ctx, "acme", "", proofOf(issued, "ANY"))
	refused("no code yet", err, fault.VerificationCodeStale)
	_, _, err = s.GenerateVerificationCode(ctx, "nobody", "")
	refused("unknown CA", err, fault.ResourceNotFound)
	_, _, err = s.GenerateVerificationCode(ctx, "acme", "stale")
	refused("stale etag", err, fault.EtagMismatch)

	ca, code, err := s.GenerateVerificationCode(ctx, "acme", ca.Etag)
	if err != nil || len(code) != 48 || ca.VerificationCode != code || !ca.CodeExpires.Equal(now.Add(enrollment.VerificationCodeLife)) {
		t.Fatalf("code: %q %+v %v", code, ca, err)
	}
	before := snapshot(t, s)
	for _, tc := range []struct {
		name, etag, proof string
		want              fault.Reason
	}{
		{"wrong code", "", proofOf(issued, "0123456789ABCDEF"), fault.ProofInvalid},
		{"another key", "", proofOf(mintCA(t, "Other Root"), code), fault.ProofInvalid},
		{"not PEM", "", "proof", fault.FieldInvalid},
		{"stale etag", "stale", proofOf(issued, code), fault.EtagMismatch},
	} {
		_, err := s.VerifyCA(ctx, "acme", tc.etag, tc.proof)
		reason(t, err, tc.want)
		unchanged(t, s, before, tc.name)
	}
	// A code lives an hour.
	s.Now = func() time.Time { return now.Add(enrollment.VerificationCodeLife + time.Minute) }
	_, err = s.VerifyCA(ctx, "acme", "", proofOf(issued, code))
	refused("expired code", err, fault.VerificationCodeStale)

	s.Now = func() time.Time { return now }
	_, code, err = s.GenerateVerificationCode(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	ca, err = s.VerifyCA(ctx, "acme", "", proofOf(issued, code))
	if err != nil || !ca.Verified || ca.VerificationCode != "" {
		t.Fatalf("verify: %+v %v", ca, err)
	}
	if got, err := s.GetCA(ctx, "acme"); err != nil || !got.Verified || got.Etag != ca.Etag {
		t.Fatalf("stored: %+v %v", got, err)
	}
	// The code is spent.
	_, err = s.VerifyCA(ctx, "acme", "", proofOf(issued, code))
	refused("code reused", err, fault.VerificationCodeStale)
}

func TestDeleteCA(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	verifiedCA(t, s, "acme")
	if _, err := s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "acme", Allocation: hashedOn()}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	reason(t, s.DeleteCA(ctx, "acme", ""), fault.ResourceInUse)
	unchanged(t, s, before, "in use")
	if err := s.DeleteGroup(ctx, "g", ""); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, s)
	reason(t, s.DeleteCA(ctx, "acme", "stale"), fault.EtagMismatch)
	unchanged(t, s, before, "stale etag")
	ca, err := s.GetCA(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCA(ctx, "acme", ca.Etag); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetCA(ctx, "acme")
	reason(t, err, fault.ResourceNotFound)
	reason(t, s.DeleteCA(ctx, "acme", ""), fault.ResourceNotFound)
}

// hashedOn is the hashed policy over the named shards (all when none).
func hashedOn(shards ...string) enrollment.Allocation {
	return enrollment.Allocation{Policy: enrollment.PolicyHashed, Shards: shards}
}
