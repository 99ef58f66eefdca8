package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// newAdmin is the operator use cases on the embedded store in a temp dir,
// logging into buf.
func newAdmin(t *testing.T) (*Service, *bytes.Buffer) {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "data.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	return &Service{Store: st, Now: time.Now, Rand: rand.Reader, Secrets: sealer, Log: slog.New(slog.NewTextHandler(&buf, nil))}, &buf
}

// key stores a key with perms (the owner's ID for "owner").
func key(t *testing.T, s *Service, name string, perms ...access.Permission) (*access.Key, string) {
	t.Helper()
	token, k, err := access.Generate(rand.Reader, name, perms, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if name == "owner" {
		token, k = access.WithID(token, k, access.OwnerKeyID)
	}
	if err := s.Store.CreateKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	return k, token
}

func reason(t *testing.T, err error, want fault.Reason) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if got := fault.ReasonOf(err); got != want {
		t.Fatalf("reason %q (%v), want %q", got, err, want)
	}
}

// TestAccessKeyExpiry: an expiry is in the future and at most ten years
// ahead; a key past it no longer authenticates, and its use is recorded.
func TestAccessKeyExpiry(t *testing.T) {
	s, _ := newAdmin(t)
	owner, _ := key(t, s, "owner", access.All...)
	now := s.Now()
	for _, bad := range []time.Time{now.Add(-time.Minute), now, now.Add(11 * 365 * 24 * time.Hour)} {
		if _, err := s.CreateAccessKey(t.Context(), owner, "k", []string{"EnrollmentRead"}, true, bad); fault.ReasonOf(err) != fault.FieldInvalid {
			t.Fatalf("expiry %v: %v", bad, err)
		}
	}
	k, err := s.CreateAccessKey(t.Context(), owner, "temp", []string{"EnrollmentRead"}, true, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(t.Context(), k.Token)
	if err != nil || !got.Expires.Equal(now.Add(time.Hour).UTC()) {
		t.Fatalf("before expiry: %+v %v", got, err)
	}
	if stored, _ := s.Store.GetKey(t.Context(), k.Key.ID); stored.LastUsed.IsZero() {
		t.Fatal("the key's use was not recorded")
	}
	s.Now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, err := s.Authenticate(t.Context(), k.Token); fault.KindOf(err) != fault.Unauthenticated {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestCreateAccessKeyGrantsNoMoreThanItHolds(t *testing.T) {
	s, _ := newAdmin(t)
	owner, _ := key(t, s, "owner", access.All...)
	ops, _ := key(t, s, "ops", access.ServiceConfig, access.EnrollmentRead)
	cases := []struct {
		caller *access.Key
		perms  []string
		want   fault.Reason
	}{
		{owner, []string{"ServiceConfig", "HubConnect"}, ""},
		{ops, []string{"ServiceConfig"}, ""},
		{ops, []string{"EnrollmentRead", "ServiceConfig"}, ""},
		{ops, []string{"EnrollmentWrite"}, fault.PermissionDeniedR},
		{ops, []string{"ServiceConfig", "RegistrationStatusWrite"}, fault.PermissionDeniedR},
		{nil, []string{"EnrollmentRead"}, fault.PermissionDeniedR},
		{owner, []string{"serviceconfig", "auditREAD"}, ""}, // DPS's names, without case
		{owner, []string{"ServiceConfig", "serviceConfig"}, fault.FieldInvalid},
		{owner, []string{"DeviceConnect"}, fault.FieldInvalid},
		{owner, []string{"Admin"}, fault.FieldInvalid},
		{owner, nil, fault.FieldInvalid},
	}
	for i, tc := range cases {
		before, _ := s.Store.CountKeys(t.Context())
		k, err := s.CreateAccessKey(t.Context(), tc.caller, "k", tc.perms, true, time.Time{})
		reason(t, err, tc.want)
		after, _ := s.Store.CountKeys(t.Context())
		if tc.want != "" && after != before {
			t.Fatalf("case %d: a refused create wrote a key", i)
		}
		if tc.want == "" && (k == nil || after != before+1 || k.SAS != nil) {
			t.Fatalf("case %d: %+v, %d keys", i, k, after)
		}
	}
}

func TestDeleteAccessKeyRules(t *testing.T) {
	s, logs := newAdmin(t)
	ctx := WithCaller(t.Context(), &Caller{KeyID: "ops"})
	owner, _ := key(t, s, "owner", access.All...)
	ops, _ := key(t, s, "ops", access.ServiceConfig)
	reader, _ := key(t, s, "reader", access.EnrollmentRead)
	reason(t, s.DeleteAccessKey(ctx, ops, ops.ID), fault.ResourceInUse)
	reason(t, s.DeleteAccessKey(ctx, ops, access.OwnerKeyID), fault.AccessKeyProtected)
	reason(t, s.DeleteAccessKey(ctx, owner, access.OwnerKeyID), fault.ResourceInUse)
	reason(t, s.DeleteAccessKey(ctx, ops, "nobody"), fault.ResourceNotFound)
	reason(t, s.DeleteAccessKey(ctx, nil, reader.ID), fault.PermissionDeniedR)
	// Deleting grants nothing: a key may revoke one with other rights.
	reason(t, s.DeleteAccessKey(ctx, ops, reader.ID), "")
	if !strings.Contains(logs.String(), "action=accessKeys.delete resource="+reader.ID+" actor=ops outcome=done") {
		t.Fatalf("the change was not recorded:\n%s", logs)
	}
	// The last ServiceConfig key stays, even for a caller whose own key
	// was deleted meanwhile (a race the self-delete rule cannot see).
	if err := s.Store.DeleteKey(t.Context(), owner.ID); err != nil {
		t.Fatal(err)
	}
	stale := &access.Key{ID: "gone", Permissions: []access.Permission{access.ServiceConfig}}
	reason(t, s.DeleteAccessKey(ctx, stale, ops.ID), fault.AccessKeyProtected)
	if _, err := s.Store.GetKey(t.Context(), ops.ID); err != nil {
		t.Fatalf("the last ServiceConfig key was deleted: %v", err)
	}
}

func TestRotateAccessKey(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	owner, ownerToken := key(t, s, "owner", access.All...)
	ops, _ := key(t, s, "ops", access.ServiceConfig)
	peer, peerToken := key(t, s, "peer", access.ServiceConfig)
	_, err := s.RotateAccessKey(ctx, ops, access.OwnerKeyID, access.Primary)
	reason(t, err, fault.AccessKeyProtected)
	_, err = s.RotateAccessKey(ctx, ops, owner.ID, access.Primary)
	reason(t, err, fault.AccessKeyProtected)
	reader, _ := key(t, s, "reader", access.EnrollmentRead)
	_, err = s.RotateAccessKey(ctx, ops, reader.ID, access.Primary)
	reason(t, err, fault.PermissionDeniedR)
	_, err = s.RotateAccessKey(ctx, nil, reader.ID, access.Primary)
	reason(t, err, fault.PermissionDeniedR)

	// A peer key, with a shared access key: both change.
	sas, err := access.AddSASKey(rand.Reader, s.Secrets, peer, access.Primary)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.RotateKey(ctx, peer.ID, access.Primary, peer.SecretHash, peer.SealedSAS); err != nil {
		t.Fatal(err)
	}
	rot, err := s.RotateAccessKey(ctx, ops, peer.ID, access.Primary)
	if err != nil || rot.Token == peerToken || len(rot.SAS) != access.SASKeyBytes || bytes.Equal(rot.SAS, sas) {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	if _, err := s.Authenticate(ctx, peerToken); fault.KindOf(err) != fault.Unauthenticated {
		t.Fatalf("old token: %v", err)
	}
	got, err := s.Authenticate(ctx, rot.Token)
	if err != nil || got.ID != peer.ID || got.Name != "peer" || len(got.Permissions) != 1 {
		t.Fatalf("new token: %+v %v", got, err)
	}
	// The owner rotates itself.
	rot, err = s.RotateAccessKey(ctx, owner, access.OwnerKeyID, access.Primary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, ownerToken); err == nil {
		t.Fatal("the old owner token still works")
	}
	if k, err := s.Authenticate(ctx, rot.Token); err != nil || len(k.Permissions) != len(access.All) {
		t.Fatalf("new owner token: %+v %v", k, err)
	}
}

func TestMutateRecordsRefusals(t *testing.T) {
	s, logs := newAdmin(t)
	err := s.DeleteShard(WithCaller(context.Background(), &Caller{KeyID: "k1"}), "no-such-shard", "")
	reason(t, err, fault.ResourceNotFound)
	if !strings.Contains(logs.String(), "action=DeleteShard resource=no-such-shard actor=k1 outcome=refused reason=RESOURCE_NOT_FOUND") {
		t.Fatalf("log:\n%s", logs)
	}
}
