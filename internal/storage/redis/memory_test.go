package redis_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

func usedMemory(t *testing.T, s *redis.Store) int64 {
	t.Helper()
	info, err := s.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}

// TestMemoryPerDevice measures Redis memory per registered device: the
// registration and identity, the device-ID claim and the three list index
// entries, and separately per individual enrollment. It guards against
// regressions (under 2 KiB per device) and logs the figure that
// docs/performance.md records; set ZT_MEMORY_DEVICES=100000 for the full run.
func TestMemoryPerDevice(t *testing.T) {
	n := 10000
	if v := os.Getenv("ZT_MEMORY_DEVICES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	srv := redistest.Start(t, redistest.Options{})
	s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, PoolSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	before := usedMemory(t, s)
	now := time.Now()
	run(t, n, func(i int) error {
		id := fmt.Sprintf("sensor-%07d", i)
		thumb := enrollment.Thumbprint([]byte(id))
		reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: fmt.Sprintf("shard-%d", i%4), AssignedHub: fmt.Sprintf("hub-%d.example.com", i%4),
			Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "acme-line-1",
			CredentialThumbprint: thumb, Created: now, Updated: now}
		ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: reg.Shard, Status: registry.IdentityEnabled,
			Credential: registry.Credential{Type: registry.X509, X509Thumbprint: thumb, CAThumbprint: enrollment.Thumbprint([]byte("ca"))},
			Version:    1, Created: now, Updated: now}
		_, err := s.CreateRegistration(ctx, reg, ident)
		return err
	})
	afterRegs := usedMemory(t, s)
	run(t, n, func(i int) error {
		_, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: fmt.Sprintf("device-%07d", i),
			Thumbprint: enrollment.Thumbprint(fmt.Appendf(nil, "leaf-%d", i)), Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed},
			Meta: enrollment.Meta{Created: now, Updated: now}})
		return err
	})
	afterInds := usedMemory(t, s)
	perDevice := float64(afterRegs-before) / float64(n)
	perEnrollment := float64(afterInds-afterRegs) / float64(n)
	t.Logf("Redis used_memory: %.0f bytes per registered device (registration + identity + claim + indexes), %.0f bytes per individual enrollment, over %d each", perDevice, perEnrollment, n)
	if perDevice > 2048 {
		t.Errorf("%.0f bytes per device, more than the 2 KiB guard", perDevice)
	}
}

func run(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	var first error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}
