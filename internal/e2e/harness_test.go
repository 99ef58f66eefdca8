package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/server"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	"github.com/zerotouch/zerotouch/internal/storage/storagetest"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// env is one running server and what tests need to talk to it.
type env struct {
	t          *testing.T
	store      storagetest.Store
	grpcAddr   string
	httpAddr   string
	mqttAddr   string // DPS over MQTT (TLS); MQTT over WebSockets is on httpAddr
	roots      *x509.CertPool
	ownerKey   string
	readerKey  string // EnrollmentRead only
	admin      *grpc.ClientConn
	now        time.Time
	serverCert *pki.Issued
	serverCA   *pki.Issued
	sealer     *secrets.Sealer
	prov       *provisioning.Service
	// stop shuts the server down gracefully and waits; idempotent.
	stop func()
	// close stops the server and closes its store (a test may reopen it).
	close func()
	// metricsAddr serves the Prometheus metrics (plain HTTP, /metrics).
	metricsAddr string
	// pkiAddr serves the issuing CAs' CRLs and OCSP over plain HTTP
	// (options.pki).
	pkiAddr string
}

// start runs a server on loopback with a store in t.TempDir().
func start(t *testing.T) *env { return startWith(t, options{}) }

// options vary the server start: a wrapped registry for fault injection,
// a rate limiter, another store (Redis), a clock.
type options struct {
	// pki serves the CRLs and OCSP over plain HTTP too (listen.pki).
	pki     bool
	wrap    func(registry.Store) registry.Store
	limiter *ratelimit.Limiter
	store   storagetest.Store
	now     func() time.Time
	// noSymmetricKeys turns symmetric-key attestation off service-wide.
	noSymmetricKeys bool
	// geo locates clients; nearest orders regions (the geo policy).
	geo     config.Geo
	nearest map[string][]string
	// webhooks calls custom allocation webhooks; webhookBudget is how
	// long a DPS registration waits before ASSIGNING.
	webhooks      *http.Client
	webhookBudget time.Duration
	// serverStore wraps the store the server's API uses; maxHubStreams
	// caps assignment streams per cluster.
	serverStore   func(admin.Store) admin.Store
	maxHubStreams int
	// hubPoll is how often idle assignment streams poll (20 ms if zero).
	hubPoll time.Duration
	// dataKeyFile is the data key (replicas share one); "" for one in
	// the server's own data directory.
	dataKeyFile string
	// revocationRefresh is how often fetched CRLs are fetched again (the
	// configured default when zero).
	revocationRefresh time.Duration
}

// idScope is the DPS ID scope of test servers.
const idScope = "0ne0000test"

