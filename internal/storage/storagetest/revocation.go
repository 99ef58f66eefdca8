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
	list := func(ref registry.CertRef, limit int) []string { return listByCert(t, s, ref, limit) }
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

	testCertHierarchy(t, s)

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

// testCertHierarchy: a certificate finds every registration whose chain
// holds it, however deep below it, and no other: not one under the same
// key certified by another certificate, not one only a cross-certificate
// relates, and each registration once.
func testCertHierarchy(t *testing.T, s Store) {
	ctx := t.Context()
	// Keys: R (root), I1 and I2 (intermediates R certified), L (a CA I1
	// certified twice, serials 0a and 0b), X (a cross-certified key: R
	// certified X, and X certified R).
	top := registry.CertRef{Issuer: "r0", Serial: "11"}       // I1's certificate
	other := registry.CertRef{Issuer: "r0", Serial: "12"}     // I2's certificate
	midA := registry.CertRef{Issuer: "i1", Serial: "0a"}      // L's first certificate
	midB := registry.CertRef{Issuer: "i1", Serial: "0b"}      // L's second certificate
	cross := registry.CertRef{Issuer: "r0", Serial: "13"}     // X's certificate
	crossBack := registry.CertRef{Issuer: "x0", Serial: "14"} // R's certificate by X
	leaf := func(issuer string, i int) registry.CertRef {
		return registry.CertRef{Issuer: issuer, Serial: fmt.Sprintf("%x", 0x200+i)}
	}
	chains := map[string][]registry.CertRef{
		"deep-a1": {leaf("l0", 1), midA, top},        // leaf by L, L by I1 (serial 0a), I1 by R
		"deep-a2": {leaf("l0", 2), midA, top},        //
		"deep-b":  {leaf("l0", 3), midB, top},        // L certified by I1 again (serial 0b)
		"mid":     {leaf("i1", 4), top},              // a leaf straight under I1
		"sibling": {leaf("i2", 5), other},            // under I2, not I1
		"looped":  {leaf("r0", 6), crossBack, cross}, // leaf by R, R by X, X by R
		"plain":   {leaf("r0", 7)},                   // a leaf straight under R
	}
	for id, chain := range chains {
		reg, ident := newRegistration(id, "s1")
		ident.Credential.X509Chain = chain
		_, err := s.CreateRegistration(ctx, reg, ident)
		must(t, err, "CreateRegistration "+id)
	}
	for _, limit := range []int{1, 2, 100} {
		list := func(ref registry.CertRef) []string { return listByCert(t, s, ref, limit) }
		for _, c := range []struct {
			ref  registry.CertRef
			want []string
		}{
			{top, []string{"deep-a1", "deep-a2", "deep-b", "mid"}},
			{midA, []string{"deep-a1", "deep-a2"}},
			{midB, []string{"deep-b"}},
			{other, []string{"sibling"}},
			{cross, []string{"looped"}},
			{crossBack, []string{"looped"}},
			{leaf("r0", 7), []string{"plain"}},
			{registry.CertRef{Issuer: "r0", Serial: "1"}, nil},
		} {
			if got := list(c.ref); !slices.Equal(got, c.want) {
				t.Errorf("limit %d: by %s/%s: %v, want %v", limit, c.ref.Issuer, c.ref.Serial, got, c.want)
			}
		}
	}
	// An update to a chain under another certificate of the same key
	// leaves the first certificate's list.
	reg, err := s.GetRegistration(ctx, "deep-a2")
	must(t, err, "GetRegistration")
	ident, err := s.GetIdentity(ctx, "deep-a2")
	must(t, err, "GetIdentity")
	ident.Credential.X509Chain = []registry.CertRef{leaf("l0", 8), midB, top}
	_, err = s.UpdateRegistration(ctx, reg, ident)
	must(t, err, "UpdateRegistration")
	ref := midA
	regs, _, err := s.ListRegistrations(ctx, registry.Filter{Cert: &ref}, "", 100)
	must(t, err, "ListRegistrations(cert)")
	if len(regs) != 1 || regs[0].RegistrationID != "deep-a1" {
		t.Errorf("by %v after the update: %v", ref, regs)
	}
	for id := range chains {
		must(t, s.DeleteRegistration(ctx, id, ""), "DeleteRegistration "+id)
	}
	ref = top
	if regs, _, err := s.ListRegistrations(ctx, registry.Filter{Cert: &ref}, "", 100); err != nil || len(regs) != 0 {
		t.Errorf("after deleting them all: %v, %v", regs, err)
	}
}

// listByCert lists the registration IDs found by a certificate, sorted,
// in pages of limit (at most 100 pages).
func listByCert(t *testing.T, s Store, ref registry.CertRef, limit int) []string {
	t.Helper()
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("listing %v does not end", ref)
		}
		regs, next, err := s.ListRegistrations(t.Context(), registry.Filter{Cert: &ref}, token, limit)
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
