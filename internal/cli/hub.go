package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/zerotouch/zerotouch/hubclient"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// hubCmd is the reference hub agent: it connects as a hub cluster node
// and keeps a file replica of its shards' identities (package
// hubclient), printing every event it applies.
func hubCmd(env Env) *cobra.Command {
	var certFile, keyFile, shards, state string
	var quiet bool
	var c *conn
	cmd := leaf("hub", "reference hub agent: keep a file replica of a hub cluster's shards from the assignment stream", func(cmd *cobra.Command, _ []string) error {
		return runHub(cmd.Context(), env, c, certFile, keyFile, shards, state, quiet)
	})
	c = addConn(cmd, env)
	fs := cmd.Flags()
	fs.StringVar(&certFile, "cert", "", "the node's client certificate (PEM; subject CN = the cluster ID, pinned on the cluster) (required)")
	fs.StringVar(&keyFile, "key", "", "the certificate's private key (PEM) (required)")
	fs.StringVar(&shards, "shards", "", "comma-separated shards of the cluster to follow (default: all of the cluster's shards, following changes)")
	fs.StringVar(&state, "state", "hub-replica.json", "the replica file (created if absent; resumed from after a restart)")
	fs.BoolVarP(&quiet, "quiet", "q", false, "print a line per snapshot, not per event")
	return cmd
}

func runHub(ctx context.Context, env Env, c *conn, certFile, keyFile, shards, state string, quiet bool) error {
	if certFile == "" || keyFile == "" {
		return usagef("--cert and --key are required")
	}
	var follow []string
	if shards != "" {
		follow = strings.Split(shards, ",")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
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
	replica, err := hubclient.OpenReplica(state)
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
	if !quiet {
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
