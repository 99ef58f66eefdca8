package cli_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// publicKeyPEM is a public key as a PEM PUBLIC KEY.
func publicKeyPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestPKITPMEKCert: `pki tpm-ek-cert` makes an EK certificate that a TPM
// group accepts. The simulated TPM's EK (base64, as `device tpm-ek`
// prints it) gets a certificate from a vendor CA the command creates;
// that CA goes up as a TPM group's CA, and the TPM registers through the
// group presenting the certificate. A second run reads the same CA, for
// an EK given as a PEM public key or as a binary TPM2B_PUBLIC; EKs a TPM
// cannot have and missing flags are refused, and nothing is written then.
func TestPKITPMEKCert(t *testing.T) {
	s := startDevServer(t)
	out := s.run(0, "device", "tpm-ek", "--tpm-seed", "11")
	m := regexp.MustCompile(`registration ID: (\S+)\nendorsement key \(TPM2B_PUBLIC, base64\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("device tpm-ek printed %q", out)
	}
	regID := m[1]
	if err := os.WriteFile("ek.b64", []byte(m[2]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = s.run(0, "pki", "tpm-ek-cert", "--ek", "ek.b64", "--ca", "vendor", "--out", "ek-cert.pem")
	if !strings.Contains(out, "created the vendor CA") || !strings.Contains(out, regID) {
		t.Fatalf("tpm-ek-cert: %s", out)
	}
	s.run(0, "ca", "create", "tpm-vendor", "--cert", "vendor/ca.pem")
	s.run(0, "shard", "create", "hub-1", "--hostname", "hub1.example.com")
	s.run(0, "group", "create", "tpm-fleet", "--ca", "tpm-vendor", "--attestation", "tpm")
	// Without the certificate the TPM has no enrollment; with it, the group
	// admits it.
	if out := s.run(1, "device", "register", "--tpm", "--tpm-seed", "11"); !strings.Contains(out, "TPM_EK_UNKNOWN") {
		t.Fatalf("a TPM without an EK certificate: %s", out)
	}
	out = s.run(0, "device", "register", "--tpm", "--tpm-seed", "11", "--tpm-ek-cert", "ek-cert.pem")
	if !regexp.MustCompile(`"enrollmentGroupId":\s*"tpm-fleet"`).MatchString(out) || !strings.Contains(out, "REGISTRATION_STATUS_ASSIGNED") || !strings.Contains(out, regID) {
		t.Fatalf("TPM group registration: %s", out)
	}

	// The same vendor CA, read, for an EK as PEM and as binary TPM2B_PUBLIC.
	vendor, err := pki.LoadCertificates("vendor/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	eccKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eccEK, err := tpm.EKFromPEM(string(publicKeyPEM(t, &eccKey.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile("rsa-ek.pem", publicKeyPEM(t, &rsaKey.PublicKey), 0o600)
	os.WriteFile("ecc-ek.bin", eccEK, 0o600)
	for file, want := range map[string]any{"rsa-ek.pem": &rsaKey.PublicKey, "ecc-ek.bin": &eccKey.PublicKey} {
		out := s.run(0, "pki", "tpm-ek-cert", "--ek", file, "--ca", "vendor", "--out", file+".crt")
		if strings.Contains(out, "created the vendor CA") {
			t.Fatalf("%s: the vendor CA was made again: %s", file, out)
		}
		certs, err := pki.LoadCertificates(file + ".crt")
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tpm.ParseEKCertificate(certs[0].Raw)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(want) {
			t.Fatalf("%s: the certificate is for another key", file)
		}
		if _, err := tpm.VerifyEKChain(cert, nil, vendor, time.Now()); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		wantUsage := x509.KeyUsageKeyEncipherment
		if file == "ecc-ek.bin" {
			wantUsage = x509.KeyUsageKeyAgreement
		}
		if cert.KeyUsage != wantUsage || cert.Subject.String() != "" || len(cert.UnknownExtKeyUsage) != 1 {
			t.Fatalf("%s: not shaped as the TCG EK profile: usage %v, subject %q, EKU %v", file, cert.KeyUsage, cert.Subject, cert.UnknownExtKeyUsage)
		}
	}

	// Refusals: keys a TPM's EK cannot be, files that hold no EK, no flags.
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	os.WriteFile("weak.pem", publicKeyPEM(t, &weak.PublicKey), 0o600)
	os.WriteFile("p384.pem", publicKeyPEM(t, &p384.PublicKey), 0o600)
	os.WriteFile("junk.bin", []byte{0, 3, 1, 2, 3}, 0o600)
	os.WriteFile("cert.pem", pki.CertPEM(vendor[0]), 0o600)
	for file, want := range map[string]string{"weak.pem": "KEY_UNSUPPORTED", "p384.pem": "KEY_UNSUPPORTED", "junk.bin": "TPM_STRUCTURE_INVALID",
		"cert.pem": "PUBLIC KEY", "missing.pem": "no such file"} {
		if out := s.run(1, "pki", "tpm-ek-cert", "--ek", file, "--ca", "vendor", "--out", "refused.crt"); !strings.Contains(out, want) {
			t.Errorf("--ek %s: %s, want %s", file, out, want)
		}
	}
	if _, err := os.Stat("refused.crt"); err == nil {
		t.Fatal("a refused EK got a certificate")
	}
	s.run(2, "pki", "tpm-ek-cert", "--ca", "vendor", "--out", "x.crt")
	s.run(2, "pki", "tpm-ek-cert", "--ek", "ek.b64", "--out", "x.crt")
}

// TestPKIHubNode: `hub-cluster issue-cert` before the cluster exists says
// to create it; `pki hub-node` makes a node key (0600, never overwritten)
// and a CSR; issue-cert turns the CSR into a pinned certificate written
// with --out, and that certificate with the node key authenticates the
// node to HubAssignmentService as its cluster.
func TestPKIHubNode(t *testing.T) {
	s := startDevServer(t)
	out := s.run(0, "pki", "hub-node", "--cluster", "hubs-eu", "--out", "node1")
	if !strings.Contains(out, "hub-cluster issue-cert hubs-eu --csr node1/node.csr --out node1/node.pem") {
		t.Fatalf("hub-node did not say what comes next: %s", out)
	}
	if st, err := os.Stat("node1/node-key.pem"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("node key: %v %v", st, err)
	}
	raw, _ := os.ReadFile("node1/node.csr")
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("node.csr: %q", raw)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "hubs-eu" {
		t.Fatalf("CSR: %+v %v", csr, err)
	}
	keyBefore, _ := os.ReadFile("node1/node-key.pem")
	if out := s.run(1, "pki", "hub-node", "--cluster", "hubs-eu", "--out", "node1"); !strings.Contains(out, "never overwritten") {
		t.Fatalf("second hub-node: %s", out)
	}
	if keyAfter, _ := os.ReadFile("node1/node-key.pem"); string(keyAfter) != string(keyBefore) {
		t.Fatal("the node key was overwritten")
	}
	s.run(2, "pki", "hub-node", "--out", "node2")
	s.run(2, "pki", "hub-node", "--cluster", "hubs/eu", "--out", "node2")

	// Before the cluster exists: the cause, not a bare NOT_FOUND.
	if out := s.run(1, "hub-cluster", "issue-cert", "hubs-eu", "--csr", "node1/node.csr", "--out", "node1/node.pem"); !strings.Contains(out, "create it first with `zerotouch hub-cluster create hubs-eu`") {
		t.Fatalf("issue-cert before create: %s", out)
	}
	if out := s.run(1, "hub-cluster", "issue-cert", "hubs-eu", "--csr", "nowhere.csr"); !strings.Contains(out, "pki hub-node") {
		t.Fatalf("issue-cert without a CSR: %s", out)
	}
	s.run(0, "hub-cluster", "create", "hubs-eu")
	s.run(0, "shard", "create", "eu-1", "--hostname", "eu-1.example.com", "--hub-cluster", "hubs-eu")
	out = s.run(0, "hub-cluster", "issue-cert", "hubs-eu", "--csr", "node1/node.csr", "--out", "node1/node.pem")
	pair, err := tls.LoadX509KeyPair("node1/node.pem", "node1/node-key.pem")
	if err != nil {
		t.Fatalf("issued certificate and node key: %v", err)
	}
	if !strings.Contains(out, `"certificatePem"`) || pair.Leaf.Subject.CommonName != "hubs-eu" {
		t.Fatalf("issued certificate: %s", pair.Leaf.Subject)
	}
	if out := s.run(0, "hub-cluster", "get", "hubs-eu", "-o", "json"); strings.Count(out, `"certificateThumbprints"`) != 1 {
		t.Fatalf("the issued certificate is not pinned: %s", out)
	}
	roots := x509.NewCertPool()
	serverCA, err := pki.LoadCertificates(filepath.Join(s.dataDir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range serverCA {
		roots.AddCert(c)
	}
	cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	shards, err := pb.NewHubAssignmentServiceClient(cc).ListClusterShards(t.Context(), &pb.ListClusterShardsRequest{})
	if err != nil || len(shards.GetShards()) != 1 || shards.GetShards()[0] != "eu-1" {
		t.Fatalf("the node as its cluster: %v %v", shards, err)
	}
}

// ekBase64 is a fresh (software) P-256 EK as base64 TPM2B_PUBLIC.
func ekBase64(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := tpm.EKFromPEM(string(publicKeyPEM(t, &k.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ek)
}
