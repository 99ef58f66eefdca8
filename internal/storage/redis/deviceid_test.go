package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// deviceIDStores is a standalone Redis (new registrations in one script)
// and a 3-master cluster (the general path, claims in other slots).
func deviceIDStores(t *testing.T) map[string]*redis.Store {
	srv := redistest.Start(t, redistest.Options{})
	cluster := redistest.StartCluster(t)
	return map[string]*redis.Store{
		"standalone": openAt(t, []string{srv.Addr()}, false, "zt"),
		"cluster":    openAt(t, cluster.Addrs(), true, "zt"),
	}
}

// TestDeviceIDAtHome (issue #17): a registration whose device ID is its
// registration ID holds it by its record alone, with no claim key; no
// other registration takes that device ID, whichever comes first, and a
// refused one writes nothing. A device ID that differs only in case is
// another device ID, held by a claim in the home's slot.
func TestDeviceIDAtHome(t *testing.T) {
	for name, s := range deviceIDStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			c := s.Client()
			create := creator(t, s)
			if err := create("Sensor-1", "Sensor-1"); err != nil {
				t.Fatal(err)
			}
			if n := c.Exists(ctx, "{zt:r:sensor-1}:d:Sensor-1", "{zt:d:Sensor-1}").Val(); n != 0 {
				t.Fatalf("a device at home has %d claim keys", n)
			}
			if id, err := s.GetIdentity(ctx, "Sensor-1"); err != nil || id.RegistrationID != "Sensor-1" {
				t.Fatalf("GetIdentity: %+v, %v", id, err)
			}
			// Another registration naming it: refused, nothing written.
			if err := create("other-1", "Sensor-1"); fault.ReasonOf(err) != fault.DeviceIDConflict {
				t.Fatalf("another registration with a device ID held at home: %v", err)
			}
			if _, err := s.GetRegistration(ctx, "other-1"); !errors.Is(err, fault.ErrNotFound) {
				t.Fatalf("the refused registration was written: %v", err)
			}
			if n := c.Exists(ctx, "{zt:r:sensor-1}:d:Sensor-1").Val(); n != 0 {
				t.Fatal("the refused registration left a claim")
			}
			// Case differs: another device ID, claimed in the home's slot.
			if err := create("other-2", "sensor-1"); err != nil {
				t.Fatal(err)
			}
			if v := c.Get(ctx, "{zt:r:sensor-1}:d:sensor-1").Val(); v == "" {
				t.Fatal("a device ID away from home has no claim")
			}
			for devID, want := range map[string]string{"Sensor-1": "Sensor-1", "sensor-1": "other-2"} {
				if id, err := s.GetIdentity(ctx, devID); err != nil || id.RegistrationID != want {
					t.Fatalf("GetIdentity(%s): %+v, %v; want %s's", devID, id, err, want)
				}
			}
			// Away from home first: the home registration is refused.
			if err := create("k-2", "dev-x"); err != nil {
				t.Fatal(err)
			}
			if err := create("dev-x", "dev-x"); fault.ReasonOf(err) != fault.DeviceIDConflict {
				t.Fatalf("a home registration of a device ID another holds: %v", err)
			}
			if _, err := s.GetRegistration(ctx, "dev-x"); !errors.Is(err, fault.ErrNotFound) {
				t.Fatalf("the refused home registration was written: %v", err)
			}
			// Released by the deletion: the home registration goes in, and
			// the device ID is its own, without a claim.
			if err := s.DeleteRegistration(ctx, "k-2", ""); err != nil {
				t.Fatal(err)
			}
			if err := create("dev-x", "dev-x"); err != nil {
				t.Fatalf("the home registration after the other's deletion: %v", err)
			}
			if n := c.Exists(ctx, "{zt:r:dev-x}:d:dev-x").Val(); n != 0 {
				t.Fatal("the released claim is still there")
			}
			if id, err := s.GetIdentity(ctx, "dev-x"); err != nil || id.RegistrationID != "dev-x" {
				t.Fatalf("GetIdentity(dev-x): %+v, %v", id, err)
			}
		})
	}
}

