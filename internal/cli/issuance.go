package cli

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Certificate issuance (ADR 22): issuing-ca, credential-policy and
// certificate.

var issuingCATable = table[*pb.IssuingCa]{
	id: (*pb.IssuingCa).GetName,
	cols: []column[*pb.IssuingCa]{
		{"NAME", (*pb.IssuingCa).GetName},
		{"STATE", func(c *pb.IssuingCa) string { return enum(c.GetState(), "ISSUING_CA_STATE_") }},
		{"SUBJECT", (*pb.IssuingCa).GetSubject},
		{"NOT AFTER", func(c *pb.IssuingCa) string { return when(c.GetNotAfter()) }},
		{"CRL", (*pb.IssuingCa).GetCrlUrl},
	},
}

func issuingCACmd(env Env) *cobra.Command {
	cl := pb.NewIssuanceServiceClient
	r := resource[*pb.IssuingCa]{
		noun: "issuing CA", arg: "NAME", table: issuingCATable,
		get: func(ctx context.Context, cc *grpc.ClientConn, name string) (*pb.IssuingCa, error) {
			return cl(cc).GetIssuingCa(ctx, &pb.GetIssuingCaRequest{Name: name})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, _ string) ([]*pb.IssuingCa, string, error) {
			p, err := cl(cc).ListIssuingCas(ctx, &pb.ListIssuingCasRequest{})
			return p.GetIssuingCas(), "", err
		},
		listed: func(all []*pb.IssuingCa) proto.Message { return &pb.ListIssuingCasResponse{IssuingCas: all} },
		delete: func(ctx context.Context, cc *grpc.ClientConn, name, etag string) error {
			_, err := cl(cc).DeleteIssuingCa(ctx, &pb.DeleteIssuingCaRequest{Name: name, Etag: etag})
			return err
		},
	}
	modes := map[string]pb.IssuingCaMode{"generate": pb.IssuingCaMode_ISSUING_CA_MODE_GENERATE,
		"intermediate": pb.IssuingCaMode_ISSUING_CA_MODE_INTERMEDIATE, "import": pb.IssuingCaMode_ISSUING_CA_MODE_IMPORT}
	var mode, cn, keyType, certFile, keyFile, csrOut string
	create := r.writeCmd(env, "create NAME", "create an issuing CA: its key is made (or, with --mode import, sealed) inside Zerotouch and never leaves it",
		func(cmd *cobra.Command, args []string, c *conn) (*pb.IssuingCa, error) {
			req := &pb.CreateIssuingCaRequest{Name: args[0], Mode: modes[mode], CommonName: cn, KeyType: keyType}
			if mode == "import" {
				var err error
				if req.CertificateChainPem, err = readFile("cert", certFile); err != nil {
					return nil, err
				}
				if req.PrivateKeyPem, err = readFile("key", keyFile); err != nil {
					return nil, err
				}
			} else if certFile != "" || keyFile != "" {
				return nil, usagef("--cert and --key are for --mode import")
			}
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			ca, err := cl(cc).CreateIssuingCa(cmd.Context(), req)
			if err == nil && csrOut != "" {
				if ca.GetCsrPem() == "" {
					return nil, fmt.Errorf("the CA has no CSR (only --mode intermediate makes one)")
				}
				err = os.WriteFile(csrOut, []byte(ca.GetCsrPem()), 0o644)
			}
			return ca, err
		})
	choiceVar(create, &mode, "mode", "generate", "generate (a self-signed root made inside), intermediate (a key made inside and a CSR for your offline root; then complete) or import (--cert, --key)",
		"generate", "intermediate", "import")
	create.Flags().StringVar(&cn, "cn", "", `the CA's subject CN (default "Zerotouch issuing CA NAME")`)
	choiceVar(create, &keyType, "key-type", "ecdsa-p256", "the CA's key: ecdsa-p256 or ecdsa-p384 (about four times slower to issue with)", "ecdsa-p256", "ecdsa-p384")
	create.Flags().StringVar(&certFile, "cert", "", "with --mode import: the CA certificate, then the chain above it, PEM file")
	create.Flags().StringVar(&keyFile, "key", "", "with --mode import: the CA's private key, PEM file (sealed at once)")
	create.Flags().StringVar(&csrOut, "csr-out", "", "with --mode intermediate: write the CSR for your offline root here")

	var chainFile, completeEtag string
	complete := r.writeCmd(env, "complete NAME", "give a pending intermediate the certificate your offline root signed for its CSR",
		func(cmd *cobra.Command, args []string, c *conn) (*pb.IssuingCa, error) {
			text, err := readFile("cert", chainFile)
			if err != nil {
				return nil, err
			}
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			return cl(cc).CompleteIssuingCa(cmd.Context(), &pb.CompleteIssuingCaRequest{Name: args[0], CertificateChainPem: text, Etag: completeEtag})
		})
	complete.Flags().StringVar(&chainFile, "cert", "", "the signed certificate, then the chain above it up to the root, PEM file (required)")
	complete.Flags().StringVar(&completeEtag, "etag", "", "act only if the CA's etag is this")

	state := func(use, short string, call func(context.Context, pb.IssuanceServiceClient, string, string) (*pb.IssuingCa, error)) *cobra.Command {
		var etag string
		cmd := r.writeCmd(env, use, short, func(cmd *cobra.Command, args []string, c *conn) (*pb.IssuingCa, error) {
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			return call(cmd.Context(), cl(cc), args[0], etag)
		})
		cmd.Flags().StringVar(&etag, "etag", "", "act only if the CA's etag is this")
		return cmd
	}
	disable := state("disable NAME", "stop an issuing CA signing (its CRL and OCSP stay published)", func(ctx context.Context, c pb.IssuanceServiceClient, name, etag string) (*pb.IssuingCa, error) {
		return c.DisableIssuingCa(ctx, &pb.DisableIssuingCaRequest{Name: name, Etag: etag})
	})
	enable := state("enable NAME", "let a disabled issuing CA sign again", func(ctx context.Context, c pb.IssuanceServiceClient, name, etag string) (*pb.IssuingCa, error) {
		return c.EnableIssuingCa(ctx, &pb.EnableIssuingCaRequest{Name: name, Etag: etag})
	})
	return group("issuing-ca", "issuing CAs that sign devices' operational certificates: create, get, list, delete, complete, disable, enable, crl",
		create, r.getCmd(env), r.listCmd(env), r.deleteCmd(env), complete, disable, enable, crlCmd(env))
}

