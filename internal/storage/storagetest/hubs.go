package storagetest

import (
	"fmt"
	"testing"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

func testShardCRUD(t *testing.T, s Store) {
	ctx := t.Context()
	sh := &allocation.Shard{ID: "s1", Hostname: "hub1.example.com", Weight: 10, State: allocation.Active, Created: t0, Updated: t0}
	etag, err := s.CreateShard(ctx, sh)
	must(t, err, "CreateShard")
	_, err = s.CreateShard(ctx, sh)
	wantKind(t, err, fault.AlreadyExists, "CreateShard again")
	got, err := s.GetShard(ctx, "s1")
	must(t, err, "GetShard")
	if got.Hostname != sh.Hostname || got.Weight != 10 || got.State != allocation.Active || got.Etag != etag {
		t.Fatalf("GetShard = %+v", got)
	}
	got.State = allocation.Draining
	got.Weight = 500
	etag2, err := s.UpdateShard(ctx, got)
	must(t, err, "UpdateShard")
	_, err = s.UpdateShard(ctx, got)
	wantKind(t, err, fault.Conflict, "UpdateShard(stale)")
	_, err = s.CreateShard(ctx, &allocation.Shard{ID: "s2", Hostname: "hub2.example.com", Weight: 1, State: allocation.Active})
	must(t, err, "CreateShard(s2)")
	all, err := s.AllShards(ctx)
	must(t, err, "AllShards")
	if len(all) != 2 {
		t.Fatalf("AllShards = %d", len(all))
	}
	page1, next, err := s.ListShards(ctx, "", 1)
	must(t, err, "ListShards")
	page2, next2, err := s.ListShards(ctx, next, 1)
	must(t, err, "ListShards(2)")
	if len(page1) != 1 || page1[0].ID != "s1" || len(page2) != 1 || page2[0].ID != "s2" || next2 != "" {
		t.Fatalf("paging: %v %q %v %q", page1, next, page2, next2)
	}

	reg, id := newRegistration("dev-a", "s1")
	_, err = s.CreateRegistration(ctx, reg, id)
	must(t, err, "CreateRegistration")
	err = s.DeleteShard(ctx, "s1", "")
	wantKind(t, err, fault.FailedPrecondition, "DeleteShard(in use)")
	must(t, s.DeleteRegistration(ctx, "dev-a", ""), "DeleteRegistration")
	wantKind(t, s.DeleteShard(ctx, "s1", etag), fault.Conflict, "DeleteShard(stale)")
	must(t, s.DeleteShard(ctx, "s1", etag2), "DeleteShard")
	_, err = s.GetShard(ctx, "s1")
	wantKind(t, err, fault.NotFound, "GetShard after delete")
}

// testShardDeviceCounts checks region and capacity round trips and that
// shards report how many devices they hold as registrations come, move
// and go.
func testShardDeviceCounts(t *testing.T, s Store) {
	ctx := t.Context()
	_, err := s.CreateShard(ctx, &allocation.Shard{ID: "c1", Hostname: "c1.example.com", Weight: 1, State: allocation.Active, Region: "eu-west", Capacity: 10})
	must(t, err, "CreateShard c1")
	_, err = s.CreateShard(ctx, &allocation.Shard{ID: "c2", Hostname: "c2.example.com", Weight: 1, State: allocation.Active, Capacity: 5})
	must(t, err, "CreateShard c2")
	counts := func() (int, int) {
		t.Helper()
		all, err := s.AllShards(ctx)
		must(t, err, "AllShards")
		got := map[string]int{}
		for _, sh := range all {
			got[sh.ID] = sh.Devices
		}
		g1, err := s.GetShard(ctx, "c1")
		must(t, err, "GetShard")
		if g1.Devices != got["c1"] || g1.Region != "eu-west" || g1.Capacity != 10 {
			t.Fatalf("GetShard c1 = %+v, AllShards count %d", g1, got["c1"])
		}
		return got["c1"], got["c2"]
	}
	if a, b := counts(); a != 0 || b != 0 {
		t.Fatalf("empty shards count %d, %d", a, b)
	}
	var regs []*registry.Registration
	for i := range 3 {
		reg, id := newRegistration(fmt.Sprintf("cnt-%d", i), "c1")
		etag, err := s.CreateRegistration(ctx, reg, id)
		must(t, err, "CreateRegistration")
		reg.Etag = etag
		regs = append(regs, reg)
	}
	if a, b := counts(); a != 3 || b != 0 {
		t.Fatalf("after 3 registrations: %d, %d", a, b)
	}
	// A duplicate create changes nothing.
	dup, dupID := newRegistration("cnt-0", "c1")
	wantKind(t, func() error { _, err := s.CreateRegistration(ctx, dup, dupID); return err }(), fault.AlreadyExists, "duplicate CreateRegistration")
	// A move.
	moved := regs[0]
	ident, err := s.GetIdentity(ctx, moved.DeviceID)
	must(t, err, "GetIdentity")
	moved.Shard, ident.Shard = "c2", "c2"
	_, err = s.UpdateRegistration(ctx, moved, ident)
	must(t, err, "UpdateRegistration (move)")
	if a, b := counts(); a != 2 || b != 1 {
		t.Fatalf("after a move: %d, %d", a, b)
	}
	must(t, s.DeleteRegistration(ctx, regs[1].RegistrationID, ""), "DeleteRegistration")
	if a, b := counts(); a != 1 || b != 1 {
		t.Fatalf("after a delete: %d, %d", a, b)
	}
	sh, err := s.GetShard(ctx, "c2")
	must(t, err, "GetShard c2")
	sh.Capacity, sh.Region = 7, "us-east"
	_, err = s.UpdateShard(ctx, sh)
	must(t, err, "UpdateShard")
	if got, _ := s.GetShard(ctx, "c2"); got.Capacity != 7 || got.Region != "us-east" {
		t.Fatalf("UpdateShard region/capacity: %+v", got)
	}
}

// testClusters covers hub clusters: CRUD with etags, and deletion refused
// while a shard belongs to the cluster.
func testClusters(t *testing.T, s Store) {
	ctx := t.Context()
	thumb := enrollment.Thumbprint([]byte("hub node 1"))
	etag, err := s.CreateCluster(ctx, &allocation.Cluster{ID: "hc1", Certificates: []string{thumb}, Created: t0, Updated: t0})
	must(t, err, "CreateCluster")
	_, err = s.CreateCluster(ctx, &allocation.Cluster{ID: "hc1"})
	wantKind(t, err, fault.AlreadyExists, "CreateCluster again")
	got, err := s.GetCluster(ctx, "hc1")
	must(t, err, "GetCluster")
	if got.Etag != etag || len(got.Certificates) != 1 || !got.Pins(thumb) || !got.Created.Equal(t0) {
		t.Fatalf("GetCluster = %+v", got)
	}
	_, err = s.GetCluster(ctx, "nope")
	wantKind(t, err, fault.NotFound, "GetCluster(unknown)")
	got.Certificates = append(got.Certificates, enrollment.Thumbprint([]byte("hub node 2")))
	etag2, err := s.UpdateCluster(ctx, got)
	must(t, err, "UpdateCluster")
	_, err = s.UpdateCluster(ctx, got) // stale etag
	wantKind(t, err, fault.Conflict, "UpdateCluster(stale)")
	_, err = s.CreateCluster(ctx, &allocation.Cluster{ID: "hc2"})
	must(t, err, "CreateCluster hc2")
	var ids []string
	for tok := ""; ; {
		page, next, err := s.ListClusters(ctx, tok, 1)
		must(t, err, "ListClusters")
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		if next == "" || len(ids) > 5 {
			break
		}
		tok = next
	}
	if len(ids) != 2 || ids[0] != "hc1" || ids[1] != "hc2" {
		t.Fatalf("ListClusters = %v", ids)
	}
	_, err = s.CreateShard(ctx, &allocation.Shard{ID: "owned", Hostname: "owned.example.com", Weight: 1, State: allocation.Active, Cluster: "hc1"})
	must(t, err, "CreateShard owned")
	if sh, _ := s.GetShard(ctx, "owned"); sh.Cluster != "hc1" {
		t.Fatalf("shard cluster = %q", sh.Cluster)
	}
	err = s.DeleteCluster(ctx, "hc1", "")
	wantKind(t, err, fault.FailedPrecondition, "DeleteCluster(owning a shard)")
	must(t, s.DeleteShard(ctx, "owned", ""), "DeleteShard")
	wantKind(t, s.DeleteCluster(ctx, "hc1", etag), fault.Conflict, "DeleteCluster(stale etag)")
	must(t, s.DeleteCluster(ctx, "hc1", etag2), "DeleteCluster")
	_, err = s.GetCluster(ctx, "hc1")
	wantKind(t, err, fault.NotFound, "GetCluster(deleted)")
}
