package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func newPool(cas ...*pki.Issued) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c.Cert)
	}
	return p
}

// redisFleet sets up, through replica 0, a verified CA with its group and
// shards weighted 100/200/300, and mints n devices.
func redisFleet(t *testing.T, e *env, n int) (*fleet, []*pki.Issued) {
	t.Helper()
	now := time.Now()
	root, _ := pki.NewCA("Replica Root", nil, now, 48*time.Hour)
	inter, _ := pki.NewCA("Replica Issuing", root, now, 48*time.Hour)
	e.uploadCA("root", root, true)
	e.createShard("shard-a", 100)
	e.createShard("shard-b", 200)
	e.createShard("shard-c", 300)
	e.createGroup("fleet", "root")
	f := &fleet{root: root, inter: inter}
	devs := make([]*pki.Issued, n)
	for i := range devs {
		devs[i] = f.device(t, fmt.Sprintf("dev-%05d", i))
	}
	return f, devs
}

type outcome struct {
	reg *pb.Registration
	err error
}

// register sends one registration to env e over a random transport.
func register(e *env, f *fleet, dev *pki.Issued) outcome {
	tr := transports[rand.IntN(len(transports))]
	reg, err := tr.register(e, dev.Cert.Subject.CommonName, dev, f.inter.Cert)
	return outcome{reg, err}
}

