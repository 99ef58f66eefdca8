package hubclient_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"os"
	"os/signal"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/zerotouch/zerotouch/hubclient"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// A hub node follows its cluster's shards: it connects with the client
// certificate pinned on its hub cluster, keeps the replica in a file, and
// admits devices by looking them up in it (or, for a device that arrives
// before its event, with LookupIdentity).
func Example() {
	cert, err := tls.LoadX509KeyPair("node.pem", "node-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if ca, err := os.ReadFile("zerotouch-ca.pem"); err == nil {
		roots.AppendCertsFromPEM(ca)
	}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12})
	// Keepalive pings find a dead connection under a quiet stream.
	conn, err := grpc.NewClient("zerotouch.example.com:8444", grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	replica, err := hubclient.OpenReplica("/var/lib/hub/identities.json")
	if err != nil {
		log.Fatal(err)
	}
	client := &hubclient.Client{
		API:     pb.NewHubAssignmentServiceClient(conn),
		Shards:  []string{"eu-west-1", "eu-west-2"},
		Replica: replica,
		OnEvent: func(ev *pb.IdentityEvent, changed bool) {
			if changed {
				log.Printf("%s %s on %s", ev.GetKind(), ev.GetIdentity().GetDeviceId(), ev.GetShard())
			}
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := client.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Admitting a device:
	if id := replica.Get("sensor-0001"); id != nil && id.Enabled {
		log.Printf("admit %s with %s", id.DeviceID, id.AttestationType)
	}
}
