package embedded_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// TestBytesInUse: the bytes in use move with every registration written
// and deleted (the file's size moves in steps, and never back).
func TestBytesInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zerotouch.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if _, err := s.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "s1.example.com", Weight: 1, State: allocation.Active}); err != nil {
		t.Fatal(err)
	}
	bytes := func() int64 {
		t.Helper()
		n, err := s.BytesInUse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	prev := bytes()
	if prev <= 0 {
		t.Fatalf("an empty store uses %d bytes", prev)
	}
	now := time.Now()
	for i := range 5 {
		id := fmt.Sprintf("dev-%d", i)
		reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: "s1", AssignedHub: "s1.example.com", Status: registry.Assigned,
			AttestationType: registry.X509, CredentialThumbprint: fmt.Sprintf("%064d", i), Created: now, Updated: now}
		ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: "s1", Status: registry.IdentityEnabled,
			Credential: registry.Credential{Type: registry.X509, X509Thumbprint: reg.CredentialThumbprint}, Version: 1, Created: now, Updated: now}
		if _, err := s.CreateRegistration(ctx, reg, ident); err != nil {
			t.Fatal(err)
		}
		n := bytes()
		if n <= prev {
			t.Fatalf("registration %d: bytes in use %d, were %d", i, n, prev)
		}
		prev = n
	}
	if err := s.DeleteRegistration(ctx, "dev-0", ""); err != nil {
		t.Fatal(err)
	}
	if n := bytes(); n >= prev {
		t.Fatalf("after a delete: bytes in use %d, were %d", n, prev)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.BytesInUse(cancelled); err == nil {
		t.Fatal("BytesInUse with a cancelled context succeeded")
	}
}
