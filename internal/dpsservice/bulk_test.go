package dpsservice

import (
	"fmt"
	"strings"
	"testing"
)

// TestBulkIndividuals runs each bulk mode: every item succeeds or fails on
// its own, and the answer lists the failures with their reasons.
func TestBulkIndividuals(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/b-0", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	var br BulkResult
	f.ok(f.call("POST", "/enrollments", `{"mode":"create","enrollments":[
		{"registrationId":"b-1","attestation":{"type":"symmetricKey"}},
		{"registrationId":"b-2","deviceId":"dev-2","attestation":{"type":"symmetricKey"},"iotHubs":["hub-b.example.com"]},
		{"registrationId":"b-0","attestation":{"type":"symmetricKey"}},
		{"registrationId":"b-3","attestation":{"type":"none"}},
		{"registrationId":"b-4","attestation":{"type":"symmetricKey"},"unknown":1},
		{"attestation":{"type":"symmetricKey"}}]}`), 200, &br)
	if br.IsSuccessful || len(br.Errors) != 4 {
		t.Fatalf("create: %+v", br)
	}
	byID := map[string]BulkError{}
	for _, e := range br.Errors {
		byID[e.RegistrationID] = e
	}
	for id, want := range map[string]struct {
		code   int
		reason string
	}{"b-0": {409000, "RESOURCE_ALREADY_EXISTS"}, "b-3": {400004, "FIELD_INVALID"}, "": {400001, "REGISTRATION_ID_INVALID"}} {
		if e := byID[id]; e.ErrorCode != want.code || !strings.HasPrefix(e.ErrorStatus, want.reason+": ") {
			t.Errorf("item %q: %+v, want %d %s", id, e, want.code, want.reason)
		}
	}
	for _, id := range []string{"b-1", "b-2"} {
		if _, err := f.store.Store.GetIndividual(t.Context(), id); err != nil {
			t.Errorf("%s was not created: %v", id, err)
		}
	}
	for _, id := range []string{"b-3", "b-4"} {
		if _, err := f.store.Store.GetIndividual(t.Context(), id); err == nil {
			t.Errorf("refused item %s was created", id)
		}
	}

	// update: only existing ones; updateIfMatchETag: only at their etag.
	var b1 IndividualEnrollment
	f.ok(f.call("GET", "/enrollments/b-1", ""), 200, &b1)
	f.ok(f.call("POST", "/enrollments", `{"mode":"update","enrollments":[
		{"registrationId":"b-1","deviceId":"dev-1","attestation":{"type":"symmetricKey"}},
		{"registrationId":"b-9","attestation":{"type":"symmetricKey"}}]}`), 200, &br)
	if br.IsSuccessful || len(br.Errors) != 1 || br.Errors[0].RegistrationID != "b-9" || br.Errors[0].ErrorCode != 404201 {
		t.Fatalf("update: %+v", br)
	}
	if _, err := f.store.Store.GetIndividual(t.Context(), "b-9"); err == nil {
		t.Fatal("update created b-9")
	}
	f.ok(f.call("POST", "/enrollments", `{"mode":"updateIfMatchETag","enrollments":[
		{"registrationId":"b-1","etag":`+mustJSON(b1.Etag)+`,"attestation":{"type":"symmetricKey"}},
		{"registrationId":"b-2","attestation":{"type":"symmetricKey"}}]}`), 200, &br)
	if br.IsSuccessful || len(br.Errors) != 2 {
		t.Fatalf("updateIfMatchETag: %+v", br)
	}
	for _, e := range br.Errors {
		want := map[string]string{"b-1": "ETAG_MISMATCH", "b-2": "FIELD_INVALID"}[e.RegistrationID]
		if !strings.HasPrefix(e.ErrorStatus, want+": ") {
			t.Errorf("updateIfMatchETag item: %+v, want %s", e, want)
		}
	}
	f.ok(f.call("GET", "/enrollments/b-1", ""), 200, &b1)
	f.ok(f.call("POST", "/enrollments", `{"mode":"updateIfMatchETag","enrollments":[
		{"registrationId":"b-1","etag":`+mustJSON(b1.Etag)+`,"deviceId":"dev-1b","attestation":{"type":"symmetricKey"}}]}`), 200, &br)
	if !br.IsSuccessful || len(br.Errors) != 0 {
		t.Fatalf("updateIfMatchETag at the etag: %+v", br)
	}
	if e, _ := f.store.Store.GetIndividual(t.Context(), "b-1"); e.DeviceID != "dev-1b" {
		t.Fatalf("b-1 device ID %q", e.DeviceID)
	}

	// delete: at an etag, "*", or any; a stale etag fails that item.
	f.ok(f.call("POST", "/enrollments", `{"mode":"delete","enrollments":[
		{"registrationId":"b-0","etag":"*"},
		{"registrationId":"b-1","etag":"\"1\""},
		{"registrationId":"b-2"}]}`), 200, &br)
	if br.IsSuccessful || len(br.Errors) != 1 || br.Errors[0].RegistrationID != "b-1" || br.Errors[0].ErrorCode != 412000 {
		t.Fatalf("delete: %+v", br)
	}
	for id, exists := range map[string]bool{"b-0": false, "b-1": true, "b-2": false} {
		if _, err := f.store.Store.GetIndividual(t.Context(), id); (err == nil) != exists {
			t.Errorf("%s exists: %v, want %v", id, err == nil, exists)
		}
	}
}

