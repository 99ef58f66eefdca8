package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// TestMetricsFleet reads the fleet's gauges from a real store: devices per shard,
// each owned shard's unacknowledged events, CAs and groups, hub streams
// and the store's bytes.
func TestMetricsFleet(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	now := time.Now()
	if _, err := s.CreateCluster(ctx, &allocation.Cluster{ID: "hubs-eu", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	for _, sh := range []*allocation.Shard{
		{ID: "eu-1", Hostname: "eu-1.example.com", Weight: 1, State: allocation.Active, Cluster: "hubs-eu"},
		{ID: "eu-2", Hostname: "eu-2.example.com", Weight: 1, State: allocation.Active, Cluster: "hubs-eu"},
		{ID: "loose", Hostname: "loose.example.com", Weight: 1, State: allocation.Active},
	} {
		if _, err := s.CreateShard(ctx, sh); err != nil {
			t.Fatal(err)
		}
	}
	register := func(id, shard string) {
		t.Helper()
		r := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: shard, AssignedHub: shard + ".example.com", Status: registry.Assigned,
			AttestationType: registry.X509, CredentialThumbprint: id, Created: now, Updated: now}
		ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: shard, Status: registry.IdentityEnabled,
			Credential: registry.Credential{Type: registry.X509, X509Thumbprint: id}, Version: 1, Created: now, Updated: now}
		if _, err := s.CreateRegistration(ctx, r, ident); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		register(fmt.Sprintf("a-%d", i), "eu-1")
	}
	register("b-0", "eu-2")
	register("c-0", "loose")
	if err := s.AckEvents(ctx, "hubs-eu", "eu-1", 3); err != nil {
		t.Fatal(err)
	}
	for i, verified := range []bool{true, true, false} {
		ca, err := pki.NewCA(fmt.Sprintf("CA %d", i), nil, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rec := enrollment.NewCA(fmt.Sprintf("ca-%d", i), ca.Cert, now)
		rec.Verified = verified
		if _, err := s.CreateCA(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for i, disabled := range []bool{false, true} {
		g := &enrollment.Group{ID: fmt.Sprintf("g%d", i), CAName: fmt.Sprintf("ca-%d", i), Disabled: disabled, Meta: enrollment.Meta{Created: now, Updated: now}}
		if _, err := s.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}

	m := New(nil)
	if err := m.Register(&Fleet{Store: s, StoreBytes: s.BytesInUse,
		HubStreams: func() map[string]int { return map[string]int{"hubs-eu": 2} }}); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zerotouch_shard_devices", map[string]string{"shard": "eu-1"}, 5},
		{"zerotouch_shard_devices", map[string]string{"shard": "eu-2"}, 1},
		{"zerotouch_shard_devices", map[string]string{"shard": "loose"}, 1},
		{"zerotouch_hub_stream_lag_events", map[string]string{"cluster": "hubs-eu", "shard": "eu-1"}, 2},
		{"zerotouch_hub_stream_lag_events", map[string]string{"cluster": "hubs-eu", "shard": "eu-2"}, 1},
		{"zerotouch_hub_streams", map[string]string{"cluster": "hubs-eu"}, 2},
		{"zerotouch_ca_certificates", map[string]string{"verified": "true"}, 2},
		{"zerotouch_ca_certificates", map[string]string{"verified": "false"}, 1},
		{"zerotouch_enrollment_groups", map[string]string{"enabled": "true"}, 1},
		{"zerotouch_enrollment_groups", map[string]string{"enabled": "false"}, 1},
	} {
		if got, ok := value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n := len(fams["zerotouch_hub_stream_lag_events"].GetMetric()); n != 2 {
		t.Errorf("lag of %d shards, want 2 (a shard of no cluster has no lag)", n)
	}
	want, err := s.BytesInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := value(fams, "zerotouch_store_bytes", map[string]string{}); !ok || got != float64(want) || got <= 0 {
		t.Errorf("store bytes %v (present %v), want %d", got, ok, want)
	}

	// A read that fails is logged and leaves its metrics out; the rest
	// is served.
	m = New(nil)
	if err := m.Register(&Fleet{Store: s, StoreBytes: func(context.Context) (int64, error) { return 0, errors.New("disk gone") }}); err != nil {
		t.Fatal(err)
	}
	fams = scrape(t, m)
	if fams["zerotouch_store_bytes"] != nil || fams["zerotouch_shard_devices"] == nil || fams["zerotouch_build_info"] == nil {
		t.Fatalf("a failed read: %v", fams["zerotouch_store_bytes"])
	}
}