// TestDeviceIDRaceAtHome: registrations at a device ID's home and away
// from it, created at once, never both hold it.
func TestDeviceIDRaceAtHome(t *testing.T) {
	for name, s := range deviceIDStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			for round := range 20 {
				devID := fmt.Sprintf("race-%d", round)
				var wg sync.WaitGroup
				var mu sync.Mutex
				var won []string
				for i := range 6 {
					regID := devID // at home
					if i > 0 {
						regID = fmt.Sprintf("%s-away-%d", devID, i)
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						reg, id := newDevice(regID, devID, "s1", now)
						_, err := s.CreateRegistration(ctx, reg, id)
						switch {
						case err == nil:
							mu.Lock()
							won = append(won, regID)
							mu.Unlock()
						case fault.ReasonOf(err) != fault.DeviceIDConflict && fault.ReasonOf(err) != fault.StoreUnavailable:
							t.Errorf("%s: %v", regID, err)
						}
					}()
				}
				wg.Wait()
				if len(won) != 1 {
					t.Fatalf("round %d: %v hold device ID %s", round, won, devID)
				}
				if id, err := s.GetIdentity(ctx, devID); err != nil || id.RegistrationID != won[0] {
					t.Fatalf("round %d: GetIdentity %+v, %v; want %s's", round, id, err, won[0])
				}
			}
		})
	}
}

// TestDeviceIDClaimsOfEarlierBuilds: a device ID an earlier build claimed
// for a registration away from home ({zt:d:<device ID>}) stays its
// holder's: the home registration and any other are refused, and
// GetIdentity finds it; its deletion releases it. A stale claim whose
// holder does not use it is no obstacle, and goes.
func TestDeviceIDClaimsOfEarlierBuilds(t *testing.T) {
	for name, s := range deviceIDStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			c := s.Client()
			now := time.Now()
			create := creator(t, s)
			// k9 holds dev-z as an earlier build left it.
			if err := create("k9", "dev-z"); err != nil {
				t.Fatal(err)
			}
			v := c.Get(ctx, "{zt:r:dev-z}:d:dev-z").Val()
			c.Del(ctx, "{zt:r:dev-z}:d:dev-z")
			c.Set(ctx, "{zt:d:dev-z}", v, 0)
			for _, regID := range []string{"dev-z", "k10"} {
				if err := create(regID, "dev-z"); fault.ReasonOf(err) != fault.DeviceIDConflict {
					t.Fatalf("%s takes a device ID an earlier build claimed: %v", regID, err)
				}
			}
			if id, err := s.GetIdentity(ctx, "dev-z"); err != nil || id.RegistrationID != "k9" {
				t.Fatalf("GetIdentity(dev-z): %+v, %v", id, err)
			}
			if err := s.DeleteRegistration(ctx, "k9", ""); err != nil {
				t.Fatal(err)
			}
			if n := c.Exists(ctx, "{zt:d:dev-z}").Val(); n != 0 {
				t.Fatal("the deletion left the earlier build's claim")
			}
			if err := create("dev-z", "dev-z"); err != nil {
				t.Fatalf("the home registration after the deletion: %v", err)
			}
			// A stale claim of an earlier build whose holder is gone.
			stale := "k11\x00" + strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 36)
			c.Set(ctx, "{zt:d:dev-q}", stale, 0)
			if err := create("dev-q", "dev-q"); err != nil {
				t.Fatalf("a stale unused claim of an earlier build: %v", err)
			}
			if err := c.Get(ctx, "{zt:d:dev-q}").Err(); err != goredis.Nil {
				t.Fatalf("the stale claim is still there: %v", err)
			}
		})
	}
}

