package embedded_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// hexHash is a deterministic 64-hex identifier (a thumbprint or an issuer ID).
func hexHash(parts ...any) string {
	sum := sha256.Sum256(fmt.Append(nil, parts...))
	return hex.EncodeToString(sum[:])
}

// x509Device is a realistic X.509 group device: a leaf under one of 8
// intermediates under the group's root CA, so its chain names two
// certificates (16-byte serials), no issued certificate, no twin.
func x509Device(i int, now time.Time) (*registry.Registration, *registry.Identity) {
	id := fmt.Sprintf("sensor-%07d", i)
	thumb := hexHash("leaf", i)
	reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: fmt.Sprintf("shard-%d", i%4), AssignedHub: fmt.Sprintf("hub-%d.example.com", i%4),
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "acme-line-1",
		CredentialThumbprint: thumb, InitialShard: fmt.Sprintf("shard-%d", i%4), Created: now, Updated: now}
	chain := []registry.CertRef{
		{Issuer: hexHash("intermediate", i%8), Serial: hexHash("serial", i)[:32]},
		{Issuer: hexHash("root"), Serial: hexHash("intermediate-serial", i%8)[:32]},
	}
	ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: reg.Shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.X509, X509Thumbprint: thumb, CAThumbprint: hexHash("root-ca"), X509Chain: chain},
		Version:    registry.NextVersion(0, now), Created: now, Updated: now}
	return reg, ident
}

// tpmDevice is a TPM individual enrollment's device: EK hash and an ECC
// P-256 bound key (an 88-byte TPM2B_PUBLIC; an RSA-2048 one is ~280).
func tpmDevice(i int, now time.Time) (*registry.Registration, *registry.Identity) {
	id := fmt.Sprintf("tpm-%07d", i)
	ek := hexHash("ek", i)
	bound := make([]byte, 88)
	copy(bound, hexHash("bound", i))
	reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: fmt.Sprintf("shard-%d", i%4), AssignedHub: fmt.Sprintf("hub-%d.example.com", i%4),
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.TPM, Individual: true,
		CredentialThumbprint: ek, InitialShard: fmt.Sprintf("shard-%d", i%4), Created: now, Updated: now}
	ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: reg.Shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.TPM, TPMEKHash: ek, TPMBoundKey: bound},
		Version:    registry.NextVersion(0, now), Created: now, Updated: now}
	return reg, ident
}

// deviceSplit groups the buckets a device's bytes land in.
var deviceSplit = []struct {
	name    string
	buckets []string
}{
	{"registration", []string{"registration"}},
	{"identity", []string{"identity"}},
	{"claim", []string{"identity_registration"}},
	{"indexes", []string{"registration_group", "registration_shard", "registration_cert", "shard_count"}},
	{"log", []string{"assignment_log"}},
}

// seedDevices registers n devices, 32 writers at a time.
func seedDevices(t *testing.T, s *embedded.Store, n int, dev func(int, time.Time) (*registry.Registration, *registry.Identity)) {
	t.Helper()
	now := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				reg, ident := dev(i, now)
				if _, err := s.CreateRegistration(t.Context(), reg, ident); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestBytesPerDevice measures the bytes in use per registered device,
// everything included (registration, identity, device-ID index, the group,
// shard and certificate indexes and the device's event in its shard's
// log), from bbolt's page statistics: X.509 group devices (a two-certificate
// chain, no issued certificate), then TPM individual devices. It logs the
// split that docs/performance.md records and guards the 1.5 KiB aim; set
// ZT_SIZE_DEVICES for another size (default 5,000: the figure per device
// moves by a byte or two from 5,000 to 100,000).
func TestBytesPerDevice(t *testing.T) {
	n := 5000
	if v := os.Getenv("ZT_SIZE_DEVICES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for i := range 4 {
		id := fmt.Sprintf("shard-%d", i)
		if _, err := s.CreateShard(ctx, &allocation.Shard{ID: id, Hostname: fmt.Sprintf("hub-%d.example.com", i), Weight: 1, State: allocation.Active}); err != nil {
			t.Fatal(err)
		}
	}
	measure := func(kind string, m int, dev func(int, time.Time) (*registry.Registration, *registry.Identity)) float64 {
		before, err := embedded.BucketBytes(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		seedDevices(t, s, m, dev)
		after, err := embedded.BucketBytes(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for name, v := range after {
			total += v - before[name]
		}
		var parts []string
		for _, p := range deviceSplit {
			var d int64
			for _, b := range p.buckets {
				d += after[b] - before[b]
			}
			parts = append(parts, fmt.Sprintf("%s %.0f", p.name, float64(d)/float64(m)))
		}
		per := float64(total) / float64(m)
		t.Logf("embedded bytes in use per %s: %.0f over %d (%s)", kind, per, m, strings.Join(parts, ", "))
		return per
	}
	perX509 := measure("X.509 group device", n, x509Device)
	measure("TPM individual device", max(1, n/10), tpmDevice)
	if perX509 > 1536 {
		t.Errorf("%.0f bytes per X.509 device, more than the 1.5 KiB aim", perX509)
	}
}
