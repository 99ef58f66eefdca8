package enrollment_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// memLookup is an in-memory enrollment.Lookup.
type memLookup struct {
	individuals map[string]*enrollment.Individual // by thumbprint
	cas         []*enrollment.CA
	groups      map[string]*enrollment.Group // by CA name
}

func (m *memLookup) FindIndividualByThumbprint(_ context.Context, th string) (*enrollment.Individual, error) {
	if e, ok := m.individuals[th]; ok {
		return e, nil
	}
	return nil, fault.NotFoundf("no")
}

func (m *memLookup) FindCAByThumbprint(_ context.Context, th string) (*enrollment.CA, error) {
	for _, ca := range m.cas {
		if ca.Thumbprint == th {
			return ca, nil
		}
	}
	return nil, fault.NotFoundf("no")
}

func (m *memLookup) FindCAsBySubject(_ context.Context, key string) ([]*enrollment.CA, error) {
	var out []*enrollment.CA
	for _, ca := range m.cas {
		if ca.SubjectKey == key {
			out = append(out, ca)
		}
	}
	return out, nil
}

func (m *memLookup) FindGroupByCA(_ context.Context, name string) (*enrollment.Group, error) {
	if g, ok := m.groups[name]; ok {
		return g, nil
	}
	return nil, fault.NotFoundf("no")
}

func TestResolveOrder(t *testing.T) {
	now := time.Now()
	root, _ := pki.NewCA("Root", nil, now, time.Hour)
	inter, _ := pki.NewCA("Inter", root, now, time.Hour)
	dev, _ := pki.NewDevice("dev", inter, now, time.Hour)
	rootCA := enrollment.NewCA("root", root.Cert, now)
	interCA := enrollment.NewCA("inter", inter.Cert, now)
	thumbs := []string{enrollment.Thumbprint(dev.Cert.Raw), interCA.Thumbprint, rootCA.Thumbprint}

	l := &memLookup{individuals: map[string]*enrollment.Individual{}, groups: map[string]*enrollment.Group{}}
	ctx := context.Background()
	if _, err := enrollment.Resolve(ctx, l, enrollment.Presented{}); fault.ReasonOf(err) != fault.CertificateMissing {
		t.Fatalf("empty chain: %v", err)
	}
	if _, err := enrollment.Resolve(ctx, l, enrollment.Presented{Thumbprints: thumbs}); fault.ReasonOf(err) != fault.CertificateUntrusted {
		t.Fatalf("nothing known: %v", err)
	}
	l.cas = []*enrollment.CA{rootCA, interCA}
	if _, err := enrollment.Resolve(ctx, l, enrollment.Presented{Thumbprints: thumbs}); fault.ReasonOf(err) != fault.EnrollmentNotFound {
		t.Fatalf("CAs without groups: %v", err)
	}
	l.groups["root"] = &enrollment.Group{ID: "g-root", CAName: "root"}
	m, err := enrollment.Resolve(ctx, l, enrollment.Presented{Thumbprints: thumbs})
	if err != nil || m.Anchors[0].Group.ID != "g-root" || m.Depth != 2 {
		t.Fatalf("root group: %+v %v", m, err)
	}
	l.groups["inter"] = &enrollment.Group{ID: "g-inter", CAName: "inter"}
	m, err = enrollment.Resolve(ctx, l, enrollment.Presented{Thumbprints: thumbs})
	if err != nil || m.Anchors[0].Group.ID != "g-inter" || m.Depth != 1 {
		t.Fatalf("nearest group: %+v %v", m, err)
	}
	// Leaf only: found by the issuer's subject, above the presented chain.
	m, err = enrollment.Resolve(ctx, l, enrollment.Presented{Thumbprints: thumbs[:1], TopIssuerKey: enrollment.SubjectKey(dev.Cert.RawIssuer)})
	if err != nil || m.Anchors[0].Group.ID != "g-inter" || m.Depth != 1 {
		t.Fatalf("issuer above chain: %+v %v", m, err)
	}
	// An individual enrollment wins over every group.
	l.individuals[thumbs[0]] = &enrollment.Individual{RegistrationID: "dev"}
	m, err = enrollment.Resolve(ctx, l, enrollment.Presented{Thumbprints: thumbs})
	if err != nil || m.Individual == nil {
		t.Fatalf("individual: %+v %v", m, err)
	}
}