// startWith is start with options: the service as main wires it
// (app.Build), with the test's store, server certificate and clock, and
// the configuration the options say.
func startWith(t *testing.T, opt options) *env {
	t.Helper()
	now := time.Now()
	store := opt.store
	if store == nil {
		s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
		if err != nil {
			t.Fatal(err)
		}
		store = s
	}
	clock := opt.now
	if clock == nil {
		clock = time.Now
	}
	e := &env{t: t, store: store, now: now, roots: x509.NewCertPool()}

	ca, err := pki.NewCA("test server CA", nil, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.roots.AddCert(ca.Cert)
	e.serverCA = ca
	if e.serverCert, err = pki.NewServer([]string{"localhost", "127.0.0.1"}, ca, now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Secrets.DataKeyFile = opt.dataKeyFile
	cfg.DPS.IDScope, cfg.DPS.ServiceHostname = idScope, "localhost"
	cfg.SymmetricKeys.Enabled = !opt.noSymmetricKeys
	cfg.Geo = opt.geo
	if opt.nearest != nil {
		cfg.Geo.Nearest = opt.nearest
	}
	cfg.Webhooks.SyncBudget = opt.webhookBudget
	if opt.maxHubStreams > 0 {
		cfg.Hubs.MaxStreams = opt.maxHubStreams
	}
	cfg.Hubs.PollInterval = cmp.Or(opt.hubPoll, 20*time.Millisecond)
	cfg.Revocation.RefreshInterval = cmp.Or(opt.revocationRefresh, cfg.Revocation.RefreshInterval)
	cfg.Revocation.AllowPrivateNetworks = true // the tests' distribution points and responders listen on 127.0.0.1
	// No rate limits unless a test sets its own limiter: tests register
	// thousands of devices from one address.
	cfg.Device.RateLimit.PerIP.Limit, cfg.Device.RateLimit.PerRegistration.Limit, cfg.Device.RateLimit.TPMChallengesPerIP.Limit = 0, 0, 0
	// Herds of MQTT devices connect from one address too.
	cfg.MQTT.MaxConnectionsPerIP = cfg.MQTT.MaxConnections
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := app.Build(t.Context(), &cfg, app.Options{Log: log, Now: clock, Store: store.(app.Store),
		Certificate:  &tls.Certificate{Certificate: [][]byte{e.serverCert.Cert.Raw}, PrivateKey: e.serverCert.Key, Leaf: e.serverCert.Cert},
		WrapRegistry: opt.wrap, WrapAdmin: opt.serverStore, Limiter: opt.limiter, WebhookClient: opt.webhooks})
	if err != nil {
		t.Fatal(err)
	}
	e.prov, e.sealer = a.Provisioning, a.Sealer
	// The owner key the service made on first start; a replica on a
	// store that has one gets a key with the same permissions.
	if raw, err := os.ReadFile(filepath.Join(cfg.DataDir, app.OwnerKeyFile)); err == nil {
		e.ownerKey = strings.TrimSpace(string(raw))
	} else {
		e.ownerKey = e.newKey("owner-of-replica", access.All...)
	}
	e.readerKey = e.newKey("reader", access.EnrollmentRead)

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.grpcAddr, e.httpAddr, e.mqttAddr, e.metricsAddr = gl.Addr().String(), hl.Addr().String(), ml.Addr().String(), pl.Addr().String()
	var kl net.Listener
	if opt.pki {
		if kl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		e.pkiAddr = kl.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.ServeListeners(ctx, app.Listeners{GRPC: gl, HTTP: hl, MQTT: ml, Metrics: pl, PKI: kl})
	}()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	var closeOnce sync.Once
	e.close = func() {
		closeOnce.Do(func() {
			if e.admin != nil {
				e.admin.Close()
			}
			e.stop()
			a.Close()
			store.Close()
		})
	}
	t.Cleanup(e.close)
	e.admin = e.dial(nil)
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func (e *env) newKey(name string, perms ...access.Permission) string {
	token, k, err := access.Generate(rand.Reader, name, perms, e.now)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateKey(context.Background(), k); err != nil {
		e.t.Fatal(err)
	}
	return token
}

// newSASKey creates an access key with a DPS shared access key and
// returns its ID (the SAS key name) and the shared access key.
func (e *env) newSASKey(name string, perms ...access.Permission) (string, []byte) {
	_, k, err := access.Generate(rand.Reader, name, perms, e.now)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := access.AddSASKey(rand.Reader, e.sealer, k, access.Primary)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateKey(context.Background(), k); err != nil {
		e.t.Fatal(err)
	}
	return k.ID, key
}

// clientTLS trusts the test server CA and presents chain (leaf first) with
// key, if given. Devices offer X25519 or P-256, as embedded stacks do.
func (e *env) clientTLS(dev *pki.Issued, chain ...*x509.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12, ServerName: "localhost",
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
	if dev != nil {
		c := tls.Certificate{PrivateKey: dev.Key, Leaf: dev.Cert, Certificate: [][]byte{dev.Cert.Raw}}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

func (e *env) dial(cfg *tls.Config) *grpc.ClientConn {
	if cfg == nil {
		cfg = e.clientTLS(nil)
	}
	cc, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		e.t.Fatal(err)
	}
	return cc
}

// as returns a context carrying an access key.
func as(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

func (e *env) owner() context.Context { return as(e.t.Context(), e.ownerKey) }

// registerGRPC registers over a fresh gRPC connection.
func (e *env) registerGRPC(regID string, dev *pki.Issued, chain ...*x509.Certificate) (*pb.Registration, error) {
	cc := e.dial(e.clientTLS(dev, chain...))
	defer cc.Close()
	resp, err := pb.NewDeviceRegistrationServiceClient(cc).Register(e.t.Context(), &pb.RegisterRequest{RegistrationId: regID})
	if err != nil {
		return nil, err
	}
	return resp.GetRegistration(), nil
}

// registerREST registers over a fresh HTTPS connection.
func (e *env) registerREST(regID string, dev *pki.Issued, chain ...*x509.Certificate) (*pb.Registration, error) {
	tr := &http.Transport{TLSClientConfig: e.clientTLS(dev, chain...), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := cli.RegisterREST(e.t.Context(), &http.Client{Transport: tr}, e.httpAddr, regID)
	if err != nil {
		return nil, err
	}
	return resp.GetRegistration(), nil
}

type transport struct {
	name     string
	register func(e *env, regID string, dev *pki.Issued, chain ...*x509.Certificate) (*pb.Registration, error)
}

var transports = []transport{
	{"grpc", (*env).registerGRPC},
	{"rest", (*env).registerREST},
}

// reasonOf extracts the stable reason of an API error over either
// transport.
func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var re *cli.RESTError
	if errors.As(err, &re) {
		st := restStatus(t, re)
		return st.reason
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status error: %v", err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != server.ErrorDomain {
				t.Fatalf("ErrorInfo domain %q", info.GetDomain())
			}
			return info.GetReason()
		}
	}
	t.Fatalf("status without ErrorInfo: %v", err)
	return ""
}

func codeOf(err error) codes.Code { return status.Code(err) }

// assertNoRegistration checks that nothing was written for regID.
func (e *env) assertNoRegistration(regID string) {
	e.t.Helper()
	if _, err := e.store.GetRegistration(context.Background(), regID); err == nil {
		e.t.Fatalf("a registration for %q was written", regID)
	}
	if _, err := e.store.GetIdentity(context.Background(), regID); err == nil {
		e.t.Fatalf("an identity for %q was written", regID)
	}
	regs, _, err := e.store.ListRegistrations(context.Background(), registry.Filter{}, "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range regs {
		if r.RegistrationID == regID {
			e.t.Fatalf("registration %q listed", regID)
		}
	}
}

// concurrently runs fn n times at once and waits.
func concurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