// TestDeviceIDFreedAtHomeOnceTheDeletionIsLogged: a home registration's
// device ID goes to another registration only once its deletion is in
// the log (the other's creation must not reach the hubs first).
func TestDeviceIDFreedAtHomeOnceTheDeletionIsLogged(t *testing.T) {
	for name, s := range deviceIDStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			create := creator(t, s)
			if err := create("dev-w", "dev-w"); err != nil {
				t.Fatal(err)
			}
			s.SetRelayOff(true)
			if err := s.DeleteRegistration(ctx, "dev-w", ""); err != nil {
				t.Fatal(err)
			}
			s.SetRelayOff(false)
			if err := create("k12", "dev-w"); fault.ReasonOf(err) != fault.DeviceIDConflict {
				t.Fatalf("the device ID of a home deletion not yet in the log: %v", err)
			}
			if _, err := s.SweepOutboxes(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if err := create("k12", "dev-w"); err != nil {
				t.Fatalf("after the sweep: %v", err)
			}
		})
	}
}

// TestStaleClaimWaitsForTheDeletionInTheLog (review): a claim is stamped
// when it is made, so a registration older than claimStaleAfter holds a
// stale claim; deleted while its relay fails, its device ID still goes to
// no other registration (away from home, at home, or over a claim an
// earlier build made) until the deletion is in the log.
func TestStaleClaimWaitsForTheDeletionInTheLog(t *testing.T) {
	for name, s := range deviceIDStores(t) {
		for _, c := range []struct {
			name, taker string
			legacy      bool
		}{
			{"away", "taker", false},
			{"home", "", false},
			{"earlier build", "taker", true},
		} {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				ctx := t.Context()
				rc := s.Client()
				now := time.Now()
				devID := "stale-" + strings.ReplaceAll(name+"-"+c.name, " ", "-")
				taker := c.taker + "-" + devID
				if c.taker == "" {
					taker = devID // at home
				}
				create := func(regID string) error { return creator(t, s)(regID, devID) }
				if err := create("old-" + devID); err != nil {
					t.Fatal(err)
				}
				// An hour old, as a registration made long ago.
				claim := "{zt:r:" + devID + "}:d:" + devID
				stale := "old-" + devID + "\x00" + strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 36)
				rc.Set(ctx, claim, stale, 0)
				if c.legacy {
					rc.Del(ctx, claim)
					rc.Set(ctx, "{zt:d:"+devID+"}", stale, 0)
				}
				s.SetRelayOff(true)
				if err := s.DeleteRegistration(ctx, "old-"+devID, ""); err != nil {
					t.Fatal(err)
				}
				s.SetRelayOff(false)
				if err := create(taker); fault.ReasonOf(err) != fault.DeviceIDConflict {
					t.Fatalf("%s takes the device ID of a deletion not yet in the log: %v", taker, err)
				}
				if _, err := s.SweepOutboxes(ctx, 0); err != nil {
					t.Fatal(err)
				}
				if err := create(taker); err != nil {
					t.Fatalf("after the sweep: %v", err)
				}
				evs, err := s.ReadEvents(ctx, "s1", 0, 1000)
				if err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for _, e := range evs {
					if e.Identity.DeviceID == devID {
						kinds = append(kinds, string(e.Kind)+" "+e.Identity.RegistrationID)
					}
				}
				want := []string{"created old-" + devID, "deleted old-" + devID, "created " + taker}
				if !slices.Equal(kinds, want) {
					t.Fatalf("the log: %v, want %v", kinds, want)
				}
			})
		}
	}
}

// creator creates registrations of shard s1 (newDevice's) in s.
func creator(t *testing.T, s *redis.Store) func(regID, deviceID string) error {
	return func(regID, deviceID string) error {
		reg, id := newDevice(regID, deviceID, "s1", time.Now())
		_, err := s.CreateRegistration(t.Context(), reg, id)
		return err
	}
}

