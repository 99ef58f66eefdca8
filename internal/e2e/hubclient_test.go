package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/hubclient"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestHubClientResyncsAfterRetention: a hub whose cursor fell behind the
// log's retention gets CURSOR_EXPIRED for that shard, takes a snapshot of
// it, and ends with exactly the shard's identities (the hubclient package
// over real mTLS, the embedded store).
func TestHubClientResyncsAfterRetention(t *testing.T) {
	e := start(t)
	f := e.newHubFleet()
	conn := e.dial(e.clientTLS(f.nodeA))
	defer conn.Close()
	replica, err := hubclient.OpenReplica(filepath.Join(t.TempDir(), "replica.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	snapshots := map[string]int{}
	client := &hubclient.Client{API: pb.NewHubAssignmentServiceClient(conn), Shards: []string{"sa1", "sa2"}, Replica: replica, SaveEvery: 20 * time.Millisecond,
		OnSnapshot: func(shard string, _ int, _ uint64) { mu.Lock(); snapshots[shard]++; mu.Unlock() }}
	// want is cluster-a's identities in the store: device ID → version.
	want := func() map[string]int64 {
		out := map[string]int64{}
		for _, sh := range []string{"sa1", "sa2"} {
			ids, _, err := e.store.ListIdentities(t.Context(), sh, "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				out[id.DeviceID] = id.Version
			}
		}
		return out
	}
	have := func() map[string]int64 {
		out := map[string]int64{}
		for _, id := range replica.Identities() {
			out[id.DeviceID] = id.Version
		}
		return out
	}
	follow := func() {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- client.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for fmt.Sprint(have()) != fmt.Sprint(want()) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %v, want %v", have(), want())
			}
			time.Sleep(20 * time.Millisecond) // poll until converged (deadline above)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	for i := range 20 {
		f.register(fmt.Sprintf("rs-%02d", i))
	}
	follow()
	if snapshots["sa1"] != 1 || snapshots["sa2"] != 1 {
		t.Fatalf("first start: snapshots %v, want one per shard", snapshots)
	}
	// While the hub is away, far more happens than the log keeps.
	e.store.(interface{ SetEventRetention(int) }).SetEventRetention(3)
	for i := 20; i < 60; i++ {
		f.register(fmt.Sprintf("rs-%02d", i))
	}
	if _, err := pb.NewRegistrationServiceClient(e.admin).DeleteRegistration(e.owner(), &pb.DeleteRegistrationRequest{RegistrationId: "rs-00"}); err != nil {
		t.Fatal(err)
	}
	follow()
	if snapshots["sa1"] != 2 || snapshots["sa2"] != 2 {
		t.Fatalf("after the log moved past the cursors: snapshots %v, want a second one per shard", snapshots)
	}
	if replica.Get("rs-00") != nil {
		t.Fatal("a device deleted while the hub was away is still in its replica")
	}
}

// TestHubClientFollowsClusterShards: clients that name no shards follow
// all of their cluster's shards: a shard handed to another cluster leaves
// one replica and enters the other, and a new shard is picked up; each
// replica ends with exactly its cluster's identities.
func TestHubClientFollowsClusterShards(t *testing.T) {
	e := start(t)
	f := e.newHubFleet()
	type follower struct {
		replica *hubclient.Replica
		dropped atomic.Int64
	}
	follow := func(node *pki.Issued, name string) *follower {
		fl := &follower{}
		var err error
		if fl.replica, err = hubclient.OpenReplica(filepath.Join(t.TempDir(), name+".json")); err != nil {
			t.Fatal(err)
		}
		conn := e.dial(e.clientTLS(node))
		t.Cleanup(func() { conn.Close() })
		client := &hubclient.Client{API: pb.NewHubAssignmentServiceClient(conn), Replica: fl.replica, SaveEvery: 20 * time.Millisecond,
			RediscoverEvery: 50 * time.Millisecond, OnDrop: func(string, int) { fl.dropped.Add(1) }}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- client.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
		})
		return fl
	}
	a, b := follow(f.nodeA, "a"), follow(f.nodeB, "b")
	hubs := pb.NewHubServiceClient(e.admin)
	// converge waits until each replica holds exactly its cluster's
	// identities (device ID → version) as the store has them.
	converge := func(what string) {
		t.Helper()
		want := map[string]map[string]int64{"cluster-a": {}, "cluster-b": {}}
		list, err := hubs.ListShards(e.owner(), &pb.ListShardsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range list.GetShards() {
			ids, _, err := e.store.ListIdentities(t.Context(), sh.GetId(), "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				want[sh.GetHubCluster()][id.DeviceID] = id.Version
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for name, fl := range map[string]*follower{"cluster-a": a, "cluster-b": b} {
			for {
				got := map[string]int64{}
				for _, id := range fl.replica.Identities() {
					got[id.DeviceID] = id.Version
				}
				if fmt.Sprint(got) == fmt.Sprint(want[name]) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s holds %d identities, want %d", what, name, len(got), len(want[name]))
				}
				time.Sleep(20 * time.Millisecond) // poll until converged (deadline above)
			}
		}
	}
	for i := range 30 {
		f.register(fmt.Sprintf("fo-%02d", i))
	}
	converge("at first")

	// sb1 (with its devices) goes from cluster-b to cluster-a.
	sb1, err := hubs.GetShard(e.owner(), &pb.GetShardRequest{Id: "sb1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hubs.UpdateShard(e.owner(), &pb.UpdateShardRequest{Shard: &pb.Shard{Id: "sb1", Etag: sb1.GetEtag(), HubCluster: "cluster-a"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"hub_cluster"}}}); err != nil {
		t.Fatal(err)
	}
	converge("after sb1 moved to cluster-a")
	if b.dropped.Load() != 1 || len(b.replica.Identities()) != 0 {
		t.Fatalf("cluster-b dropped %d shards and holds %d identities", b.dropped.Load(), len(b.replica.Identities()))
	}

	// A new shard for cluster-b; new devices land on it among others.
	if _, err := hubs.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{Id: "sb2", Hostname: "sb2.hubs.example.com", Weight: 1, HubCluster: "cluster-b"}}); err != nil {
		t.Fatal(err)
	}
	for i := 30; i < 60; i++ {
		f.register(fmt.Sprintf("fo-%02d", i))
	}
	converge("after sb2 joined cluster-b")
	if len(b.replica.Identities()) == 0 {
		t.Fatal("no device landed on sb2")
	}
}