// crlCmd fetches an issuing CA's published CRL (no access key needed).
func crlCmd(env Env) *cobra.Command {
	var out string
	var c *conn
	cmd := leaf("crl NAME", "fetch an issuing CA's CRL from /pki/NAME/crl and write it as PEM (for openssl verify -crl_check)", func(cmd *cobra.Command, args []string) error {
		if out == "" {
			return usagef("--out is required")
		}
		cfg, err := c.tlsConfig(nil)
		if err != nil {
			return err
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+c.httpServer+"/pki/"+url.PathEscape(args[0])+"/crl", nil)
		if err != nil {
			return err
		}
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		der, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
		if err != nil {
			return err
		}
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(der)))
		}
		return os.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
	})
	c = addConn(cmd, env)
	c.addHTTPServer(cmd)
	cmd.Flags().StringVar(&out, "out", "", "write the CRL here, PEM (required)")
	return cmd
}

var policyTable = table[*pb.CredentialPolicy]{
	id: (*pb.CredentialPolicy).GetName,
	cols: []column[*pb.CredentialPolicy]{
		{"NAME", (*pb.CredentialPolicy).GetName},
		{"ISSUING CA", (*pb.CredentialPolicy).GetIssuingCa},
		{"KEY TYPES", func(p *pb.CredentialPolicy) string { return strings.Join(p.GetKeyTypes(), ",") }},
		{"VALIDITY", func(p *pb.CredentialPolicy) string { return p.GetValidity().AsDuration().String() }},
		{"OVERLAP", func(p *pb.CredentialPolicy) string { return p.GetOverlap().AsDuration().String() }},
		{"REVOKE ON DISABLE", func(p *pb.CredentialPolicy) string { return yesNo(p.GetRevokeOnDisable()) }},
	},
}

