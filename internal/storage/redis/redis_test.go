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
	s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