// forEach runs fn for 0..n-1 on workers goroutines.
func forEach(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func openRedis(t *testing.T, addr string) *redis.Store {
	t.Helper()
	s, err := redis.Open(redis.Options{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// allRegistrations lists every registration through the store.
func allRegistrations(t *testing.T, s registry.Store) map[string]*registry.Registration {
	t.Helper()
	out := map[string]*registry.Registration{}
	token := ""
	for {
		regs, next, err := s.ListRegistrations(context.Background(), registry.Filter{}, token, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range regs {
			if _, dup := out[r.RegistrationID]; dup {
				t.Fatalf("registration %s listed twice", r.RegistrationID)
			}
			out[r.RegistrationID] = r
		}
		if next == "" {
			return out
		}
		token = next
	}
}

// TestTwoReplicasOneRedis: two `zerotouch serve` processes share one
// Redis; 2,000 devices each register twice at once, once per replica, over
// random transports. Exactly 2,000 registrations and identities result,
// every device on one shard, spread by the shards' weights.
func TestTwoReplicasOneRedis(t *testing.T) {
	const n = 2000
	c := newCluster(t, 2)
	envs := []*env{c.env(0), c.env(1)}
	f, devs := redisFleet(t, envs[0], n)

	results := make([][2]outcome, n)
	forEach(n, 12, func(i int) {
		var wg sync.WaitGroup
		first := rand.IntN(2)
		for k := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i][k] = register(envs[(first+k)%2], f, devs[i])
			}()
		}
		wg.Wait()
	})

	store := openRedis(t, c.redis.Addr())
	regs := allRegistrations(t, store)
	if len(regs) != n {
		t.Fatalf("%d registrations, want %d", len(regs), n)
	}
	counts := map[string]int{}
	for i, res := range results {
		id := devs[i].Cert.Subject.CommonName
		for k, o := range res {
			if o.err != nil {
				t.Fatalf("%s request %d: %v", id, k, o.err)
			}
		}
		a, b := res[0].reg, res[1].reg
		if a.GetShard() != b.GetShard() || a.GetEtag() != b.GetEtag() || a.GetDeviceId() != id {
			t.Fatalf("%s: the replicas answered %v and %v", id, a, b)
		}
		stored := regs[id]
		if stored == nil || stored.Shard != a.GetShard() || stored.Etag != a.GetEtag() {
			t.Fatalf("%s: stored %+v, answered %v", id, stored, a)
		}
		ident, err := store.GetIdentity(context.Background(), id)
		if err != nil || ident.Shard != stored.Shard || ident.Version != ident.Created.UnixMicro() {
			t.Fatalf("%s: identity %+v, %v", id, ident, err)
		}
		counts[stored.Shard]++
	}
	for shard, w := range map[string]float64{"shard-a": 100, "shard-b": 200, "shard-c": 300} {
		p := w / 600
		want, sigma := p*n, math.Sqrt(n*p*(1-p))
		if got := float64(counts[shard]); math.Abs(got-want) > 4*sigma {
			t.Errorf("%s has %v devices, want %v ± %.0f", shard, got, want, 4*sigma)
		}
	}
	t.Logf("shard distribution over %d devices: %v (weights 1:2:3)", n, counts)
}

// faultLoad registers devs through both replicas (one request per device)
// while fault runs once a quarter of them were answered, and returns the
// outcomes. fault calls applied once the fault is in place; the remaining
// requests wait for that, so they always meet it.
func faultLoad(t *testing.T, envs []*env, f *fleet, devs []*pki.Issued, fault func(applied func())) []outcome {
	t.Helper()
	out := make([]outcome, len(devs))
	var answered atomic.Int64
	var once sync.Once
	applied, faultDone := make(chan struct{}), make(chan struct{})
	forEach(len(devs), 8, func(i int) {
		if answered.Load() >= int64(len(devs)/4) {
			<-applied // the rest of the load meets the fault, however slow the machine
		}
		out[i] = register(envs[i%2], f, devs[i])
		if answered.Add(1) == int64(len(devs)/4) {
			once.Do(func() { go func() { fault(func() { close(applied) }); close(faultDone) }() })
		}
	})
	<-faultDone
	return out
}

// checkAfterFault verifies the invariants after a fault: every device
// answered assigned is stored as answered, and no device has a partial
// registration. Then it registers every device again, which must succeed
// (the replicas recovered by themselves), and checks nothing is duplicated.
func checkAfterFault(t *testing.T, c *cluster, envs []*env, f *fleet, devs []*pki.Issued, out []outcome) {
	t.Helper()
	for _, r := range c.replicas {
		if err := c.waitReady(r, 30*time.Second); err != nil {
			t.Fatalf("replica did not become ready again: %v", err)
		}
	}
	store := openRedis(t, c.redis.Addr())
	ctx := context.Background()
	failed := 0
	for i, o := range out {
		id := devs[i].Cert.Subject.CommonName
		reg, regErr := store.GetRegistration(ctx, id)
		ident, idErr := store.GetIdentity(ctx, id)
		if (regErr == nil) != (idErr == nil) {
			t.Fatalf("%s: partial state: registration %v (%v), identity %v (%v)", id, reg, regErr, ident, idErr)
		}
		if o.err != nil {
			if r := reasonOf(t, o.err); r != "STORE_UNAVAILABLE" {
				t.Errorf("%s failed with %s (%v), want STORE_UNAVAILABLE", id, r, o.err)
			}
			failed++
			continue
		}
		if regErr != nil || reg.Etag != o.reg.GetEtag() || reg.Shard != o.reg.GetShard() || ident.Shard != reg.Shard {
			t.Fatalf("%s was answered %v but is stored as %+v (%v)", id, o.reg, reg, regErr)
		}
	}
	if failed == 0 {
		t.Fatal("the fault caused no failed request; it was not exercised")
	}
	t.Logf("%d of %d requests failed during the fault; every answered registration survived", failed, len(devs))

	// The replicas serve again without a restart; retrying never duplicates.
	forEach(len(devs), 8, func(i int) {
		o := register(envs[(i+1)%2], f, devs[i])
		if o.err != nil {
			t.Errorf("%s after recovery: %v", devs[i].Cert.Subject.CommonName, o.err)
			return
		}
		if out[i].err == nil && (o.reg.GetEtag() != out[i].reg.GetEtag() || o.reg.GetShard() != out[i].reg.GetShard()) {
			t.Errorf("%s changed on retry: %v then %v", devs[i].Cert.Subject.CommonName, out[i].reg, o.reg)
		}
	})
	if regs := allRegistrations(t, store); len(regs) != len(devs) {
		t.Fatalf("%d registrations after recovery, want %d", len(regs), len(devs))
	}
}

// TestRedisKilledUnderLoad kills redis-server (SIGKILL) in the middle of a
// registration load and restarts it with its append-only file.
func TestRedisKilledUnderLoad(t *testing.T) {
	c := newCluster(t, 2)
	envs := []*env{c.env(0), c.env(1)}
	f, devs := redisFleet(t, envs[0], 600)
	out := faultLoad(t, envs, f, devs, func(applied func()) {
		c.redis.Kill()
		applied()
		// The outage's length, not a wait for a condition: longer than the
		// client's dial retries, which ride out a shorter one now that a
		// registration makes three round trips.
		time.Sleep(3 * time.Second)
		c.redis.Restart()
	})
	checkAfterFault(t, c, envs, f, devs, out)
}

// TestRedisPausedUnderLoad stops redis-server (SIGSTOP) for five seconds
// in the middle of a load, as a cut network would, then continues it.
func TestRedisPausedUnderLoad(t *testing.T) {
	c := newCluster(t, 2)
	envs := []*env{c.env(0), c.env(1)}
	f, devs := redisFleet(t, envs[0], 600)
	out := faultLoad(t, envs, f, devs, func(applied func()) {
		c.redis.Pause()
		applied()
		// The outage's length, not a wait for a condition: past the
		// client's 3 s read timeout, so the requests in flight fail.
		time.Sleep(5 * time.Second)
		c.redis.Resume()
	})
	checkAfterFault(t, c, envs, f, devs, out)
}
