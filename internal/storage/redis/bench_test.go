package redis_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// BenchmarkCreateRegistrationParallel: the store's registration write on
// a real redis-server (claim, indexes and outbox mark, the MULTI, the
// relay to the shard's log), 8 × GOMAXPROCS writers.
func BenchmarkCreateRegistrationParallel(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, PoolSize: 32})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	var n atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("device-%08d", n.Add(1))
			reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: "s1", AssignedHub: "hub.example.com",
				Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "g1",
				CredentialThumbprint: enrollment.Thumbprint([]byte(id)), Created: now, Updated: now}
			ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: "s1", Status: registry.IdentityEnabled,
				Credential: registry.Credential{Type: registry.X509, X509Thumbprint: reg.CredentialThumbprint}, Version: 1, Created: now, Updated: now}
			if _, err := s.CreateRegistration(b.Context(), reg, ident); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
