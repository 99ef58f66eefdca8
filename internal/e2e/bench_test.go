package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/zerotouch/zerotouch/internal/bench"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// TestBenchTool runs `zerotouch bench --spawn` for a short run and checks
// the report's counts and fields (never its speed).
func TestBenchTool(t *testing.T) {
	bin := zerotouchBinary(t)
	out, err := benchOutput(bin, "bench", "--spawn", "--devices", "40", "--concurrency", "4", "--json")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var res struct {
		Reports []bench.Report `json:"reports"`
		Ratios  []string       `json:"ratios"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if len(res.Reports) != 4 || len(res.Ratios) != 2 {
		t.Fatalf("%d reports and %d ratios, want 4 and 2:\n%s", len(res.Reports), len(res.Ratios), out)
	}
	seen := map[string]bool{}
	for _, r := range res.Reports {
		seen[r.Mode+"/"+r.Transport] = true
		if r.Attempted != 40 || r.Succeeded != 40 || len(r.Errors) != 0 {
			t.Errorf("%s/%s: %d of %d succeeded, errors %v", r.Mode, r.Transport, r.Succeeded, r.Attempted, r.Errors)
		}
		if r.PerSecond <= 0 || r.LatencyMs.P50 <= 0 || r.LatencyMs.P50 > r.LatencyMs.P99 || r.LatencyMs.P99 > r.LatencyMs.Max || !r.ServerCPUMeasured || r.KEX != "x25519" {
			t.Errorf("%s/%s: implausible report %+v", r.Mode, r.Transport, r)
		}
		// The spawned server's zerotouch_store_bytes: bytes in use, which
		// every registration adds to (the file's size grows in steps).
		if r.Mode == "register" && r.StoreBytesPerOp <= 0 {
			t.Errorf("%s/%s: store bytes per device %.1f, want > 0", r.Mode, r.Transport, r.StoreBytesPerOp)
		}
	}
	for _, k := range []string{"ceiling/grpc", "register/grpc", "ceiling/rest", "register/rest"} {
		if !seen[k] {
			t.Errorf("no %s report", k)
		}
	}

	// Symmetric keys over reused connections, and the DPS-compatible API.
	for _, args := range [][]string{
		{"--attestation", "symmetric", "--reuse", "--mode", "register"},
		{"--transport", "dps", "--attestation", "symmetric", "--mode", "register"},
		{"--transport", "dps", "--mode", "register"},
		{"--transport", "mqtt", "--attestation", "symmetric", "--mode", "register"}, // and dps, to compare
		{"--attestation", "tpm"}, // both transports, register only
	} {
		out, err := benchOutput(bin, append([]string{"bench", "--spawn", "--devices", "30", "--concurrency", "4", "--json"}, args...)...)
		if err != nil {
			t.Fatalf("bench %v: %v\n%s", args, err, out)
		}
		var res struct {
			Reports []bench.Report `json:"reports"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Reports) == 0 {
			t.Fatalf("bench %v: %v\n%s", args, err, out)
		}
		for _, r := range res.Reports {
			if r.Succeeded != 30 || len(r.Errors) != 0 || r.Mode != "register" {
				t.Errorf("bench %v: %+v", args, r)
			}
			// TPM devices run in 4 worker processes (one simulator each),
			// whose CPU is the client's.
			if tpm := r.Attestation == "tpm"; tpm != (r.DeviceMsPerOp > 0) || (tpm && (r.Concurrency != 4 || r.ClientCPUPerOpUs <= 0)) {
				t.Errorf("bench %v: TPM simulator time %.2f ms, client CPU %.0f µs, concurrency %d", args, r.DeviceMsPerOp, r.ClientCPUPerOpUs, r.Concurrency)
			}
		}
	}

	// DPS over MQTT: fresh TLS per device, its ceiling (TLS and
	// CONNECT/CONNACK), the rate against the ceiling and the DPS HTTPS API,
	// and the server's memory per idle connection.
	out, err = benchOutput(bin, "bench", "--spawn", "--transport", "mqtt", "--devices", "20", "--concurrency", "4", "--json")
	var mq struct {
		Reports []bench.Report `json:"reports"`
		Ratios  []string       `json:"ratios"`
		Idle    struct {
			Connections int     `json:"connections"`
			Bytes       float64 `json:"server_bytes_per_connection"`
		} `json:"mqtt_idle"`
	}
	if jerr := json.Unmarshal(out, &mq); err != nil || jerr != nil || len(mq.Reports) != 4 || len(mq.Ratios) != 3 || mq.Idle.Connections != 20 || mq.Idle.Bytes == 0 {
		t.Fatalf("bench --transport mqtt: %v %v\n%s", err, jerr, out)
	}
	for _, r := range mq.Reports {
		if r.Succeeded != 20 || len(r.Errors) != 0 || !r.ServerCPUMeasured {
			t.Errorf("bench --transport mqtt: %+v", r)
		}
	}

	// --duration ends a run early: closed loop with far more devices than
	// fit in the time, and open loop where the rate and duration give the
	// device count.
	for _, args := range [][]string{
		{"--attestation", "symmetric", "--reuse", "--devices", "200000", "--duration", "500ms", "--transport", "grpc"},
		{"--rate", "20", "--duration", "1s", "--transport", "rest"},
	} {
		out, err := benchOutput(bin, append([]string{"bench", "--spawn", "--mode", "register", "--concurrency", "4", "--json"}, args...)...)
		var res struct {
			Reports []bench.Report `json:"reports"`
		}
		if jerr := json.Unmarshal(out, &res); err != nil || jerr != nil || len(res.Reports) != 1 {
			t.Fatalf("bench %v: %v %v\n%s", args, err, jerr, out)
		}
		r := res.Reports[0]
		if r.Attempted < 1 || r.Attempted >= 200000 || r.Succeeded != r.Attempted || r.Attempted > 20 && args[0] == "--rate" {
			t.Errorf("bench %v: %+v", args, r)
		}
	}

	// The Redis backend: store bytes per device come from Redis's memory.
	rs := redistest.Start(t, redistest.Options{})
	out, err = benchOutput(bin, "bench", "--spawn", "--storage", "redis", "--redis-addrs", rs.Addr(), "--devices", "30", "--concurrency", "4", "--mode", "register", "--transport", "rest", "--json")
	if err != nil {
		t.Fatalf("bench on Redis: %v\n%s", err, out)
	}
	res.Reports = nil
	if err := json.Unmarshal(out, &res); err != nil || len(res.Reports) != 1 {
		t.Fatalf("bench on Redis: %v\n%s", err, out)
	}
	if r := res.Reports[0]; r.Succeeded != 30 || len(r.Errors) != 0 || r.StoreBytesPerOp <= 0 {
		t.Errorf("bench on Redis: %+v", r)
	}

	if err := exec.Command(bin, "bench", "--reuse").Run(); err == nil {
		t.Error("bench --reuse with X.509 succeeded")
	}

	// Bad flags are usage errors.
	for _, args := range [][]string{{"--kex", "rsa"}, {"--attestation", "tpm", "--mode", "ceiling"}, {"--attestation", "tpm", "--tpm-ek", "dsa"}, {"--attestation", "tpm", "--transport", "dps"}, {"--attestation", "tpm", "--transport", "mqtt"},
		{"--transport", "mqtt", "--attestation", "symmetric", "--reuse"},
		{"--attestation", "tpm", "--concurrency", "65"}, {"--duration", "-1s"}, {"--duration", "25h"}} {
		if err := exec.Command(bin, append([]string{"bench"}, args...)...).Run(); err == nil {
			t.Errorf("bench %v succeeded", args)
		} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("bench %v: %v, want exit status 2", args, err)
		}
	}
}

