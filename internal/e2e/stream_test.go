package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// hubFleet is two hub clusters with pinned node certificates: cluster-a
// owns shards sa1 and sa2, cluster-b owns sb1; and a symmetric-key group
// "fleet" hashed over all three.
type hubFleet struct {
	e              *env
	nodeA, nodeB   *pki.Issued
	groupKey       []byte
	devs           *dpsDevices
	shardsOf       map[string][]string
	clusterOfShard map[string]string
}

func (e *env) newHubFleet() *hubFleet {
	t := e.t
	t.Helper()
	now := time.Now()
	f := &hubFleet{e: e, nodeA: hubCert(t, "cluster-a", now.Add(-time.Minute), time.Hour), nodeB: hubCert(t, "cluster-b", now.Add(-time.Minute), time.Hour),
		shardsOf: map[string][]string{"cluster-a": {"sa1", "sa2"}, "cluster-b": {"sb1"}}, clusterOfShard: map[string]string{}}
	hubs := pb.NewHubServiceClient(e.admin)
	for cluster, node := range map[string]*pki.Issued{"cluster-a": f.nodeA, "cluster-b": f.nodeB} {
		if _, err := hubs.CreateHubCluster(e.owner(), &pb.CreateHubClusterRequest{HubCluster: &pb.HubCluster{Id: cluster, CertificatePems: []string{string(pki.CertPEM(node.Cert))}}}); err != nil {
			t.Fatal(err)
		}
		for _, sh := range f.shardsOf[cluster] {
			f.clusterOfShard[sh] = cluster
			if _, err := hubs.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{Id: sh, Hostname: sh + ".hubs.example.com", Weight: 1, HubCluster: cluster}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	g, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
		Id: "fleet", AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY}})
	if err != nil {
		t.Fatal(err)
	}
	f.groupKey = g.GetSymmetricKey().GetPrimaryKey()
	f.devs = e.dpsDevices()
	return f
}

// register registers a group device and returns its shard.
func (f *hubFleet) register(regID string) string {
	f.e.t.Helper()
	code, op := f.devs.register(regID, symkey.DeriveDeviceKey(f.groupKey, regID))
	if code != 200 || op.Status != "assigned" {
		f.e.t.Fatalf("register %s: %d %s %s", regID, code, op.Status, op.RegistrationState.ErrorMessage)
	}
	return strings.TrimSuffix(op.RegistrationState.AssignedHub, ".hubs.example.com")
}

func (f *hubFleet) api(node *pki.Issued) pb.HubAssignmentServiceClient {
	conn := f.e.dial(f.e.clientTLS(node))
	f.e.t.Cleanup(func() { conn.Close() })
	return pb.NewHubAssignmentServiceClient(conn)
}

// setGroupEnabled disables or enables the fleet group.
func (f *hubFleet) setGroupEnabled(enabled bool) {
	f.e.t.Helper()
	enr := pb.NewEnrollmentServiceClient(f.e.admin)
	g, err := enr.GetEnrollmentGroup(f.e.owner(), &pb.GetEnrollmentGroupRequest{Id: "fleet"})
	if err != nil {
		f.e.t.Fatal(err)
	}
	st := pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED
	if !enabled {
		st = pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED
	}
	if _, err := enr.UpdateEnrollmentGroup(f.e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "fleet", Etag: g.GetEtag(),
		ProvisioningStatus: st}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}}); err != nil {
		f.e.t.Fatal(err)
	}
}

// watch opens a stream and delivers its events on a channel; the
// channel's last value before it closes carries the stream's error.
type watched struct {
	ev  *pb.IdentityEvent
	err error
}

