package redis_test

import (
	"context"
	"encoding/json"
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
		putLegacy(t, c, e)
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
	if old, _ := c.Keys(ctx, "{zt:cfg}:ind*").Result(); len(old) != 1 { // the layout marker
		t.Fatalf("left in the configuration slot: %d keys, e.g. %q", len(old), old[:min(3, len(old))])
	}
	for _, i := range []int{0, 1, 599, 1199} {
		id := fmt.Sprintf("Legacy-%04d", i)
		got, err := a.FindIndividualByThumbprint(ctx, enrollment.Thumbprint(fmt.Appendf(nil, "legacy-%d", i)))
		if err != nil || got.RegistrationID != id || got.Etag != "etag-"+id {
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

// pauser blocks the first command (or pipeline holding one) that match
// accepts, after it ran, until resume is closed.
type pauser struct {
	match           func(goredis.Cmder) bool
	once            sync.Once
	reached, resume chan struct{}
}

func newPauser(match func(goredis.Cmder) bool) *pauser {
	return &pauser{match: match, reached: make(chan struct{}), resume: make(chan struct{})}
}

func (p *pauser) hit(cmds ...goredis.Cmder) bool {
	for _, c := range cmds {
		if p.match(c) {
			first := false
			p.once.Do(func() { first = true })
			return first
		}
	}
	return false
}

func (p *pauser) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (p *pauser) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if p.hit(cmd) {
			close(p.reached)
			<-p.resume
		}
		return err
	}
}
func (p *pauser) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		if p.hit(cmds...) {
			close(p.reached)
			<-p.resume
		}
		return err
	}
}

// replayer runs the first command match accepts twice, as go-redis does
// when a reply is lost to a read timeout (it retries once).
type replayer struct {
	match func(goredis.Cmder) bool
	once  sync.Once
}

func (r *replayer) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (r *replayer) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if slices.ContainsFunc(cmds, r.match) {
			twice := false
			r.once.Do(func() { twice = true })
			if twice {
				_ = next(ctx, cmds) // applied; its replies are lost
			}
		}
		return next(ctx, cmds)
	}
}
func (r *replayer) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if r.match(cmd) {
			twice := false
			r.once.Do(func() { twice = true })
			if twice {
				_ = next(ctx, cmd) // applied; its reply is lost
			}
		}
		return next(ctx, cmd)
	}
}

