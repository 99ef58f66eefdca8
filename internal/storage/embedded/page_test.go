package embedded_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// TestSparseFilterPagesAreBounded: a shard filter within a big group skips
// most of the group's index; each page examines a bounded number of
// entries and answers a short page with a token to go on, instead of
// walking the whole group in one request (issue #17). Walking every page
// still finds each match exactly once.
func TestSparseFilterPagesAreBounded(t *testing.T) {
	s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := range 600 {
		id, shard := fmt.Sprintf("device-%04d", i), "s1"
		if i == 7 || i == 512 {
			shard = "s2"
		}
		reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: shard, AssignedHub: "hub.example.com",
			Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "g1",
			CredentialThumbprint: enrollment.Thumbprint([]byte(id)), Created: now, Updated: now}
		ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: shard, Status: registry.IdentityEnabled,
			Credential: registry.Credential{Type: registry.X509, X509Thumbprint: reg.CredentialThumbprint}, Version: 1, Created: now, Updated: now}
		if _, err := s.CreateRegistration(t.Context(), reg, ident); err != nil {
			t.Fatal(err)
		}
	}
	const limit = 10
	var found []string
	pages := 0
	for token := ""; ; {
		regs, next, err := s.ListRegistrations(t.Context(), registry.Filter{GroupID: "g1", Shard: "s2"}, token, limit)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range regs {
			found = append(found, r.RegistrationID)
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(found) != 2 || found[0] != "device-0007" || found[1] != "device-0512" {
		t.Fatalf("found %v, want device-0007 and device-0512", found)
	}
	// 600 entries, at most limit×4 examined per page.
	if pages < 600/(limit*4) {
		t.Fatalf("%d pages for 600 entries: a page examined more than %d", pages, limit*4)
	}
}
