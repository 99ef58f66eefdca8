package e2e

import (
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/access"
)

// TestDPSServiceSASRoutesWhatItChecks: the DPS service API serves the
// resource the SAS check matched, not another one spelled differently. A
// percent-encoded collection name ("%65nrollments" is "enrollments") is
// decoded once for both, so a token scoped to individual enrollment "acme"
// (or to registration "acme") cannot read or delete enrollment group
// "acme" by encoding the path's first segment (issue #18).
func TestDPSServiceSASRoutesWhatItChecks(t *testing.T) {
	e := start(t)
	keyID, key := e.newSASKey("svc", access.All...)
	c := e.serviceClient(keyID, key)
	c.mustOK(c.call("PUT", "/enrollmentGroups/acme", `{"enrollmentGroupId":"acme","attestation":{"type":"symmetricKey"}}`), 200)
	scoped := func(sr string) {
		token := symkey.Sign(key, sr, time.Now().Add(time.Hour), keyID)
		c.auth = func() string { return token }
	}
	for _, tc := range []struct {
		sr, method, path string
		want             int
	}{
		// The individual enrollment "acme" does not exist: its token reads
		// nothing, however its collection is spelled.
		{"localhost/enrollments/acme", "GET", "/enrollments/acme", 404},
		{"localhost/enrollments/acme", "GET", "/%65nrollments/acme", 404},
		{"localhost/enrollments/acme", "GET", "/%45NROLLMENTS/acme", 404},
		{"localhost/enrollments/acme", "DELETE", "/%65nrollments/acme", 404},
		{"localhost/registrations/acme", "GET", "/%72egistrations/acme", 404},
		// The group's token reads the group, encoded or not.
		{"localhost/enrollmentGroups/acme", "GET", "/enrollment%47roups/acme", 200},
		{"localhost/enrollmentGroups/acme", "GET", "/enrollmentGroups/%61cme", 200},
		// A collection segment holding an encoded slash names nothing.
		{"localhost", "GET", "/enrollments%2Fx/acme", 404},
		{"localhost/enrollments/x/acme", "GET", "/enrollments%2Fx/acme", 404},
		// Double encoding, empty and dot segments refuse.
		{"localhost/enrollmentGroups/acme", "GET", "/enrollmentGroups/%2561cme", 401},
		{"localhost", "GET", "/enrollmentGroups/%2E%2E", 400},
	} {
		scoped(tc.sr)
		if a := c.call(tc.method, tc.path, ""); a.code != tc.want {
			t.Errorf("sr %q, %s %s: %d, want %d: %s", tc.sr, tc.method, tc.path, a.code, tc.want, a.body)
		}
	}
	c.auth = nil
	c.mustOK(c.call("GET", "/enrollmentGroups/acme", ""), 200)
}

// TestDPSServiceSASQueryNeedsTheCollection: a token for an item named
// "query", or for a registration ID equal to a group's, does not list the
// collection (found by review).
func TestDPSServiceSASQueryNeedsTheCollection(t *testing.T) {
	e := start(t)
	keyID, key := e.newSASKey("svc", access.All...)
	c := e.serviceClient(keyID, key)
	c.mustOK(c.call("PUT", "/enrollments/query", `{"registrationId":"query","attestation":{"type":"symmetricKey"}}`), 200)
	c.mustOK(c.call("PUT", "/enrollmentGroups/acme", `{"enrollmentGroupId":"acme","attestation":{"type":"symmetricKey"}}`), 200)
	for sr, path := range map[string]string{
		"localhost/enrollments/query":      "/enrollments/query",
		"localhost/enrollmentGroups/query": "/enrollmentGroups/query",
		"localhost/registrations/acme":     "/registrations/acme/query",
	} {
		token := symkey.Sign(key, sr, time.Now().Add(time.Hour), keyID)
		c.auth = func() string { return token }
		if a := c.call("POST", path, `{"query":"*"}`); a.code != 401 {
			t.Errorf("sr %q, POST %s: %d, want 401: %s", sr, path, a.code, a.body)
		}
	}
	for sr, path := range map[string]string{"localhost/enrollments": "/enrollments/query", "localhost/registrations": "/registrations/acme/query"} {
		token := symkey.Sign(key, sr, time.Now().Add(time.Hour), keyID)
		c.auth = func() string { return token }
		if a := c.call("POST", path, `{"query":"*"}`); a.code == 401 {
			t.Errorf("sr %q, POST %s: refused: %s", sr, path, a.body)
		}
	}
}
