package cli

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zerotouch/zerotouch/internal/pki"
)

// runPKI mints evaluation certificates and keys so that the quick start
// needs no other tool: CAs, proofs of possession, device certificates, EK
// certificates for TPMs (tpm-ek-cert) and hub node keys with their CSRs
// (hub-node). Production CAs live in an HSM, not here.
func runPKI(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "ca", "proof", "device", "tpm-ek-cert", "hub-node")
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("pki "+sub, flag.ContinueOnError)
	out := fs.String("out", "", "output directory (ca, device, hub-node) or file (proof, tpm-ek-cert)")
	parent := fs.String("ca", "", "directory of the issuing CA (ca.pem, ca-key.pem); for ca: makes an intermediate; for tpm-ek-cert: the TPM vendor CA, created there if it holds none")
	cn := fs.String("cn", "", "subject CN (ca; tpm-ek-cert: of a vendor CA it creates)")
	ek := fs.String("ek", "", "the TPM's EK public key: a file holding a PEM PUBLIC KEY or the EK's TPM2B_PUBLIC, binary or base64 as `device tpm-ek` prints it (tpm-ek-cert)")
	cluster := fs.String("cluster", "", "the hub cluster the node belongs to: its ID is the CSR's CN (hub-node)")
	code := fs.String("code", "", "the verification code (proof)")
	id := fs.String("id", "", "the device's registration ID, used as its CN (device)")
	days := fs.Int("days", 365, "validity in days")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	now := time.Now()
	validity := time.Duration(*days) * 24 * time.Hour
	switch sub {
	case "tpm-ek-cert":
		return pkiEKCertificate(env, *ek, *parent, *cn, *out, now, validity)
	case "hub-node":
		return pkiHubNode(env, *cluster, *out)
	}
	var issuer *pki.Issued
	var chain []*x509.Certificate // the issuer and the chain above it, as in its ca.pem
	if *parent != "" {
		if issuer, err = pki.Load(filepath.Join(*parent, "ca.pem"), filepath.Join(*parent, "ca-key.pem")); err != nil {
			return err
		}
		if chain, err = pki.LoadCertificates(filepath.Join(*parent, "ca.pem")); err != nil {
			return err
		}
	}
	switch sub {
	case "ca":
		if *cn == "" {
			return fmt.Errorf("%w: --cn is required", errUsage)
		}
		ca, err := pki.NewCA(*cn, issuer, now, validity)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o700); err != nil {
			return err
		}
		if err := ca.WriteFiles(filepath.Join(*out, "ca.pem"), filepath.Join(*out, "ca-key.pem")); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s and %s\n", filepath.Join(*out, "ca.pem"), filepath.Join(*out, "ca-key.pem"))
	case "proof":
		if issuer == nil || *code == "" {
			return fmt.Errorf("%w: --ca and --code are required", errUsage)
		}
		proof, err := pki.NewProof(issuer, *code, now)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, pki.CertPEM(proof.Cert), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s\n", *out)
	case "device":
		if issuer == nil || *id == "" {
			return fmt.Errorf("%w: --ca and --id are required", errUsage)
		}
		dev, err := pki.NewDevice(*id, issuer, now, validity)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o700); err != nil {
			return err
		}
		if err := dev.WriteFiles(filepath.Join(*out, "device.pem"), filepath.Join(*out, "device-key.pem"), chain...); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s (certificate and chain) and %s\n", filepath.Join(*out, "device.pem"), filepath.Join(*out, "device-key.pem"))
	}
	return nil
}
