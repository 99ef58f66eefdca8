package storagetest

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
)

func testAccessKeys(t *testing.T, s Store) {
	ctx := t.Context()
	n, err := s.CountKeys(ctx)
	must(t, err, "CountKeys")
	if n != 0 {
		t.Fatalf("fresh store has %d keys", n)
	}
	token, k, err := access.Generate(rand.Reader, "owner", access.All, t0)
	must(t, err, "Generate")
	must(t, s.CreateKey(ctx, k), "CreateKey")
	wantKind(t, s.CreateKey(ctx, k), fault.AlreadyExists, "CreateKey again")
	got, err := access.Authenticate(ctx, s, token, t0)
	must(t, err, "Authenticate")
	if got.Name != "owner" || !got.Has(access.ServiceConfig) || len(got.Permissions) != len(access.All) {
		t.Fatalf("Authenticate = %+v", got)
	}
	_, err = access.Authenticate(ctx, s, token+"x", t0)
	wantKind(t, err, fault.Unauthenticated, "Authenticate(wrong secret)")
	n, _ = s.CountKeys(ctx)
	if n != 1 {
		t.Fatalf("CountKeys = %d", n)
	}

	// A key with a sealed shared access key keeps it; keys list in ID
	// order, page by page; a deleted key no longer authenticates.
	_, k2, err := access.Generate(rand.Reader, "dps", []access.Permission{access.EnrollmentRead}, t0)
	must(t, err, "Generate")
	k2.SealedSAS = []byte{9, 8, 7}
	must(t, s.CreateKey(ctx, k2), "CreateKey(with SAS)")
	got2, err := s.GetKey(ctx, k2.ID)
	must(t, err, "GetKey")
	if string(got2.SealedSAS) != "\x09\x08\x07" || got2.Name != "dps" || len(got2.Permissions) != 1 {
		t.Fatalf("GetKey = %+v", got2)
	}
	var ids []string
	for tok, pages := "", 0; ; pages++ {
		keys, next, err := s.ListKeys(ctx, tok, 1)
		must(t, err, "ListKeys")
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		if next == "" || pages > 5 {
			break
		}
		tok = next
	}
	want := []string{k.ID, k2.ID}
	if k2.ID < k.ID {
		want = []string{k2.ID, k.ID}
	}
	if len(ids) != 2 || ids[0] != want[0] || ids[1] != want[1] {
		t.Fatalf("ListKeys = %v, want %v", ids, want)
	}
	// Rotation replaces a slot's secret and shared access key in one
	// write; the key keeps its ID, name, permissions and other slot.
	// Both rotations are made from the same read (as two concurrent ones
	// are); each changes only its slot, so both stand.
	secondToken, withSecond, err := access.Rotate(rand.Reader, k2, access.Secondary)
	must(t, err, "Rotate(secondary)")
	newToken, rotated, err := access.Rotate(rand.Reader, k2, access.Primary)
	must(t, err, "Rotate")
	must(t, s.RotateKey(ctx, k2.ID, access.Primary, rotated.SecretHash, []byte{1}), "RotateKey")
	must(t, s.RotateKey(ctx, k2.ID, access.Secondary, withSecond.SecondaryHash, []byte{2}), "RotateKey(secondary)")
	for _, tok := range []string{newToken, secondToken} {
		got3, err := access.Authenticate(ctx, s, tok, t0)
		must(t, err, "Authenticate(rotated)")
		if got3.Name != "dps" || len(got3.Permissions) != 1 || string(got3.SealedSAS) != "\x01" || string(got3.SealedSAS2) != "\x02" {
			t.Fatalf("rotated key = %+v", got3)
		}
	}
	wantKind(t, s.RotateKey(ctx, "nobody", access.Primary, rotated.SecretHash, nil), fault.NotFound, "RotateKey(unknown)")
	// Last use is recorded; expiry is kept and refuses the key after it.
	must(t, s.TouchKey(ctx, k2.ID, t0.Add(time.Hour)), "TouchKey")
	if got4, err := s.GetKey(ctx, k2.ID); err != nil || !got4.LastUsed.Equal(t0.Add(time.Hour)) {
		t.Fatalf("LastUsed: %+v %v", got4, err)
	}
	wantKind(t, s.TouchKey(ctx, "nobody", t0), fault.NotFound, "TouchKey(unknown)")
	expToken, exp, err := access.Generate(rand.Reader, "temp", []access.Permission{access.EnrollmentRead}, t0)
	must(t, err, "Generate")
	exp.Expires = t0.Add(24 * time.Hour)
	must(t, s.CreateKey(ctx, exp), "CreateKey(expiring)")
	if _, err := access.Authenticate(ctx, s, expToken, t0.Add(time.Hour)); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	_, err = access.Authenticate(ctx, s, expToken, t0.Add(24*time.Hour))
	wantKind(t, err, fault.Unauthenticated, "Authenticate(expired)")
	must(t, s.DeleteKey(ctx, exp.ID), "DeleteKey(expiring)")
	must(t, s.DeleteKey(ctx, k.ID), "DeleteKey")
	wantKind(t, s.DeleteKey(ctx, k.ID), fault.NotFound, "DeleteKey again")
	_, err = access.Authenticate(ctx, s, token, t0)
	wantKind(t, err, fault.Unauthenticated, "Authenticate(deleted key)")
	if n, _ = s.CountKeys(ctx); n != 1 {
		t.Fatalf("CountKeys after delete = %d", n)
	}
}
