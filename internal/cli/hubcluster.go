package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runHubCluster(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "create", "get", "list", "update", "delete", "issue-cert")
	if err != nil {
		return err
	}
	fs, c := opFlags("hub-cluster "+sub, env)
	var certs, thumbs listFlag
	fs.Var(&certs, "cert", "a node's client certificate (PEM file) to pin; its subject CN must be the cluster ID (repeatable)")
	fs.Var(&thumbs, "thumbprint", "a client certificate's SHA-256 thumbprint to pin (repeatable)")
	etag := fs.String("etag", "", "act only if the cluster's etag is this (delete)")
	csr := fs.String("csr", "", "a node's certificate request (PEM file) to sign with the hub CA and pin (issue-cert)")
	days := fs.Int("validity-days", 90, "validity of an issued certificate, 1-397 days (issue-cert)")
	certOut := fs.String("out", "", "also write the issued certificate (PEM) to this file, for `zerotouch hub --cert` (issue-cert)")
	want := []string{"ID"}
	if sub == "list" {
		want = nil
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	var pems []string
	for _, f := range certs {
		raw, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("--cert: %w", err)
		}
		pems = append(pems, string(raw))
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewHubServiceClient(cc)
		switch sub {
		case "create":
			return cl.CreateHubCluster(ctx, &pb.CreateHubClusterRequest{HubCluster: &pb.HubCluster{Id: pos[0], CertificatePems: pems, CertificateThumbprints: thumbs}})
		case "get":
			return cl.GetHubCluster(ctx, &pb.GetHubClusterRequest{Id: pos[0]})
		case "list":
			all, err := allPages(func(token string) ([]*pb.HubCluster, string, error) {
				p, err := cl.ListHubClusters(ctx, &pb.ListHubClustersRequest{PageSize: 500, PageToken: token})
				return p.GetHubClusters(), p.GetNextPageToken(), err
			})
			return &pb.ListHubClustersResponse{HubClusters: all}, err
		case "delete":
			_, err := cl.DeleteHubCluster(ctx, &pb.DeleteHubClusterRequest{Id: pos[0], Etag: *etag})
			return nil, err
		case "issue-cert":
			raw, err := os.ReadFile(*csr)
			if err != nil {
				return nil, fmt.Errorf("--csr: %w (`zerotouch pki hub-node --cluster %s --out DIR` makes a node key and its CSR)", err, pos[0])
			}
			issued, err := cl.IssueHubCertificate(ctx, &pb.IssueHubCertificateRequest{HubCluster: pos[0], CsrPem: string(raw), ValidityDays: int32(*days)})
			if status.Code(err) == codes.NotFound {
				return nil, fmt.Errorf("hub cluster %q does not exist: create it first with `zerotouch hub-cluster create %s`, then issue its nodes' certificates (%s)",
					pos[0], pos[0], describe(err))
			}
			if err != nil {
				return nil, err
			}
			if *certOut != "" {
				if err := os.WriteFile(*certOut, []byte(issued.GetCertificatePem()), 0o644); err != nil {
					return nil, err
				}
			}
			return issued, nil
		}
		visited := false
		fs.Visit(func(f *flag.Flag) { visited = visited || f.Name == "cert" || f.Name == "thumbprint" })
		if !visited {
			return nil, fmt.Errorf("%w: give the complete set of --cert/--thumbprint to pin", errUsage)
		}
		cur, err := cl.GetHubCluster(ctx, &pb.GetHubClusterRequest{Id: pos[0]})
		if err != nil {
			return nil, err
		}
		return cl.UpdateHubCluster(ctx, &pb.UpdateHubClusterRequest{
			HubCluster: &pb.HubCluster{Id: pos[0], Etag: cur.GetEtag(), CertificatePems: pems, CertificateThumbprints: thumbs},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"certificates"}}})
	})
}

// runWebhookSecret prints the secret that signs requests to a custom
// allocation webhook.
func runWebhookSecret(ctx context.Context, env Env, args []string) error {
	fs, c := opFlags("webhook-secret", env)
	pos, err := parse(fs, args, "URL")
	if err != nil {
		return err
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		return pb.NewEnrollmentServiceClient(cc).GetWebhookSecret(ctx, &pb.GetWebhookSecretRequest{Url: pos[0]})
	})
}
