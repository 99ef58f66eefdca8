package dpsservice

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
)

func TestHandles(t *testing.T) {
	for path, want := range map[string]bool{
		"/enrollments/x": true, "/enrollmentgroups/x": true, "/EnrollmentGroups": true, "/registrations/x/query": true,
		"/0ne00000001/registrations/x/register": false, "/v1/enrollments": false, "/": false, "/enrollmentsX": false,
	} {
		if Handles(path) != want {
			t.Errorf("Handles(%q) = %v", path, !want)
		}
	}
}

func TestEtags(t *testing.T) {
	for in, want := range map[string]string{`"12"`: "12", `W/"12"`: "12", "12": "12", ` "12" `: "12", "*": "*", "": ""} {
		if got := unquoteEtag(in); got != want {
			t.Errorf("unquoteEtag(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct {
		want, current string
		ok            bool
	}{{"", "5", true}, {"*", "5", true}, {"5", "5", true}, {"4", "5", false}, {"55", "5", false}} {
		err := matchEtag(tc.want, tc.current, "enrollment", "x")
		if (err == nil) != tc.ok || err != nil && fault.ReasonOf(err) != fault.EtagMismatch {
			t.Errorf("matchEtag(%q, %q) = %v", tc.want, tc.current, err)
		}
	}
	if quoteEtag("7") != `"7"` {
		t.Fatal("quoteEtag")
	}
}

// TestRoutes sends every route and method: each answers as the route
// says, and what is no route is 404 before any authentication.
func TestRoutes(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/r-1", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	f.ok(f.call("PUT", "/enrollmentGroups/g-1", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	f.register("r-1", "")
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/enrollments/r-1", "", 200},
		{"GET", "/ENROLLMENTS/r-1", "", 200},
		{"GET", "/enrollments/r-1/", "", 200},
		{"GET", "/%65nrollments/r-1", "", 200},
		{"GET", "/enrollments/r%2D1", "", 200},
		{"PUT", "/enrollments/r-1", `{"attestation":{"type":"symmetricKey"}}`, 200},
		{"POST", "/enrollments/r-1/attestationmechanism", "", 200},
		{"POST", "/enrollments/r-1/AttestationMechanism", "", 200},
		{"POST", "/enrollments/query", `{"query":"SELECT * FROM enrollments"}`, 200},
		{"POST", "/enrollments/QUERY", "", 200},
		{"POST", "/enrollments", `{"mode":"create","enrollments":[{"registrationId":"r-2","attestation":{"type":"symmetricKey"}}]}`, 200},
		{"GET", "/enrollmentgroups/g-1", "", 200},
		{"PUT", "/enrollmentGroups/g-1", `{"attestation":{"type":"symmetricKey"}}`, 200},
		{"POST", "/enrollmentGroups/g-1/attestationmechanism", "", 200},
		{"POST", "/enrollmentGroups/query", "{}", 200},
		{"POST", "/enrollmentGroups", `{"mode":"create","enrollments":[{"enrollmentGroupId":"g-2","attestation":{"type":"symmetricKey"}}]}`, 200},
		{"GET", "/registrations/r-1", "", 200},
		{"POST", "/registrations/g-1/query", "", 200},
		{"DELETE", "/registrations/r-1", "", 204},
		{"DELETE", "/enrollments/r-2", "", 204},
		{"DELETE", "/enrollmentGroups/g-2", "", 204},
		// No such operation.
		{"PATCH", "/enrollments/r-1", "", 404},
		{"GET", "/enrollments", "", 404},
		{"GET", "/enrollments/r-1/x/y", "", 404},
		{"GET", "/enrollments/r-1/attestationmechanism", "", 404},
		{"POST", "/enrollments/r-1/other", "", 404},
		{"GET", "/registrations", "", 404},
		{"PUT", "/registrations/r-1", "", 404},
		{"POST", "/registrations/query", "", 404},
		{"POST", "/registrations/g-1/attestationmechanism", "", 404},
		{"GET", "/devices/x", "", 404},
	} {
		rec := f.call(tc.method, tc.path, tc.body)
		if rec.Code != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, rec.Code, rec.Body, tc.status)
			continue
		}
		if tc.status == 404 {
			refused(t, rec, 404, string(fault.ResourceNotFound))
		}
		if rec.Code == 200 && rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%s %s: content type %q", tc.method, tc.path, rec.Header().Get("Content-Type"))
		}
	}
	// A path that is not one: refused before anything else.
	for _, p := range []string{"/enrollments//x", "/enrollments/./x", "/enrollments/..", "/enrollments/%2e%2e"} {
		refused(t, f.callAs("", "GET", p, ""), 400, string(fault.FieldInvalid))
	}
}

