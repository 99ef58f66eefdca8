package access

import (
	"context"
	"crypto/rand"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

func TestResourceMatches(t *testing.T) {
	const host = "dps.example.com"
	group := []string{"enrollmentGroups", "acme"}
	cases := []struct {
		sr   string
		path []string
		want bool
	}{
		{"dps.example.com", group, true},
		{"DPS.Example.COM", group, true},
		{"dps.example.com/enrollmentGroups", group, true},
		{"dps.example.com/enrollmentgroups/acme", group, true},
		{"dps.example.com/enrollmentGroups/ACME", group, false},
		{"dps.example.com/enrollmentGroups/acme", []string{"enrollmentGroups", "acme", "attestationmechanism"}, true},
		{url.QueryEscape("dps.example.com/enrollmentGroups/acme"), group, true},
		// Another resource, a sibling with the same prefix, a longer path.
		{"dps.example.com/registrations/x", group, false},
		{"dps.example.com/enrollmentGroups/acme", []string{"enrollmentGroups", "acme2"}, false},
		{"dps.example.com/enrollmentGroups/acm", group, false},
		{"dps.example.com/enrollmentGroups/acme/x", group, false},
		{"dps.example.com/enrollments", []string{"enrollmentGroups"}, false},
		// Other hosts, and host tricks.
		{"evil.example.com", group, false},
		{"dps.example.com.evil.example.com", group, false},
		{"evil.example.com/dps.example.com", group, false},
		{"dps.example.com:443", group, false},
		{"", group, false},
		// Empty, dot and encoded segments.
		{"dps.example.com/", group, false},
		{"dps.example.com//enrollmentGroups", group, false},
		{"dps.example.com/./enrollmentGroups", []string{".", "enrollmentGroups"}, false},
		{"dps.example.com/../enrollmentGroups", []string{"..", "enrollmentGroups"}, false},
		{"dps.example.com%252Fregistrations", group, false},
		{"dps.example.com/enrollmentGroups%2Facme", group, true}, // sr is sent URL-encoded, whole or in part
		{"dps.example.com/%zz", group, false},
	}
	for _, tc := range cases {
		if got := resourceMatches(tc.sr, host, tc.path); got != tc.want {
			t.Errorf("sr %q, path %v: %v, want %v", tc.sr, tc.path, got, tc.want)
		}
	}
	if resourceMatches("dps.example.com", "", group) {
		t.Error("no configured host name matched")
	}
}

func TestPathSegments(t *testing.T) {
	for escaped, want := range map[string]string{
		"/enrollmentGroups/acme":     "enrollmentGroups|acme",
		"/registrations/dev%2D1":     "registrations|dev-1",
		"/enrollments/a%2Fb":         "enrollments|a/b",
		"/enrollments/":              "",
		"/enrollments//x":            "",
		"/enrollments/../x":          "",
		"/enrollments/%2E%2E":        "",
		"/enrollments/%zz":           "",
		"/enrollmentGroups/acme/x/y": "enrollmentGroups|acme|x|y",
	} {
		segs, ok := PathSegments(escaped)
		if got := strings.Join(segs, "|"); got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", escaped, got, ok, want)
		}
	}
}

// memKeys is an in-memory Store for one key.
type memKeys struct{ k *Key }

func (m memKeys) CreateKey(context.Context, *Key) error { return nil }
func (m memKeys) GetKey(_ context.Context, id string) (*Key, error) {
	if m.k != nil && m.k.ID == id {
		return m.k, nil
	}
	return nil, fault.NotFoundf("no key %q", id)
}
func (m memKeys) CountKeys(context.Context) (int, error)                        { return 1, nil }
func (m memKeys) ListKeys(context.Context, string, int) ([]*Key, string, error) { return nil, "", nil }
func (m memKeys) DeleteKey(context.Context, string) error                       { return nil }
func (m memKeys) RotateKey(context.Context, string, Slot, []byte, []byte) error { return nil }
func (m memKeys) TouchKey(context.Context, string, time.Time) error             { return nil }

func TestAuthenticateSAS(t *testing.T) {
	sealer, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "data.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	_, k, err := Generate(rand.Reader, "svc", []Permission{EnrollmentRead}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sas, err := AddSASKey(rand.Reader, sealer, k, Primary)
	if err != nil {
		t.Fatal(err)
	}
	store := memKeys{k}
	now := time.Now()
	path := []string{"enrollmentGroups", "acme"}
	auth := func(token string) error {
		_, err := AuthenticateSAS(t.Context(), store, sealer, token, "dps.example.com", path, now)
		return err
	}
	if err := auth(symkey.Sign(sas, "dps.example.com", now.Add(time.Hour), k.ID)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	if err := auth(symkey.Sign(sas, "dps.example.com/enrollmentGroups/acme", now.Add(time.Hour), k.ID)); err != nil {
		t.Fatalf("scoped: %v", err)
	}
	for name, token := range map[string]string{
		"other resource": symkey.Sign(sas, "dps.example.com/registrations/x", now.Add(time.Hour), k.ID),
		"other host":     symkey.Sign(sas, "evil.example.com", now.Add(time.Hour), k.ID),
		"wrong key":      symkey.Sign(make([]byte, 32), "dps.example.com", now.Add(time.Hour), k.ID),
		"unknown name":   symkey.Sign(sas, "dps.example.com", now.Add(time.Hour), "nobody"),
		"no name":        symkey.Sign(sas, "dps.example.com", now.Add(time.Hour), ""),
		"not a SAS":      "Bearer x",
	} {
		if err := auth(token); fault.ReasonOf(err) != fault.UnauthenticatedR {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := auth(symkey.Sign(sas, "dps.example.com", now.Add(-time.Hour), k.ID)); fault.KindOf(err) != fault.Unauthenticated {
		t.Errorf("expired: %v", err)
	}
}
