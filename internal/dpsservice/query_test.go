package dpsservice

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// page follows x-ms-continuation through a query and returns the items'
// IDs and the number of pages.
func page[T any](t *testing.T, f *fixture, path, size, itemType string, id func(T) string) ([]string, int) {
	t.Helper()
	var ids []string
	token, pages := "", 0
	for {
		hdr := []string{"x-ms-max-item-count", size}
		if token != "" {
			hdr = append(hdr, "x-ms-continuation", token)
		}
		rec := f.call("POST", path, `{"query":"SELECT * FROM c"}`, hdr...)
		var items []T
		f.ok(rec, 200, &items)
		if rec.Header().Get("x-ms-item-type") != itemType || rec.Header().Get("x-ms-max-item-count") != size {
			t.Fatalf("headers: %v", rec.Header())
		}
		n, _ := strconv.Atoi(size)
		if len(items) > n {
			t.Fatalf("page of %d items, asked for %s", len(items), size)
		}
		for _, it := range items {
			ids = append(ids, id(it))
		}
		pages++
		if token = rec.Header().Get("x-ms-continuation"); token == "" {
			return ids, pages
		}
		if pages > 20 {
			t.Fatal("endless paging")
		}
	}
}

// TestQueryEnrollments pages through individual enrollments and groups:
// every item once, no keys shown.
func TestQueryEnrollments(t *testing.T) {
	f := newFixture(t)
	var want, wantGroups []string
	for i := range 5 {
		id := fmt.Sprintf("q-%d", i)
		f.ok(f.call("PUT", "/enrollments/"+id, `{"attestation":{"type":"symmetricKey"},"iotHubHostName":"hub-b.example.com"}`), 200, nil)
		f.ok(f.call("PUT", "/enrollmentGroups/qg-"+strconv.Itoa(i), `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
		want, wantGroups = append(want, id), append(wantGroups, "qg-"+strconv.Itoa(i))
	}
	got, pages := page(t, f, "/enrollments/query", "2", "Enrollment", func(e IndividualEnrollment) string {
		if e.Attestation.SymmetricKey.PrimaryKey != "" || e.IoTHubHostName != "hub-b.example.com" || e.AllocationPolicy != "static" {
			t.Errorf("query item: %+v", e)
		}
		return e.RegistrationID
	})
	slices.Sort(got)
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("enrollments %v in %d pages", got, pages)
	}
	got, pages = page(t, f, "/enrollmentGroups/query", "4", "EnrollmentGroup", func(g EnrollmentGroup) string {
		if g.Attestation.SymmetricKey.PrimaryKey != "" {
			t.Errorf("group keys shown: %+v", g)
		}
		return g.EnrollmentGroupID
	})
	slices.Sort(got)
	if !slices.Equal(got, wantGroups) || pages != 2 {
		t.Fatalf("groups %v in %d pages", got, pages)
	}
	// Without a size: DefaultPage; the query forms DPS's SDKs send.
	for _, body := range []string{"", "{}", `{"query":"select * from enrollments"}`, `{"query":" SELECT  *  FROM  devices "}`, `{"query":"select * from c"}`} {
		rec := f.call("POST", "/enrollments/query", body)
		var items []IndividualEnrollment
		f.ok(rec, 200, &items)
		if len(items) != 5 || rec.Header().Get("x-ms-max-item-count") != strconv.Itoa(DefaultPage) || rec.Header().Get("x-ms-continuation") != "" {
			t.Fatalf("query %q: %d items, %v", body, len(items), rec.Header())
		}
	}
	// An empty collection is an empty list, not null.
	if rec := f.call("POST", "/registrations/qg-1/query", ""); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("empty page: %s", rec.Body)
	}
	// The store failing a page: 503 with a retry hint.
	f.store.set("ListIndividuals", fault.New(fault.Unavailable, fault.StoreUnavailable, "down"))
	rec := f.call("POST", "/enrollments/query", "")
	refused(t, rec, 503, "STORE_UNAVAILABLE")
	if rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	f.store.set("AllShards", fault.New(fault.Unavailable, fault.StoreUnavailable, "down"))
	refused(t, f.call("POST", "/enrollments/query", ""), 503, "STORE_UNAVAILABLE")
}

// TestQueryMalformed: what is not a supported query or page size is 400
// FIELD_INVALID.
func TestQueryMalformed(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollmentGroups/g", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	for _, path := range []string{"/enrollments/query", "/enrollmentGroups/query", "/registrations/g/query"} {
		for name, call := range map[string][]string{
			"page size 0":         {`{}`, "x-ms-max-item-count", "0"},
			"page size too large": {`{}`, "x-ms-max-item-count", strconv.Itoa(MaxPage + 1)},
			"page size not int":   {`{}`, "x-ms-max-item-count", "ten"},
			"negative page size":  {`{}`, "x-ms-max-item-count", "-1"},
			"WHERE":               {`{"query":"SELECT * FROM enrollments WHERE x = 1"}`},
			"a column":            {`{"query":"SELECT registrationId FROM enrollments"}`},
			"another collection":  {`{"query":"SELECT * FROM keys"}`},
			"unknown field":       {`{"query":"SELECT * FROM c","top":1}`},
			"not JSON":            {`{"query":`},
			"two bodies":          {`{}{}`},
			"too large":           {`{"query":"` + strings.Repeat(" ", 70<<10) + `"}`},
		} {
			t.Run(path+" "+name, func(t *testing.T) {
				refused(t, f.call("POST", path, call[0], call[1:]...), 400, "FIELD_INVALID")
			})
		}
	}
}

// TestRegistrations reads, queries and deletes registration states.
func TestRegistrations(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollmentGroups/rg", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	f.ok(f.call("PUT", "/enrollmentGroups/other", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	var want []string
	for i := range 3 {
		id := fmt.Sprintf("rd-%d", i)
		f.register(id, "rg")
		want = append(want, id)
	}
	f.register("od-1", "other")
	reg := f.register("solo", "")

	var st DeviceRegistrationState
	f.ok(f.call("GET", "/registrations/solo", ""), 200, &st)
	if st.RegistrationID != "solo" || st.DeviceID != "solo" || st.Status != "assigned" || st.AssignedHub != "hub-a.example.com" ||
		st.Etag != `"`+reg.Etag+`"` || string(st.Payload) != `{"site":"s1"}` || st.LastUpdatedDateTimeUTC == "" {
		t.Fatalf("registration state: %+v", st)
	}
	refused(t, f.call("GET", "/registrations/nobody", ""), 404, "RESOURCE_NOT_FOUND")

	got, pages := page(t, f, "/registrations/rg/query", "2", "DeviceRegistration", func(s DeviceRegistrationState) string { return s.RegistrationID })
	slices.Sort(got)
	if !slices.Equal(got, want) || pages != 2 {
		t.Fatalf("group registrations %v in %d pages", got, pages)
	}
	refused(t, f.call("POST", "/registrations/nogroup/query", ""), 404, "RESOURCE_NOT_FOUND")

	// Delete: If-Match honoured; the registration and its identity go.
	before := f.snapshot()
	refused(t, f.call("DELETE", "/registrations/solo", "", "If-Match", `"0"`), 412, "ETAG_MISMATCH")
	if f.snapshot() != before {
		t.Fatal("a refused delete wrote")
	}
	f.ok(f.call("DELETE", "/registrations/solo", "", "If-Match", st.Etag), 204, nil)
	if _, err := f.store.Store.GetRegistration(t.Context(), "solo"); err == nil {
		t.Fatal("registration not deleted")
	}
	if _, err := f.store.Store.GetIdentity(t.Context(), "solo"); err == nil {
		t.Fatal("identity not deleted")
	}
	refused(t, f.call("DELETE", "/registrations/solo", ""), 404, "RESOURCE_NOT_FOUND")
	f.ok(f.call("DELETE", "/registrations/od-1", "", "If-Match", "*"), 204, nil)
}