// TestSASAuthentication: every bad credential is 401 UNAUTHENTICATED (an
// expired one SAS_EXPIRED) and writes nothing; a good SAS token or bearer
// token is accepted.
func TestSASAuthentication(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/a-1", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	plainToken, plain, err := access.Generate(strings.NewReader(strings.Repeat("k", 64)), "plain2", access.All, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.CreateKey(t.Context(), plain); err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Hour)
	cases := []struct {
		name, auth, reason string
	}{
		{"none", "", "UNAUTHENTICATED"},
		{"garbage", "SharedAccessSignature nonsense", "UNAUTHENTICATED"},
		{"basic", "Basic dXNlcjpwYXNz", "UNAUTHENTICATED"},
		{"wrong key", symkey.Sign(make([]byte, 32), host, soon, f.owner.ID), "UNAUTHENTICATED"},
		{"unknown key name", symkey.Sign(f.ownSAS, host, soon, "nobody"), "UNAUTHENTICATED"},
		{"no key name", symkey.Sign(f.ownSAS, host, soon, ""), "UNAUTHENTICATED"},
		{"long key name", symkey.Sign(f.ownSAS, host, soon, strings.Repeat("k", 129)), "UNAUTHENTICATED"},
		{"other host", symkey.Sign(f.ownSAS, "evil.example.com", soon, f.owner.ID), "UNAUTHENTICATED"},
		{"other path", symkey.Sign(f.ownSAS, host+"/enrollmentGroups", soon, f.owner.ID), "UNAUTHENTICATED"},
		{"other ID", symkey.Sign(f.ownSAS, host+"/enrollments/a-3", soon, f.owner.ID), "UNAUTHENTICATED"},
		{"ID of another case", symkey.Sign(f.ownSAS, host+"/enrollments/A-1", soon, f.owner.ID), "UNAUTHENTICATED"},
		{"expired", symkey.Sign(f.ownSAS, host, time.Now().Add(-symkey.Skew-time.Minute), f.owner.ID), "SAS_EXPIRED"},
		{"lives too long", symkey.Sign(f.ownSAS, host, time.Now().Add(symkey.MaxLifetime+time.Hour), f.owner.ID), "SAS_INVALID"},
		{"bad bearer", "Bearer ztk.owner.nope", "UNAUTHENTICATED"},
		{"bearer of another key", "Bearer " + plainToken + "x", "UNAUTHENTICATED"},
		// A key without a shared access key signs nothing, even with the
		// all-zero key.
		{"key without SAS", symkey.Sign(make([]byte, 32), host, soon, plain.ID), "UNAUTHENTICATED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.snapshot()
			for _, call := range []struct{ method, path, body string }{
				{"PUT", "/enrollments/a-2", `{"attestation":{"type":"symmetricKey"}}`},
				{"GET", "/enrollments/a-1", ""},
				{"DELETE", "/enrollments/a-1", ""},
				{"POST", "/enrollments/query", "{}"},
			} {
				refused(t, f.callAs(tc.auth, call.method, call.path, call.body), 401, tc.reason)
			}
			if after := f.snapshot(); after != before {
				t.Fatalf("a refused request wrote:\n%s\nthen\n%s", before, after)
			}
		})
	}
	// Accepted: the owner's SAS for the host, for the collection, for the
	// one enrollment (segments matched case-insensitively for the
	// collection); its bearer token; the SAS of a key that has no bearer
	// use here.
	for _, auth := range []string{
		symkey.Sign(f.ownSAS, host, soon, f.owner.ID),
		symkey.Sign(f.ownSAS, strings.ToUpper(host)+"/Enrollments", soon, f.owner.ID),
		symkey.Sign(f.ownSAS, host+"/enrollments/a-1", soon, f.owner.ID),
		"Bearer " + f.bearer,
		"Bearer " + plainToken,
	} {
		f.ok(f.callAs(auth, "GET", "/enrollments/a-1", ""), 200, nil)
	}
	// With no host name configured, no SAS token is accepted.
	f.s.HostName = ""
	refused(t, f.call("GET", "/enrollments/a-1", ""), 401, "UNAUTHENTICATED")
	f.ok(f.callAs("Bearer "+f.bearer, "GET", "/enrollments/a-1", ""), 200, nil)
	f.s.HostName = host
	// A store failure while looking the key up is not a denial: 503 with
	// a retry hint.
	f.store.set("GetKey", fault.New(fault.Unavailable, fault.StoreUnavailable, "store down"))
	rec := f.call("GET", "/enrollments/a-1", "")
	refused(t, rec, 503, "STORE_UNAVAILABLE")
	if rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
}

