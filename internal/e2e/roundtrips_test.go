package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
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
// real Redis, counted at the client. CA certificates and groups come from
// the cache keyed by their tables' version (one MGET), so no CA or group
// key is read; the count is logged against the aim of three.
func TestRoundTripsPerRegistration(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rt := &roundTrips{}
	st, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, Hook: rt})
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, options{store: st})
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
