package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var hubClusterTable = table[*pb.HubCluster]{
	id: (*pb.HubCluster).GetId,
	cols: []column[*pb.HubCluster]{
		{"ID", (*pb.HubCluster).GetId},
		{"PINNED CERTIFICATES", func(h *pb.HubCluster) string { return count(int64(len(h.GetCertificateThumbprints()))) }},
		{"CREATED", func(h *pb.HubCluster) string { return when(h.GetCreateTime()) }},
		{"UPDATED", func(h *pb.HubCluster) string { return when(h.GetUpdateTime()) }},
	},
}

var hubCertificateTable = table[*pb.HubCertificate]{
	id: (*pb.HubCertificate).GetCertificatePem,
	cols: []column[*pb.HubCertificate]{
		{"SHA-256", (*pb.HubCertificate).GetSha256Thumbprint},
		{"NOT AFTER", func(c *pb.HubCertificate) string { return when(c.GetNotAfter()) }},
	},
}

func hubClusterCmd(env Env) *cobra.Command {
	r := resource[*pb.HubCluster]{
		noun: "hub cluster", arg: "ID", table: hubClusterTable,
		get: func(ctx context.Context, cc *grpc.ClientConn, id string) (*pb.HubCluster, error) {
			return pb.NewHubServiceClient(cc).GetHubCluster(ctx, &pb.GetHubClusterRequest{Id: id})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, token string) ([]*pb.HubCluster, string, error) {
			p, err := pb.NewHubServiceClient(cc).ListHubClusters(ctx, &pb.ListHubClustersRequest{PageSize: 500, PageToken: token})
			return p.GetHubClusters(), p.GetNextPageToken(), err
		},
		listed: func(all []*pb.HubCluster) proto.Message { return &pb.ListHubClustersResponse{HubClusters: all} },
		delete: func(ctx context.Context, cc *grpc.ClientConn, id, etag string) error {
			_, err := pb.NewHubServiceClient(cc).DeleteHubCluster(ctx, &pb.DeleteHubClusterRequest{Id: id, Etag: etag})
			return err
		},
	}
	return group("hub-cluster", "hub clusters and their pinned client certificates: create, get, list, update, delete, issue-cert",
		hubClusterWriteCmd(env, r, "create"), r.getCmd(env), r.listCmd(env), hubClusterWriteCmd(env, r, "update"), r.deleteCmd(env), hubIssueCertCmd(env))
}

// hubClusterWriteCmd is create, or update (which replaces the pinned set).
func hubClusterWriteCmd(env Env, r resource[*pb.HubCluster], verb string) *cobra.Command {
	var certs, thumbs []string
	short := "create a hub cluster (pin its nodes' certificates now, or issue them later with issue-cert)"
	if verb == "update" {
		short = "replace the pinned certificates with the complete set given"
	}
	cmd := r.writeCmd(env, verb+" ID", short, func(cmd *cobra.Command, args []string, c *conn) (*pb.HubCluster, error) {
		if verb == "update" && !changed(cmd.Flags(), "cert", "thumbprint") {
			return nil, usagef("give the complete set of --cert/--thumbprint to pin")
		}
		var pems []string
		for _, f := range certs {
			raw, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("--cert: %w", err)
			}
			pems = append(pems, string(raw))
		}
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewHubServiceClient(cc)
		if verb == "create" {
			return cl.CreateHubCluster(cmd.Context(), &pb.CreateHubClusterRequest{HubCluster: &pb.HubCluster{Id: args[0], CertificatePems: pems, CertificateThumbprints: thumbs}})
		}
		cur, err := cl.GetHubCluster(cmd.Context(), &pb.GetHubClusterRequest{Id: args[0]})
		if err != nil {
			return nil, err
		}
		return cl.UpdateHubCluster(cmd.Context(), &pb.UpdateHubClusterRequest{
			HubCluster: &pb.HubCluster{Id: args[0], Etag: cur.GetEtag(), CertificatePems: pems, CertificateThumbprints: thumbs},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"certificates"}}})
	})
	cmd.Flags().StringArrayVar(&certs, "cert", nil, "a node's client certificate (PEM file) to pin; its subject CN must be the cluster ID (repeatable)")
	cmd.Flags().StringArrayVar(&thumbs, "thumbprint", nil, "a client certificate's SHA-256 thumbprint to pin (repeatable)")
	return cmd
}

// hubIssueCertCmd signs a node's CSR with the hub CA and pins the
// certificate; -q prints only the certificate (PEM).
func hubIssueCertCmd(env Env) *cobra.Command {
	var csr, certOut string
	var days int
	var o *output
	cmd := opCmd(env, "issue-cert ID", "sign a node's CSR with the hub CA and pin the certificate", func(cmd *cobra.Command, args []string, c *conn) error {
		raw, err := os.ReadFile(csr)
		if err != nil {
			return fmt.Errorf("--csr: %w (`zerotouch pki hub-node --cluster %s --out DIR` makes a node key and its CSR)", err, args[0])
		}
		cc, err := c.dial()
		if err != nil {
			return err
		}
		issued, err := pb.NewHubServiceClient(cc).IssueHubCertificate(cmd.Context(), &pb.IssueHubCertificateRequest{HubCluster: args[0], CsrPem: string(raw), ValidityDays: int32(days)})
		if status.Code(err) == codes.NotFound {
			return fmt.Errorf("hub cluster %q does not exist: create it first with `zerotouch hub-cluster create %s`, then issue its nodes' certificates (%s)",
				args[0], args[0], describe(err))
		}
		if err != nil {
			return err
		}
		if certOut != "" {
			if err := os.WriteFile(certOut, []byte(issued.GetCertificatePem()), 0o644); err != nil {
				return err
			}
		}
		if o.quiet {
			_, err := fmt.Fprint(env.Stdout, issued.GetCertificatePem())
			return err
		}
		return hubCertificateTable.one(env.Stdout, o, issued)
	})
	cmd.Flags().StringVar(&csr, "csr", "", "a node's certificate request (PEM file) to sign with the hub CA and pin")
	cmd.Flags().IntVar(&days, "validity-days", 90, "validity of an issued certificate, 1-397 days")
	cmd.Flags().StringVar(&certOut, "out", "", "also write the issued certificate (PEM) to this file, for `zerotouch hub --cert`")
	o = addOutput(cmd, formatJSON, "the certificate (PEM)")
	return cmd
}

var webhookSecretTable = table[*pb.WebhookSecret]{
	id: func(s *pb.WebhookSecret) string { return base64.StdEncoding.EncodeToString(s.GetSecret()) },
	cols: []column[*pb.WebhookSecret]{
		{"URL", (*pb.WebhookSecret).GetUrl},
		{"SECRET", func(s *pb.WebhookSecret) string { return base64.StdEncoding.EncodeToString(s.GetSecret()) }},
	},
}

// webhookSecretCmd prints the secret that signs requests to a custom
// allocation webhook; -q prints only the secret (base64).
func webhookSecretCmd(env Env) *cobra.Command {
	var o *output
	cmd := opCmd(env, "webhook-secret URL", "the secret that signs requests to a custom allocation webhook URL", func(cmd *cobra.Command, args []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		res, err := pb.NewEnrollmentServiceClient(cc).GetWebhookSecret(cmd.Context(), &pb.GetWebhookSecretRequest{Url: args[0]})
		if err != nil {
			return err
		}
		return webhookSecretTable.one(env.Stdout, o, res)
	})
	o = addOutput(cmd, formatJSON, "the secret (base64)")
	return cmd
}
