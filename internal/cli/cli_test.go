package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// dpsGet calls the DPS service API as the Azure SDKs do: a SAS token made
// from a connection string, signed for its HostName.
func dpsGet(t *testing.T, connectionString, addr, caFile, path string) (int, string) {
	t.Helper()
	parts := map[string]string{}
	for _, kv := range strings.Split(connectionString, ";") {
		k, v, _ := strings.Cut(kv, "=")
		parts[k] = v
	}
	key, err := base64.StdEncoding.DecodeString(parts["SharedAccessKey"])
	if err != nil {
		t.Fatalf("connection string %q: %v", connectionString, err)
	}
	certs, err := pki.LoadCertificates(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, c := range certs {
		roots.AddCert(c)
	}
	_, port, _ := net.SplitHostPort(addr)
	req, _ := http.NewRequest("GET", "https://"+parts["HostName"]+":"+port+path+"?api-version=2021-10-01", nil)
	req.Header.Set("Authorization", symkey.Sign(key, parts["HostName"], time.Now().Add(time.Hour), parts["SharedAccessKeyName"]))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestWalkThrough runs a longer walk-through than the README's
// (TestREADMEWalkThrough runs that one as written) with the real CLI
// against a real dev-mode server: upload a CA, verify it, create a shard
// and a group, register a device over gRPC and REST, disable the group
// and see a device refused, then registrations, TPMs, symmetric keys, hub
// clusters, webhooks and access keys.
func TestWalkThrough(t *testing.T) {
	s := startDevServer(t)
	httpAddr, dataDir, run := s.httpAddr, s.dataDir, s.run

	run(0, "pki", "ca", "--cn", "Acme Root", "--out", "acme")
	run(0, "ca", "create", "acme-root", "--cert", "acme/ca.pem")
	out := run(0, "ca", "verification-code", "acme-root")
	code := regexp.MustCompile(`"verificationCode":\s*"([0-9A-F]+)"`).FindStringSubmatch(out)
	if code == nil {
		t.Fatalf("no verification code in %s", out)
	}
	run(0, "pki", "proof", "--ca", "acme", "--code", code[1], "--out", "proof.pem")
	if out := run(0, "ca", "verify", "acme-root", "--cert", "proof.pem"); !regexp.MustCompile(`"verified":\s*true`).MatchString(out) {
		t.Fatalf("not verified: %s", out)
	}
	run(0, "shard", "create", "hub-1", "--hostname", "hub1.example.com")
	run(0, "group", "create", "acme", "--ca", "acme-root")
	run(0, "pki", "device", "--ca", "acme", "--id", "dev-001", "--out", "dev-001")
	out = run(0, "device", "register", "--cert", "dev-001/device.pem", "--key", "dev-001/device-key.pem")
	if !strings.Contains(out, "REGISTRATION_STATUS_ASSIGNED") || !strings.Contains(out, "hub1.example.com") {
		t.Fatalf("gRPC registration: %s", out)
	}
	out = run(0, "device", "register", "--transport", "rest", "--cert", "dev-001/device.pem", "--key", "dev-001/device-key.pem")
	if !strings.Contains(out, "REGISTRATION_STATUS_ASSIGNED") {
		t.Fatalf("REST registration: %s", out)
	}
	if out := run(0, "registration", "list", "--group", "acme", "-o", "json"); strings.Count(out, `"registrationId"`) != 1 {
		t.Fatalf("registration list: %s", out)
	}
	run(0, "group", "disable", "acme")
	run(0, "pki", "device", "--ca", "acme", "--id", "dev-002", "--out", "dev-002")
	if out := run(1, "device", "register", "--cert", "dev-002/device.pem", "--key", "dev-002/device-key.pem"); !strings.Contains(out, "ENROLLMENT_DISABLED") {
		t.Fatalf("disabled group: %s", out)
	}
	run(0, "group", "enable", "acme")
	run(0, "device", "register", "--cert", "dev-002/device.pem", "--key", "dev-002/device-key.pem")
	run(0, "registration", "delete", "dev-002")
	if out := run(0, "registration", "disable", "dev-001"); !strings.Contains(out, "REGISTRATION_STATUS_DISABLED") {
		t.Fatalf("registration disable: %s", out)
	}
	if out := run(1, "device", "register", "--cert", "dev-001/device.pem", "--key", "dev-001/device-key.pem"); !strings.Contains(out, "REGISTRATION_DISABLED") {
		t.Fatalf("a disabled registration registering: %s", out)
	}
	if out := run(0, "registration", "enable", "dev-001"); !strings.Contains(out, "REGISTRATION_STATUS_ASSIGNED") {
		t.Fatalf("registration enable: %s", out)
	}
	run(1, "registration", "disable", "dev-001", "--etag", "stale")
	// dev-001 created, disabled and enabled with its group, dev-002 created
	// and deleted, dev-001 disabled and enabled on its own.
	if out := run(0, "shard", "get", "hub-1", "-o", "json"); !regexp.MustCompile(`"assignmentLogHead":\s*"7"`).MatchString(out) {
		t.Fatalf("shard's log head: %s", out)
	}
	run(2, "hub")
	run(2, "hub", "--shards", "hub-1", "--cert", "x.pem")
	run(0, "shard", "update", "hub-1", "--weight", "500", "--region", "eu-west", "--capacity", "1000")
	if out := run(0, "shard", "get", "hub-1", "-o", "json"); !strings.Contains(out, "500") || !strings.Contains(out, "eu-west") || !regexp.MustCompile(`"devices":\s*"1"`).MatchString(out) {
		t.Fatalf("shard update: %s", out)
	}
	if out := run(1, "shard", "update", "hub-1", "--region", "EU West"); !strings.Contains(out, "FIELD_INVALID") {
		t.Fatalf("bad region: %s", out)
	}

	// A factory's EK list, imported in batches, then a TPM's first boot.
	out = run(0, "device", "tpm-ek", "--tpm-seed", "7")
	ekLine := regexp.MustCompile(`base64\): (\S+)`).FindStringSubmatch(out)
	if ekLine == nil {
		t.Fatalf("tpm-ek printed %q", out)
	}
	var lines []string
	lines = append(lines, "# registration_id,endorsement_key", ","+ekLine[1])
	for range 1500 {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		ek, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, ","+base64.StdEncoding.EncodeToString(ek))
	}
	lines = append(lines, "broken-ek,"+base64.StdEncoding.EncodeToString([]byte{0, 1, 2}))
	if err := os.WriteFile("eks.csv", []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(1, "enrollment", "import", "eks.csv"); !strings.Contains(out, "1501 created, 1 refused") || !strings.Contains(out, "eks.csv:1503: TPM_STRUCTURE_INVALID") {
		t.Fatalf("import: %s", out)
	}
	if out := run(0, "device", "register", "--tpm", "--tpm-seed", "7"); !strings.Contains(out, "ATTESTATION_TYPE_TPM") || !strings.Contains(out, "REGISTRATION_STATUS_ASSIGNED") {
		t.Fatalf("TPM registration: %s", out)
	}

	// Symmetric-key enrollments print their keys once.
	if out := run(0, "enrollment", "create", "sym-dev", "--symmetric"); !strings.Contains(out, "primaryKey") || !strings.Contains(out, "ATTESTATION_TYPE_SYMMETRIC_KEY") {
		t.Fatalf("symmetric enrollment: %s", out)
	}
	if out := run(0, "group", "create", "sym-group", "--attestation", "symmetric"); !strings.Contains(out, "secondaryKey") {
		t.Fatalf("symmetric group: %s", out)
	}
	run(2, "enrollment", "create", "sym-dev-2", "--symmetric", "--primary-key", "%%%")
	// A hub cluster whose node certificate Zerotouch issues from a CSR.
	run(0, "hub-cluster", "create", "hubs-eu")
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, nodeKey)
	os.WriteFile("node.csr", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), 0o600)
	if out := run(0, "hub-cluster", "issue-cert", "hubs-eu", "--csr", "node.csr", "--validity-days", "30"); !strings.Contains(out, "certificatePem") {
		t.Fatalf("issue-cert: %s", out)
	}
	if out := run(0, "hub-cluster", "get", "hubs-eu", "-o", "json"); !strings.Contains(out, "certificateThumbprints") {
		t.Fatalf("the issued certificate is not pinned: %s", out)
	}
	run(0, "shard", "update", "hub-1", "--hub-cluster", "hubs-eu")
	run(1, "hub-cluster", "delete", "hubs-eu")

	// A custom allocation webhook, and the secret its receiver checks.
	if out := run(0, "group", "create", "wh-group", "--attestation", "symmetric", "--policy", "custom", "--webhook-url", "https://hooks.example.com/allocate",
		"--webhook-timeout", "2s", "--webhook-fallback", "hashed"); !strings.Contains(out, "ALLOCATION_POLICY_CUSTOM") || !strings.Contains(out, "hooks.example.com") {
		t.Fatalf("custom group: %s", out)
	}
	if out := run(0, "webhook-secret", "https://hooks.example.com/allocate"); !regexp.MustCompile(`"secret":\s*"[A-Za-z0-9+/=]{40,}"`).MatchString(out) {
		t.Fatalf("webhook-secret: %s", out)
	}
	run(2, "group", "create", "wh-group-2", "--attestation", "symmetric", "--policy", "custom", "--webhook-url", "https://h.example.com", "--webhook-fallback", "custom")

	// The owner's DPS connection string works against the DPS service API.
	cs, err := os.ReadFile(filepath.Join(dataDir, app.OwnerDPSFile))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dataDir, app.OwnerDPSFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("owner.dps mode %v", st.Mode().Perm())
	}
	if code, body := dpsGet(t, strings.TrimSpace(string(cs)), httpAddr, filepath.Join(dataDir, "pki", "ca.pem"), "/enrollments/sym-dev"); code != 200 || !strings.Contains(body, `"registrationId":"sym-dev"`) {
		t.Fatalf("DPS service API with owner.dps: %d %s", code, body)
	}

	// Access keys: a read-only key reads and cannot configure; deleted, it
	// stops working, bearer token and DPS connection string alike.
	// No --dps-host: the server names the host its SAS tokens must name.
	out = run(0, "access-key", "create", "auditor", "--permissions", "EnrollmentRead,RegistrationStatusRead")
	m := regexp.MustCompile(`access key (\S+) created[\s\S]*bearer token: (\S+)\nDPS connection string: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("access-key create printed %q", out)
	}
	auditorID, auditor, auditorCS := m[1], m[2], m[3]
	run(0, "enrollment", "list", "--access-key", auditor)
	if out := run(1, "shard", "create", "hub-2", "--hostname", "hub2.example.com", "--access-key", auditor); !strings.Contains(out, "PERMISSION_DENIED") {
		t.Fatalf("auditor configuring: %s", out)
	}
	if code, _ := dpsGet(t, auditorCS, httpAddr, filepath.Join(dataDir, "pki", "ca.pem"), "/enrollments/sym-dev"); code != 200 {
		t.Fatalf("auditor's connection string: %d", code)
	}
	if out := run(0, "access-key", "list", "-o", "json"); strings.Count(out, `"id"`) != 2 || !regexp.MustCompile(`"hasSharedAccessKey":\s*true`).MatchString(out) {
		t.Fatalf("access-key list: %s", out)
	}
	if out := run(1, "access-key", "create", "bad", "--permissions", "Everything"); !strings.Contains(out, "FIELD_INVALID") {
		t.Fatalf("unknown permission: %s", out)
	}
	if out := run(1, "access-key", "delete", "owner"); !strings.Contains(out, "cannot delete itself") {
		t.Fatalf("self-delete: %s", out)
	}
	run(2, "access-key", "create", "nopes")
	run(0, "access-key", "delete", auditorID)
	if out := run(1, "enrollment", "list", "--access-key", auditor); !strings.Contains(out, "UNAUTHENTICATED") {
		t.Fatalf("deleted key: %s", out)
	}
	if code, _ := dpsGet(t, auditorCS, httpAddr, filepath.Join(dataDir, "pki", "ca.pem"), "/enrollments/sym-dev"); code != 401 {
		t.Fatalf("deleted key's connection string: %d", code)
	}

	// Usage and access errors.
	run(2, "ca", "create")
	run(2, "nonsense")
	run(2, "shard", "create", "x", "--state", "sleepy")
	if out := run(1, "ca", "list", "--access-key", "ztk.00.bad"); !strings.Contains(out, "UNAUTHENTICATED") {
		t.Fatalf("bad key: %s", out)
	}
	os.Remove(filepath.Join(dataDir, app.OwnerKeyFile))
	if out := run(1, "ca", "list"); !strings.Contains(out, "no access key") {
		t.Fatalf("missing key file: %s", out)
	}
}
