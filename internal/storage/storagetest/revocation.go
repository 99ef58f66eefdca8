package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// testCertIndex: registrations are found by the certificates of their
// identity's X.509 chain (ADR 23), in pages; the index follows updates
// (a new leaf), deletions and re-registrations; an identity's disabled
// reason and a group's revocation policy survive the round trip, and the
// reason is dropped once the identity is enabled again.
func testCertIndex(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s1", "s2")
	inter := registry.CertRef{Issuer: "aa", Serial: "1f"} // the intermediate all of them share
	leafOf := func(i int) registry.CertRef {
		return registry.CertRef{Issuer: "bb", Serial: fmt.Sprintf("%x", 0x100+i)}
	}
	for i := range 5 {
		reg, id := newRegistration(fmt.Sprintf("dev-%d", i), []string{"s1", "s2"}[i%2])
		id.Credential.X509Chain = []registry.CertRef{leafOf(i), inter}
		_, err := s.CreateRegistration(ctx, reg, id)
		must(t, err, "CreateRegistration")
	}
	list := func(ref registry.CertRef, limit int) []string {
		t.Helper()
		var ids []string
		token := ""
		for {
			regs, next, err := s.ListRegistrations(ctx, registry.Filter{Cert: &ref}, token, limit)
			must(t, err, "ListRegistrations(cert)")
			for _, r := range regs {
				ids = append(ids, r.RegistrationID)
			}
			if next == "" {
				slices.Sort(ids)
				return ids
			}
			token = next
		}
	}
	if got := list(inter, 2); !slices.Equal(got, []string{"dev-0", "dev-1", "dev-2", "dev-3", "dev-4"}) {
		t.Fatalf("by intermediate: %v", got)
	}
	if got := list(leafOf(3), 10); !slices.Equal(got, []string{"dev-3"}) {
		t.Fatalf("by leaf: %v", got)
	}
	if got := list(registry.CertRef{Issuer: "bb", Serial: "10"}, 10); len(got) != 0 {
		t.Fatalf("a serial that is a prefix of others matched %v", got)
	}
	// A new leaf replaces the old one in the index.
	reg, err := s.GetRegistration(ctx, "dev-3")
	must(t, err, "GetRegistration")
	id, err := s.GetIdentity(ctx, "dev-3")
	must(t, err, "GetIdentity")
	id.Credential.X509Chain = []registry.CertRef{leafOf(33), inter}
	id.Status, id.DisabledReason = registry.IdentityDisabled, "CERTIFICATE_REVOKED"
	_, err = s.UpdateRegistration(ctx, reg, id)
	must(t, err, "UpdateRegistration")
	if got := list(leafOf(3), 10); len(got) != 0 {
		t.Fatalf("the old leaf still finds %v", got)
	}
	if got := list(leafOf(33), 10); !slices.Equal(got, []string{"dev-3"}) {
		t.Fatalf("the new leaf finds %v", got)
	}
	got, err := s.GetIdentity(ctx, "dev-3")
	must(t, err, "GetIdentity")
	if got.DisabledReason != "CERTIFICATE_REVOKED" || !slices.Equal(got.Credential.X509Chain, id.Credential.X509Chain) {
		t.Fatalf("identity after update: reason %q chain %v", got.DisabledReason, got.Credential.X509Chain)
	}
	reg, _ = s.GetRegistration(ctx, "dev-3")
	got.Status = registry.IdentityEnabled
	_, err = s.UpdateRegistration(ctx, reg, got)
	must(t, err, "UpdateRegistration(enable)")
	if got, _ := s.GetIdentity(ctx, "dev-3"); got.DisabledReason != "" {
		t.Fatalf("an enabled identity kept its disabled reason %q", got.DisabledReason)
	}
	// Deleted registrations leave the index.
	must(t, s.DeleteRegistration(ctx, "dev-0", ""), "DeleteRegistration")
	if got := list(inter, 10); !slices.Equal(got, []string{"dev-1", "dev-2", "dev-3", "dev-4"}) {
		t.Fatalf("after a deletion: %v", got)
	}
	if got := list(leafOf(0), 10); len(got) != 0 {
		t.Fatalf("a deleted registration is still found: %v", got)
	}

	// A group's revocation policy.
	ca := newCA(t, "rev-root", "Rev Root")
	_, err = s.CreateCA(ctx, ca)
	must(t, err, "CreateCA")
	g := &enrollment.Group{ID: "rev", CAName: "rev-root", Allocation: hashed(), Revocation: enrollment.RevocationPolicy{Check: enrollment.RevocationBestEffort, OCSP: true},
		Meta: enrollment.Meta{Created: t0, Updated: t0}}
	g.Etag, err = s.CreateGroup(ctx, g)
	must(t, err, "CreateGroup")
	gg, err := s.GetGroup(ctx, "rev")
	must(t, err, "GetGroup")
	if gg.Revocation != g.Revocation {
		t.Fatalf("revocation policy %+v", gg.Revocation)
	}
	gg.Revocation, gg.Updated = enrollment.RevocationPolicy{Check: enrollment.RevocationOff}, t0.Add(time.Second)
	_, err = s.UpdateGroup(ctx, gg)
	must(t, err, "UpdateGroup")
	if gg, _ := s.GetGroup(ctx, "rev"); gg.Revocation.Check != enrollment.RevocationOff || gg.Revocation.OCSP {
		t.Fatalf("revocation policy after update %+v", gg.Revocation)
	}
}