// policyFlags are a credential policy's settings.
type policyFlags struct {
	ca, keyTypes             string
	validity, grace, overlap time.Duration
	revoke                   bool
}

func addPolicyFlags(cmd *cobra.Command) *policyFlags {
	f := &policyFlags{}
	fs := cmd.Flags()
	fs.StringVar(&f.ca, "issuing-ca", "", "the issuing CA that signs the policy's certificates (required)")
	fs.StringVar(&f.keyTypes, "key-types", "", "comma-separated device key types allowed: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519 (default: ecdsa-p256,ecdsa-p384)")
	fs.DurationVar(&f.validity, "validity", 0, "certificate validity, 1h-9552h (default 168h: 7 days)")
	fs.DurationVar(&f.grace, "renewal-grace", 0, "how long after expiry a device may still renew with its certificate")
	fs.DurationVar(&f.overlap, "overlap", 0, "how long a certificate stays valid after a renewal superseded it (default 1h)")
	fs.BoolVar(&f.revoke, "revoke-on-disable", false, "revoke a device's certificates when its registration is disabled or deleted")
	return f
}

func (f *policyFlags) policy(name, etag string) *pb.CredentialPolicy {
	p := &pb.CredentialPolicy{Name: name, IssuingCa: f.ca, RevokeOnDisable: f.revoke, Etag: etag}
	if f.keyTypes != "" {
		p.KeyTypes = strings.Split(f.keyTypes, ",")
	}
	if f.validity != 0 {
		p.Validity = durationpb.New(f.validity)
	}
	if f.grace != 0 {
		p.RenewalGrace = durationpb.New(f.grace)
	}
	if f.overlap != 0 {
		p.Overlap = durationpb.New(f.overlap)
	}
	return p
}

func credentialPolicyCmd(env Env) *cobra.Command {
	cl := pb.NewIssuanceServiceClient
	r := resource[*pb.CredentialPolicy]{
		noun: "credential policy", arg: "NAME", table: policyTable,
		get: func(ctx context.Context, cc *grpc.ClientConn, name string) (*pb.CredentialPolicy, error) {
			return cl(cc).GetCredentialPolicy(ctx, &pb.GetCredentialPolicyRequest{Name: name})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, _ string) ([]*pb.CredentialPolicy, string, error) {
			p, err := cl(cc).ListCredentialPolicies(ctx, &pb.ListCredentialPoliciesRequest{})
			return p.GetCredentialPolicies(), "", err
		},
		listed: func(all []*pb.CredentialPolicy) proto.Message {
			return &pb.ListCredentialPoliciesResponse{CredentialPolicies: all}
		},
		delete: func(ctx context.Context, cc *grpc.ClientConn, name, etag string) error {
			_, err := cl(cc).DeleteCredentialPolicy(ctx, &pb.DeleteCredentialPolicyRequest{Name: name, Etag: etag})
			return err
		},
	}
	var createFlags *policyFlags
	create := r.writeCmd(env, "create NAME", "create a credential policy; enrollments name it (--credential-policy) to let their devices ask for certificates",
		func(cmd *cobra.Command, args []string, c *conn) (*pb.CredentialPolicy, error) {
			if createFlags.ca == "" {
				return nil, usagef("--issuing-ca is required")
			}
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			return cl(cc).CreateCredentialPolicy(cmd.Context(), &pb.CreateCredentialPolicyRequest{CredentialPolicy: createFlags.policy(args[0], "")})
		})
	createFlags = addPolicyFlags(create)
	var updateFlags *policyFlags
	var etag string
	update := r.writeCmd(env, "update NAME", "replace a credential policy's settings (unset flags take their defaults; --issuing-ca is required)",
		func(cmd *cobra.Command, args []string, c *conn) (*pb.CredentialPolicy, error) {
			if updateFlags.ca == "" {
				return nil, usagef("--issuing-ca is required")
			}
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			return cl(cc).UpdateCredentialPolicy(cmd.Context(), &pb.UpdateCredentialPolicyRequest{CredentialPolicy: updateFlags.policy(args[0], etag)})
		})
	updateFlags = addPolicyFlags(update)
	update.Flags().StringVar(&etag, "etag", "", "act only if the policy's etag is this")
	return group("credential-policy", "credential policies: which issuing CA signs devices' certificates, for which keys, for how long: create, get, list, update, delete",
		create, r.getCmd(env), r.listCmd(env), update, r.deleteCmd(env))
}

