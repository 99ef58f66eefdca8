package cli

import (
	"bytes"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Manufacturer CRLs (ADR 23): ca crl upload|get|delete, and the groups'
// revocation flags.

var crlTable = table[*pb.Crl]{
	id: (*pb.Crl).GetCaCertificate,
	cols: []column[*pb.Crl]{
		{"CA", (*pb.Crl).GetCaCertificate},
		{"NUMBER", (*pb.Crl).GetCrlNumber},
		{"THIS UPDATE", func(c *pb.Crl) string { return when(c.GetThisUpdate()) }},
		{"NEXT UPDATE", func(c *pb.Crl) string { return when(c.GetNextUpdate()) }},
		{"REVOKED", func(c *pb.Crl) string { return strconv.Itoa(int(c.GetRevokedCount())) }},
		{"NEW", func(c *pb.Crl) string { return strconv.Itoa(int(c.GetAddedCount())) }},
	},
}

func caCRLCmd(env Env) *cobra.Command {
	var file string
	var uo *output
	upload := opCmd(env, "upload NAME", "upload a CRL the CA signed (PEM or DER): its revoked devices are refused, and those registered are disabled",
		func(cmd *cobra.Command, args []string, c *conn) error {
			if file == "" {
				return usagef("--crl is required")
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			req := &pb.UploadCrlRequest{Name: args[0]}
			if bytes.Contains(raw, []byte("-----BEGIN")) {
				req.CrlPem = string(raw)
			} else {
				req.CrlDer = raw
			}
			cc, err := c.dial()
			if err != nil {
				return err
			}
			crl, err := pb.NewCertificateAuthorityServiceClient(cc).UploadCrl(cmd.Context(), req)
			if err != nil {
				return err
			}
			return crlTable.one(env.Stdout, uo, crl)
		})
	upload.Flags().StringVar(&file, "crl", "", "the CRL, PEM or DER file (required)")
	uo = addOutput(upload, formatJSON, "the CA's name")

	var gob *output
	get := opCmd(env, "get NAME", "show the CRL uploaded for a CA", func(cmd *cobra.Command, args []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		crl, err := pb.NewCertificateAuthorityServiceClient(cc).GetCrl(cmd.Context(), &pb.GetCrlRequest{Name: args[0]})
		if err != nil {
			return err
		}
		return crlTable.one(env.Stdout, gob, crl)
	})
	gob = addOutput(get, formatTable, "the CA's name")

	del := opCmd(env, "delete NAME", "remove the CRL uploaded for a CA (devices it disabled stay disabled)", func(cmd *cobra.Command, args []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		_, err = pb.NewCertificateAuthorityServiceClient(cc).DeleteCrl(cmd.Context(), &pb.DeleteCrlRequest{Name: args[0]})
		return err
	})
	return group("crl", "the CRL uploaded for a CA certificate: upload, get, delete", upload, get, del)
}

var revocationChecks = map[string]pb.RevocationCheck{
	"required": pb.RevocationCheck_REVOCATION_CHECK_REQUIRED, "best-effort": pb.RevocationCheck_REVOCATION_CHECK_BEST_EFFORT,
	"off": pb.RevocationCheck_REVOCATION_CHECK_OFF,
}

// revocationFlags are an X.509 group's revocation policy.
type revocationFlags struct {
	check string
	ocsp  bool
	fs    *pflag.FlagSet
}

func addRevocationFlags(cmd *cobra.Command) *revocationFlags {
	f := &revocationFlags{fs: cmd.Flags()}
	choiceVar(cmd, &f.check, "revocation-check", "", "when a device certificate's revocation status cannot be learnt: required (refuse: the default), best-effort (admit and log) or off (check nothing)",
		"", "required", "best-effort", "off")
	cmd.Flags().BoolVar(&f.ocsp, "revocation-ocsp", false, "also ask each certificate's OCSP responder")
	return f
}

// given reports whether a revocation flag was given.
func (f *revocationFlags) given() bool { return changed(f.fs, "revocation-check", "revocation-ocsp") }

// policy is the policy the flags give, over cur's for those not given.
func (f *revocationFlags) policy(cur *pb.RevocationPolicy) *pb.RevocationPolicy {
	out := &pb.RevocationPolicy{Check: cur.GetCheck(), Ocsp: cur.GetOcsp()}
	if f.fs.Changed("revocation-check") {
		out.Check = revocationChecks[f.check]
	}
	if f.fs.Changed("revocation-ocsp") {
		out.Ocsp = f.ocsp
	} else if out.Check == pb.RevocationCheck_REVOCATION_CHECK_OFF {
		out.Ocsp = false // nothing is checked, OCSP included
	}
	return out
}
