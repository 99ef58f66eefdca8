package server

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Limits of the assignment stream.
const (
	// maxWatchShards bounds the shards of one watch.
	maxWatchShards = 1000
	// eventPage is how many events of a shard are read (and so held in
	// memory) at once; the next page is read only after this one was sent,
	// and Send blocks on HTTP/2 flow control when the hub is slow.
	eventPage = 256
	// DefaultMaxHubStreams is how many watches one hub cluster may hold
	// open on one replica.
	DefaultMaxHubStreams = 16
	// DefaultHubPollInterval is how often an idle watch looks for new
	// events (other replicas write them too).
	DefaultHubPollInterval = 250 * time.Millisecond
	// hubRecheck is how often a watch checks again that the caller's
	// certificate is still pinned and its shards still the cluster's.
	hubRecheck = 30 * time.Second
)

// hubStreams counts open watches per cluster and ends them all at shutdown.
type hubStreams struct {
	mu       sync.Mutex
	open     map[string]int
	max      int
	poll     time.Duration
	stopping chan struct{}
	stopOnce sync.Once
}

func newHubStreams(max int, poll time.Duration) *hubStreams {
	if max <= 0 {
		max = DefaultMaxHubStreams
	}
	if poll <= 0 {
		poll = DefaultHubPollInterval
	}
	return &hubStreams{open: map[string]int{}, max: max, poll: poll, stopping: make(chan struct{})}
}

func (h *hubStreams) acquire(cluster string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open[cluster] >= h.max {
		return fault.New(fault.ResourceExhausted, fault.TooManyStreams, "hub cluster %q has %d assignment streams open on this replica, the most it may", cluster, h.max)
	}
	h.open[cluster]++
	return nil
}

func (h *hubStreams) release(cluster string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open[cluster]--; h.open[cluster] <= 0 {
		delete(h.open, cluster)
	}
}

// counts returns the open watches per cluster.
func (h *hubStreams) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.open)
}

// HubStreams returns the assignment streams (WatchAssignments) open on
// this server, per hub cluster.
func (s *Server) HubStreams() map[string]int { return s.hubs.counts() }

// stop ends every watch (the server is shutting down).
func (h *hubStreams) stop() { h.stopOnce.Do(func() { close(h.stopping) }) }

// hubAssignmentService implements HubAssignmentService: what hub nodes,
// authenticated by their pinned client certificates, read of their shards.
type hubAssignmentService struct {
	pb.UnsafeHubAssignmentServiceServer
	base

	hubs *hubStreams
}

// hubCluster authenticates a hub node: its TLS client certificate (whose
// key possession the handshake proved) must be within its validity period,
// name a cluster in its subject CN, and be pinned on that cluster. Every
// failure is the same UNAUTHENTICATED answer.
func (s *hubAssignmentService) hubCluster(ctx context.Context) (*allocation.Cluster, error) {
	denied := fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a pinned hub cluster client certificate is required")
	_, state := peerInfo(ctx)
	if state == nil || len(state.PeerCertificates) == 0 {
		return nil, denied
	}
	leaf := state.PeerCertificates[0]
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) || !clientUsage(leaf) {
		return nil, denied
	}
	c, err := s.admin.GetCluster(ctx, leaf.Subject.CommonName)
	if err != nil {
		if fault.KindOf(err) == fault.NotFound || fault.KindOf(err) == fault.InvalidArgument {
			return nil, denied
		}
		return nil, err
	}
	if !c.Pins(enrollment.Thumbprint(leaf.Raw)) {
		return nil, denied
	}
	return c, nil
}

