package redis_test

import (
	"context"
	"testing"

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
