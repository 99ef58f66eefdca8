package cli

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/zerotouch/zerotouch/hubclient"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// runHub is the reference hub agent: it connects as a hub cluster node and
// keeps a file replica of its shards' identities (package hubclient),
// printing every event it applies.
func runHub(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	c := &conn{}
	c.register(fs, env, defaultGRPCServer)
	certFile := fs.String("cert", "", "the node's client certificate (PEM; subject CN = the cluster ID, pinned on the cluster)")
	keyFile := fs.String("key", "", "the certificate's private key (PEM)")
	shards := fs.String("shards", "", "comma-separated shards of the cluster to follow (default: all of the cluster's shards, following changes)")
	state := fs.String("state", "hub-replica.json", "the replica file (created if absent; resumed from after a restart)")
	quiet := fs.Bool("quiet", false, "print a line per snapshot, not per event")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *certFile == "" || *keyFile == "" {
		return fmt.Errorf("%w: --cert and --key are required", errUsage)
	}
	var follow []string
	if *shards != "" {
		follow = strings.Split(*shards, ",")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("--cert/--key: %w", err)
	}
	cfg, err := c.tlsConfig(&cert)
	if err != nil {
		return err
	}
	// Keepalive pings find a dead connection (a partition leaves a quiet
	// stream waiting forever otherwise); the server allows one per 10 s.
	cc, err := grpc.NewClient(c.server, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return err
	}
	defer cc.Close()
	replica, err := hubclient.OpenReplica(*state)
	if err != nil {
		return err
	}
	var mu sync.Mutex // one line at a time
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(env.Stdout, format+"\n", args...)
	}
	client := &hubclient.Client{
		API: pb.NewHubAssignmentServiceClient(cc), Shards: follow, Replica: replica,
		Log: slog.New(slog.NewTextHandler(env.Stderr, nil)),
		OnSnapshot: func(shard string, n int, cursor uint64) {
			say("snapshot %s: %d identities, cursor %d", shard, n, cursor)
		},
		OnDrop: func(shard string, n int) {
			say("dropped %s (no longer the cluster's): %d identities", shard, n)
		},
	}
	if !*quiet {
		client.OnEvent = func(ev *pb.IdentityEvent, changed bool) {
			what := "applied"
			if !changed {
				what = "skipped (not newer)"
			}
			kind := strings.ToLower(strings.TrimPrefix(ev.GetKind().String(), "IDENTITY_EVENT_KIND_"))
			say("%s %s %s on %s (cursor %d, version %d)", what, kind, ev.GetIdentity().GetDeviceId(), ev.GetShard(), ev.GetCursor(), ev.GetIdentity().GetVersion())
		}
	}
	return client.Run(ctx)
}