var revocationTable = table[*pb.Revocation]{
	id: (*pb.Revocation).GetSerial,
	cols: []column[*pb.Revocation]{
		{"ISSUING CA", (*pb.Revocation).GetIssuingCa},
		{"SERIAL", (*pb.Revocation).GetSerial},
		{"REGISTRATION ID", (*pb.Revocation).GetRegistrationId},
		{"REVOKED", func(r *pb.Revocation) string { return when(r.GetRevokeTime()) }},
		{"REASON", func(r *pb.Revocation) string { return strconv.Itoa(int(r.GetReason())) }},
	},
}

func certificateCmd(env Env) *cobra.Command {
	var regID, ca, serial string
	var reason int
	var o *output
	revoke := opCmd(env, "revoke", "revoke issued certificates now: every one a registration holds (--registration), or one serial (--issuing-ca, --serial)",
		func(cmd *cobra.Command, _ []string, c *conn) error {
			if (regID == "") == (serial == "") || serial != "" && ca == "" {
				return usagef("give --registration, or --issuing-ca and --serial")
			}
			cc, err := c.dial()
			if err != nil {
				return err
			}
			res, err := pb.NewIssuanceServiceClient(cc).RevokeCertificates(cmd.Context(), &pb.RevokeCertificatesRequest{RegistrationId: regID,
				IssuingCa: ca, Serial: serial, Reason: int32(reason)})
			if err != nil {
				return err
			}
			return revocationTable.print(env.Stdout, o, res, res.GetRevocations())
		})
	revoke.Flags().StringVar(&regID, "registration", "", "revoke every certificate this registration holds")
	revoke.Flags().StringVar(&ca, "issuing-ca", "", "the issuing CA of --serial")
	revoke.Flags().StringVar(&serial, "serial", "", "a certificate's serial number, hex")
	revoke.Flags().IntVar(&reason, "reason", 0, "RFC 5280 reason: 0 unspecified, 1 keyCompromise, 3 affiliationChanged, 4 superseded, 5 cessationOfOperation, 9 privilegeWithdrawn")
	o = addOutput(revoke, formatTable, "the revoked serials")

	var lo *output
	list := opCmd(env, "revocations ISSUING_CA", "list an issuing CA's revocations (what its CRL lists, and those still to come)",
		func(cmd *cobra.Command, args []string, c *conn) error {
			cc, err := c.dial()
			if err != nil {
				return err
			}
			all, err := allPages(func(token string) ([]*pb.Revocation, string, error) {
				p, err := pb.NewIssuanceServiceClient(cc).ListRevocations(cmd.Context(), &pb.ListRevocationsRequest{IssuingCa: args[0], PageSize: 1000, PageToken: token})
				return p.GetRevocations(), p.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			return revocationTable.print(env.Stdout, lo, &pb.ListRevocationsResponse{Revocations: all}, all)
		})
	lo = addOutput(list, formatTable, "the serials")
	return group("certificate", "issued certificates: revoke, revocations", revoke, list)
}