// clientUsage reports whether a certificate may authenticate a TLS client
// (no extended key usage, or client auth among them).
func clientUsage(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// LookupIdentity implements HubAssignmentService.
func (s *hubAssignmentService) LookupIdentity(ctx context.Context, req *pb.LookupIdentityRequest) (*pb.DeviceIdentity, error) {
	c, err := s.hubCluster(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := enrollment.ValidateID("device_id", req.GetDeviceId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	id, err := s.admin.GetIdentity(ctx, req.GetDeviceId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	sh, err := s.admin.GetShard(ctx, id.Shard)
	if err != nil && fault.KindOf(err) != fault.NotFound {
		return nil, s.fail(ctx, err)
	}
	if sh == nil || sh.Cluster != c.ID {
		return nil, s.fail(ctx, fault.New(fault.PermissionDenied, fault.PermissionDeniedR, "device %q is not on a shard of hub cluster %q", req.GetDeviceId(), c.ID))
	}
	out := identityToPB(id)
	if out.Enabled {
		// A disabled enrollment disables its devices, whatever their
		// identities say.
		reg, err := s.admin.GetRegistration(ctx, id.RegistrationID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if out.Enabled, err = s.admin.EnrollmentEnabled(ctx, reg); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	return out, nil
}

func identityToPB(id *registry.Identity) *pb.DeviceIdentity {
	out := &pb.DeviceIdentity{DeviceId: id.DeviceID, RegistrationId: id.RegistrationID, Shard: id.Shard, Enabled: id.Status == registry.IdentityEnabled,
		X509Thumbprint: id.Credential.X509Thumbprint, CaThumbprint: id.Credential.CAThumbprint, TpmEkHash: id.Credential.TPMEKHash,
		TpmBoundKey: id.Credential.TPMBoundKey, SymmetricKeyHash: id.Credential.SymmetricKeyHash, InitialTwinJson: string(id.InitialTwin),
		IotEdge: id.IoTEdge, Version: id.Version, UpdateTime: ts(id.Updated), IssuedCertificate: issuedToPB(id.Credential.Issued)}
	if id.Status == registry.IdentityDisabled {
		out.DisabledReason = id.DisabledReason
	}
	switch id.Credential.Type {
	case registry.X509:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_X509
	case registry.TPM:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_TPM
	case registry.SymmetricKey:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY
	}
	return out
}

// ownShard checks that the shard exists and belongs to the cluster. An
// unknown shard is PermissionDenied too, so a hub learns nothing of other
// clusters' shards.
func (s *hubAssignmentService) ownShard(ctx context.Context, c *allocation.Cluster, shard string) error {
	if err := enrollment.ValidateID("shard", shard); err != nil {
		return err
	}
	sh, err := s.admin.GetShard(ctx, shard)
	if err != nil && fault.KindOf(err) != fault.NotFound {
		return err
	}
	if sh == nil || sh.Cluster != c.ID {
		return fault.New(fault.PermissionDenied, fault.PermissionDeniedR, "shard %q is not a shard of hub cluster %q", shard, c.ID)
	}
	return nil
}

func eventKindToPB(k registry.EventKind) pb.IdentityEventKind {
	switch k {
	case registry.EventCreated:
		return pb.IdentityEventKind_IDENTITY_EVENT_KIND_CREATED
	case registry.EventUpdated:
		return pb.IdentityEventKind_IDENTITY_EVENT_KIND_UPDATED
	case registry.EventDisabled:
		return pb.IdentityEventKind_IDENTITY_EVENT_KIND_DISABLED
	case registry.EventEnabled:
		return pb.IdentityEventKind_IDENTITY_EVENT_KIND_ENABLED
	case registry.EventDeleted:
		return pb.IdentityEventKind_IDENTITY_EVENT_KIND_DELETED
	}
	return pb.IdentityEventKind_IDENTITY_EVENT_KIND_UNSPECIFIED
}

// shardCursorError names the shard whose cursor failed, in the error's
// metadata, so a hub knows which shard to resync.
func shardCursorError(shard string, err error) error {
	if fe, ok := fault.As(err); ok && fe.Reason == fault.CursorExpired {
		out := *fe
		out.Metadata = map[string]string{"shard": shard}
		return &out
	}
	return err
}

// WatchAssignments implements HubAssignmentService.
func (s *hubAssignmentService) WatchAssignments(req *pb.WatchAssignmentsRequest, stream grpc.ServerStreamingServer[pb.IdentityEvent]) error {
	ctx := stream.Context()
	c, err := s.hubCluster(ctx)
	if err != nil {
		return s.fail(ctx, err)
	}
	if len(req.GetShards()) == 0 || len(req.GetShards()) > maxWatchShards {
		return s.fail(ctx, fault.Invalidf("shards: name 1 to %d shards", maxWatchShards))
	}
	type position struct {
		shard  string
		cursor uint64
	}
	var pos []*position
	seen := map[string]bool{}
	for i, sc := range req.GetShards() {
		if seen[sc.GetShard()] {
			return s.fail(ctx, fault.Invalidf("shards[%d]: shard %q is named twice", i, sc.GetShard()))
		}
		seen[sc.GetShard()] = true
		if err := s.ownShard(ctx, c, sc.GetShard()); err != nil {
			return s.fail(ctx, err)
		}
		p := &position{shard: sc.GetShard(), cursor: sc.GetCursor()}
		if sc.GetFromAcknowledged() {
			if sc.GetCursor() != 0 {
				return s.fail(ctx, fault.Invalidf("shards[%d]: give a cursor or from_acknowledged, not both", i))
			}
			if p.cursor, err = s.admin.AckedEvent(ctx, c.ID, p.shard); err != nil {
				return s.fail(ctx, err)
			}
		}
		pos = append(pos, p)
	}
	// Every cursor is checked before anything is sent, so a hub learns at
	// once which shards to resync.
	for _, p := range pos {
		if _, err := s.admin.ReadEvents(ctx, p.shard, p.cursor, 0); err != nil {
			return s.fail(ctx, shardCursorError(p.shard, err))
		}
	}
	if err := s.hubs.acquire(c.ID); err != nil {
		return s.fail(ctx, err)
	}
	defer s.hubs.release(c.ID)

	names := make([]string, len(pos))
	for i, p := range pos {
		names[i] = p.shard
	}
	// A store that says when this process wrote wakes the stream at once;
	// writes of other replicas are found by polling.
	recheck := time.Now().Add(hubRecheck)
	for {
		var changed <-chan struct{}
		changed = s.admin.Changed() // before reading, so no write is missed; nil: poll only
		// One read of every shard's head; only shards that moved are read.
		heads, err := s.admin.LogHeads(ctx, names)
		if err != nil {
			return s.fail(ctx, err)
		}
		sent := false
		for i, p := range pos {
			if heads[i] == p.cursor {
				continue // nothing new (a head behind the cursor is read: CURSOR_EXPIRED)
			}
			evs, err := s.admin.ReadEvents(ctx, p.shard, p.cursor, eventPage)
			if err != nil {
				return s.fail(ctx, shardCursorError(p.shard, err))
			}
			for _, ev := range evs {
				if err := stream.Send(&pb.IdentityEvent{Shard: ev.Shard, Cursor: ev.Seq, Kind: eventKindToPB(ev.Kind),
					Identity: identityToPB(ev.Identity), EventTime: ts(ev.Time)}); err != nil {
					return err
				}
				p.cursor = ev.Seq
			}
			sent = sent || len(evs) > 0
		}
		if time.Now().After(recheck) {
			// The cluster's certificate may have been unpinned, or a shard
			// given to another cluster, since the stream began.
			if c, err = s.hubCluster(ctx); err != nil {
				return s.fail(ctx, err)
			}
			for _, p := range pos {
				if err := s.ownShard(ctx, c, p.shard); err != nil {
					return s.fail(ctx, err)
				}
			}
			recheck = time.Now().Add(hubRecheck)
		}
		if sent {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.hubs.stopping:
			return s.fail(ctx, fault.New(fault.Unavailable, fault.StoreUnavailable, "the server is shutting down; reconnect"))
		case <-changed:
		case <-time.After(s.hubs.poll):
		}
	}
}

// AckAssignments implements HubAssignmentService.
func (s *hubAssignmentService) AckAssignments(ctx context.Context, req *pb.AckAssignmentsRequest) (*pb.AckAssignmentsResponse, error) {
	c, err := s.hubCluster(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.ownShard(ctx, c, req.GetShard()); err != nil {
		return nil, s.fail(ctx, err)
	}
	head, err := s.admin.LogHead(ctx, req.GetShard())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetCursor() > head {
		return nil, s.fail(ctx, fault.Invalidf("cursor: %d is beyond the newest event of shard %q (%d)", req.GetCursor(), req.GetShard(), head))
	}
	if err := s.admin.AckEvents(ctx, c.ID, req.GetShard(), req.GetCursor()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.AckAssignmentsResponse{}, nil
}

// ListShardIdentities implements HubAssignmentService. Its page token is
// the snapshot's cursor and the store's own token.
func (s *hubAssignmentService) ListShardIdentities(ctx context.Context, req *pb.ListShardIdentitiesRequest) (*pb.ListShardIdentitiesResponse, error) {
	c, err := s.hubCluster(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.ownShard(ctx, c, req.GetShard()); err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var cursor uint64
	inner := ""
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		cur, rest, ok := strings.Cut(string(raw), ".")
		if err == nil && ok {
			cursor, err = strconv.ParseUint(cur, 10, 64)
		}
		if err != nil || !ok {
			return nil, s.fail(ctx, fault.Invalidf("page_token is not valid"))
		}
		inner = rest
	} else if cursor, err = s.admin.LogHead(ctx, req.GetShard()); err != nil {
		// Read before the first page: events after it are replayed, so
		// nothing that changes during the walk is missed.
		return nil, s.fail(ctx, err)
	}
	ids, next, err := s.admin.ListIdentities(ctx, req.GetShard(), inner, n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListShardIdentitiesResponse{Cursor: cursor}
	for _, id := range ids {
		out.Identities = append(out.Identities, identityToPB(id))
	}
	if next != "" {
		out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(cursor, 10) + "." + next))
	}
	return out, nil
}

// ListClusterShards implements HubAssignmentService.
func (s *hubAssignmentService) ListClusterShards(ctx context.Context, _ *pb.ListClusterShardsRequest) (*pb.ListClusterShardsResponse, error) {
	c, err := s.hubCluster(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	all, err := s.admin.AllShards(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListClusterShardsResponse{}
	for _, sh := range all {
		if sh.Cluster == c.ID {
			out.Shards = append(out.Shards, sh.ID)
		}
	}
	sort.Strings(out.Shards)
	return out, nil
}
