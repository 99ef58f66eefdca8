package scale_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/scale"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// commands records what a Redis client sends: each command's name and
// first key.
type commands struct {
	mu  sync.Mutex
	on  bool
	log []string
}

func (c *commands) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *commands) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.record(cmd)
		return next(ctx, cmd)
	}
}

func (c *commands) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.record(cmds...)
		return next(ctx, cmds)
	}
}

func (c *commands) record(cmds ...goredis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return
	}
	for _, cmd := range cmds {
		c.log = append(c.log, strings.ToUpper(cmd.Name()))
	}
}

// during returns the commands fn sent.
func (c *commands) during(fn func() error) ([]string, error) {
	c.mu.Lock()
	c.on, c.log = true, nil
	c.mu.Unlock()
	err := fn()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.log, err
}

// scanCommands walk a keyspace or a whole collection: never on a request
// path.
var scanCommands = []string{"SCAN", "KEYS", "SSCAN", "HSCAN", "ZSCAN", "SMEMBERS", "HGETALL", "HKEYS", "HVALS", "DBSIZE"}

// TestNoFullScansOnRequestPaths (issue 17): on a real Redis, the store
// calls behind the request paths (list and query pages of enrollments and
// registrations, unfiltered and by shard and group; gets; the hub's
// snapshot pages; the lookups a registration makes) send no scan, and send
// the same commands, as many, whether the store holds 300 or 3,000
// devices: their cost is bounded by the page, not by the fleet.
func TestNoFullScansOnRequestPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds thousands of devices")
	}
	srv := redistest.Start(t, redistest.Options{})
	const page = 50
	var counts []map[string][]string
	for _, n := range []int{300, 3000} {
		cmds := &commands{}
		prefix := fmt.Sprintf("n%d", n)
		st, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, KeyPrefix: prefix, Hook: cmds, PoolSize: 32})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		f, err := scale.NewFixture(4)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if err := f.SeedConfig(ctx, st); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seed(ctx, st, scale.MixFor(n), 16, nil); err != nil {
			t.Fatal(err)
		}
		// Pages from the middle of each list: the token of the page
		// before is taken outside the count.
		mid := func(list func(token string) (string, error)) func() error {
			token := ""
			for range 2 {
				next, err := list(token)
				if err != nil {
					t.Fatal(err)
				}
				token = next
			}
			return func() error { _, err := list(token); return err }
		}
		regs := func(f registry.Filter) func(token string) (string, error) {
			return func(token string) (string, error) {
				got, next, err := st.ListRegistrations(ctx, f, token, page)
				if err == nil && (len(got) == 0 || len(got) > page) {
					err = fmt.Errorf("a page of %d registrations, want 1-%d", len(got), page)
				}
				return next, err
			}
		}
		ind, err := st.GetIndividual(ctx, scale.TPMID(7, true))
		if err != nil {
			t.Fatal(err)
		}
		paths := map[string]func() error{
			"list registrations":          mid(regs(registry.Filter{})),
			"list registrations by shard": mid(regs(registry.Filter{Shard: scale.ShardID(1)})),
			"list registrations by group": mid(regs(registry.Filter{GroupID: scale.SeedGroup})),
			"list individual enrollments": mid(func(token string) (string, error) {
				got, next, err := st.ListIndividuals(ctx, enrollment.Page{Token: token, Limit: page})
				if err == nil && (len(got) == 0 || len(got) > page) {
					err = fmt.Errorf("a page of %d enrollments, want 1-%d", len(got), page)
				}
				return next, err
			}),
			"hub snapshot page": mid(func(token string) (string, error) {
				got, next, err := st.ListIdentities(ctx, scale.ShardID(2), token, page)
				if err == nil && (len(got) == 0 || len(got) > page) {
					err = fmt.Errorf("a page of %d identities, want 1-%d", len(got), page)
				}
				return next, err
			}),
			"get registration": func() error { _, err := st.GetRegistration(ctx, scale.X509ID(5)); return err },
			"get identity":     func() error { _, err := st.GetIdentity(ctx, scale.X509ID(5)); return err },
			"individual by thumbprint (a TPM registration's lookup)": func() error {
				_, err := st.FindIndividualByThumbprint(ctx, ind.Thumbprint)
				return err
			},
			"reserved by an individual (an X.509 group device's lookup)": func() error {
				_, err := st.ReservedByIndividual(ctx, scale.X509ID(5))
				return err
			},
			"shards (allocation)": func() error { _, err := st.AllShards(ctx); return err },
		}
		got := map[string][]string{}
		for name, fn := range paths {
			log, err := cmds.during(fn)
			if err != nil {
				t.Fatalf("%d devices, %s: %v", n, name, err)
			}
			for _, c := range log {
				if slices.Contains(scanCommands, c) {
					t.Errorf("%d devices, %s: sent %s", n, name, c)
				}
			}
			if len(log) > 3*page {
				t.Errorf("%d devices, %s: %d commands for a page of %d", n, name, len(log), page)
			}
			slices.Sort(log)
			got[name] = log
		}
		counts = append(counts, got)
	}
	for name, small := range counts[0] {
		if big := counts[1][name]; !slices.Equal(small, big) {
			t.Errorf("%s: %d commands at 300 devices, %d at 3,000:\n  %v\n  %v", name, len(small), len(big), small, big)
		}
	}
}
