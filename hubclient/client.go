package hubclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Client keeps a Replica in step with Zerotouch's assignment stream.
type Client struct {
	// API is the HubAssignmentService, on a connection that presents the
	// hub cluster's client certificate.
	API pb.HubAssignmentServiceClient
	// Shards are the cluster's shards to follow. Empty follows all of the
	// cluster's shards (ListClusterShards), checked again every
	// RediscoverEvery (default 30 s): a shard given to the cluster is
	// snapshotted and followed, a shard taken away is dropped from the
	// replica (OnDrop).
	Shards          []string
	RediscoverEvery time.Duration
	OnDrop          func(shard string, identities int)
	Replica         *Replica
	// OnEvent, if set, is called after each event is applied (changed
	// reports whether it changed the replica), and OnSnapshot after a
	// shard was reset from a snapshot.
	OnEvent    func(ev *pb.IdentityEvent, changed bool)
	OnSnapshot func(shard string, identities int, cursor uint64)
	// SaveEvery bounds how long applied events wait before the replica is
	// saved and acknowledged (default 500 ms); SaveAfter saves sooner once
	// this many events are waiting (default 1000).
	SaveEvery time.Duration
	SaveAfter int
	Log       *slog.Logger
}

// ErrFatal wraps errors that retrying cannot cure (the certificate is not
// accepted, a shard is not the cluster's, a request is malformed).
var ErrFatal = errors.New("hubclient: giving up")

// errShardsChanged ends a session whose cluster's shards changed.
var errShardsChanged = errors.New("hubclient: the cluster's shards changed")

func (c *Client) discover() bool { return len(c.Shards) == 0 }

func (c *Client) rediscoverEvery() time.Duration {
	if c.RediscoverEvery > 0 {
		return c.RediscoverEvery
	}
	return 30 * time.Second
}

