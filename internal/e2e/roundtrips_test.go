package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// roundTrips counts what a Redis client sends: one per command sent alone,
// one per pipeline or transaction; and the keys read.
type roundTrips struct {
	mu    sync.Mutex
	on    bool
	trips int
	keys  []string
}

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.count(cmd)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.count(cmds...)
		return next(ctx, cmds)
	}
}

func (r *roundTrips) count(cmds ...goredis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	r.trips++
	for _, c := range cmds {
		if args := c.Args(); len(args) > 1 {
			if k, ok := args[1].(string); ok {
				r.keys = append(r.keys, c.Name()+" "+k)
			}
		}
	}
}

func (r *roundTrips) set(on bool) (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = on
	n, keys := r.trips, r.keys
	r.trips, r.keys = 0, nil
	return n, keys
}

// TestRoundTripsPerRegistration (issue #17): a new X.509 group device on a
// real Redis, with rate limits on, counted at the client: at most three
// round trips. One pipeline reads what the registration reads (the trust
// and shard caches' versions, the individual enrollment by thumbprint, the
// name's reservation, the registration) and counts the address; the
// device's own count follows attestation; one script writes. CA
// certificates and groups come from the cache keyed by their tables'
// version, so no CA or group key is read.
func TestRoundTripsPerRegistration(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rt := &roundTrips{}
	st, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, Hook: rt})
	if err != nil {
		t.Fatal(err)
	}
	limiter := &ratelimit.Limiter{Counter: st, Now: time.Now,
		PerIP: ratelimit.Rule{Limit: 1000, Window: time.Hour}, PerRegistration: ratelimit.Rule{Limit: 100, Window: time.Hour}}
	e := startWith(t, options{store: st, limiter: limiter})
	f := e.newFleet()
	if _, err := e.registerGRPC("warm-1", f.device(t, "warm-1"), f.inter.Cert); err != nil {
		t.Fatal(err) // loads the caches
	}
	dev := f.device(t, "count-1")
	rt.set(true)
	if _, err := e.registerGRPC("count-1", dev, f.inter.Cert); err != nil {
		t.Fatal(err)
	}
	n, keys := rt.set(false)
	t.Logf("a new X.509 group device: %d round trips to Redis:\n  %s", n, strings.Join(keys, "\n  "))
	if n > 3 {
		t.Errorf("a new X.509 group device took %d round trips, want at most 3", n)
	}
	// The address was counted once per registration (the count made with
	// the reads is the one the limiter takes), and so was each device.
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	for pattern, want := range map[string]int{"zt:rl:ip:*": 2, "zt:rl:reg:count-1:*": 1} {
		ks, err := c.Keys(t.Context(), pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, k := range ks {
			v, err := c.Get(t.Context(), k).Int()
			if err != nil {
				t.Fatal(err)
			}
			total += v
			if ttl := c.TTL(t.Context(), k).Val(); ttl <= 0 {
				t.Errorf("rate counter %s has no expiry (%v)", k, ttl)
			}
		}
		if total != want {
			t.Errorf("%s counted %d, want %d", pattern, total, want)
		}
	}
	for _, k := range keys {
		if (strings.Contains(k, ":cfg}:ca:") || strings.Contains(k, ":cfg}:grp:")) && !strings.HasSuffix(k, ":version") {
			t.Errorf("a CA or group was read from the store on a warm cache: %s", k)
		}
	}
	// A disabled group takes effect on the very next registration.
	g, err := st.GetGroup(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	g.Disabled = true
	if _, err := st.UpdateGroup(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("count-2", f.device(t, "count-2"), f.inter.Cert); reasonOf(t, err) != "ENROLLMENT_DISABLED" {
		t.Fatalf("after disabling the group behind the cache: %v", err)
	}
}

// TestReadAheadGivesNothingAway (issue #17): what a registration reads
// ahead, before attestation, is keyed by the name the certificate claims.
// A chain nobody trusts that names another device's registration ID is
// refused, leaves that registration as it was and counts nothing against
// it; a trusted group device that names an ID an individual enrollment
// reserves, as registration ID or as device ID, is refused with the
// ownership reason (the reservation read ahead is the one checked), and
// nothing is written.
func TestReadAheadGivesNothingAway(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	st, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	limiter := &ratelimit.Limiter{Counter: st, Now: time.Now,
		PerIP: ratelimit.Rule{Limit: 1000, Window: time.Hour}, PerRegistration: ratelimit.Rule{Limit: 100, Window: time.Hour}}
	e := startWith(t, options{store: st, limiter: limiter})
	f := e.newFleet()
	victim, err := e.registerGRPC("victim-1", f.device(t, "victim-1"), f.inter.Cert)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	counted := func(id string) int {
		ks, err := c.Keys(t.Context(), "zt:rl:reg:"+id+":*").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, k := range ks {
			v, _ := c.Get(t.Context(), k).Int()
			n += v
		}
		return n
	}

	// A rogue chain claiming the victim's ID.
	rogue, err := pki.NewCA("Rogue Root", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.NewDevice("victim-1", rogue, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("victim-1", leaf); reasonOf(t, err) != "CERTIFICATE_UNTRUSTED" {
		t.Fatalf("a rogue chain naming another device: %v", err)
	}
	if got, err := st.GetRegistration(t.Context(), "victim-1"); err != nil || got.Etag != victim.GetEtag() {
		t.Fatalf("the victim's registration after the rogue attempt: %+v, %v", got, err)
	}
	if n := counted("victim-1"); n != 1 {
		t.Errorf("the victim was counted %d times, want 1 (its own registration)", n)
	}

	// A trusted group device naming an ID an individual enrollment holds.
	other := f.device(t, "reserved-1")
	if _, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "reserved-1", Sha256Thumbprint: randomThumbprint(t)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("reserved-1", other, f.inter.Cert); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
		t.Fatalf("a group device taking a reserved ID: %v", err)
	}
	if _, err := st.GetRegistration(t.Context(), "reserved-1"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("the refused device was written: %v", err)
	}

	// A trusted group device naming another individual enrollment's device
	// ID (its name claim is owned under another key: the owner's
	// enrollment is read to confirm it).
	if _, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "meter-enrollment", DeviceId: "Meter-7", Sha256Thumbprint: randomThumbprint(t)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("meter-7", f.device(t, "meter-7"), f.inter.Cert); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
		t.Fatalf("a group device taking an individual enrollment's device ID: %v", err)
	}
	if _, err := st.GetRegistration(t.Context(), "meter-7"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("the refused device was written: %v", err)
	}
}