func watch(t *testing.T, api pb.HubAssignmentServiceClient, req *pb.WatchAssignmentsRequest) (<-chan watched, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan watched, 10000)
	stream, err := api.WatchAssignments(ctx, req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(out)
		for {
			ev, err := stream.Recv()
			out <- watched{ev, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(cancel)
	return out, cancel
}

// next takes n events from a watch (failing on an error or after 20 s).
func next(t *testing.T, ch <-chan watched, n int) []*pb.IdentityEvent {
	t.Helper()
	var out []*pb.IdentityEvent
	deadline := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case w, ok := <-ch:
			if !ok || w.err != nil {
				t.Fatalf("stream ended after %d of %d events: %v", len(out), n, w.err)
			}
			out = append(out, w.ev)
		case <-deadline:
			t.Fatalf("%d of %d events after 20 s", len(out), n)
		}
	}
	return out
}

// quiet checks that a watch delivers nothing more for a moment (the
// server polls its log every 20 ms in tests).
func quiet(t *testing.T, ch <-chan watched) {
	t.Helper()
	select {
	case w := <-ch:
		t.Fatalf("unexpected event or error: %v %v", w.ev, w.err)
	case <-time.After(300 * time.Millisecond):
	}
}

// streamErr waits for a watch's error.
func streamErr(t *testing.T, ch <-chan watched) error {
	t.Helper()
	select {
	case w := <-ch:
		if w.err == nil {
			t.Fatalf("got event %v, want an error", w.ev)
		}
		return w.err
	case <-time.After(20 * time.Second):
		t.Fatal("no error after 20 s")
	}
	return nil
}

func kindName(k pb.IdentityEventKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "IDENTITY_EVENT_KIND_"))
}

