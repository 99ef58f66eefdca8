package cli

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/zerotouch/zerotouch/internal/pki"
)

// pkiCmd mints evaluation certificates and keys so that the quick start
// needs no other tool: CAs, proofs of possession, device certificates, EK
// certificates for TPMs (tpm-ek-cert) and hub node keys with their CSRs
// (hub-node). Production CAs live in an HSM, not here.
func pkiCmd(env Env) *cobra.Command {
	return group("pki", "mint evaluation certificates and keys: ca, proof, device, tpm-ek-cert (a TPM's EK certificate), hub-node (a hub node's key and CSR); fingerprint",
		pkiCACmd(env), pkiProofCmd(env), pkiDeviceCmd(env), pkiTPMEKCertCmd(env), pkiHubNodeCmd(env), pkiFingerprintCmd(env))
}

// pkiFlags are the flags the pki commands share.
type pkiFlags struct {
	out, parent string
	days        int
}

func addPKIFlags(fs *pflag.FlagSet, outWhat, caWhat string, withDays bool) *pkiFlags {
	p := &pkiFlags{}
	fs.StringVar(&p.out, "out", "", outWhat+" (required)")
	if caWhat != "" {
		fs.StringVar(&p.parent, "ca", "", caWhat)
	}
	if withDays {
		fs.IntVar(&p.days, "days", 365, "validity in days")
	}
	return p
}

func (p *pkiFlags) validity() time.Duration { return time.Duration(p.days) * 24 * time.Hour }

// issuer loads the CA in --ca (nil without --ca) and the chain above it,
// as in its ca.pem.
func (p *pkiFlags) issuer() (*pki.Issued, []*x509.Certificate, error) {
	if p.out == "" {
		return nil, nil, usagef("--out is required")
	}
	if p.parent == "" {
		return nil, nil, nil
	}
	issuer, err := pki.Load(filepath.Join(p.parent, "ca.pem"), filepath.Join(p.parent, "ca-key.pem"))
	if err != nil {
		return nil, nil, err
	}
	chain, err := pki.LoadCertificates(filepath.Join(p.parent, "ca.pem"))
	if err != nil {
		return nil, nil, err
	}
	return issuer, chain, nil
}

func pkiCACmd(env Env) *cobra.Command {
	var p *pkiFlags
	var cn string
	cmd := leaf("ca", "make a CA (ca.pem, ca-key.pem in --out); with --ca, an intermediate", func(cmd *cobra.Command, _ []string) error {
		issuer, _, err := p.issuer()
		if err != nil {
			return err
		}
		if cn == "" {
			return usagef("--cn is required")
		}
		ca, err := pki.NewCA(cn, issuer, time.Now(), p.validity())
		if err != nil {
			return err
		}
		if err := os.MkdirAll(p.out, 0o700); err != nil {
			return err
		}
		if err := ca.WriteFiles(filepath.Join(p.out, "ca.pem"), filepath.Join(p.out, "ca-key.pem")); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s and %s\n", filepath.Join(p.out, "ca.pem"), filepath.Join(p.out, "ca-key.pem"))
		return nil
	})
	p = addPKIFlags(cmd.Flags(), "output directory", "directory of the issuing CA (ca.pem, ca-key.pem): makes an intermediate", true)
	cmd.Flags().StringVar(&cn, "cn", "", "subject CN (required)")
	return cmd
}

