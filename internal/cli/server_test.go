package cli_test

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// devServer is a dev-mode server (internal/app, as `serve --dev` runs it)
// in a temporary working directory, which the test changes to, so that
// the CLI finds its CA and owner key in .zerotouch as an operator's does.
type devServer struct {
	t                           *testing.T
	grpcAddr, httpAddr, dataDir string
	// env is more of the CLI's environment (ZEROTOUCH_CONFIG_DIR...).
	env map[string]string
}

// startDevServer starts a dev server on loopback ports and stops it when
// the test ends.
func startDevServer(t *testing.T) *devServer {
	t.Helper()
	return startServer(t)
}

// startServerWithChain starts a dev server whose TLS certificate chain
// includes its CA (as a production server configured with the full
// chain presents it), for trust on first use; the CA and the server's
// certificate are returned.
func startServerWithChain(t *testing.T) (s *devServer, ca, server *pki.Issued) {
	t.Helper()
	work := t.TempDir()
	ca, err := pki.NewCA("Zerotouch Test CA", nil, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.NewServer([]string{"localhost", "127.0.0.1"}, ca, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(work, "server.pem"), filepath.Join(work, "server-key.pem")
	if err := srv.WriteFiles(cert, key, ca.Cert); err != nil {
		t.Fatal(err)
	}
	return startServer(t, "--tls-cert", cert, "--tls-key", key), ca, srv
}

// startServer starts a dev server with more flags for serve.
func startServer(t *testing.T, flags ...string) *devServer {
	t.Helper()
	work := t.TempDir()
	t.Chdir(work)
	s := &devServer{t: t, dataDir: filepath.Join(work, ".zerotouch"), env: map[string]string{}}
	cfg, err := config.Load(append([]string{"--dev", "--data-dir", s.dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--mqtt-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, flags...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, app.Options{Started: func(g, h string) { addrs <- [2]string{g, h} }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case a := <-addrs:
		s.grpcAddr, s.httpAddr = a[0], a[1]
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return s
}

// run runs the CLI against the server (ZEROTOUCH_SERVER is its gRPC
// address, or its REST one for `device ... --transport rest`, as an
// operator on the default ports has it; --server overrides it) and fails
// the test unless it exits with wantCode. It returns everything the
// command printed.
func (s *devServer) run(wantCode int, args ...string) string {
	s.t.Helper()
	server := s.grpcAddr
	if len(args) > 1 && args[0] == "device" && strings.Contains(strings.Join(args, " "), "--transport rest") {
		server = s.httpAddr
	}
	env := maps.Clone(s.env)
	env["ZEROTOUCH_SERVER"] = server
	env["ZEROTOUCH_HTTP_SERVER"] = s.httpAddr
	out, errOut := s.runEnv(env, wantCode, args...)
	return out + errOut
}

// runEnv runs the CLI with exactly env as its environment, fails the
// test unless it exits with wantCode, and returns its standard output
// and standard error.
func (s *devServer) runEnv(env map[string]string, wantCode int, args ...string) (stdout, stderr string) {
	s.t.Helper()
	var out, errOut bytes.Buffer
	e := cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	if code := cli.Main(s.t.Context(), args, e); code != wantCode {
		s.t.Fatalf("zerotouch %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}
