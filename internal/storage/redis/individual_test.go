package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

func openAt(t *testing.T, addrs []string, cluster bool, prefix string) *redis.Store {
	t.Helper()
	s, err := redis.Open(redis.Options{Addrs: addrs, Cluster: cluster, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ind(regID, devID, credential string) *enrollment.Individual {
	return &enrollment.Individual{RegistrationID: regID, DeviceID: devID, Mechanism: enrollment.MechanismX509,
		Thumbprint: enrollment.Thumbprint([]byte(credential))}
}

// claimValue is a claim as the store writes it: owner, stamp, nonce.
func claimValue(owner string, at time.Time) string {
	return owner + "\x00" + strconv.FormatInt(at.UnixMilli(), 36) + "\x00" + "0123456789ab"
}

// TestRefusedEnrollmentsLeaveNothing: a create refused for a thumbprint,
// a name or a registration ID already enrolled writes no key at all
// (claims made for it are released).
func TestRefusedEnrollmentsLeaveNothing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	if _, err := s.CreateIndividual(ctx, ind("dev-a", "sensor-a", "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateIndividual(ctx, ind("dev-b", "", "b")); err != nil {
		t.Fatal(err)
	}
	before := keysOf(t, s.Client())
	for _, c := range []struct {
		name string
		e    *enrollment.Individual
	}{
		{"same thumbprint", ind("dev-c", "sensor-c", "a")},
		{"device ID is another's device ID", ind("dev-c", "Sensor-A", "c")},
		{"registration ID is another's device ID", ind("sensor-a", "sensor-c", "c")},
		{"device ID is another's registration ID", ind("dev-c", "DEV-B", "c")},
		{"same registration ID", ind("DEV-B", "sensor-c", "c")},
	} {
		if _, err := s.CreateIndividual(ctx, c.e); fault.KindOf(err) != fault.AlreadyExists {
			t.Fatalf("%s: err = %v, want AlreadyExists", c.name, err)
		}
		if after := keysOf(t, s.Client()); after != before {
			t.Fatalf("%s: keys went from\n%s\nto\n%s", c.name, before, after)
		}
	}
	// A refused update (the new device ID is taken) leaves nothing either.
	b, err := s.GetIndividual(ctx, "dev-b")
	if err != nil {
		t.Fatal(err)
	}
	b.DeviceID = "sensor-a"
	if _, err := s.UpdateIndividual(ctx, b); fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("update to a taken device ID: %v", err)
	}
	b.DeviceID, b.Etag = "sensor-z", "stale"
	if _, err := s.UpdateIndividual(ctx, b); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("update with a stale etag: %v", err)
	}
	if after := keysOf(t, s.Client()); after != before {
		t.Fatalf("refused updates: keys went from\n%s\nto\n%s", before, after)
	}
}

// keysOf lists every key with its value (claims are compared whole, so a
// restamped claim shows too).
func keysOf(t *testing.T, c goredis.UniversalClient) string {
	t.Helper()
	keys, err := c.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slices.Sort(keys)
	for _, k := range keys {
		typ, _ := c.Type(t.Context(), k).Result()
		v := ""
		if typ == "string" && (strings.Contains(k, ":t:") || strings.Contains(k, ":n:")) {
			v, _ = c.Get(t.Context(), k).Result()
		}
		fmt.Fprintf(&b, "%q %q\n", k, v)
	}
	return b.String()
}

// TestEnrollmentClaims: how the store treats claims that no enrollment
// backs, as a crashed create leaves them, and claims an enrollment uses.
func TestEnrollmentClaims(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	c := s.Client()
	thumb := func(cred string) string { return "{zt:t:" + enrollment.Thumbprint([]byte(cred)) + "}" }

	// Readers ignore a claim whose owner has no enrollment using it.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Set(ctx, thumb("ghost"), claimValue("ghost", time.Now()), 0).Err())
	must(c.Set(ctx, "{zt:n:ghost-name}", claimValue("ghost", time.Now()), 0).Err())
	if _, err := s.FindIndividualByThumbprint(ctx, enrollment.Thumbprint([]byte("ghost"))); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("thumbprint claimed by nobody's enrollment: %v, want NotFound", err)
	}
	if held, err := s.ReservedByIndividual(ctx, "Ghost-Name"); err != nil || held {
		t.Fatalf("name claimed by nobody's enrollment: reserved = %v, %v", held, err)
	}

	// A fresh claim holds (a create may be under way) ...
	_, err := s.CreateIndividual(ctx, ind("dev-1", "", "ghost"))
	if fault.KindOf(err) != fault.AlreadyExists || !strings.Contains(err.Error(), "being enrolled") {
		t.Fatalf("fresh claim: %v, want AlreadyExists (being enrolled)", err)
	}
	_, err = s.CreateIndividual(ctx, ind("dev-1", "ghost-name", "cred-1"))
	if fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("fresh name claim: %v, want DEVICE_ID_CONFLICT", err)
	}
	if _, err := s.GetIndividual(ctx, "dev-1"); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("refused create left an enrollment: %v", err)
	}
	// ... and a stale one is taken over.
	old := time.Now().Add(-3 * time.Minute)
	must(c.Set(ctx, thumb("ghost"), claimValue("ghost", old), 0).Err())
	must(c.Set(ctx, "{zt:n:ghost-name}", claimValue("ghost", old), 0).Err())
	if _, err := s.CreateIndividual(ctx, ind("dev-1", "ghost-name", "ghost")); err != nil {
		t.Fatalf("stale claims: %v", err)
	}
	if v, _ := c.Get(ctx, thumb("ghost")).Result(); !strings.HasPrefix(v, "dev-1\x00") {
		t.Fatalf("thumbprint claim = %q, want dev-1's", v)
	}
	if got, err := s.FindIndividualByThumbprint(ctx, enrollment.Thumbprint([]byte("ghost"))); err != nil || got.RegistrationID != "dev-1" {
		t.Fatalf("FindIndividualByThumbprint = %v, %v", got, err)
	}

	// A claim an enrollment uses is never taken over, however old.
	must(c.Set(ctx, thumb("ghost"), claimValue("dev-1", old), 0).Err())
	must(c.Set(ctx, "{zt:n:ghost-name}", claimValue("dev-1", old), 0).Err())
	if _, err := s.CreateIndividual(ctx, ind("dev-2", "", "ghost")); fault.KindOf(err) != fault.AlreadyExists || strings.Contains(err.Error(), "being enrolled") {
		t.Fatalf("old claim in use: %v, want AlreadyExists (enrolled)", err)
	}
	if _, err := s.CreateIndividual(ctx, ind("dev-2", "GHOST-NAME", "cred-2")); fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("old name claim in use: %v, want DEVICE_ID_CONFLICT", err)
	}
	if held, err := s.ReservedByIndividual(ctx, "ghost-name"); err != nil || !held {
		t.Fatalf("device ID in use: reserved = %v, %v", held, err)
	}

	// Deleting releases the claims it held, and only those: a claim
	// another create restamped since is left alone.
	must(s.DeleteIndividual(ctx, "dev-1", ""))
	for _, k := range []string{thumb("ghost"), "{zt:n:ghost-name}", "{zt:n:dev-1}"} {
		if n, _ := c.Exists(ctx, k).Result(); n != 0 {
			t.Fatalf("%s still claimed after the delete", k)
		}
	}
}

