package hubclient

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func ev(kind pb.IdentityEventKind, shard string, cursor uint64, dev string, version int64, enabled bool) *pb.IdentityEvent {
	return &pb.IdentityEvent{Shard: shard, Cursor: cursor, Kind: kind,
		Identity: &pb.DeviceIdentity{DeviceId: dev, Shard: shard, Version: version, Enabled: enabled}}
}

const (
	created  = pb.IdentityEventKind_IDENTITY_EVENT_KIND_CREATED
	updated  = pb.IdentityEventKind_IDENTITY_EVENT_KIND_UPDATED
	disabled = pb.IdentityEventKind_IDENTITY_EVENT_KIND_DISABLED
	deleted  = pb.IdentityEventKind_IDENTITY_EVENT_KIND_DELETED
)

// TestApplyByVersion: duplicates and overtaken events change nothing; a
// deletion removes only what the replica holds on that shard; a move
// between two of the hub's shards ends on the new shard whichever of its
// two events comes first; a new registration after a deletion is taken.
func TestApplyByVersion(t *testing.T) {
	r, err := OpenReplica(filepath.Join(t.TempDir(), "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		ev      *pb.IdentityEvent
		changed bool
	}{
		{ev(created, "a", 1, "d1", 10, true), true},
		{ev(created, "a", 1, "d1", 10, true), false}, // duplicate
		{ev(disabled, "a", 2, "d1", 12, false), true},
		{ev(updated, "a", 3, "d1", 11, true), false}, // overtaken
		// A move from a to b: b's creation arrives before a's deletion.
		{ev(created, "b", 1, "d1", 13, true), true},
		{ev(deleted, "a", 4, "d1", 13, false), false},
		{ev(deleted, "b", 2, "d1", 14, false), true},
		{ev(created, "b", 3, "d1", 20, true), true},   // registered again
		{ev(deleted, "b", 2, "d1", 14, false), false}, // a replayed old deletion
	}
	for i, s := range steps {
		if got := r.Apply(s.ev); got != s.changed {
			t.Fatalf("step %d (%v): changed %v, want %v", i, s.ev, got, s.changed)
		}
	}
	if id := r.Get("d1"); id == nil || id.Shard != "b" || id.Version != 20 || !id.Enabled {
		t.Fatalf("d1 = %+v", id)
	}
	if c, _ := r.Cursor("a"); c != 4 {
		t.Fatalf("cursor of a = %d", c)
	}
	if c, _ := r.Cursor("b"); c != 3 {
		t.Fatalf("cursor of b = %d (a replayed event must not move it back)", c)
	}
	// Saved and opened again, the replica is the same.
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenReplica(r.path)
	if err != nil {
		t.Fatal(err)
	}
	if id := again.Get("d1"); id == nil || id.Version != 20 || len(again.Identities()) != 1 {
		t.Fatalf("reopened: %+v", again.Identities())
	}
	// A snapshot replaces the shard's identities.
	again.Reset("b", []*pb.DeviceIdentity{{DeviceId: "d2", Shard: "b", Version: 5, Enabled: true}}, 9)
	if again.Get("d1") != nil || again.Get("d2") == nil {
		t.Fatalf("after reset: %+v", again.Identities())
	}
	if c, ok := again.Cursor("b"); !ok || c != 9 {
		t.Fatalf("cursor after reset: %d %v", c, ok)
	}
	again.Forget("b")
	if _, ok := again.Cursor("b"); ok {
		t.Fatal("forgotten shard still has a cursor")
	}
}

// TestOpenReplicaRefusesGarbage: a corrupt replica file is an error, not
// an empty replica (which would resync silently).
func TestOpenReplicaRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	if err := writeFile(path, "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReplica(path); err == nil {
		t.Fatal("opened a corrupt replica")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// TestFromPBIssuedCertificate: the identity keeps the device's issued
// certificate, which the hub admits.
func TestFromPBIssuedCertificate(t *testing.T) {
	na := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	id := FromPB(&pb.DeviceIdentity{DeviceId: "d", IssuedCertificate: &pb.IssuedCertificate{Serial: "0abc", Sha256Thumbprint: "ff", IssuingCa: "ops", NotAfter: timestamppb.New(na)}})
	if id.IssuedSerial != "0abc" || id.IssuedThumbprint != "ff" || id.IssuingCA != "ops" || !id.IssuedNotAfter.Equal(na) {
		t.Fatalf("FromPB: %+v", id)
	}
	if none := FromPB(&pb.DeviceIdentity{DeviceId: "d"}); none.IssuedSerial != "" || !none.IssuedNotAfter.IsZero() {
		t.Fatalf("FromPB without one: %+v", none)
	}
}

// TestFromPBDisabledReason: a hub keeps why Zerotouch disabled a device
// (ADR 23).
func TestFromPBDisabledReason(t *testing.T) {
	id := FromPB(&pb.DeviceIdentity{DeviceId: "d", DisabledReason: "CERTIFICATE_REVOKED"})
	if id.Enabled || id.DisabledReason != "CERTIFICATE_REVOKED" {
		t.Fatalf("FromPB: %+v", id)
	}
}
