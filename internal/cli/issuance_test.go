package cli_test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/pki"
)

// TestIssuanceCommands: the three ways to make an issuing CA (generate,
// an intermediate signed offline, import), credential policies, and
// revocations, through the CLI against a dev server; malformed flags are
// usage errors that reach no server.
func TestIssuanceCommands(t *testing.T) {
	s := startDevServer(t)
	s.run(0, "pki", "ca", "--cn", "Offline Root", "--out", "offline")

	// An intermediate: its CSR goes to the offline root, the signed
	// certificate comes back.
	s.run(0, "issuing-ca", "create", "inter", "--mode", "intermediate", "--cn", "Fleet Issuing", "--csr-out", "inter.csr")
	raw, err := os.ReadFile("inter.csr")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.Load("offline/ca.pem", "offline/ca-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(42), Subject: csr.Subject,
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, root.Cert, csr.PublicKey, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := x509.ParseCertificate(der)
	if err := os.WriteFile("inter.pem", pki.CertPEM(signed, root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := s.run(1, "issuing-ca", "complete", "inter", "--cert", "offline/ca.pem"); !strings.Contains(out, "not for the CA's key") {
		t.Fatalf("complete with another key's certificate: %s", out)
	}
	s.run(0, "issuing-ca", "complete", "inter", "--cert", "inter.pem")
	var got struct{ State, CertificateChainPem string }
	if err := json.Unmarshal([]byte(s.run(0, "issuing-ca", "get", "inter", "-o", "json")), &got); err != nil || got.State != "ISSUING_CA_STATE_ACTIVE" || strings.Count(got.CertificateChainPem, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("after complete: %+v, %v", got, err)
	}

	// Import and generate; list.
	s.run(0, "issuing-ca", "create", "imp", "--mode", "import", "--cert", "offline/ca.pem", "--key", "offline/ca-key.pem")
	s.run(0, "issuing-ca", "create", "gen", "--key-type", "ecdsa-p256")
	if out := s.run(0, "issuing-ca", "list", "-q"); out != "gen\nimp\ninter\n" {
		t.Fatalf("issuing-ca list -q: %q", out)
	}
	s.run(0, "issuing-ca", "disable", "gen")
	if out := s.run(0, "issuing-ca", "list"); !strings.Contains(out, "disabled") {
		t.Fatalf("list after disable: %s", out)
	}

	// Policies.
	s.run(0, "credential-policy", "create", "p1", "--issuing-ca", "inter", "--key-types", "ecdsa-p256,rsa-2048", "--validity", "48h", "--revoke-on-disable")
	if out := s.run(0, "credential-policy", "get", "p1"); !strings.Contains(out, "ecdsa-p256,rsa-2048") || !strings.Contains(out, "48h0m0s") {
		t.Fatalf("policy: %s", out)
	}
	if out := s.run(1, "issuing-ca", "delete", "inter"); !strings.Contains(out, "RESOURCE_IN_USE") && !strings.Contains(out, "uses issuing CA") {
		t.Fatalf("deleting a CA a policy names: %s", out)
	}
	if out := s.run(1, "credential-policy", "create", "p2", "--issuing-ca", "nope"); !strings.Contains(out, "does not exist") {
		t.Fatalf("policy on a missing CA: %s", out)
	}
	s.run(0, "credential-policy", "update", "p1", "--issuing-ca", "imp", "--validity", "24h")
	s.run(0, "credential-policy", "delete", "p1")
	s.run(0, "issuing-ca", "delete", "inter")
	if out := s.run(0, "certificate", "revocations", "imp"); !strings.Contains(out, "SERIAL") {
		t.Fatalf("revocations table: %q", out)
	}

	// Usage errors, before any server.
	for _, args := range [][]string{
		{"issuing-ca", "create", "x", "--mode", "weird"},
		{"issuing-ca", "create", "x", "--cert", "offline/ca.pem"},
		{"credential-policy", "create", "p"},
		{"certificate", "revoke"},
		{"certificate", "revoke", "--serial", "0a"},
		{"issuing-ca", "crl", "imp"},
		{"device", "register", "--cert", "a.pem", "--key", "a.pem", "--new-cert", "x.pem"},
		{"device", "register", "--tpm", "--new-cert", "x.pem", "--new-key", "k.pem"},
	} {
		s.run(2, args...)
	}
}

// TestCRLCommands: a manufacturer CA's CRL uploaded, read and removed
// through the CLI, and a group's revocation policy set and changed.
func TestCRLCommands(t *testing.T) {
	s := startDevServer(t)
	s.run(0, "pki", "ca", "--cn", "Maker Root", "--out", "maker")
	s.run(0, "ca", "create", "maker", "--cert", "maker/ca.pem")
	ca, err := pki.Load("maker/ca.pem", "maker/ca-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(3), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(77), RevocationTime: now.Add(-time.Minute)}}}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("maker.crl", der, 0o644); err != nil {
		t.Fatal(err)
	}
	s.run(0, "ca", "crl", "upload", "maker", "--crl", "maker.crl")
	if out := s.run(0, "ca", "crl", "get", "maker"); !strings.Contains(out, "maker") || !strings.Contains(out, "NEXT UPDATE") {
		t.Fatalf("crl get: %s", out)
	}
	s.run(0, "group", "create", "maker-devices", "--ca", "maker", "--revocation-check", "best-effort", "--revocation-ocsp")
	var g struct {
		Revocation struct {
			Check string
			Ocsp  bool
		} `json:"revocation"`
	}
	if err := json.Unmarshal([]byte(s.run(0, "group", "get", "maker-devices", "-o", "json")), &g); err != nil || g.Revocation.Check != "REVOCATION_CHECK_BEST_EFFORT" || !g.Revocation.Ocsp {
		t.Fatalf("group's revocation policy: %+v %v", g, err)
	}
	s.run(0, "group", "update", "maker-devices", "--revocation-check", "off")
	g.Revocation.Ocsp = false
	if err := json.Unmarshal([]byte(s.run(0, "group", "get", "maker-devices", "-o", "json")), &g); err != nil || g.Revocation.Check != "REVOCATION_CHECK_OFF" || g.Revocation.Ocsp {
		t.Fatalf("after update: %+v %v", g, err)
	}
	s.run(2, "group", "update", "maker-devices", "--revocation-check", "sometimes")
	s.run(0, "ca", "crl", "delete", "maker")
	s.run(1, "ca", "crl", "get", "maker")
	s.run(2, "ca", "crl", "upload", "maker")
}