// clusterShards asks which shards the cluster owns.
func (c *Client) clusterShards(ctx context.Context) ([]string, error) {
	resp, err := c.API.ListClusterShards(ctx, &pb.ListClusterShardsRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetShards(), nil
}

// Run follows the shards until ctx is done (then it saves and returns
// nil) or a fatal error. Transient errors (the server restarting, network
// loss) are retried with backoff.
func (c *Client) Run(ctx context.Context) error {
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	backoff := 100 * time.Millisecond
	for {
		progressed, err := c.session(ctx)
		if ctx.Err() != nil {
			return c.Replica.Save()
		}
		if shard, ok := expiredShard(err); ok {
			log.Warn("cursor expired: resyncing the shard from a snapshot", "shard", shard)
			c.Replica.Forget(shard)
			continue
		}
		if errors.Is(err, errShardsChanged) {
			backoff = 100 * time.Millisecond
			continue
		}
		if errors.Is(err, ErrFatal) {
			return err
		}
		switch status.Code(err) {
		case codes.PermissionDenied:
			if !c.discover() { // a shard named in the configuration is not the cluster's
				return fmt.Errorf("%w: %v", ErrFatal, err)
			}
			// A shard was taken from the cluster: the next session
			// rediscovers (after a backoff, in case it keeps happening).
		case codes.Unauthenticated, codes.InvalidArgument, codes.NotFound:
			return fmt.Errorf("%w: %v", ErrFatal, err)
		}
		if progressed {
			backoff = 100 * time.Millisecond
		}
		log.Warn("assignment stream interrupted; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return c.Replica.Save()
		case <-time.After(backoff + rand.N(backoff/2)):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// expiredShard reports the shard whose cursor the server no longer
// reaches.
func expiredShard(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return "", false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == "CURSOR_EXPIRED" {
			return info.GetMetadata()["shard"], info.GetMetadata()["shard"] != ""
		}
	}
	return "", false
}

// snapshot resets a shard from ListShardIdentities.
func (c *Client) snapshot(ctx context.Context, shard string) error {
	var all []*pb.DeviceIdentity
	var cursor uint64
	token := ""
	for {
		page, err := c.API.ListShardIdentities(ctx, &pb.ListShardIdentitiesRequest{Shard: shard, PageSize: 1000, PageToken: token})
		if err != nil {
			return err
		}
		all = append(all, page.GetIdentities()...)
		cursor = page.GetCursor()
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	c.Replica.Reset(shard, all, cursor)
	if err := c.Replica.Save(); err != nil {
		return err
	}
	if c.OnSnapshot != nil {
		c.OnSnapshot(shard, len(all), cursor)
	}
	_, err := c.API.AckAssignments(ctx, &pb.AckAssignmentsRequest{Shard: shard, Cursor: cursor})
	return err
}

// session snapshots the shards without a cursor, then watches all of
// them until an error. It reports whether it applied anything.
func (c *Client) session(ctx context.Context) (bool, error) {
	shards := c.Shards
	if c.discover() {
		var err error
		if shards, err = c.clusterShards(ctx); err != nil {
			return false, err
		}
		// Shards taken from the cluster leave the replica: none foreign.
		mine := map[string]bool{}
		for _, sh := range shards {
			mine[sh] = true
		}
		dropped := false
		for _, sh := range c.Replica.Shards() {
			if !mine[sh] {
				n := c.Replica.Drop(sh)
				dropped = true
				if c.OnDrop != nil {
					c.OnDrop(sh, n)
				}
			}
		}
		if dropped {
			if err := c.Replica.Save(); err != nil {
				return false, fmt.Errorf("%w: save replica: %v", ErrFatal, err)
			}
		}
		if len(shards) == 0 { // nothing to follow yet
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(c.rediscoverEvery()):
				return false, errShardsChanged
			}
		}
	}
	for _, shard := range shards {
		if _, ok := c.Replica.Cursor(shard); !ok {
			if err := c.snapshot(ctx, shard); err != nil {
				return false, err
			}
		}
	}
	req := &pb.WatchAssignmentsRequest{}
	cursors := c.Replica.cursors()
	for _, shard := range shards {
		req.Shards = append(req.Shards, &pb.ShardCursor{Shard: shard, Cursor: cursors[shard]})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.API.WatchAssignments(ctx, req)
	if err != nil {
		return false, err
	}
	type recv struct {
		ev  *pb.IdentityEvent
		err error
	}
	events := make(chan recv)
	go func() {
		for {
			ev, err := stream.Recv()
			select {
			case events <- recv{ev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	every, after := c.SaveEvery, c.SaveAfter
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	if after <= 0 {
		after = 1000
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var rediscover <-chan time.Time
	if c.discover() {
		t := time.NewTicker(c.rediscoverEvery())
		defer t.Stop()
		rediscover = t.C
	}
	acked := cursors
	pending, progressed := 0, false
	// flush saves the replica, then acknowledges each shard's cursor: an
	// acknowledgement never runs ahead of what is on disk.
	flush := func() error {
		if pending == 0 {
			return nil
		}
		if err := c.Replica.Save(); err != nil {
			return fmt.Errorf("%w: save replica: %v", ErrFatal, err)
		}
		pending = 0
		for shard, cur := range c.Replica.cursors() {
			if cur > acked[shard] {
				if _, err := c.API.AckAssignments(ctx, &pb.AckAssignmentsRequest{Shard: shard, Cursor: cur}); err != nil {
					return err
				}
				acked[shard] = cur
			}
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return progressed, errors.Join(flush(), ctx.Err())
		case <-tick.C:
			if err := flush(); err != nil {
				return progressed, err
			}
		case <-rediscover:
			now, err := c.clusterShards(ctx)
			if err != nil {
				return progressed, errors.Join(flush(), err)
			}
			if fmt.Sprint(now) != fmt.Sprint(shards) {
				return progressed, errors.Join(flush(), errShardsChanged)
			}
		case r := <-events:
			if r.err != nil {
				return progressed, errors.Join(flush(), r.err)
			}
			changed := c.Replica.Apply(r.ev)
			pending++
			progressed = true
			if c.OnEvent != nil {
				c.OnEvent(r.ev, changed)
			}
			if pending >= after {
				if err := flush(); err != nil {
					return progressed, err
				}
			}
		}
	}
}