// TestAssignmentStream follows cluster-a's shards through creations, an
// acknowledged reconnect, a group disable and re-enable, a deletion, and a
// move off a disabled shard (deleted there, created on the new shard), and
// checks what another cluster or no certificate gets.
func TestAssignmentStream(t *testing.T) {
	e := start(t)
	f := e.newHubFleet()
	apiA, apiB := f.api(f.nodeA), f.api(f.nodeB)
	onShard := map[string][]string{}
	for i := range 30 {
		id := fmt.Sprintf("st-%02d", i)
		sh := f.register(id)
		onShard[sh] = append(onShard[sh], id)
	}
	if len(onShard["sa1"]) == 0 || len(onShard["sa2"]) == 0 || len(onShard["sb1"]) == 0 {
		t.Fatalf("30 devices hashed unevenly: %v", onShard)
	}
	nA := len(onShard["sa1"]) + len(onShard["sa2"])

	// From the start: cluster-a gets its shards' creations, each shard's in
	// order from cursor 1, and nothing of sb1.
	ch, stop := watch(t, apiA, &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa1"}, {Shard: "sa2"}}})
	evs := next(t, ch, nA)
	quiet(t, ch)
	stop()
	cursor := map[string]uint64{}
	got := map[string]bool{}
	for _, ev := range evs {
		if ev.GetCursor() != cursor[ev.GetShard()]+1 || ev.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_CREATED ||
			ev.GetIdentity().GetShard() != ev.GetShard() || !ev.GetIdentity().GetEnabled() || ev.GetIdentity().GetSymmetricKeyHash() == "" {
			t.Fatalf("event %v after cursor %d", ev, cursor[ev.GetShard()])
		}
		cursor[ev.GetShard()] = ev.GetCursor()
		got[ev.GetIdentity().GetDeviceId()] = true
	}
	for _, sh := range []string{"sa1", "sa2"} {
		for _, id := range onShard[sh] {
			if !got[id] {
				t.Fatalf("no event for %s on %s", id, sh)
			}
		}
	}

	// Acknowledge sa1 only; a watch from the acknowledged cursors replays
	// sa2 and nothing of sa1.
	if _, err := apiA.AckAssignments(t.Context(), &pb.AckAssignmentsRequest{Shard: "sa1", Cursor: cursor["sa1"]}); err != nil {
		t.Fatal(err)
	}
	// The operator sees each shard's log head and what its cluster has
	// acknowledged (the lag).
	shards, err := pb.NewHubServiceClient(e.admin).ListShards(e.owner(), &pb.ListShardsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	lag := map[string]string{}
	for _, sh := range shards.GetShards() {
		lag[sh.GetId()] = fmt.Sprintf("%d/%d", sh.GetAssignmentAcknowledged(), sh.GetAssignmentLogHead())
	}
	if want := fmt.Sprintf("map[sa1:%d/%d sa2:0/%d sb1:0/%d]", cursor["sa1"], cursor["sa1"], cursor["sa2"], len(onShard["sb1"])); fmt.Sprint(lag) != want {
		t.Fatalf("shards' acknowledged/head: %v, want %s", lag, want)
	}
	ch, stop = watch(t, apiA, &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa1", FromAcknowledged: true}, {Shard: "sa2", FromAcknowledged: true}}})
	replay := next(t, ch, len(onShard["sa2"]))
	for _, ev := range replay {
		if ev.GetShard() != "sa2" {
			t.Fatalf("replayed %v past sa1's acknowledged cursor", ev)
		}
	}
	quiet(t, ch)

	// Disabling the group disables its devices' identities: one DISABLED
	// event per device, on its shard; enabling it again, one ENABLED.
	for _, enabled := range []bool{false, true} {
		f.setGroupEnabled(enabled)
		evs := next(t, ch, nA)
		want := pb.IdentityEventKind_IDENTITY_EVENT_KIND_DISABLED
		if enabled {
			want = pb.IdentityEventKind_IDENTITY_EVENT_KIND_ENABLED
		}
		for _, ev := range evs {
			if ev.GetKind() != want || ev.GetIdentity().GetEnabled() != enabled {
				t.Fatalf("after setting the group enabled=%v: %s %v", enabled, kindName(ev.GetKind()), ev.GetIdentity())
			}
		}
		quiet(t, ch)
		if !enabled {
			if id, err := apiA.LookupIdentity(t.Context(), &pb.LookupIdentityRequest{DeviceId: onShard["sa1"][0]}); err != nil || id.GetEnabled() {
				t.Fatalf("lookup of a disabled device: %v %v", id, err)
			}
		}
	}

	// Deleting a registration is a DELETED event with a newer version.
	gone := onShard["sa1"][0]
	before, err := e.store.GetIdentity(t.Context(), gone)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewRegistrationServiceClient(e.admin).DeleteRegistration(e.owner(), &pb.DeleteRegistrationRequest{RegistrationId: gone}); err != nil {
		t.Fatal(err)
	}
	del := next(t, ch, 1)[0]
	if del.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_DELETED || del.GetIdentity().GetDeviceId() != gone || del.GetIdentity().GetVersion() <= before.Version {
		t.Fatalf("deletion event: %v (version before %d)", del, before.Version)
	}
	// Registering again is a creation whose version is newer still.
	if sh := f.register(gone); sh != "sa1" {
		t.Fatalf("re-registered on %s", sh)
	}
	re := next(t, ch, 1)[0]
	if re.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_CREATED || re.GetIdentity().GetVersion() <= del.GetIdentity().GetVersion() {
		t.Fatalf("re-creation event: %v after deletion version %d", re, del.GetIdentity().GetVersion())
	}

	// A move: sa2 is disabled, so its devices move when they register
	// again: DELETED on sa2, CREATED where they land (on sa1 in view of
	// this stream, or on sb1, which this stream never sees).
	e.setShardState("sa2", pb.ShardState_SHARD_STATE_DISABLED)
	mover := onShard["sa2"][0]
	to := f.register(mover)
	moved := 1
	if to == "sa1" {
		moved = 2
	}
	// Order holds per shard only, so the two may come either way round.
	byShard := map[string]*pb.IdentityEvent{}
	for _, ev := range next(t, ch, moved) {
		byShard[ev.GetShard()] = ev
	}
	del2 := byShard["sa2"]
	if del2 == nil || del2.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_DELETED || del2.GetIdentity().GetDeviceId() != mover {
		t.Fatalf("move: %v", byShard)
	}
	if cr := byShard["sa1"]; moved == 2 && (cr == nil || cr.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_CREATED || cr.GetIdentity().GetVersion() != del2.GetIdentity().GetVersion()) {
		t.Fatalf("move: %v", byShard)
	}
	quiet(t, ch)
	stop()

	// The snapshot of a shard matches the store, and its cursor is the
	// log's head.
	var snap []string
	var snapCursor uint64
	for token := ""; ; {
		page, err := apiA.ListShardIdentities(t.Context(), &pb.ListShardIdentitiesRequest{Shard: "sa1", PageSize: 4, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range page.GetIdentities() {
			snap = append(snap, id.GetDeviceId())
		}
		snapCursor = page.GetCursor()
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	regs, _, err := e.store.ListRegistrations(t.Context(), registry.Filter{Shard: "sa1"}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := e.store.LogHead(t.Context(), "sa1")
	if len(snap) != len(regs) || snapCursor != head {
		t.Fatalf("snapshot of sa1: %d identities at cursor %d; the store has %d at head %d", len(snap), snapCursor, len(regs), head)
	}

	// A cluster lists its own shards; without a certificate, nothing.
	if got, err := apiB.ListClusterShards(t.Context(), &pb.ListClusterShardsRequest{}); err != nil || fmt.Sprint(got.GetShards()) != "[sb1]" {
		t.Fatalf("cluster-b's shards: %v %v", got, err)
	}
	if _, err := f.api(nil).ListClusterShards(t.Context(), &pb.ListClusterShardsRequest{}); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("shards without a certificate: %v", err)
	}

	// Cluster-b, no certificate, and bad requests.
	refused := func(name string, api pb.HubAssignmentServiceClient, req *pb.WatchAssignmentsRequest, code codes.Code) {
		t.Helper()
		ch, _ := watch(t, api, req)
		if err := streamErr(t, ch); status.Code(err) != code {
			t.Errorf("%s: %v, want %v", name, err, code)
		}
	}
	one := func(sh string) *pb.WatchAssignmentsRequest {
		return &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: sh}}}
	}
	refused("cluster-b watching sa1", apiB, one("sa1"), codes.PermissionDenied)
	refused("cluster-b watching its shard and sa1", apiB, &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sb1"}, {Shard: "sa1"}}}, codes.PermissionDenied)
	refused("unknown shard", apiA, one("nowhere"), codes.PermissionDenied)
	refused("no certificate", f.api(nil), one("sa1"), codes.Unauthenticated)
	refused("no shards", apiA, &pb.WatchAssignmentsRequest{}, codes.InvalidArgument)
	refused("a shard twice", apiA, &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa1"}, {Shard: "sa1"}}}, codes.InvalidArgument)
	refused("malformed shard", apiA, one("a b"), codes.InvalidArgument)
	refused("cursor and from_acknowledged", apiA, &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa1", Cursor: 1, FromAcknowledged: true}}}, codes.InvalidArgument)
	many := &pb.WatchAssignmentsRequest{}
	for i := range 1001 {
		many.Shards = append(many.Shards, &pb.ShardCursor{Shard: fmt.Sprintf("s%d", i)})
	}
	refused("1001 shards", apiA, many, codes.InvalidArgument)
	// A cursor the log never reached: CURSOR_EXPIRED, naming the shard.
	ch, _ = watch(t, apiA, &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa2"}, {Shard: "sa1", Cursor: head + 1}}})
	if err := streamErr(t, ch); status.Code(err) != codes.FailedPrecondition || reasonOf(t, err) != "CURSOR_EXPIRED" || errorMetadata(err)["shard"] != "sa1" {
		t.Errorf("cursor beyond the log: %v (metadata %v)", err, errorMetadata(err))
	}
	for name, c := range map[string]struct {
		api  pb.HubAssignmentServiceClient
		req  *pb.AckAssignmentsRequest
		code codes.Code
	}{
		"beyond the head":      {apiA, &pb.AckAssignmentsRequest{Shard: "sa1", Cursor: head + 1}, codes.InvalidArgument},
		"another's shard":      {apiB, &pb.AckAssignmentsRequest{Shard: "sa1", Cursor: 1}, codes.PermissionDenied},
		"no shard":             {apiA, &pb.AckAssignmentsRequest{}, codes.InvalidArgument},
		"without certificate":  {f.api(nil), &pb.AckAssignmentsRequest{Shard: "sa1", Cursor: 1}, codes.Unauthenticated},
		"another's node, sb1 ": {apiA, &pb.AckAssignmentsRequest{Shard: "sb1", Cursor: 1}, codes.PermissionDenied},
	} {
		if _, err := c.api.AckAssignments(t.Context(), c.req); status.Code(err) != c.code {
			t.Errorf("ack %s: %v, want %v", name, err, c.code)
		}
	}
	if acked, _ := e.store.AckedEvent(t.Context(), "cluster-a", "sa1"); acked != cursor["sa1"] {
		t.Errorf("a refused ack moved the acknowledged cursor to %d", acked)
	}
	for name, c := range map[string]struct {
		api  pb.HubAssignmentServiceClient
		req  *pb.ListShardIdentitiesRequest
		code codes.Code
	}{
		"another's shard":     {apiB, &pb.ListShardIdentitiesRequest{Shard: "sa1"}, codes.PermissionDenied},
		"bad token":           {apiA, &pb.ListShardIdentitiesRequest{Shard: "sa1", PageToken: "!!"}, codes.InvalidArgument},
		"token without dot":   {apiA, &pb.ListShardIdentitiesRequest{Shard: "sa1", PageToken: "MTI"}, codes.InvalidArgument},
		"negative page size":  {apiA, &pb.ListShardIdentitiesRequest{Shard: "sa1", PageSize: -1}, codes.InvalidArgument},
		"without certificate": {f.api(nil), &pb.ListShardIdentitiesRequest{Shard: "sa1"}, codes.Unauthenticated},
	} {
		if _, err := c.api.ListShardIdentities(t.Context(), c.req); status.Code(err) != c.code {
			t.Errorf("list %s: %v, want %v", name, err, c.code)
		}
	}
}

// errorMetadata is an error's ErrorInfo metadata.
func errorMetadata(err error) map[string]string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetMetadata()
		}
	}
	return nil
}

// countingStore counts the events the server reads from the log.
type countingStore struct {
	admin.Store
	read atomic.Int64
}

func (c *countingStore) ReadEvents(ctx context.Context, shard string, after uint64, limit int) ([]*registry.Event, error) {
	evs, err := c.Store.ReadEvents(ctx, shard, after, limit)
	c.read.Add(int64(len(evs)))
	return evs, err
}

// TestAssignmentStreamFlowControl: a hub that stops reading stops the
// server reading its log after at most a page beyond what HTTP/2 flow
// control lets through; when it reads again it gets everything. Streams
// per cluster are capped.
func TestAssignmentStreamFlowControl(t *testing.T) {
	var counting *countingStore
	e := startWith(t, options{maxHubStreams: 2, serverStore: func(s admin.Store) admin.Store {
		counting = &countingStore{Store: s}
		return counting
	}})
	f := e.newHubFleet()
	const n = 3000
	twin := []byte(`{"tags":{"pad":"` + strings.Repeat("x", 200) + `"}}`)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id := fmt.Sprintf("fc-%04d", i)
				now := time.Now()
				reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: "sa1", AssignedHub: "sa1.hubs.example.com", Status: registry.Assigned,
					Substatus: registry.InitialAssignment, AttestationType: registry.SymmetricKey, Created: now, Updated: now}
				ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: "sa1", Status: registry.IdentityEnabled, InitialTwin: twin,
					Credential: registry.Credential{Type: registry.SymmetricKey}, Version: registry.NextVersion(0, now), Created: now, Updated: now}
				if _, err := e.store.CreateRegistration(context.Background(), reg, ident); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()

	conn, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(e.clientTLS(f.nodeA))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := pb.NewHubAssignmentServiceClient(conn).WatchAssignments(t.Context(), &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the stream is open
		t.Fatal(err)
	}
	// Wait until the server stops reading (it blocks in Send), then check
	// how far it got. "Stopped" can only be seen as "no change for a
	// while"; a loaded machine makes the window look stable early, which
	// can only lower the count checked below, never fail the test.
	last := int64(-1)
	for counting.read.Load() != last {
		last = counting.read.Load()
		time.Sleep(300 * time.Millisecond) // the stability window
	}
	if last >= n {
		t.Fatalf("the server read all %d events for a hub that reads none", last)
	}
	t.Logf("a stalled hub: the server read %d of %d events (~%d bytes each) and stopped", last, n, 300+len(twin))

	// The cap: this cluster may hold two streams; a third is refused
	// until one closes.
	second, cancel2 := watch(t, f.api(f.nodeA), &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa2"}}})
	quiet(t, second)
	third, _ := watch(t, f.api(f.nodeA), &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa2"}}})
	if err := streamErr(t, third); status.Code(err) != codes.ResourceExhausted || reasonOf(t, err) != "TOO_MANY_STREAMS" {
		t.Fatalf("third stream: %v", err)
	}
	other, _ := watch(t, f.api(f.nodeB), &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sb1"}}})
	quiet(t, other) // another cluster's cap is its own
	cancel2()

	// Reading again delivers every event, in order.
	drain := time.Now()
	for i := 2; i <= n; i++ {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetCursor() != uint64(i) {
			t.Fatalf("event %d has cursor %d", i, ev.GetCursor())
		}
	}
	t.Logf("drained %d events in %v (%.0f events/s, measured, not asserted)", n-1, time.Since(drain).Round(time.Millisecond), float64(n-1)/time.Since(drain).Seconds())
	// Once a stream closes, the cluster may open another (the release
	// follows the closed stream asynchronously, so retry briefly).
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch, cancel := watch(t, f.api(f.nodeA), &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa2"}}})
		select {
		case w := <-ch:
			if status.Code(w.err) != codes.ResourceExhausted || time.Now().After(deadline) {
				t.Fatalf("after one stream closed: %v %v", w.ev, w.err)
			}
			cancel()
			time.Sleep(50 * time.Millisecond) // pace the retries (until the deadline above)
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
	if err := stream.CloseSend(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

// TestAssignmentStreamWakesOnWrites: a registration on the replica that
// holds a hub's stream reaches the hub without waiting for the stream's
// poll (here an hour), for both stores' change notices.
func TestAssignmentStreamWakesOnWrites(t *testing.T) {
	for name, opt := range map[string]options{
		"embedded": {hubPoll: time.Hour},
		"redis":    {hubPoll: time.Hour, store: openRedis(t, redistest.Start(t, redistest.Options{}).Addr())},
	} {
		t.Run(name, func(t *testing.T) {
			e := startWith(t, opt)
			f := e.newHubFleet()
			ch, _ := watch(t, f.api(f.nodeA), &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "sa1"}, {Shard: "sa2"}}})
			for i := 0; ; i++ {
				if sh := f.register(fmt.Sprintf("wk-%02d", i)); sh != "sb1" {
					break
				}
			}
			if ev := next(t, ch, 1)[0]; ev.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_CREATED {
				t.Fatalf("event: %v", ev)
			}
		})
	}
}