// TestBenchSpreadsOverReplicas runs the load tool against two servers
// sharing one store (as replicas share Redis): every device succeeds; with
// the second replica stopped, about half fail, so devices were spread over
// both in turn.
func TestBenchSpreadsOverReplicas(t *testing.T) {
	bin := zerotouchBinary(t)
	e1 := start(t)
	e2 := startWith(t, options{store: e1.store})
	caFile := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(caFile, append(pki.CertPEM(e1.serverCA.Cert), pki.CertPEM(e2.serverCA.Cert)...), 0o600); err != nil {
		t.Fatal(err)
	}
	e1.createShard("spread", 1)
	run := func() bench.Report {
		t.Helper()
		out, err := benchOutput(bin, "bench", "--server", e1.grpcAddr+","+e2.grpcAddr, "--http-server", e1.httpAddr+","+e2.httpAddr,
			"--ca-file", caFile, "--access-key", e1.ownerKey, "--transport", "rest", "--mode", "register", "--devices", "40", "--concurrency", "4", "--json")
		var res struct {
			Reports []bench.Report `json:"reports"`
		}
		if jerr := json.Unmarshal(out, &res); jerr != nil || len(res.Reports) != 1 {
			t.Fatalf("bench: %v %v\n%s", err, jerr, out)
		}
		return res.Reports[0]
	}
	if r := run(); r.Succeeded != 40 || len(r.Errors) != 0 {
		t.Fatalf("two replicas: %+v", r)
	}
	e2.stop()
	if r := run(); r.Succeeded < 10 || r.Succeeded > 30 {
		t.Fatalf("with one replica down, %d of 40 succeeded; want about half", r.Succeeded)
	}
}

// benchOutput runs the bench tool and returns its standard output (the
// JSON report); when it fails, the error carries its standard error.
func benchOutput(bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w; stderr:\n%s", err, stderr.Bytes())
	}
	return out, nil
}
