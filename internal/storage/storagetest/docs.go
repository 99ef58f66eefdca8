package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
)

// testDocs: documents are created once, updated under their etag, listed
// in name order per kind, and every write advances the kind's version.
func testDocs(t *testing.T, s Store) {
	ctx := t.Context()
	v0, err := s.DocsVersion(ctx, "a", "b")
	must(t, err, "DocsVersion(empty)")
	_, err = s.GetDoc(ctx, "a", "x")
	wantKind(t, err, fault.NotFound, "GetDoc(absent)")
	e1, err := s.PutDoc(ctx, "a", "x", []byte("one\nline two"), "", docs.Create)
	must(t, err, "PutDoc(create)")
	_, err = s.PutDoc(ctx, "a", "x", []byte("again"), "", docs.Create)
	wantKind(t, err, fault.AlreadyExists, "PutDoc(create existing)")
	_, err = s.PutDoc(ctx, "a", "nope", []byte("z"), "", docs.Update)
	wantKind(t, err, fault.NotFound, "PutDoc(update absent)")
	_, err = s.PutDoc(ctx, "a", "x", []byte("z"), "stale", docs.Update)
	wantKind(t, err, fault.Conflict, "PutDoc(update stale)")
	d, err := s.GetDoc(ctx, "a", "x")
	must(t, err, "GetDoc")
	if string(d.Raw) != "one\nline two" || d.Etag != e1 {
		t.Fatalf("GetDoc = %q etag %q, want the first write (etag %q)", d.Raw, d.Etag, e1)
	}
	e2, err := s.PutDoc(ctx, "a", "x", []byte("two"), e1, docs.Update)
	must(t, err, "PutDoc(update current)")
	if e2 == e1 {
		t.Fatal("an update kept the etag")
	}
	for i := range 5 {
		_, err := s.PutDoc(ctx, "b", fmt.Sprintf("n%d", 4-i), []byte{byte(i)}, "", docs.Create)
		must(t, err, "PutDoc(b)")
	}
	list, err := s.ListDocs(ctx, "b", "", 3)
	must(t, err, "ListDocs")
	if len(list) != 3 || list[0].Name != "n0" || list[2].Name != "n2" {
		t.Fatalf("ListDocs first page = %v", names(list))
	}
	list, err = s.ListDocs(ctx, "b", "n2", 10)
	must(t, err, "ListDocs(after)")
	if len(list) != 2 || list[0].Name != "n3" {
		t.Fatalf("ListDocs after n2 = %v", names(list))
	}
	if list, _ := s.ListDocs(ctx, "a", "", 10); len(list) != 1 {
		t.Fatalf("kinds are not apart: kind a lists %v", names(list))
	}
	wantKind(t, s.DeleteDoc(ctx, "a", "x", "stale"), fault.Conflict, "DeleteDoc(stale)")
	must(t, s.DeleteDoc(ctx, "a", "x", e2), "DeleteDoc")
	wantKind(t, s.DeleteDoc(ctx, "a", "x", ""), fault.NotFound, "DeleteDoc(again)")
	v1, err := s.DocsVersion(ctx, "a", "b")
	must(t, err, "DocsVersion")
	if v1 < v0+8 { // 2 writes and a delete of a, 5 creates in b
		t.Fatalf("DocsVersion %d -> %d after 8 writes", v0, v1)
	}
	if va, _ := s.DocsVersion(ctx, "c"); va != 0 {
		t.Fatalf("an unwritten kind has version %d", va)
	}

	// Revocations through issuance.Store keep the earliest time.
	iss := docs.Issuance{D: s}
	now := time.Now().UTC().Truncate(time.Second)
	fresh, err := iss.Revoke(ctx, &issuance.Revocation{IssuingCA: "ca", Serial: "0a", RevokedAt: now.Add(time.Hour), NotAfter: now.Add(24 * time.Hour)})
	must(t, err, "Revoke")
	again, err := iss.Revoke(ctx, &issuance.Revocation{IssuingCA: "ca", Serial: "0a", RevokedAt: now, Reason: 1, NotAfter: now.Add(24 * time.Hour)})
	must(t, err, "Revoke(earlier)")
	later, err := iss.Revoke(ctx, &issuance.Revocation{IssuingCA: "ca", Serial: "0a", RevokedAt: now.Add(2 * time.Hour), NotAfter: now.Add(24 * time.Hour)})
	must(t, err, "Revoke(later)")
	r, err := iss.GetRevocation(ctx, "ca", "0a")
	must(t, err, "GetRevocation")
	if !fresh || !again || later || !r.RevokedAt.Equal(now) || r.Reason != 1 {
		t.Fatalf("revocations: new %v %v %v, kept %s reason %d", fresh, again, later, r.RevokedAt, r.Reason)
	}
}

func names(ds []*docs.Doc) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name
	}
	return out
}

// testIssuedCertificates: a registration's issued and superseded
// certificates, and its identity's, survive the round trip.
func testIssuedCertificates(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s1")
	now := time.Now().UTC().Truncate(time.Second)
	cur := &registry.IssuedCertificate{Serial: "01ab", Thumbprint: "aa", IssuingCA: "fleet", NotAfter: now.Add(time.Hour), At: now}
	old := &registry.IssuedCertificate{Serial: "02cd", Thumbprint: "bb", IssuingCA: "fleet", NotAfter: now.Add(time.Minute), At: now}
	reg, id := newRegistration("dev-iss", "s1")
	reg.Issued, reg.Superseded, id.Credential.Issued = cur, old, cur
	_, err := s.CreateRegistration(ctx, reg, id)
	must(t, err, "CreateRegistration")
	got, err := s.GetRegistration(ctx, "dev-iss")
	must(t, err, "GetRegistration")
	same := func(a, b *registry.IssuedCertificate) bool {
		return a != nil && a.Serial == b.Serial && a.Thumbprint == b.Thumbprint && a.IssuingCA == b.IssuingCA && a.NotAfter.Equal(b.NotAfter) && a.At.Equal(b.At)
	}
	if !same(got.Issued, cur) || !same(got.Superseded, old) {
		t.Fatalf("issued %+v superseded %+v", got.Issued, got.Superseded)
	}
	gid, err := s.GetIdentity(ctx, id.DeviceID)
	must(t, err, "GetIdentity")
	if gid.Credential.Issued == nil || gid.Credential.Issued.Serial != "01ab" {
		t.Fatalf("identity's issued certificate %+v", gid.Credential.Issued)
	}
}
