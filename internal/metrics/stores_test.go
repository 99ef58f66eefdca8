package metrics

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

func openStore(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// calls is how many calls of an operation were timed, and how many
// failed.
func calls(t *testing.T, m *Metrics, op string) (timed, failed int) {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			if len(mt.GetLabel()) != 1 || mt.GetLabel()[0].GetValue() != op {
				continue
			}
			switch f.GetName() {
			case "zerotouch_store_call_duration_seconds":
				timed = int(mt.GetHistogram().GetSampleCount())
			case "zerotouch_store_errors_total":
				failed = int(mt.GetCounter().GetValue())
			}
		}
	}
	return timed, failed
}

// TestMetricsStoreWrappers: every call the registration use case makes is timed
// by operation; answers (not found, already exists) are not failures, a
// store that cannot answer is.
func TestMetricsStoreWrappers(t *testing.T) {
	s := openStore(t)
	m := New(nil)
	ctx := t.Context()
	enr, reg, shards, ch := m.Enrollments(s), m.Registry(s), m.Shards(s), m.Challenges(s)

	if _, err := s.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "s1.example.com", Weight: 1, State: allocation.Active}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.GetRegistration(ctx, "dev-1"); err == nil {
		t.Fatal("found a registration in an empty store")
	}
	now := time.Now()
	r := &registry.Registration{RegistrationID: "dev-1", DeviceID: "dev-1", Shard: "s1", AssignedHub: "s1.example.com", Status: registry.Assigned,
		AttestationType: registry.X509, CredentialThumbprint: "ab", Created: now, Updated: now}
	id := &registry.Identity{DeviceID: "dev-1", RegistrationID: "dev-1", Shard: "s1", Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.X509, X509Thumbprint: "ab"}, Version: 1, Created: now, Updated: now}
	etag, err := reg.CreateRegistration(ctx, r, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateRegistration(ctx, r, id); err == nil {
		t.Fatal("created twice")
	}
	r.Etag = etag
	if _, err := reg.UpdateRegistration(ctx, r, id); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.GetIdentity(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := shards.AllShards(ctx); err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error { _, err := enr.FindIndividualByThumbprint(ctx, "ab"); return err },
		func() error { _, err := enr.FindCAByThumbprint(ctx, "ab"); return err },
		func() error { _, err := enr.FindCAsBySubject(ctx, "ab"); return err },
		func() error { _, err := enr.FindGroupByCA(ctx, "ca"); return err },
		func() error { _, err := enr.GetGroup(ctx, "g"); return err },
		func() error { _, _, err := enr.ListGroups(ctx, enrollment.Page{Limit: 10}); return err },
		func() error { _, err := enr.GetIndividual(ctx, "dev-1"); return err },
		func() error { _, err := enr.ReservedByIndividual(ctx, "dev-1"); return err },
		func() error { _, err := enr.GroupsVersion(ctx); return err },
		func() error { _, err := enr.TrustVersion(ctx); return err },
		func() error { _, _, err := enr.ListCAs(ctx, enrollment.Page{Limit: 10}); return err },
		func() error {
			return ch.PutChallenge(ctx, &attestation.Challenge{ID: "c1", RegistrationID: "dev-1", Data: []byte{1}, Expires: now.Add(time.Minute)})
		},
		func() error { _, err := ch.TakeChallenge(ctx, "c1", now); return err },
	} {
		_ = call() // not found is an answer, not a failure
	}
	// Methods the use case does not call pass through untimed.
	if _, _, err := reg.ListRegistrations(ctx, registry.Filter{}, "", 10); err != nil {
		t.Fatal(err)
	}

	for op, want := range map[string]int{"get_registration": 1, "create_registration": 2, "update_registration": 1, "get_identity": 1,
		"all_shards": 1, "find_individual_by_thumbprint": 1, "find_ca_by_thumbprint": 1, "find_cas_by_subject": 1, "find_group_by_ca": 1,
		"get_group": 1, "list_groups": 1, "get_individual": 1, "reserved_by_individual": 1, "groups_version": 1,
		"trust_version": 1, "list_cas": 1,
		"put_challenge": 1, "take_challenge": 1} {
		if timed, failed := calls(t, m, op); timed != want || failed != 0 {
			t.Errorf("%s: %d timed, %d failed; want %d and 0", op, timed, failed, want)
		}
	}
	if n := testutil.CollectAndCount(m.storeSeconds); n != 18 {
		t.Errorf("%d operations timed, want 18 (nothing else)", n)
	}

	// A closed store fails: counted.
	s.Close()
	if _, err := reg.GetRegistration(ctx, "dev-1"); err == nil {
		t.Fatal("a closed store answered")
	}
	if _, err := shards.AllShards(ctx); err == nil {
		t.Fatal("a closed store answered")
	}
	if _, failed := calls(t, m, "get_registration"); failed != 1 {
		t.Errorf("get_registration on a closed store: %d failures counted", failed)
	}
	if _, failed := calls(t, m, "all_shards"); failed != 1 {
		t.Errorf("all_shards on a closed store: %d failures counted", failed)
	}
}