// TestBulkGroups: the group form names items by enrollmentGroupId.
func TestBulkGroups(t *testing.T) {
	f := newFixture(t)
	f.verifiedCA("acme")
	var br BulkResult
	f.ok(f.call("POST", "/enrollmentGroups", `{"mode":"create","enrollments":[
		{"enrollmentGroupId":"bg-1","attestation":{"type":"symmetricKey"}},
		{"enrollmentGroupId":"bg-2","attestation":{"type":"x509","x509":{"caReferences":{"primary":"acme"}}}},
		{"enrollmentGroupId":"bg-3","attestation":{"type":"tpm"}},
		{"attestation":{"type":"symmetricKey"}}]}`), 200, &br)
	if br.IsSuccessful || len(br.Errors) != 2 {
		t.Fatalf("create: %+v", br)
	}
	for _, e := range br.Errors {
		if e.RegistrationID != "" || e.EnrollmentGroupID != "bg-3" && e.EnrollmentGroupID != "" || e.ErrorCode != 400004 {
			t.Errorf("item: %+v", e)
		}
	}
	var g EnrollmentGroup
	f.ok(f.call("GET", "/enrollmentGroups/bg-1", ""), 200, &g)
	f.ok(f.call("POST", "/enrollmentGroups", `{"mode":"updateIfMatchETag","enrollments":[
		{"enrollmentGroupId":"bg-1","etag":`+mustJSON(g.Etag)+`,"provisioningStatus":"disabled","attestation":{"type":"symmetricKey"}},
		{"enrollmentGroupId":"bg-2","attestation":{"type":"x509"}}]}`), 200, &br)
	if len(br.Errors) != 1 || br.Errors[0].EnrollmentGroupID != "bg-2" || !strings.HasPrefix(br.Errors[0].ErrorStatus, "FIELD_INVALID: ") {
		t.Fatalf("updateIfMatchETag: %+v", br)
	}
	if got, _ := f.store.Store.GetGroup(t.Context(), "bg-1"); !got.Disabled {
		t.Fatal("bg-1 not disabled")
	}
	f.ok(f.call("POST", "/enrollmentGroups", `{"mode":"update","enrollments":[{"enrollmentGroupId":"bg-2","attestation":{"type":"x509"},"capabilities":{"iotEdge":true}}]}`), 200, &br)
	if !br.IsSuccessful {
		t.Fatalf("update: %+v", br)
	}
	f.ok(f.call("POST", "/enrollmentGroups", `{"mode":"delete","enrollments":[{"enrollmentGroupId":"bg-1"},{"enrollmentGroupId":"bg-2","etag":"W/\"x\""}]}`), 200, &br)
	if len(br.Errors) != 1 || br.Errors[0].EnrollmentGroupID != "bg-2" || br.Errors[0].ErrorCode != 412000 {
		t.Fatalf("delete: %+v", br)
	}
	if _, err := f.store.Store.GetGroup(t.Context(), "bg-1"); err == nil {
		t.Fatal("bg-1 not deleted")
	}
}

// TestBulkMalformed: a malformed bulk operation is refused whole, with its
// reason, and writes nothing.
func TestBulkMalformed(t *testing.T) {
	f := newFixture(t)
	item := `{"registrationId":"m","attestation":{"type":"symmetricKey"}}`
	many := strings.TrimSuffix(strings.Repeat(item+",", MaxBulk+1), ",")
	before := f.snapshot()
	for name, body := range map[string]string{
		"empty body":    ``,
		"not JSON":      `[`,
		"unknown field": `{"mode":"create","enrollments":[` + item + `],"x":1}`,
		"unknown mode":  `{"mode":"upsert","enrollments":[` + item + `]}`,
		"no mode":       `{"enrollments":[` + item + `]}`,
		"no items":      `{"mode":"create","enrollments":[]}`,
		"null items":    `{"mode":"create"}`,
		"too many":      `{"mode":"create","enrollments":[` + many + `]}`,
		"too large":     `{"mode":"create","enrollments":[` + strings.Repeat(" ", 4<<20) + item + `]}`,
		"trailing data": `{"mode":"create","enrollments":[` + item + `]} x`,
	} {
		for _, path := range []string{"/enrollments", "/enrollmentGroups"} {
			eb := refused(t, f.call("POST", path, body), 400, "FIELD_INVALID")
			if name == "too many" && !strings.Contains(eb.Message, fmt.Sprint(MaxBulk)) {
				t.Errorf("%s: %q", name, eb.Message)
			}
		}
	}
	if f.snapshot() != before {
		t.Fatal("a refused bulk operation wrote")
	}
}
