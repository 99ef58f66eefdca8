package cli_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// opensslFingerprint is a SHA-256 fingerprint as openssl prints it
// (upper case, colons).
func opensslFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var pairs []string
	for i := 0; i < len(h); i += 2 {
		pairs = append(pairs, h[i:i+2])
	}
	return strings.Join(pairs, ":")
}

// mode is a file's permission bits.
func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestContexts: `context add` trusts on first use: it fetches the chain
// the server presents and pins the CA whose SHA-256 is the fingerprint
// given, and refuses a wrong fingerprint, the server's own certificate's,
// and the REST port given as --server. The context (0600 files in 0700
// directories under ZEROTOUCH_CONFIG_DIR) then connects every command
// from anywhere: its gRPC and REST addresses, its CA, its key file;
// flags and ZEROTOUCH_* variables still win over it. use, list, current
// and remove manage them.
func TestContexts(t *testing.T) {
	s, ca, serverCert := startServerWithChain(t)
	cfgDir := filepath.Join(t.TempDir(), "zt-config")
	keyFile := filepath.Join(s.dataDir, app.OwnerKeyFile)
	env := map[string]string{"ZEROTOUCH_CONFIG_DIR": cfgDir}
	zt := func(want int, args ...string) string {
		t.Helper()
		out, errOut := s.runEnv(env, want, args...)
		return out + errOut
	}
	caFP := opensslFingerprint(ca.Cert.Raw)

	// Refusals, and nothing is written for them.
	other, err := pki.NewCA("Someone Else", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if out := zt(1, "context", "add", "prod", "--server", s.grpcAddr, "--ca-fingerprint", opensslFingerprint(other.Cert.Raw)); !strings.Contains(out, "none of the 2 certificates") ||
		!strings.Contains(out, strings.ToLower(strings.ReplaceAll(caFP, ":", ""))) {
		t.Fatalf("a wrong fingerprint: %s", out)
	}
	if out := zt(1, "context", "add", "prod", "--server", s.grpcAddr, "--ca-fingerprint", opensslFingerprint(serverCert.Cert.Raw)); !strings.Contains(out, "not a CA") {
		t.Fatalf("the server's own fingerprint: %s", out)
	}
	if out := zt(1, "context", "add", "prod", "--server", s.httpAddr, "--ca-fingerprint", caFP); !strings.Contains(out, "likely the REST (HTTPS) port") {
		t.Fatalf("the REST port as --server: %s", out)
	}
	zt(2, "context", "add", "prod", "--server", s.grpcAddr, "--ca-fingerprint", "abc")
	zt(2, "context", "add", "prod", "--server", s.grpcAddr)
	zt(2, "context", "add", "../prod", "--server", s.grpcAddr, "--ca-fingerprint", caFP)
	zt(1, "context", "add", "prod", "--server", s.grpcAddr, "--ca-fingerprint", caFP, "--key-file", "nowhere.key")
	if _, err := os.Stat(cfgDir); !os.IsNotExist(err) {
		t.Fatalf("a refused context wrote %s: %v", cfgDir, err)
	}

	// The right fingerprint: the CA is pinned, the first context is current.
	out := zt(0, "context", "add", "prod", "--server", s.grpcAddr, "--http-server", s.httpAddr, "--ca-fingerprint", caFP, "--key-file", keyFile)
	if !strings.Contains(out, "added context prod") || !strings.Contains(out, "now the current context") {
		t.Fatalf("context add: %s", out)
	}
	for path, want := range map[string]os.FileMode{cfgDir: 0o700, filepath.Join(cfgDir, "ca"): 0o700,
		filepath.Join(cfgDir, "contexts.yaml"): 0o600, filepath.Join(cfgDir, "ca", "prod.pem"): 0o600} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
	pinned, err := pki.LoadCertificates(filepath.Join(cfgDir, "ca", "prod.pem"))
	if err != nil || len(pinned) != 1 || !pinned[0].Equal(ca.Cert) {
		t.Fatalf("the pinned CA: %v %v", pinned, err)
	}
	raw, _ := os.ReadFile(filepath.Join(cfgDir, "contexts.yaml"))
	if key, _ := os.ReadFile(keyFile); strings.Contains(string(raw), strings.TrimSpace(string(key))) {
		t.Fatal("contexts.yaml holds the access key itself")
	}
	if out := zt(0, "context", "current"); out != "prod\n" {
		t.Fatalf("context current: %q", out)
	}
	zt(2, "context", "add", "prod", "--server", s.grpcAddr, "--ca-fingerprint", caFP)

	// From a directory with no .zerotouch, the context connects: gRPC...
	t.Chdir(t.TempDir())
	if out := zt(0, "shard", "create", "hub-1", "--hostname", "hub1.example.com", "-q"); out != "hub-1\n" {
		t.Fatalf("shard create through the context: %q", out)
	}
	// ...and REST, for a device.
	zt(0, "pki", "ca", "--cn", "Acme Root", "--out", "acme")
	zt(0, "ca", "create", "acme-root", "--cert", "acme/ca.pem")
	code := strings.TrimSpace(zt(0, "ca", "verification-code", "acme-root", "-q"))
	zt(0, "pki", "proof", "--ca", "acme", "--code", code, "--out", "proof.pem")
	zt(0, "ca", "verify", "acme-root", "--cert", "proof.pem")
	zt(0, "group", "create", "acme", "--ca", "acme-root")
	zt(0, "pki", "device", "--ca", "acme", "--id", "dev-1", "--out", "dev-1")
	if out := zt(0, "device", "register", "--transport", "rest", "--cert", "dev-1/device.pem", "--key", "dev-1/device-key.pem", "-o", "table"); !regexp.MustCompile(`(?m)^dev-1\s+assigned\s+hub1\.example\.com`).MatchString(out) {
		t.Fatalf("device register over REST through the context: %s", out)
	}

	// Flags, then variables, win over the context.
	env["ZEROTOUCH_SERVER"] = "127.0.0.1:1"
	if out := zt(1, "shard", "list"); !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("ZEROTOUCH_SERVER over the context: %s", out)
	}
	zt(0, "shard", "list", "--server", s.grpcAddr)
	delete(env, "ZEROTOUCH_SERVER")
	env["ZEROTOUCH_ACCESS_KEY"] = "ztk.00.bad"
	if out := zt(1, "shard", "list"); !strings.Contains(out, "UNAUTHENTICATED") {
		t.Fatalf("ZEROTOUCH_ACCESS_KEY over the context's key file: %s", out)
	}
	delete(env, "ZEROTOUCH_ACCESS_KEY")

	// A second context from a local CA file, then use, list, remove.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pki.CertPEM(ca.Cert), 0o600)
	if out := zt(1, "context", "add", "other", "--server", s.grpcAddr, "--ca-file", caFile, "--ca-fingerprint", opensslFingerprint(other.Cert.Raw)); !strings.Contains(out, "fingerprint") {
		t.Fatalf("--ca-file with another fingerprint: %s", out)
	}
	if out := zt(0, "context", "add", "other", "--server", s.grpcAddr, "--ca-file", caFile); strings.Contains(out, "current") {
		t.Fatalf("a second context became current: %s", out)
	}
	zt(1, "context", "use", "nowhere")
	if out := zt(0, "context", "use", "other"); out != "current context: other\n" {
		t.Fatalf("context use: %q", out)
	}
	out = zt(0, "context", "list")
	if !regexp.MustCompile(`(?m)^\*\s+other\s+`+regexp.QuoteMeta(s.grpcAddr)).MatchString(out) || !regexp.MustCompile(`(?m)^\s+prod\s+`).MatchString(out) {
		t.Fatalf("context list:\n%s", out)
	}
	var listed struct {
		Current  string
		Contexts []struct {
			Name, Server, CAFingerprint string
			Current                     bool
		}
	}
	if err := json.Unmarshal([]byte(zt(0, "context", "list", "-o", "json")), &listed); err != nil || listed.Current != "other" || len(listed.Contexts) != 2 ||
		listed.Contexts[0].CAFingerprint != strings.ToLower(strings.ReplaceAll(caFP, ":", "")) {
		t.Fatalf("context list -o json: %+v %v", listed, err)
	}
	if out := zt(0, "context", "list", "-q"); out != "prod\nother\n" {
		t.Fatalf("context list -q: %q", out)
	}
	// "other" has no key file and there is no data directory here.
	if out := zt(1, "shard", "list"); !strings.Contains(out, "no access key") {
		t.Fatalf("a context without a key file: %s", out)
	}
	zt(0, "shard", "list", "--context", "prod")
	zt(0, "context", "remove", "other")
	if _, err := os.Stat(filepath.Join(cfgDir, "ca", "other.pem")); !os.IsNotExist(err) {
		t.Fatalf("the removed context's CA is still there: %v", err)
	}
	if out := zt(1, "context", "current"); !strings.Contains(out, "no current context") {
		t.Fatalf("context current after removing it: %s", out)
	}
	if out := zt(1, "shard", "list", "--context", "other"); !strings.Contains(out, `no context "other"`) {
		t.Fatalf("--context of a removed context: %s", out)
	}
}
