package redis_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// trips counts what the client sends: one per command sent alone, one per
// pipeline.
type trips struct {
	mu sync.Mutex
	n  int
}

func (t *trips) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (t *trips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error { t.add(); return next(ctx, cmd) }
}
func (t *trips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error { t.add(); return next(ctx, cmds) }
}
func (t *trips) add()      { t.mu.Lock(); t.n++; t.mu.Unlock() }
func (t *trips) take() int { t.mu.Lock(); defer t.mu.Unlock(); n := t.n; t.n = 0; return n }

func newDevice(regID, deviceID, shard string, now time.Time) (*registry.Registration, *registry.Identity) {
	reg := &registry.Registration{RegistrationID: regID, DeviceID: deviceID, Shard: shard, AssignedHub: shard + ".example.com",
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "g1",
		CredentialThumbprint: "aa11", InitialShard: shard, Created: now, Updated: now}
	id := &registry.Identity{DeviceID: deviceID, RegistrationID: regID, Shard: shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.X509, X509Thumbprint: "aa11", CAThumbprint: "bb22",
			X509Chain: []registry.CertRef{{Issuer: "c1", Serial: "01"}, {Issuer: "c2", Serial: "02"}}},
		Version: registry.NextVersion(0, now), Created: now, Updated: now}
	return reg, id
}

// TestCreateInOneRoundTrip: on a standalone Redis a new registration is
// one script (issue #17) that writes everything the general path writes:
// the record, the device ID's claim, the shard, group and certificate
// index entries, and its event in the shard's log. It declines to the
// general path when the device ID is another registration's, and when an
// earlier registration's events under the same key still wait in an
// outbox (they reach the log first).
func TestCreateInOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rt := &trips{}
	s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, Hook: rt})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if _, err := s.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "s1.example.com", Weight: 1, State: allocation.Active}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// The first script call loads it (EVALSHA, then EVAL).
	warmReg, warmID := newDevice("warm", "warm", "s2", now)
	warmReg.GroupID, warmID.Credential.X509Chain = "", nil
	if _, err := s.CreateRegistration(ctx, warmReg, warmID); err != nil {
		t.Fatal(err)
	}

	reg, id := newDevice("dev-1", "dev-1", "s1", now)
	rt.take()
	if _, err := s.CreateRegistration(ctx, reg, id); err != nil {
		t.Fatal(err)
	}
	if n := rt.take(); n != 1 {
		t.Errorf("a new registration took %d round trips, want 1", n)
	}
	if got, err := s.GetIdentity(ctx, "dev-1"); err != nil || got.RegistrationID != "dev-1" || len(got.Credential.X509Chain) != 2 {
		t.Fatalf("identity after the script: %+v, %v", got, err)
	}
	for _, f := range []registry.Filter{{Shard: "s1"}, {GroupID: "g1"}, {Cert: &registry.CertRef{Issuer: "c2", Serial: "02"}}} {
		regs, _, err := s.ListRegistrations(ctx, f, "", 10)
		if err != nil || len(regs) != 1 || regs[0].RegistrationID != "dev-1" {
			t.Errorf("list by %+v: %d registrations, %v", f, len(regs), err)
		}
	}
	evs, err := s.ReadEvents(ctx, "s1", 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Kind != registry.EventCreated || evs[0].Identity.DeviceID != "dev-1" {
		t.Fatalf("log after the script: %d events, %v", len(evs), err)
	}

	// The same registration again: refused, nothing changes.
	if _, err := s.CreateRegistration(ctx, reg, id); fault.ReasonOf(err) != fault.ResourceExists {
		t.Fatalf("a second create: %v", err)
	}
	// Another registration with the same device ID: the general path
	// refuses it, writing nothing.
	reg2, id2 := newDevice("dev-2", "dev-1", "s1", now)
	if _, err := s.CreateRegistration(ctx, reg2, id2); fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("another registration with the device ID: %v", err)
	}
	if _, err := s.GetRegistration(ctx, "dev-2"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("the refused registration was written: %v", err)
	}

	// Deleted with its relay stopped: its deletion waits in the outbox. A
	// new registration under the same ID goes the general way, and after
	// the sweep the log has the deletion before the new creation.
	s.SetRelayOff(true)
	if err := s.DeleteRegistration(ctx, "dev-1", ""); err != nil {
		t.Fatal(err)
	}
	reg3, id3 := newDevice("dev-1", "dev-1", "s1", now.Add(time.Second))
	if _, err := s.CreateRegistration(ctx, reg3, id3); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.ReadEvents(ctx, "s1", 0, 10); len(evs) != 1 {
		t.Fatalf("the script ran past a waiting outbox: %d events in the log", len(evs))
	}
	s.SetRelayOff(false)
	if _, err := s.SweepOutboxes(ctx, 0); err != nil {
		t.Fatal(err)
	}
	evs, err = s.ReadEvents(ctx, "s1", 0, 10)
	if err != nil || len(evs) != 3 || evs[1].Kind != registry.EventDeleted || evs[2].Kind != registry.EventCreated {
		kinds := []registry.EventKind{}
		for _, e := range evs {
			kinds = append(kinds, e.Kind)
		}
		t.Fatalf("log after the sweep: %v (%v), want created, deleted, created", kinds, err)
	}
}