func pkiProofCmd(env Env) *cobra.Command {
	var p *pkiFlags
	var code string
	cmd := leaf("proof", "make a proof of possession: a certificate the CA signs with the verification code as its CN", func(cmd *cobra.Command, _ []string) error {
		issuer, _, err := p.issuer()
		if err != nil {
			return err
		}
		if issuer == nil || code == "" {
			return usagef("--ca and --code are required")
		}
		proof, err := pki.NewProof(issuer, code, time.Now())
		if err != nil {
			return err
		}
		if err := os.WriteFile(p.out, pki.CertPEM(proof.Cert), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s\n", p.out)
		return nil
	})
	p = addPKIFlags(cmd.Flags(), "output file", "directory of the CA (ca.pem, ca-key.pem) (required)", false)
	cmd.Flags().StringVar(&code, "code", "", "the verification code (required; ca verification-code NAME -q prints it)")
	return cmd
}

func pkiDeviceCmd(env Env) *cobra.Command {
	var p *pkiFlags
	var id string
	cmd := leaf("device", "make a device certificate (CN = registration ID) and key in --out", func(cmd *cobra.Command, _ []string) error {
		issuer, chain, err := p.issuer()
		if err != nil {
			return err
		}
		if issuer == nil || id == "" {
			return usagef("--ca and --id are required")
		}
		dev, err := pki.NewDevice(id, issuer, time.Now(), p.validity())
		if err != nil {
			return err
		}
		if err := os.MkdirAll(p.out, 0o700); err != nil {
			return err
		}
		if err := dev.WriteFiles(filepath.Join(p.out, "device.pem"), filepath.Join(p.out, "device-key.pem"), chain...); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s (certificate and chain) and %s\n", filepath.Join(p.out, "device.pem"), filepath.Join(p.out, "device-key.pem"))
		return nil
	})
	p = addPKIFlags(cmd.Flags(), "output directory", "directory of the issuing CA (ca.pem, ca-key.pem) (required)", true)
	cmd.Flags().StringVar(&id, "id", "", "the device's registration ID, used as its CN (required)")
	return cmd
}

func pkiTPMEKCertCmd(env Env) *cobra.Command {
	var p *pkiFlags
	var ek, cn string
	cmd := leaf("tpm-ek-cert", "make a TPM's EK certificate, signed by an evaluation vendor CA", func(cmd *cobra.Command, _ []string) error {
		if p.out == "" {
			return usagef("--out is required")
		}
		return pkiEKCertificate(env, ek, p.parent, cn, p.out, time.Now(), p.validity())
	})
	p = addPKIFlags(cmd.Flags(), "output file", "directory of the TPM vendor CA, created there if it holds none (required)", true)
	cmd.Flags().StringVar(&ek, "ek", "", "the TPM's EK public key: a file holding a PEM PUBLIC KEY or the EK's TPM2B_PUBLIC, binary or base64 as `device tpm-ek` prints it (required)")
	cmd.Flags().StringVar(&cn, "cn", "", "subject CN of a vendor CA it creates")
	return cmd
}

func pkiHubNodeCmd(env Env) *cobra.Command {
	var p *pkiFlags
	var cluster string
	cmd := leaf("hub-node", "make a hub node's key and its CSR (CN = the cluster ID) in --out", func(cmd *cobra.Command, _ []string) error {
		if p.out == "" {
			return usagef("--out is required")
		}
		return pkiHubNode(env, cluster, p.out)
	})
	p = addPKIFlags(cmd.Flags(), "output directory", "", false)
	cmd.Flags().StringVar(&cluster, "cluster", "", "the hub cluster the node belongs to: its ID is the CSR's CN (required)")
	return cmd
}

// fingerprintRow is a certificate as pki fingerprint prints it.
type fingerprintRow struct {
	SHA256  string `json:"sha256"`
	Subject string `json:"subject"`
	IsCA    bool   `json:"isCa"`
}

var fingerprintTable = table[fingerprintRow]{
	id: func(r fingerprintRow) string { return r.SHA256 },
	cols: []column[fingerprintRow]{
		{"SHA-256", func(r fingerprintRow) string { return r.SHA256 }},
		{"SUBJECT", func(r fingerprintRow) string { return r.Subject }},
		{"CA", func(r fingerprintRow) string { return yesNo(r.IsCA) }},
	},
}

// pkiFingerprintCmd prints the SHA-256 fingerprints context add
// --ca-fingerprint takes.
func pkiFingerprintCmd(env Env) *cobra.Command {
	var o *output
	cmd := leaf("fingerprint FILE", "print the SHA-256 fingerprint of each certificate in a PEM file (for context add --ca-fingerprint)", func(cmd *cobra.Command, args []string) error {
		certs, err := pki.LoadCertificates(args[0])
		if err != nil {
			return err
		}
		rows := []fingerprintRow{}
		for _, c := range certs {
			rows = append(rows, fingerprintRow{SHA256: fingerprint(c), Subject: c.Subject.String(), IsCA: c.IsCA})
		}
		return fingerprintTable.print(env.Stdout, o, rows, rows)
	})
	o = addOutput(cmd, formatTable, "the fingerprints, one a line")
	return cmd
}
