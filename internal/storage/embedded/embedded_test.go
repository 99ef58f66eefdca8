package embedded_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"

	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	"github.com/zerotouch/zerotouch/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zerotouch.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := embedded.Open(path); err == nil {
		s2.Close()
		t.Fatal("a second Open of a held store file succeeded")
	}
}

func BenchmarkCreateRegistration(b *testing.B) {
	s, err := embedded.Open(filepath.Join(b.TempDir(), "zerotouch.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("device-%08d", i)
		reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: "s1", AssignedHub: "hub.example.com",
			Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "g1",
			CredentialThumbprint: enrollment.Thumbprint([]byte(id)), Created: now, Updated: now}
		ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: "s1", Status: registry.IdentityEnabled,
			Credential: registry.Credential{Type: registry.X509, X509Thumbprint: reg.CredentialThumbprint}, Version: 1, Created: now, Updated: now}
		if _, err := s.CreateRegistration(b.Context(), reg, ident); err != nil {
			b.Fatal(err)
		}
	}
	if size, err := s.Size(); err == nil {
		b.ReportMetric(float64(size)/float64(b.N), "file-bytes/device")
	}
}

func BenchmarkCreateRegistrationParallel(b *testing.B) {
	s, err := embedded.Open(filepath.Join(b.TempDir(), "zerotouch.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	var n atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("device-%08d", n.Add(1))
			reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: "s1", Status: registry.Assigned, Created: now, Updated: now}
			ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: "s1", Version: 1, Created: now, Updated: now}
			if _, err := s.CreateRegistration(b.Context(), reg, ident); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A file written before shard counts existed gets them rebuilt on open.
func TestShardCountsRebuiltOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zerotouch.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "s1.example.com", Weight: 1, State: allocation.Active, Capacity: 9}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		id := fmt.Sprintf("dev-%d", i)
		reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: "s1", Status: registry.Assigned, AttestationType: registry.X509,
			CredentialThumbprint: enrollment.Thumbprint([]byte(id))}
		if _, err := s.CreateRegistration(ctx, reg, &registry.Identity{DeviceID: id, RegistrationID: id, Shard: "s1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := embedded.DropShardCounts(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = embedded.Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sh, err := s.GetShard(ctx, "s1")
	if err != nil || sh.Devices != 4 {
		t.Fatalf("after reopening: %+v %v", sh, err)
	}
}

// TestDeviceIndexRebuiltOnOpen: a store written before the device-ID index
// existed gets it on open, so custom device IDs are reserved at once.
func TestDeviceIndexRebuiltOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zerotouch.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	e := &enrollment.Individual{RegistrationID: "ind-reg", DeviceID: "sensor-0001", Thumbprint: enrollment.Thumbprint([]byte("x"))}
	if _, err := s.CreateIndividual(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := embedded.DropDeviceIndex(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = embedded.Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if held, err := s.ReservedByIndividual(ctx, "SENSOR-0001"); err != nil || !held {
		t.Fatalf("after reopening: ReservedByIndividual = %v, %v", held, err)
	}
}