// TestPermissions: a read-only key reads, and every write (and the keys of
// the attestation mechanism call) is 401 PERMISSION_DENIED, writing
// nothing.
func TestPermissions(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/p-1", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	f.ok(f.call("PUT", "/enrollmentGroups/pg", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	f.register("p-1", "")
	rd := symkey.Sign(f.rdSAS, host, time.Now().Add(time.Hour), f.reader.ID)
	for _, call := range []struct{ method, path string }{
		{"GET", "/enrollments/p-1"}, {"POST", "/enrollments/query"}, {"GET", "/enrollmentGroups/pg"},
		{"POST", "/enrollmentGroups/query"}, {"GET", "/registrations/p-1"}, {"POST", "/registrations/pg/query"},
	} {
		f.ok(f.callAs(rd, call.method, call.path, ""), 200, nil)
	}
	before := f.snapshot()
	for _, call := range []struct{ method, path, body string }{
		{"PUT", "/enrollments/p-2", `{"attestation":{"type":"symmetricKey"}}`},
		{"DELETE", "/enrollments/p-1", ""},
		{"POST", "/enrollments/p-1/attestationmechanism", ""},
		{"POST", "/enrollmentGroups/pg/attestationmechanism", ""},
		{"POST", "/enrollments", `{"mode":"delete","enrollments":[{"registrationId":"p-1"}]}`},
		{"DELETE", "/registrations/p-1", ""},
		{"DELETE", "/enrollmentGroups/pg", ""},
	} {
		eb := refused(t, f.callAs(rd, call.method, call.path, call.body), 401, "PERMISSION_DENIED")
		if !strings.Contains(eb.Message, "permission") {
			t.Errorf("%s %s: message %q", call.method, call.path, eb.Message)
		}
	}
	if after := f.snapshot(); after != before {
		t.Fatalf("a denied request wrote:\n%s\nthen\n%s", before, after)
	}
}

// TestActorIsTheKey: admin's record of every change names the access key
// that made it.
func TestActorIsTheKey(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/act-1", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	f.register("act-1", "")
	f.ok(f.callAs("Bearer "+f.bearer, "DELETE", "/registrations/act-1", ""), 204, nil)
	var changes []struct{ Action, Resource, Actor, Outcome string }
	for _, line := range strings.Split(strings.TrimSpace(f.log.String()), "\n") {
		var c struct {
			Msg                              string
			Action, Resource, Actor, Outcome string
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		if c.Msg == "operator change" {
			changes = append(changes, struct{ Action, Resource, Actor, Outcome string }{c.Action, c.Resource, c.Actor, c.Outcome})
		}
	}
	var individual, deleted bool
	for _, c := range changes {
		if c.Actor != f.owner.ID && c.Resource != "hub-a" && c.Resource != "hub-b" {
			t.Errorf("change %+v: actor is not the owner key %s", c, f.owner.ID)
		}
		individual = individual || c.Resource == "act-1" && strings.Contains(c.Action, "Individual")
		deleted = deleted || c.Action == "DeleteRegistration" && c.Resource == "act-1" && c.Outcome == "done"
	}
	if !individual || !deleted {
		t.Fatalf("changes recorded: %+v\n%s", changes, f.log)
	}
}

// TestRetryAfter: store failures answer 503, and exhaustion 429, each with
// Retry-After in whole seconds rounded up; unknown errors are 500 without
// detail, logged with the request ID.
func TestRetryAfter(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/ra-1", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	for _, tc := range []struct {
		err    error
		status int
		reason string
		retry  string
	}{
		{fault.New(fault.Unavailable, fault.StoreUnavailable, "down"), 503, "STORE_UNAVAILABLE", "1"},
		{&fault.Error{Kind: fault.Unavailable, Reason: fault.StoreUnavailable, Msg: "down", RetryAfter: 2500 * time.Millisecond}, 503, "STORE_UNAVAILABLE", "3"},
		{&fault.Error{Kind: fault.ResourceExhausted, Reason: fault.RateLimited, Msg: "slow down", RetryAfter: 4 * time.Second}, 429, "RATE_LIMITED", "4"},
		{errors.New("disk on fire"), 500, "INTERNAL", ""},
	} {
		f.store.set("GetIndividual", tc.err)
		rec := f.call("GET", "/enrollments/ra-1", "")
		eb := refused(t, rec, tc.status, tc.reason)
		if got := rec.Header().Get("Retry-After"); got != tc.retry {
			t.Errorf("%v: Retry-After %q, want %q", tc.err, got, tc.retry)
		}
		if tc.status == 500 && (eb.Message != "internal error" || !strings.Contains(f.log.String(), `"request_id":"req-1"`)) {
			t.Errorf("internal: %+v\n%s", eb, f.log)
		}
	}
	f.store.set("", nil)
	if rec := f.call("GET", "/enrollments/ra-1", ""); rec.Header().Get("Retry-After") != "" || rec.Code != http.StatusOK {
		t.Fatalf("healthy: %d %v", rec.Code, rec.Header())
	}
}
