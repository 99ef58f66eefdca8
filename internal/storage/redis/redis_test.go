package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	"github.com/zerotouch/zerotouch/internal/storage/storagetest"
)

func TestConformanceStandalone(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	n := 0
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		n++
		s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, KeyPrefix: "t" + string(rune('a'+n%26)) + string(rune('a'+n/26))})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		n++
		s, err := redis.Open(redis.Options{Addrs: cluster.Addrs(), Cluster: true, KeyPrefix: "c" + string(rune('a'+n%26)) + string(rune('a'+n/26))})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestChallengeKeysExpire: Redis itself drops challenges a little after
// their expiry, so untaken challenges do not accumulate.
func TestChallengeKeysExpire(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	ctx := context.Background()
	c := &attestation.Challenge{ID: "c1", RegistrationID: "d", Expires: time.Now().Add(2 * time.Minute)}
	if err := s.PutChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.Client().PTTL(ctx, "{zt:ch:c1}").Result()
	if err != nil || ttl < 2*time.Minute || ttl > 4*time.Minute {
		t.Fatalf("challenge TTL %v, %v", ttl, err)
	}
}

func TestRateCounter(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	ctx := context.Background()
	start := time.Now().Truncate(time.Minute)
	for want := int64(1); want <= 3; want++ {
		n, err := s.Hit(ctx, "ip:192.0.2.1", start, time.Minute)
		if err != nil || n != want {
			t.Fatalf("Hit = %d, %v; want %d", n, err, want)
		}
	}
	if n, _ := s.Hit(ctx, "ip:192.0.2.1", start.Add(time.Minute), time.Minute); n != 1 {
		t.Fatalf("the next window counted from %d", n)
	}
	keys, err := s.Client().Keys(ctx, "zt:rl:*").Result() // test-only keyspace look
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	for _, k := range keys {
		if ttl, _ := s.Client().TTL(ctx, k).Result(); ttl <= 0 || ttl > 3*time.Minute {
			t.Fatalf("%s has TTL %v", k, ttl)
		}
	}
}

func TestConformanceSentinel(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	sentinel := redistest.StartSentinel(t, master)
	n := 0
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		n++
		s, err := redis.Open(redis.Options{Addrs: []string{sentinel}, MasterName: "zerotouch", KeyPrefix: "s" + string(rune('a'+n%26)) + string(rune('a'+n/26))})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}