// TestConcurrentEnrollmentsOneWins: creates racing for one thumbprint, or
// for one name, end with exactly one enrollment holding it.
func TestConcurrentEnrollmentsOneWins(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	const n = 12
	for _, race := range []struct {
		name string
		e    func(i int) *enrollment.Individual
	}{
		{"thumbprint", func(i int) *enrollment.Individual { return ind(fmt.Sprintf("t-%d", i), "", "shared") }},
		{"device ID", func(i int) *enrollment.Individual {
			return ind(fmt.Sprintf("d-%d", i), "shared-device", fmt.Sprintf("d-%d", i))
		}},
		{"device ID and registration ID", func(i int) *enrollment.Individual {
			if i == 0 {
				return ind("shared-name", "", "n-0")
			}
			return ind(fmt.Sprintf("n-%d", i), "Shared-Name", fmt.Sprintf("n-%d", i))
		}},
	} {
		t.Run(race.name, func(t *testing.T) {
			stores := make([]*redis.Store, n)
			for i := range stores {
				stores[i] = openAt(t, []string{srv.Addr()}, false, "race"+strings.ReplaceAll(race.name, " ", ""))
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = stores[i].CreateIndividual(ctx, race.e(i))
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case fault.KindOf(err) != fault.AlreadyExists:
					t.Fatalf("create %d: %v, want success or AlreadyExists", i, err)
				}
			}
			list, _, err := stores[0].ListIndividuals(ctx, enrollment.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if won != 1 || len(list) != 1 {
				t.Fatalf("%d creates won, %d enrollments listed; want 1", won, len(list))
			}
		})
	}
}

