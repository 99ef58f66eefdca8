package cli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/config"
)

// TestWalkThrough runs the README's five-minute walk-through with the real
// CLI against a real dev-mode server: upload a CA, verify it, create a
// shard and a group, register a device over gRPC and REST, then disable
// the group and see the device refused.
func TestWalkThrough(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	dataDir := filepath.Join(work, ".zerotouch")
	cfg, err := config.Load([]string{"--dev", "--data-dir", dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, app.Options{Started: func(g, h string) { addrs <- [2]string{g, h} }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var grpcAddr, httpAddr string
	select {
	case a := <-addrs:
		grpcAddr, httpAddr = a[0], a[1]
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}

	run := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		env := cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
			if k == "ZEROTOUCH_SERVER" {
				if len(args) > 1 && args[0] == "device" && strings.Contains(strings.Join(args, " "), "--transport rest") {
					return httpAddr
				}
				return grpcAddr
			}
			return ""
		}}
		if code := cli.Main(t.Context(), args, env); code != wantCode {
			t.Fatalf("zerotouch %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}

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
	if out := run(0, "registration", "list", "--group", "acme"); strings.Count(out, `"registrationId"`) != 1 {
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
	run(0, "shard", "update", "hub-1", "--weight", "500")
	if out := run(0, "shard", "get", "hub-1"); !strings.Contains(out, "500") {
		t.Fatalf("shard update: %s", out)
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
