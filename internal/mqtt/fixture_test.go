package mqtt

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation/symkey"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

const testScope = "0ne0000test"

// fixture is the MQTT transport over the real registration use case on
// the embedded store: a symmetric-key individual enrollment "sym-1", a
// disabled one "sym-off", a symmetric-key group "sym", an X.509 group
// "acme" of a verified CA, a custom-allocation group "slow" when a webhook
// is given, and two shards. It serves MQTT over TLS and over WebSockets
// on loopback with a server certificate of its own CA.
type fixture struct {
	t        *testing.T
	srv      *Server
	store    *embedded.Store
	addr     string
	wsURL    string
	serverCA *pki.Issued
	inter    *pki.Issued
	symKey   []byte
	grpKey   []byte
	slowKey  []byte
	// stop stops Serve and returns its error; idempotent.
	stop func() error
}

type fixtureOptions struct {
	limits  Limits
	limiter *ratelimit.Limiter
	// webhook is the "slow" group's custom allocation webhook; budget is
	// how long a registration waits for it before ASSIGNING.
	webhook *httptest.Server
	budget  time.Duration
}

func newFixture(t *testing.T, opt fixtureOptions) *fixture {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "data.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: st, symKey: []byte(strings.Repeat("p", 32)), grpKey: []byte(strings.Repeat("g", 32)), slowKey: []byte(strings.Repeat("w", 32))}
	must := func(_ string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	seal := func(k []byte, aad string) []byte {
		sealed, err := sealer.SealKeys(&secrets.SymmetricKeys{Primary: k}, aad)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	root, err := pki.NewCA("Acme Root", nil, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if f.inter, err = pki.NewCA("Acme Issuing", root, now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	ca := enrollment.NewCA("acme-root", root.Cert, now)
	ca.Verified = true
	must(st.CreateCA(ctx, ca))
	must(st.CreateGroup(ctx, &enrollment.Group{ID: "acme", CAName: "acme-root"}))
	for _, id := range []string{"shard-a", "shard-b"} {
		must(st.CreateShard(ctx, &allocation.Shard{ID: id, Hostname: id + ".example.com", Weight: 100, State: allocation.Active}))
	}
	for id, disabled := range map[string]bool{"sym-1": false, "sym-off": true} {
		sum := sha256.Sum256([]byte(id))
		must(st.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: id, Mechanism: enrollment.MechanismSymmetricKey, Disabled: disabled,
			Thumbprint: hex.EncodeToString(sum[:]), SealedKeys: seal(f.symKey, secrets.IndividualAAD(id))}))
	}
	must(st.CreateGroup(ctx, &enrollment.Group{ID: "sym", Mechanism: enrollment.MechanismSymmetricKey, SealedKeys: seal(f.grpKey, secrets.GroupAAD("sym"))}))
	prov := &provisioning.Service{Enrollments: st, Shards: st, Registry: st, Challenges: st, Now: time.Now, Secrets: sealer,
		Paths: x509att.NewPathCache(10), Limiter: opt.limiter, WebhookSyncBudget: opt.budget}
	if opt.webhook != nil {
		prov.WebhookClient = opt.webhook.Client()
		must(st.CreateGroup(ctx, &enrollment.Group{ID: "slow", Mechanism: enrollment.MechanismSymmetricKey, SealedKeys: seal(f.slowKey, secrets.GroupAAD("slow")),
			Allocation: enrollment.Allocation{Policy: enrollment.PolicyCustom, Webhook: &enrollment.Webhook{URL: opt.webhook.URL, Timeout: 10 * time.Second}}}))
	}

	if f.serverCA, err = pki.NewCA("MQTT Test Server CA", nil, now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	serverCert, err := pki.NewServer([]string{"localhost", "127.0.0.1"}, f.serverCA, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{serverCert.Cert.Raw}, PrivateKey: serverCert.Key, Leaf: serverCert.Cert}
	f.srv, err = New(Config{Prov: prov, IDScope: testScope, TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Limits: opt.limits, ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	// WebSockets ride on an HTTPS server, as on Zerotouch's REST listener.
	mux := http.NewServeMux()
	mux.Handle(WebSocketPath, f.srv.WebSocket())
	ws := httptest.NewUnstartedServer(mux)
	ws.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
	ws.StartTLS()
	t.Cleanup(ws.Close) // after stop: upgraded connections end first
	f.wsURL = "wss://localhost:" + portOf(ws.Listener.Addr()) + WebSocketPath

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = "localhost:" + portOf(lis.Addr())
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(sctx, lis) }()
	// Serve starts the broker in its goroutine; wait until the WebSocket
	// handler takes connections (it answers 503 before), so no test races
	// the start.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if l := f.srv.ws; l == nil || l.establish.Load() != nil && f.srv.accepting() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the MQTT server did not start")
		}
	}
	var stopped bool
	var serveErr error
	f.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			serveErr = <-done
		}
		return serveErr
	}
	t.Cleanup(func() {
		if err := f.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// clientTLS trusts the server's CA and presents dev's certificate (and
// chain), if given.
func (f *fixture) clientTLS(dev *pki.Issued, chain ...*x509.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(f.serverCA.Cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if dev != nil {
		c := tls.Certificate{PrivateKey: dev.Key, Leaf: dev.Cert, Certificate: [][]byte{dev.Cert.Raw}}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// dial connects over the transport ("tls" or "ws").
func (f *fixture) dial(transport string, cfg *tls.Config) *testClient {
	f.t.Helper()
	if transport == "ws" {
		return dialWS(f.t, f.wsURL, cfg)
	}
	return dialTLS(f.t, f.addr, cfg)
}

// usernameOf is the username the Azure SDKs send.
func usernameOf(regID string) string {
	return testScope + "/registrations/" + regID + "/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1"
}

// sas is a device's SAS token for key, as the SDKs make it.
func sas(regID string, key []byte, expiry time.Time) string {
	return symkey.Sign(key, testScope+"/registrations/"+regID, expiry, "registration")
}

// connectSAS connects a symmetric-key device and subscribes it to the
// answers.
func (f *fixture) connectSAS(transport, regID string, key []byte) *testClient {
	f.t.Helper()
	c := f.dial(transport, f.clientTLS(nil))
	if code := c.connect(connectOpts{clientID: regID, username: usernameOf(regID), password: sas(regID, key, time.Now().Add(time.Hour)), keepalive: 60}); code != 0 {
		f.t.Fatalf("CONNACK %d for %s", code, regID)
	}
	if code := c.subscribe(responseFilter); code != 1 {
		f.t.Fatalf("SUBACK %#x for %s", code, responseFilter)
	}
	return c
}

// settled waits until the broker holds no client and no connection: the
// devices' connections are closed, and nothing of them stays behind.
func (f *fixture) settled() {
	f.t.Helper()
	for i := 0; f.srv.broker.Clients.Len() > 0 || f.srv.conns.open() > 0; i++ {
		if i > 1000 {
			f.t.Fatalf("%d clients and %d connections stay after their devices left", f.srv.broker.Clients.Len(), f.srv.conns.open())
		}
		time.Sleep(10 * time.Millisecond) // until the server sees the closes
	}
}

// registered reports whether regID has a registration and an identity
// (both or neither: a registration is one atomic write).
func (f *fixture) registered(regID string) bool {
	f.t.Helper()
	_, errReg := f.store.GetRegistration(context.Background(), regID)
	_, errID := f.store.GetIdentity(context.Background(), regID)
	if (errReg == nil) != (errID == nil) {
		f.t.Fatalf("partial state for %s: registration %v, identity %v", regID, errReg, errID)
	}
	return errReg == nil
}