// TestOwnEarlierClaimKeptUntilWritten (review): a registration that
// re-creates itself over its own claim of an earlier build, while its
// deletion still waits in its outbox, keeps that claim if the create is
// refused: no other registration takes the device ID before the deletion
// is in the log.
func TestOwnEarlierClaimKeptUntilWritten(t *testing.T) {
	for name, s := range deviceIDStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			c := s.Client()
			create := creator(t, s)
			// old-l holds dev-l as an earlier build left it.
			if err := create("old-l", "dev-l"); err != nil {
				t.Fatal(err)
			}
			v := c.Get(ctx, "{zt:r:dev-l}:d:dev-l").Val()
			c.Del(ctx, "{zt:r:dev-l}:d:dev-l")
			c.Set(ctx, "{zt:d:dev-l}", v, 0)
			// Its deletion, and an update of the home registration (another
			// device ID), wait in their outboxes.
			if err := create("dev-l", "other-dev-l"); err != nil {
				t.Fatal(err)
			}
			s.SetRelayOff(true)
			if err := s.DeleteRegistration(ctx, "old-l", ""); err != nil {
				t.Fatal(err)
			}
			home, err := s.GetRegistration(ctx, "dev-l")
			if err != nil {
				t.Fatal(err)
			}
			id, err := s.GetIdentity(ctx, "other-dev-l")
			if err != nil {
				t.Fatal(err)
			}
			if home.Etag, err = s.UpdateRegistration(ctx, home, id); err != nil {
				t.Fatal(err)
			}
			s.SetRelayOff(false)
			// The re-create is refused (the home's outbox waits) ...
			if err := create("old-l", "dev-l"); fault.ReasonOf(err) != fault.DeviceIDConflict {
				t.Fatalf("the re-create: %v", err)
			}
			if n := c.Exists(ctx, "{zt:d:dev-l}").Val(); n != 1 {
				t.Fatal("the refused re-create dropped its earlier claim")
			}
			// ... and once the home's outbox is relayed, nobody else takes
			// the device ID while old-l's deletion waits.
			if _, err := s.UpdateRegistration(ctx, home, id); err != nil {
				t.Fatal(err)
			}
			if err := create("taker-l", "dev-l"); fault.ReasonOf(err) != fault.DeviceIDConflict {
				t.Fatalf("another takes the device ID of a deletion not in the log: %v", err)
			}
		})
	}
}

// TestLostReplyOfADeletionIsRelayed (review): a deletion whose
// transaction committed but whose reply was lost keeps its sweep mark, so
// the sweeper puts the deletion in the log (before, the mark was dropped:
// the hubs never learnt of the deletion, and the device ID stayed
// refused to everyone).
func TestLostReplyOfADeletionIsRelayed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	var armed atomic.Bool
	s := openHooked(t, srv.Addr(), &hookFn{pipe: func(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
		return func(ctx context.Context, cmds []goredis.Cmder) error {
			err := next(ctx, cmds)
			if armed.Load() && slices.ContainsFunc(cmds, func(c goredis.Cmder) bool {
				return c.Name() == "del" && len(c.Args()) > 1 && c.Args()[1] == "{zt:r:dev-a}"
			}) && armed.CompareAndSwap(true, false) {
				return errors.New("read tcp: i/o timeout") // applied, reply lost
			}
			return err
		}
	}})
	create := creator(t, s)
	if err := create("dev-a", "dev-a"); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	if err := s.DeleteRegistration(ctx, "dev-a", ""); fault.ReasonOf(err) != fault.StoreUnavailable {
		t.Fatalf("a deletion whose reply was lost: %v", err)
	}
	if armed.Load() {
		t.Fatal("the hook never fired")
	}
	if err := create("taker-a", "dev-a"); fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("before the sweep: %v", err)
	}
	if n, err := s.SweepOutboxes(ctx, 0); err != nil || n != 1 {
		t.Fatalf("the sweep relayed %d outboxes (%v), want the deletion's", n, err)
	}
	evs, err := s.ReadEvents(ctx, "s1", 0, 10)
	if err != nil || len(evs) != 2 || evs[1].Kind != "deleted" || evs[1].Identity.DeviceID != "dev-a" {
		t.Fatalf("the log after the sweep: %d events, %v; want created, deleted", len(evs), err)
	}
	if err := create("taker-a", "dev-a"); err != nil {
		t.Fatalf("after the sweep: %v", err)
	}
}