// TestRateCountersAlwaysExpire: a count whose window's end is already past
// (a replica's slow clock, a delayed request) still counts, and leaves no
// counter without an expiry, counted alone or with the read-ahead.
func TestRateCountersAlwaysExpire(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	ctx := t.Context()
	past, now := time.Now().Add(-time.Hour), time.Now().Truncate(time.Minute)
	for want := int64(1); want <= 2; want++ {
		if n, err := s.Hit(ctx, "ip:192.0.2.1", past, time.Minute); err != nil || n != want {
			t.Fatalf("a count in a past window: %d, %v; want %d", n, err, want)
		}
	}
	if n, err := s.Hit(ctx, "ip:192.0.2.2", now, time.Minute); err != nil || n != 1 {
		t.Fatalf("count %d, %v", n, err)
	}
	ahead := s.ReadAhead(ctx, registry.Ahead{RegistrationID: "dev-1", Count: ratelimit.Hit{Key: "ip:192.0.2.3", Start: past, Window: time.Minute}})
	if _, err := s.Hit(ahead, "ip:192.0.2.3", past, time.Minute); err != nil {
		t.Fatal(err)
	}
	ahead = s.ReadAhead(ctx, registry.Ahead{RegistrationID: "dev-1", Count: ratelimit.Hit{Key: "ip:192.0.2.2", Start: now, Window: time.Minute}})
	if n, err := s.Hit(ahead, "ip:192.0.2.2", now, time.Minute); err != nil || n != 2 {
		t.Fatalf("the count made ahead: %d, %v; want 2", n, err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	keys, err := c.Keys(ctx, "zt:rl:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Errorf("counters %v: want the current window's and the two past ones (each with at least a second to live)", keys)
	}
	for _, k := range keys {
		if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("counter %s has no expiry (%v)", k, ttl)
		}
	}
}

// TestDeviceIDFreedOnceTheDeletionIsLogged: a deleted registration's
// device ID goes to another registration at once when the deletion is in
// the log, and not while the deletion waits in an outbox (the other's
// creation could reach the hubs first, and the late deletion remove the
// live identity): then the claim is left to go stale.
func TestDeviceIDFreedOnceTheDeletionIsLogged(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	ctx := t.Context()
	now := time.Now()
	create := func(regID, deviceID string) error {
		reg, id := newDevice(regID, deviceID, "s1", now)
		_, err := s.CreateRegistration(ctx, reg, id)
		return err
	}
	if err := create("k1", "dev-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRegistration(ctx, "k1", ""); err != nil {
		t.Fatal(err)
	}
	if err := create("k2", "dev-a"); err != nil {
		t.Fatalf("the device ID of a deletion in the log: %v", err)
	}

	if err := create("k3", "dev-b"); err != nil {
		t.Fatal(err)
	}
	s.SetRelayOff(true)
	if err := s.DeleteRegistration(ctx, "k3", ""); err != nil {
		t.Fatal(err)
	}
	s.SetRelayOff(false)
	if err := create("k4", "dev-b"); fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("the device ID of a deletion not yet in the log: %v, want DEVICE_ID_CONFLICT", err)
	}
	if _, err := s.SweepOutboxes(ctx, 0); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ReadEvents(ctx, "s1", 0, 10)
	if err != nil || len(evs) != 5 || evs[4].Kind != registry.EventDeleted || evs[4].Identity.DeviceID != "dev-b" {
		t.Fatalf("log: %d events (%v), want the deletion of dev-b last", len(evs), err)
	}
}
