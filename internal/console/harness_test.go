package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// server is a real Zerotouch (app.Build, as main wires it) on loopback,
// with an embedded store in a temporary directory, as the end-to-end tests
// start it.
type server struct {
	t        *testing.T
	store    *embedded.Store
	url      string // https://127.0.0.1:port
	grpcAddr string
	ownerKey string
	roots    *x509.CertPool
	cert     *pki.Issued
}

func startServer(t *testing.T, mutate func(*config.Config)) *server {
	t.Helper()
	now := time.Now()
	store, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("console test server CA", nil, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NewServer([]string{"localhost", "127.0.0.1"}, ca, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, store: store, roots: x509.NewCertPool(), cert: cert}
	s.roots.AddCert(ca.Cert)

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.DPS.ServiceHostname = "localhost"
	cfg.Listen.MQTT, cfg.Listen.Metrics, cfg.MQTT.WebSockets = "", "", false
	cfg.Device.RateLimit.PerIP.Limit, cfg.Device.RateLimit.PerRegistration.Limit, cfg.Device.RateLimit.TPMChallengesPerIP.Limit = 0, 0, 0
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ZEROTOUCH_CONSOLE_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := app.Build(t.Context(), &cfg, app.Options{Log: log, Stdout: io.Discard, Store: store,
		Certificate: &tls.Certificate{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key, Leaf: cert.Cert}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, app.OwnerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s.ownerKey = strings.TrimSpace(string(raw))
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.grpcAddr, s.url = gl.Addr().String(), "https://"+hl.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.ServeListeners(ctx, app.Listeners{GRPC: gl, HTTP: hl}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
		store.Close()
	})
	return s
}

// newKey stores an access key with perms and returns its bearer token.
func (s *server) newKey(name string, perms ...access.Permission) string {
	s.t.Helper()
	token, k, err := access.Generate(rand.Reader, name, perms, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.store.CreateKey(context.Background(), k); err != nil {
		s.t.Fatal(err)
	}
	return token
}

// spki is the base64 SHA-256 of the server certificate's public key, for
// Chromium's --ignore-certificate-errors-spki-list (trust this key only).
func (s *server) spki() string {
	sum := sha256.Sum256(s.cert.Cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// dial is a gRPC connection to the server, presenting dev (with chain) if
// given: a device.
func (s *server) dial(dev *pki.Issued, chain ...*x509.Certificate) *grpc.ClientConn {
	s.t.Helper()
	cfg := &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12, ServerName: "localhost"}
	if dev != nil {
		c := tls.Certificate{PrivateKey: dev.Key, Leaf: dev.Cert, Certificate: [][]byte{dev.Cert.Raw}}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		s.t.Fatal(err)
	}
	return cc
}

// register registers a device over gRPC, on a fresh connection, as a
// device on first boot does.
func (s *server) register(regID string, dev *pki.Issued, chain ...*x509.Certificate) (*pb.Registration, error) {
	cc := s.dial(dev, chain...)
	defer cc.Close()
	res, err := pb.NewDeviceRegistrationServiceClient(cc).Register(s.t.Context(), &pb.RegisterRequest{RegistrationId: regID})
	return res.GetRegistration(), err
}

// registerCSR registers a device over gRPC, as register does, asking
// for an operational certificate with a PKCS#10 CSR (DER).
func (s *server) registerCSR(regID string, csr []byte, dev *pki.Issued, chain ...*x509.Certificate) (*pb.Registration, error) {
	cc := s.dial(dev, chain...)
	defer cc.Close()
	res, err := pb.NewDeviceRegistrationServiceClient(cc).Register(s.t.Context(), &pb.RegisterRequest{RegistrationId: regID, Csr: csr})
	return res.GetRegistration(), err
}

// as is a context carrying an access key for gRPC calls.
func as(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// chromium finds the browser: $ZEROTOUCH_CHROMIUM, or chromium on PATH.
// Without one the browser tests skip with the reason, except under CI=true,
// where they fail.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ZEROTOUCH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required in CI (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium): the browser tests are skipped")
	return ""
}
