package cli

import (
	"context"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var caTable = table[*pb.CaCertificate]{
	id: (*pb.CaCertificate).GetName,
	cols: []column[*pb.CaCertificate]{
		{"NAME", (*pb.CaCertificate).GetName},
		{"SUBJECT", (*pb.CaCertificate).GetSubject},
		{"VERIFIED", func(c *pb.CaCertificate) string { return yesNo(c.GetVerified()) }},
		{"NOT AFTER", func(c *pb.CaCertificate) string { return when(c.GetNotAfter()) }},
		{"SHA-256", (*pb.CaCertificate).GetSha256Thumbprint},
	},
}

var verificationCodeTable = table[*pb.GenerateVerificationCodeResponse]{
	id: (*pb.GenerateVerificationCodeResponse).GetVerificationCode,
	cols: []column[*pb.GenerateVerificationCodeResponse]{
		{"NAME", func(r *pb.GenerateVerificationCodeResponse) string { return r.GetCaCertificate().GetName() }},
		{"VERIFICATION CODE", (*pb.GenerateVerificationCodeResponse).GetVerificationCode},
		{"EXPIRES", func(r *pb.GenerateVerificationCodeResponse) string { return when(r.GetExpireTime()) }},
	},
}

func caCmd(env Env) *cobra.Command {
	pageSize := 100
	r := resource[*pb.CaCertificate]{
		noun: "CA certificate", arg: "NAME", table: caTable,
		get: func(ctx context.Context, cc *grpc.ClientConn, name string) (*pb.CaCertificate, error) {
			return pb.NewCertificateAuthorityServiceClient(cc).GetCaCertificate(ctx, &pb.GetCaCertificateRequest{Name: name})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, token string) ([]*pb.CaCertificate, string, error) {
			p, err := pb.NewCertificateAuthorityServiceClient(cc).ListCaCertificates(ctx, &pb.ListCaCertificatesRequest{PageSize: int32(pageSize), PageToken: token})
			return p.GetCaCertificates(), p.GetNextPageToken(), err
		},
		listed: func(all []*pb.CaCertificate) proto.Message {
			return &pb.ListCaCertificatesResponse{CaCertificates: all}
		},
		delete: func(ctx context.Context, cc *grpc.ClientConn, name, etag string) error {
			_, err := pb.NewCertificateAuthorityServiceClient(cc).DeleteCaCertificate(ctx, &pb.DeleteCaCertificateRequest{Name: name, Etag: etag})
			return err
		},
	}
	list := r.listCmd(env)
	list.Flags().IntVar(&pageSize, "page-size", 100, "list page size")

	var certFile string
	create := r.writeCmd(env, "create NAME", "upload a CA certificate (then prove possession of its key: verification-code, verify)",
		func(cmd *cobra.Command, args []string, c *conn) (*pb.CaCertificate, error) {
			pemText, err := readFile("cert", certFile)
			if err != nil {
				return nil, err
			}
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			return pb.NewCertificateAuthorityServiceClient(cc).CreateCaCertificate(cmd.Context(),
				&pb.CreateCaCertificateRequest{CaCertificate: &pb.CaCertificate{Name: args[0], CertificatePem: pemText}})
		})
	create.Flags().StringVar(&certFile, "cert", "", "the CA certificate, PEM file (required)")

	var proofFile, verifyEtag string
	verify := r.writeCmd(env, "verify NAME", "prove possession of the CA's key with a certificate it signed for the verification code",
		func(cmd *cobra.Command, args []string, c *conn) (*pb.CaCertificate, error) {
			pemText, err := readFile("cert", proofFile)
			if err != nil {
				return nil, err
			}
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			return pb.NewCertificateAuthorityServiceClient(cc).VerifyCaCertificate(cmd.Context(),
				&pb.VerifyCaCertificateRequest{Name: args[0], CertificatePem: pemText, Etag: verifyEtag})
		})
	verify.Flags().StringVar(&proofFile, "cert", "", "the proof: a certificate the CA signed with the verification code as its CN, PEM file (required; pki proof makes one)")
	verify.Flags().StringVar(&verifyEtag, "etag", "", "act only if the CA's etag is this")

	return group("ca", "CA certificates: create, get, list, delete, verification-code, verify, crl",
		create, r.getCmd(env), list, r.deleteCmd(env), verificationCodeCmd(env), verify, caCRLCmd(env))
}

// verificationCodeCmd prints a fresh code for the proof of possession;
// -q prints only the code, for `pki proof --code "$(...)"`.
func verificationCodeCmd(env Env) *cobra.Command {
	var o *output
	var etag string
	cmd := opCmd(env, "verification-code NAME", "make the code a proof of possession must carry (-q prints only the code)", func(cmd *cobra.Command, args []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		res, err := pb.NewCertificateAuthorityServiceClient(cc).GenerateVerificationCode(cmd.Context(), &pb.GenerateVerificationCodeRequest{Name: args[0], Etag: etag})
		if err != nil {
			return err
		}
		return verificationCodeTable.one(env.Stdout, o, res)
	})
	cmd.Flags().StringVar(&etag, "etag", "", "act only if the CA's etag is this")
	o = addOutput(cmd, formatJSON, "the verification code")
	return cmd
}

// readFile reads the file a required flag names.
func readFile(flagName, path string) (string, error) {
	if path == "" {
		return "", usagef("--%s is required", flagName)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
