package cli

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// defaultVendorCN names the evaluation TPM vendor CA tpm-ek-cert creates.
const defaultVendorCN = "Zerotouch Evaluation TPM Vendor CA"

// pkiEKCertificate writes an EK certificate for the EK in ekFile, issued
// by the TPM vendor CA in caDir (created there, with CN cn, if it holds
// none), and checks it as a TPM group checks a device's.
func pkiEKCertificate(env Env, ekFile, caDir, cn, out string, now time.Time, validity time.Duration) error {
	if ekFile == "" || caDir == "" || out == "" {
		return fmt.Errorf("%w: --ek FILE, --ca DIR and --out FILE are required", errUsage)
	}
	ekPublic, err := readEK(ekFile)
	if err != nil {
		return err
	}
	pub, err := tpm.ParsePublic("--ek", ekPublic)
	if err != nil {
		return err
	}
	if err := tpm.CheckEK(pub); err != nil {
		return fmt.Errorf("--ek: %w", err)
	}
	key, err := tpm.PublicKey(pub)
	if err != nil {
		return fmt.Errorf("--ek: %w", err)
	}
	vendor, created, err := vendorCA(caDir, cn, now, validity)
	if err != nil {
		return err
	}
	cert, err := pki.NewEKCertificate(key, vendor, now, validity)
	if err != nil {
		return err
	}
	// What a TPM group will check of it: the TCG profile's shape, the
	// EK's key, and the chain to the vendor CA.
	parsed, err := tpm.ParseEKCertificate(cert.Cert.Raw)
	if err == nil {
		err = tpm.CheckEKCertificate(parsed, pub)
	}
	if err == nil {
		_, err = tpm.VerifyEKChain(parsed, nil, []*x509.Certificate{vendor.Cert}, now)
	}
	if err != nil {
		return fmt.Errorf("the minted EK certificate does not pass the TPM group checks: %w", err)
	}
	if err := os.WriteFile(out, pki.CertPEM(cert.Cert), 0o644); err != nil {
		return err
	}
	caFile := filepath.Join(caDir, "ca.pem")
	if created {
		fmt.Fprintf(env.Stdout, "created the vendor CA %q in %s and %s\n", vendor.Cert.Subject.CommonName, caFile, filepath.Join(caDir, "ca-key.pem"))
	}
	fmt.Fprintf(env.Stdout, "wrote %s: the EK certificate of the TPM with registration ID %s (EK hash %s), issued by %q\n",
		out, tpm.RegistrationID(ekPublic), tpm.EKHash(ekPublic), vendor.Cert.Subject.CommonName)
	fmt.Fprintf(env.Stdout, "next: zerotouch ca create <NAME> --cert %s; zerotouch group create <GROUP> --ca <NAME> --attestation tpm; "+
		"zerotouch device register --tpm --tpm-ek-cert %s (with the same TPM)\n", caFile, out)
	return nil
}

// readEK reads an EK as TPM2B_PUBLIC from a file holding a PEM public key
// (the TCG default EK template is assumed), the TPM2B_PUBLIC as base64
// text, or the TPM2B_PUBLIC itself.
func readEK(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ek: %w", err)
	}
	text := strings.TrimSpace(string(raw))
	if strings.HasPrefix(text, "-----BEGIN") {
		ek, err := tpm.EKFromPEM(text + "\n")
		if err != nil {
			return nil, fmt.Errorf("--ek: %w", err)
		}
		return ek, nil
	}
	if b, err := base64.StdEncoding.DecodeString(text); err == nil && len(b) > 0 {
		return b, nil
	}
	return raw, nil
}

// vendorCA reads the CA in dir (ca.pem, ca-key.pem) or, when dir holds no
// ca.pem, creates a self-signed one there; created says which.
func vendorCA(dir, cn string, now time.Time, validity time.Duration) (ca *pki.Issued, created bool, err error) {
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if _, err := os.Stat(certFile); err == nil {
		ca, err := pki.Load(certFile, keyFile)
		if err != nil {
			return nil, false, fmt.Errorf("--ca: %w", err)
		}
		if !ca.Cert.IsCA {
			return nil, false, fmt.Errorf("--ca: %s is not a CA certificate", certFile)
		}
		return ca, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("--ca: %w", err)
	}
	if cn == "" {
		cn = defaultVendorCN
	}
	if ca, err = pki.NewCA(cn, nil, now, validity); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	if err := ca.WriteFiles(certFile, keyFile); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// pkiHubNode writes a hub node's key (dir/node-key.pem) and a certificate
// request for it (dir/node.csr, subject CN the cluster ID) for
// `hub-cluster issue-cert`. It never overwrites a key.
func pkiHubNode(env Env, cluster, dir string) error {
	if cluster == "" || dir == "" {
		return fmt.Errorf("%w: --cluster ID and --out DIR are required", errUsage)
	}
	if err := enrollment.ValidateID("--cluster", cluster); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	keyFile, csrFile := filepath.Join(dir, "node-key.pem"), filepath.Join(dir, "node.csr")
	if _, err := os.Stat(keyFile); err == nil {
		return fmt.Errorf("%s exists; a node key is never overwritten (remove it, or choose another --out)", keyFile)
	}
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cluster}}, key)
	if err != nil {
		return err
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644); err != nil {
		return err
	}
	certFile := filepath.Join(dir, "node.pem")
	fmt.Fprintf(env.Stdout, "wrote %s (the node's key; keep it on the node) and %s (its certificate request)\n", keyFile, csrFile)
	fmt.Fprintf(env.Stdout, "next: zerotouch hub-cluster create %s (once per cluster); zerotouch hub-cluster issue-cert %s --csr %s --out %s; "+
		"zerotouch hub --cert %s --key %s\n", cluster, cluster, csrFile, certFile, certFile, keyFile)
	return nil
}
