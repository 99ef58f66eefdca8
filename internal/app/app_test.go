package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runDev starts `serve --dev` on loopback in dataDir and returns the
// addresses and a stop function that waits for Run to return.
func runDev(t *testing.T, dataDir string) (grpcAddr string, out *syncBuffer, stop func()) {
	t.Helper()
	cfg, err := config.Load([]string{"--dev", "--data-dir", dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"},
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	out = &syncBuffer{}
	started := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, app.Options{Stdout: out, Started: func(g, h string) { started <- g }})
	}()
	select {
	case grpcAddr = <-started:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return grpcAddr, out, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestDevModeQuickStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr, out, stop := runDev(t, dir)

	keyPath := filepath.Join(dir, app.OwnerKeyFile)
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("owner key file mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(keyPath)
	key := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(key, "ztk.") || !strings.Contains(out.String(), key) {
		t.Fatalf("owner key %q not printed once in %q", key, out.String())
	}

	// Clients trust the generated CA, for localhost and 127.0.0.1.
	cas, err := pki.LoadCertificates(filepath.Join(dir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cas[0])
	// DPS over MQTT listens with the same certificate (and rides on the
	// REST listener over WebSockets).
	_, mqttAddr, found := strings.Cut(out.String(), "DPS over MQTT: mqtts://")
	mqttAddr, _, _ = strings.Cut(mqttAddr, "\n")
	if !found || !strings.Contains(out.String(), "wss://") {
		t.Fatalf("no MQTT addresses in %q", out.String())
	}
	mc, err := tls.Dial("tcp", mqttAddr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("MQTT over TLS at %s: %v", mqttAddr, err)
	}
	mc.Close()
	for _, name := range []string{"localhost", "127.0.0.1"} {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: name})))
		if err != nil {
			t.Fatal(err)
		}
		h, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health via %s: %v %v", name, h, err)
		}
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+key)
		if _, err := pb.NewHubServiceClient(cc).CreateShard(ctx, &pb.CreateShardRequest{Shard: &pb.Shard{Id: "s-" + name, Hostname: "hub.example.com", Weight: 1}}); err != nil {
			t.Fatalf("owner key via %s: %v", name, err)
		}
		// Server reflection lists the services.
		rc, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := rc.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, " "), "zerotouch.v1.DeviceRegistrationService") {
			t.Fatalf("reflection lists %v", names)
		}
		rc.CloseSend()
		cc.Close()
	}
	stop()

	// A second start reuses the PKI, the store and the key, and prints no new key.
	caBefore, _ := os.ReadFile(filepath.Join(dir, "pki", "ca.pem"))
	_, out2, stop2 := runDev(t, dir)
	stop2()
	caAfter, _ := os.ReadFile(filepath.Join(dir, "pki", "ca.pem"))
	if strings.Contains(out2.String(), "ztk.") {
		t.Fatalf("second start printed a key: %q", out2.String())
	}
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("second start replaced the development CA")
	}
	raw2, _ := os.ReadFile(keyPath)
	if string(raw2) != string(raw) {
		t.Fatal("second start rewrote the owner key")
	}
}

func TestRunRefusesSecondInstanceOnOneStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, _, stop := runDev(t, dir)
	defer stop()
	cfg, err := config.Load([]string{"--dev", "--data-dir", dir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"},
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Run(t.Context(), cfg, app.Options{}); err == nil || !strings.Contains(err.Error(), "embedded store") {
		t.Fatalf("second Run on the same store: %v", err)
	}
}

// TestProductionStartKeepsTheOwnerKeyOffStdout: outside dev mode the owner
// key's secret goes to its 0600 file only (a server's stdout ends up in
// container logs), and logs default to JSON.
func TestProductionStartKeepsTheOwnerKeyOffStdout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ca, err := pki.NewCA("prod CA", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.NewServer([]string{"dps.example.com"}, ca, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(t.TempDir(), "server.pem"), filepath.Join(t.TempDir(), "server-key.pem")
	if err := srv.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]string{"--data-dir", dir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--tls-cert", certFile, "--tls-key", keyFile}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Format != "json" {
		t.Fatalf("log format %q outside dev mode, want json", cfg.Log.Format)
	}
	out := &syncBuffer{}
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, app.Options{Stdout: out, Started: func(string, string) { started <- struct{}{} }})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not started")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, app.OwnerKeyFile))
	if err != nil || !strings.HasPrefix(string(key), "ztk.") {
		t.Fatalf("owner key file: %q %v", key, err)
	}
	if strings.Contains(out.String(), "ztk.") || !strings.Contains(out.String(), filepath.Join(dir, app.OwnerKeyFile)) {
		t.Fatalf("stdout: %q", out.String())
	}
	cs, err := os.ReadFile(filepath.Join(dir, app.OwnerDPSFile))
	if err != nil || !strings.Contains(string(cs), "HostName=dps.example.com;") {
		t.Fatalf("connection string: %q %v", cs, err)
	}
}

// TestMetricsListener: Run serves /metrics on listen.metrics (plain HTTP,
// its own port), with every served listener's handshake failures at zero;
// listen.metrics off wires no metrics at all, and a metrics listener is
// then refused.
func TestMetricsListener(t *testing.T) {
	_, out, stop := runDev(t, filepath.Join(t.TempDir(), "data"))
	defer stop()
	_, url, ok := strings.Cut(out.String(), "Prometheus metrics: ")
	url, _, _ = strings.Cut(url, "\n")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/metrics") {
		t.Fatalf("stdout names no metrics URL:\n%s", out.String())
	}
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"zerotouch_build_info{", "go_goroutines ", "process_cpu_seconds_total ", "zerotouch_store_bytes ",
		`zerotouch_tls_handshake_failures_total{listener="grpc"} 0`, `zerotouch_tls_handshake_failures_total{listener="http"} 0`,
		`zerotouch_tls_handshake_failures_total{listener="mqtt"} 0`, `zerotouch_rate_limited_total{rule="per_ip"} 0`} {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, no %q", url, res.Status, want)
		}
	}

	cfg, err := config.Load([]string{"--dev", "--data-dir", filepath.Join(t.TempDir(), "data"), "--metrics-listen", "off"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Build(t.Context(), cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Metrics != nil || a.Provisioning.Observer != nil {
		t.Fatal("metrics wired with listen.metrics off")
	}
	var ls []net.Listener
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ls = append(ls, l)
	}
	if err := a.ServeListeners(t.Context(), app.Listeners{GRPC: ls[0], HTTP: ls[1], Metrics: ls[2]}); err == nil || !strings.Contains(err.Error(), "listen.metrics") {
		t.Fatalf("a metrics listener with metrics off: %v", err)
	}
}