func TestValidateRegistrationID(t *testing.T) {
	for _, ok := range []string{"a", "dev-001", "Dev.Line_2:x-", strings.Repeat("a", 128), "0"} {
		if err := enrollment.ValidateRegistrationID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "dev.", "dev_", "dev:", strings.Repeat("a", 129), "dév", "a/b", "a\x00"} {
		if err := enrollment.ValidateRegistrationID(bad); fault.ReasonOf(err) != fault.RegistrationIDInvalid {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestVerificationCodeExpiresAndIsSingleUse(t *testing.T) {
	now := time.Now()
	caIss, _ := pki.NewCA("Root", nil, now, 48*time.Hour)
	ca := enrollment.NewCA("root", caIss.Cert, now)
	code, err := ca.IssueVerificationCode(rand.Reader, now)
	if err != nil || len(code) != 48 {
		t.Fatalf("code %q, %v", code, err)
	}
	proof, _ := pki.NewProof(caIss, code, now)
	if err := ca.Verify(proof.Cert, now.Add(enrollment.VerificationCodeLife+time.Second)); fault.ReasonOf(err) != fault.VerificationCodeStale {
		t.Fatalf("expired code: %v", err)
	}
	if err := ca.Verify(proof.Cert, now.Add(time.Minute)); err != nil || !ca.Verified {
		t.Fatalf("fresh code: %v", err)
	}
	if err := ca.Verify(proof.Cert, now.Add(time.Minute)); fault.ReasonOf(err) != fault.VerificationCodeStale {
		t.Fatalf("reused code: %v", err)
	}
}

func FuzzValidateRegistrationID(f *testing.F) {
	for _, s := range []string{"dev-1", "a.", "", "ÿ", "a:b-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if enrollment.ValidateRegistrationID(id) != nil {
			return
		}
		if len(id) == 0 || len(id) > enrollment.MaxIDLength || strings.ContainsAny(id[len(id)-1:], "._:") {
			t.Fatalf("accepted %q", id)
		}
		for _, c := range id {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._:", c)) {
				t.Fatalf("accepted %q with %q", id, c)
			}
		}
	})
}

func FuzzParseCertificatePEM(f *testing.F) {
	now := time.Now()
	ca, _ := pki.NewCA("Root", nil, now, time.Hour)
	f.Add(string(pki.CertPEM(ca.Cert)))
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		cert, err := enrollment.ParseCertificatePEM("pem", text)
		if err != nil {
			if fault.KindOf(err) != fault.InvalidArgument {
				t.Fatalf("error of kind %v: %v", fault.KindOf(err), err)
			}
			return
		}
		if len(text) > enrollment.MaxCertificatePEM || cert == nil || len(cert.Raw) == 0 {
			t.Fatalf("accepted %d bytes", len(text))
		}
		// Accepted PEM round-trips to the same certificate.
		again, err := enrollment.ParseCertificatePEM("pem", string(pki.CertPEM(cert)))
		if err != nil || enrollment.Thumbprint(again.Raw) != enrollment.Thumbprint(cert.Raw) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzValidateInitialTwin(f *testing.F) {
	for _, s := range []string{`{}`, `{"tags":{"a":1}}`, `{"properties":{"desired":{"x":[1,2]}}}`, `{"tags":"x"}`, `{"properties":{"reported":{}}}`, `[]`, `{"tags":{}}{}`, ``, "{\"tags\":{\"a\":\"\xff\"}}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, twin []byte) {
		if enrollment.ValidateInitialTwin(twin) != nil || len(twin) == 0 {
			return
		}
		if len(twin) > enrollment.MaxInitialTwin {
			t.Fatalf("accepted %d bytes", len(twin))
		}
		if !utf8.Valid(twin) {
			t.Fatalf("accepted %q, which is not UTF-8", twin)
		}
		var v map[string]json.RawMessage
		if err := json.Unmarshal(twin, &v); err != nil {
			t.Fatalf("accepted %q, which is not one JSON object: %v", twin, err)
		}
		for k := range v {
			if k != "tags" && k != "properties" && !strings.EqualFold(k, "tags") && !strings.EqualFold(k, "properties") {
				t.Fatalf("accepted %q with field %q", twin, k)
			}
		}
	})
}