func openHooked(t *testing.T, addr string, h goredis.Hook) *redis.Store {
	t.Helper()
	s, err := redis.Open(redis.Options{Addrs: []string{addr}, KeyPrefix: "zt", Hook: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func isRecordSet(c goredis.Cmder) bool {
	return c.Name() == "set" && len(c.Args()) > 1 && strings.HasSuffix(fmt.Sprint(c.Args()[1]), "}:ind")
}

// wantHeld checks that every value of victim's enrollment is held: its
// names are reserved, its thumbprint finds it, and no other enrollment
// can take either.
func wantHeld(t *testing.T, s *redis.Store, regID, devID, credential string) {
	t.Helper()
	ctx := t.Context()
	for _, name := range []string{regID, strings.ToUpper(devID)} {
		if held, err := s.ReservedByIndividual(ctx, name); err != nil || !held {
			t.Fatalf("ReservedByIndividual(%q) = %v, %v", name, held, err)
		}
	}
	if got, err := s.FindIndividualByThumbprint(ctx, enrollment.Thumbprint([]byte(credential))); err != nil || !strings.EqualFold(got.RegistrationID, regID) {
		t.Fatalf("FindIndividualByThumbprint = %+v, %v", got, err)
	}
	if _, err := s.CreateIndividual(ctx, ind("intruder", regID, "intruder")); fault.KindOf(err) != fault.AlreadyExists {
		t.Fatalf("another enrollment with the name as its device ID: %v", err)
	}
	if _, err := s.CreateIndividual(ctx, ind("twin", "", credential)); fault.KindOf(err) != fault.AlreadyExists {
		t.Fatalf("another enrollment with the credential: %v", err)
	}
}

// TestStalledCreateCannotWriteUnclaimed (review finding): a create of K
// that stalls between its claims and its write, while a retry of it and
// a delete run, never leaves K written without its claims: the retry is
// refused while the stalled create's claims are fresh.
func TestStalledCreateCannotWriteUnclaimed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	p := newPauser(func(c goredis.Cmder) bool {
		return (c.Name() == "evalsha" || c.Name() == "eval") && strings.Contains(fmt.Sprint(c.Args()), "{zt:t:")
	})
	a := openHooked(t, srv.Addr(), p)
	b := openHooked(t, srv.Addr(), nil)
	e := func() *enrollment.Individual { return ind("victim", "victim-dev", "victim-cert") }
	var errA error
	done := make(chan struct{})
	go func() { _, errA = a.CreateIndividual(ctx, e()); close(done) }()
	select {
	case <-p.reached: // a holds its claims
	case <-done:
		t.Fatalf("the create ended before its claims: %v", errA)
	}
	if _, err := b.CreateIndividual(ctx, e()); fault.KindOf(err) != fault.AlreadyExists || !strings.Contains(err.Error(), "being enrolled") {
		t.Fatalf("a second create while the first holds the claims: %v, want AlreadyExists (being enrolled)", err)
	}
	if err := b.DeleteIndividual(ctx, "victim", ""); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("delete: %v", err)
	}
	close(p.resume)
	<-done
	if errA != nil {
		t.Fatalf("the stalled create: %v", errA)
	}
	wantHeld(t, b, "victim", "victim-dev", "victim-cert")
}

// TestRetriedWriteFindsItself (review finding): a create whose record
// write was applied but whose reply was lost (go-redis retries it once)
// succeeds, listed and holding its claims, instead of reporting
// AlreadyExists and releasing them.
func TestRetriedWriteFindsItself(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	s := openHooked(t, srv.Addr(), &replayer{match: isRecordSet})
	if _, err := s.CreateIndividual(ctx, ind("orphan", "orphan-dev", "orphan-cert")); err != nil {
		t.Fatalf("create: %v", err)
	}
	list, _, err := s.ListIndividuals(ctx, enrollment.Page{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("listed %d, %v", len(list), err)
	}
	wantHeld(t, s, "orphan", "orphan-dev", "orphan-cert")
	// A retried claim script finds its own value too.
	r := openHooked(t, srv.Addr(), &replayer{match: func(c goredis.Cmder) bool {
		return (c.Name() == "evalsha" || c.Name() == "eval") && strings.Contains(fmt.Sprint(c.Args()), "{zt:t:")
	}})
	if _, err := r.CreateIndividual(ctx, ind("again", "", "again-cert")); err != nil {
		t.Fatalf("create with a retried claim: %v", err)
	}
	wantHeld(t, r, "again", "again", "again-cert")
}

// hookFn is a go-redis hook made of functions.
type hookFn struct {
	proc func(next goredis.ProcessHook) goredis.ProcessHook
	pipe func(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook
}

func (h *hookFn) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *hookFn) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	if h.proc == nil {
		return next
	}
	return h.proc(next)
}
func (h *hookFn) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	if h.pipe == nil {
		return next
	}
	return h.pipe(next)
}