// TestLegacyIndividualsMoved: individual enrollments written by a build
// before ADR 24's layout (in the configuration slot, with its indexes)
// are moved on first use, and found by every lookup after.
func TestLegacyIndividualsMoved(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	for i := range 1200 {
		e := ind(fmt.Sprintf("Legacy-%04d", i), "", fmt.Sprintf("legacy-%d", i))
		if i%3 == 0 {
			e.DeviceID = fmt.Sprintf("sensor-%04d", i)
		}
		raw, err := json.Marshal(record.FromIndividual(e, fmt.Sprintf("etag-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		key := enrollment.Key(e.RegistrationID)
		_, err = c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, "{zt:cfg}:ind:"+key, raw, 0)
			p.ZAdd(ctx, "{zt:cfg}:inds", goredis.Z{Member: key})
			p.Set(ctx, "{zt:cfg}:ind_thumb:"+e.Thumbprint, key, 0)
			p.Set(ctx, "{zt:cfg}:ind_dev:"+enrollment.Key(e.EffectiveDeviceID()), key, 0)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(ctx, "{zt:cfg}:ind_dev:built", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Two replicas start on it at once.
	a := openAt(t, []string{srv.Addr()}, false, "zt")
	b := openAt(t, []string{srv.Addr()}, false, "zt")
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { _, errA = a.GetIndividual(ctx, "legacy-0001") })
	wg.Go(func() { _, _, errB = b.ListIndividuals(ctx, enrollment.Page{Limit: 10}) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("first use: %v, %v", errA, errB)
	}
	if old, _ := c.Keys(ctx, "{zt:cfg}:ind*").Result(); len(old) != 2 { // the version and the layout marker
		t.Fatalf("left in the configuration slot: %d keys, e.g. %q", len(old), old[:min(3, len(old))])
	}
	for _, i := range []int{0, 1, 599, 1199} {
		id := fmt.Sprintf("Legacy-%04d", i)
		got, err := a.FindIndividualByThumbprint(ctx, enrollment.Thumbprint(fmt.Appendf(nil, "legacy-%d", i)))
		if err != nil || got.RegistrationID != id || got.Etag != fmt.Sprintf("etag-%d", i) {
			t.Fatalf("%s by thumbprint: %+v, %v", id, got, err)
		}
		name := id
		if i%3 == 0 {
			name = fmt.Sprintf("Sensor-%04d", i)
		}
		if held, err := a.ReservedByIndividual(ctx, name); err != nil || !held {
			t.Fatalf("%s reserved = %v, %v", name, held, err)
		}
	}
	n, token := 0, ""
	for {
		list, next, err := b.ListIndividuals(ctx, enrollment.Page{Token: token, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		n += len(list)
		if next == "" {
			break
		}
		token = next
	}
	if n != 1200 {
		t.Fatalf("listed %d of 1200 enrollments", n)
	}
	// The names are still one namespace after the move.
	if _, err := a.CreateIndividual(ctx, ind("new-1", "legacy-0005", "new-1")); fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("a moved registration ID as a new device ID: %v", err)
	}
}

// TestIndividualsSpreadOverCluster (issue #17): individual enrollments
// and their claims are spread over a cluster's masters rather than kept
// in the configuration slot.
func TestIndividualsSpreadOverCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	ctx := t.Context()
	s := openAt(t, cluster.Addrs(), true, "zt")
	for i := range 600 {
		if _, err := s.CreateIndividual(ctx, ind(fmt.Sprintf("spread-%d", i), "", fmt.Sprintf("spread-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	cc := s.Client().(*goredis.ClusterClient)
	var mu sync.Mutex
	var sizes []int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
		size, err := n.DBSize(ctx).Result()
		mu.Lock()
		sizes = append(sizes, size)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range sizes {
		total += n
	}
	for _, n := range sizes {
		if float64(n) > 0.45*float64(total) {
			t.Fatalf("keys per master %v: one holds more than 45%%", sizes)
		}
	}
	t.Logf("keys per master: %v", sizes)
}
