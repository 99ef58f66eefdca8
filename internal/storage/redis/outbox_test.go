package redis_test

import (
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// TestOutboxSweep: writes whose relay never ran (the replica stopped right
// after the MULTI) reach their shards' logs through the sweeper, in each
// device's order, and a second sweep appends nothing more. On a real
// 3-master cluster, so the device, its outbox and the shards' logs are in
// different slots and nodes.
func TestOutboxSweep(t *testing.T) {
	cluster := redistest.StartCluster(t)
	s, err := redis.Open(redis.Options{Addrs: cluster.Addrs(), Cluster: true, KeyPrefix: "ob"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for _, sh := range []string{"s1", "s2"} {
		if _, err := s.CreateShard(ctx, &allocation.Shard{ID: sh, Hostname: sh + ".example.com", Weight: 1, State: allocation.Active}); err != nil {
			t.Fatal(err)
		}
	}
	s.SetRelayOff(true)
	now := time.Now()
	for i := range 5 {
		dev := fmt.Sprintf("dev-%d", i)
		reg := &registry.Registration{RegistrationID: dev, DeviceID: dev, Shard: "s1", AssignedHub: "s1.example.com", Status: registry.Assigned,
			Substatus: registry.InitialAssignment, AttestationType: registry.SymmetricKey, Created: now, Updated: now}
		id := &registry.Identity{DeviceID: dev, RegistrationID: dev, Shard: "s1", Status: registry.IdentityEnabled,
			Credential: registry.Credential{Type: registry.SymmetricKey}, Version: 1, Created: now, Updated: now}
		etag, err := s.CreateRegistration(ctx, reg, id)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // and move it before anything was relayed
			reg.Etag, reg.Shard, id.Shard, id.Version = etag, "s2", "s2", 2
			if _, err := s.UpdateRegistration(ctx, reg, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if head, _ := s.LogHead(ctx, "s1"); head != 0 {
		t.Fatalf("events reached the log with the relay off: head %d", head)
	}
	if n, err := s.SweepOutboxes(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("a sweep for old outboxes relayed %d fresh ones (%v)", n, err)
	}
	s.SetRelayOff(false)
	if n, err := s.SweepOutboxes(ctx, 0); err != nil || n != 8 {
		t.Fatalf("sweep followed %d marks (%v), want 8 (5 creations, 3 moves)", n, err)
	}
	if n, err := s.SweepOutboxes(ctx, 0); err != nil || n != 0 {
		t.Fatalf("second sweep followed %d marks (%v), want 0", n, err)
	}
	s1, err := s.ReadEvents(ctx, "s1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := s.ReadEvents(ctx, "s2", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 8 || len(s2) != 3 {
		t.Fatalf("s1 has %d events, s2 %d; want 8 (5 created, 3 deleted) and 3", len(s1), len(s2))
	}
	// Per device, the creation precedes the deletion.
	seen := map[string]registry.EventKind{}
	for _, ev := range s1 {
		if prev := seen[ev.Identity.DeviceID]; ev.Kind == registry.EventDeleted && prev != registry.EventCreated {
			t.Fatalf("%s deleted before it was created", ev.Identity.DeviceID)
		}
		seen[ev.Identity.DeviceID] = ev.Kind
	}
}

// TestSweepPassesOverABadOutbox: a mark whose outbox cannot be relayed
// (here a key of the wrong type) does not hold up the marks after it: the
// sweep relays them and reports the failure.
func TestSweepPassesOverABadOutbox(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	ctx := t.Context()
	c := s.Client()
	c.Set(ctx, "{zt:r:bad}:ob", "not a list", 0)
	c.ZAdd(ctx, "zt:ix:outbox", goredis.Z{Score: 1, Member: "bad\x00x"})
	s.SetRelayOff(true)
	if err := creator(t, s)("dev-ok", "dev-ok"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRegistration(ctx, "dev-ok", ""); err != nil {
		t.Fatal(err)
	}
	s.SetRelayOff(false)
	n, err := s.SweepOutboxes(ctx, 0)
	if err == nil || n != 1 {
		t.Fatalf("sweep: %d marks cleared, %v; want 1 and the bad outbox's error", n, err)
	}
	evs, err := s.ReadEvents(ctx, "s1", 0, 10)
	if err != nil || len(evs) != 2 || evs[1].Kind != registry.EventDeleted {
		t.Fatalf("the log after the sweep: %d events, %v; want the creation and the deletion", len(evs), err)
	}
	if got := c.ZRange(ctx, "zt:ix:outbox", 0, -1).Val(); len(got) != 1 || got[0] != "bad\x00x" {
		t.Fatalf("marks left: %q, want the bad one only", got)
	}
}