func putLegacy(t *testing.T, c *goredis.Client, e *enrollment.Individual) {
	t.Helper()
	ctx := t.Context()
	raw, err := json.Marshal(record.FromIndividual(e, "etag-"+e.RegistrationID))
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

// TestUpdateWithLostReplyKeepsItsClaim (second review): an update that
// moves the device ID, applied but with its reply lost, reports success
// and keeps the new device ID's claim.
func TestUpdateWithLostReplyKeepsItsClaim(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	var armed atomic.Bool
	s := openHooked(t, srv.Addr(), &hookFn{pipe: func(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
		return func(ctx context.Context, cmds []goredis.Cmder) error {
			err := next(ctx, cmds)
			if slices.ContainsFunc(cmds, isRecordSet) && armed.CompareAndSwap(true, false) {
				return errors.New("read tcp: i/o timeout") // applied, reply lost
			}
			return err
		}
	}})
	if _, err := s.CreateIndividual(ctx, ind("victim", "dev-1", "victim")); err != nil {
		t.Fatal(err)
	}
	e, err := s.GetIndividual(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	e.DeviceID = "dev-2"
	armed.Store(true)
	if _, err := s.UpdateIndividual(ctx, e); err != nil {
		t.Fatalf("update: %v", err)
	}
	if armed.Load() {
		t.Fatal("the reply was not lost")
	}
	wantHeld(t, s, "victim", "dev-2", "victim")
	if held, err := s.ReservedByIndividual(ctx, "dev-1"); err != nil || held {
		t.Fatalf("the old device ID: reserved = %v, %v", held, err)
	}
}

// TestCancelledUpdateKeepsItsClaim (third review): an update applied
// while its caller went away (the reply lost to a cancelled context, not
// a timeout) keeps the new device ID's claim.
func TestCancelledUpdateKeepsItsClaim(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	var armed atomic.Bool
	var cancel context.CancelFunc
	s := openHooked(t, srv.Addr(), &hookFn{pipe: func(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
		return func(ctx context.Context, cmds []goredis.Cmder) error {
			err := next(ctx, cmds)
			if slices.ContainsFunc(cmds, isRecordSet) && armed.CompareAndSwap(true, false) {
				cancel()
				return context.Canceled
			}
			return err
		}
	}})
	if _, err := s.CreateIndividual(ctx, ind("victim", "dev-1", "victim")); err != nil {
		t.Fatal(err)
	}
	e, err := s.GetIndividual(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	e.DeviceID = "dev-2"
	uctx, c := context.WithCancel(ctx)
	defer c()
	cancel = c
	armed.Store(true)
	_, _ = s.UpdateIndividual(uctx, e) // succeeded or cancelled: either way dev-2 is held
	wantHeld(t, s, "victim", "dev-2", "victim")
}

// TestStalledMoverWritesNothing (first and second reviews): a replica
// that stalls while moving old enrollments, after reading an old record
// or after renewing its lease, loses the lease; another finishes the
// move, an operator deletes an enrollment and enrolls its certificate
// again under another ID; the stalled mover, when it wakes, writes
// nothing.
func TestStalledMoverWritesNothing(t *testing.T) {
	defer redis.SetLayoutLease(300 * time.Millisecond)()
	for _, c := range []struct {
		name  string
		stall func(goredis.Cmder) bool
	}{
		{"after reading an old record", func(cmd goredis.Cmder) bool {
			return cmd.Name() == "get" && len(cmd.Args()) > 1 && cmd.Args()[1] == "{zt:cfg}:ind:legacy-x"
		}},
		{"after renewing its lease", func(cmd goredis.Cmder) bool {
			if cmd.Name() != "evalsha" && cmd.Name() != "eval" || !strings.Contains(fmt.Sprint(cmd.Args()), "{zt:cfg}:ind:moving") {
				return false
			}
			renewed, _ := cmd.(*goredis.Cmd).Int64()
			return renewed == 1
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			ctx := t.Context()
			rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			defer rc.Close()
			e := ind("Legacy-X", "", "legacy-x")
			putLegacy(t, rc, e)
			p := newPauser(c.stall)
			a := openHooked(t, srv.Addr(), p)
			b := openHooked(t, srv.Addr(), nil)
			done := make(chan struct{})
			var errA error
			go func() { _, errA = a.GetIndividual(ctx, "nothing"); close(done) }()
			select {
			case <-p.reached: // a holds the lease, and stalls
			case <-done:
				t.Fatalf("a ended first: %v", errA)
			}
			if _, err := b.GetIndividual(ctx, "legacy-x"); err != nil { // b moves it once a's lease lapses
				t.Fatalf("b's move: %v", err)
			}
			if err := b.DeleteIndividual(ctx, "legacy-x", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := b.CreateIndividual(ctx, ind("new-y", "", "legacy-x")); err != nil {
				t.Fatal(err)
			}
			close(p.resume)
			<-done
			if _, err := b.GetIndividual(ctx, "legacy-x"); fault.KindOf(err) != fault.NotFound {
				t.Fatalf("the deleted enrollment after the stalled mover woke: %v, want NotFound", err)
			}
			if got, err := a.FindIndividualByThumbprint(ctx, e.Thumbprint); err != nil || got.RegistrationID != "new-y" {
				t.Fatalf("the certificate's enrollment: %+v, %v", got, err)
			}
		})
	}
}

// TestFailedMoveHandsBackItsLease (second review): a move that fails on a
// transient error releases its lease, so another replica (or the next
// request) moves the enrollments at once rather than after the lease.
func TestFailedMoveHandsBackItsLease(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	putLegacy(t, c, ind("Legacy-Y", "", "legacy-y"))
	var fail atomic.Bool
	fail.Store(true)
	a := openHooked(t, srv.Addr(), &hookFn{pipe: func(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
		return func(ctx context.Context, cmds []goredis.Cmder) error {
			if slices.ContainsFunc(cmds, func(c goredis.Cmder) bool { return c.Name() == "zadd" }) && fail.Load() {
				return errors.New("dial tcp: connection refused")
			}
			return next(ctx, cmds)
		}
	}})
	if _, err := a.GetIndividual(ctx, "legacy-y"); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("the request whose move failed: %v, want Unavailable", err)
	}
	fail.Store(false)
	if n, err := c.Exists(ctx, "{zt:cfg}:ind:moving").Result(); err != nil || n != 0 {
		t.Fatalf("the failed move's lease is still held (%d, %v)", n, err)
	}
	b := openAt(t, []string{srv.Addr()}, false, "zt")
	if _, err := b.GetIndividual(ctx, "legacy-y"); err != nil {
		t.Fatalf("another replica after the failure: %v", err)
	}
	if _, err := a.GetIndividual(ctx, "legacy-y"); err != nil {
		t.Fatalf("the same replica after the failure: %v", err)
	}
}
