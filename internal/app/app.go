// Package app is the one place that wires Zerotouch together: it opens the
// store, bootstraps the owner access key, builds the services and servers,
// runs them until the context ends, and closes everything in reverse order.
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/attestation"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/console"
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/metrics"
	"github.com/zerotouch/zerotouch/internal/mqtt"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/server"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
)

// OwnerKeyFile is where the bootstrap owner key is written, in the data
// directory, readable only by the user.
const OwnerKeyFile = "owner.key"

// OwnerDPSFile holds the owner key's DPS service connection string.
const OwnerDPSFile = "owner.dps"

// pathCacheSize bounds the verified issuing-CA paths kept in memory (one
// per issuing CA that devices present; a few hundred bytes plus the
// certificates each).
const pathCacheSize = 10_000

// Options carries what tests and main inject.
type Options struct {
	// Stdout receives the one-time owner key and the start-up summary.
	Stdout io.Writer
	// Log receives structured logs.
	Log *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Started, if set, is called with the bound addresses once serving.
	Started func(grpcAddr, httpAddr string)

	// Injection points for tests; main sets none of them.

	// Store, if set, is used instead of opening the configured backend
	// (replicas in a test share one); the caller closes it.
	Store Store
	// Certificate, if set, is the server's TLS certificate instead of
	// the configured files or the development PKI.
	Certificate *tls.Certificate
	// WrapRegistry wraps what the registration use case writes to (fault
	// injection); WrapAdmin what the operator use cases read and write.
	WrapRegistry func(registry.Store) registry.Store
	WrapAdmin    func(admin.Store) admin.Store
	// Limiter replaces the configured device rate limits.
	Limiter *ratelimit.Limiter
	// WebhookClient replaces the configured custom allocation client.
	WebhookClient *http.Client
}

// NewLogger builds the logger the configuration asks for.
func NewLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// App is Zerotouch wired together once: the store, the data key, the use
// cases and the server. Build makes it, Serve serves it, Close releases
// it. main and the end-to-end tests use the same wiring.
type App struct {
	Config       *config.Config
	Store        Store
	Sealer       *secrets.Sealer
	Provisioning *provisioning.Service
	Admin        *admin.Service
	// ipFilter is the IP filter in effect (ADR 21).
	ipFilter *ipfilter.Filter
	// DPSHostName is the host name DPS service SAS tokens must name.
	DPSHostName string
	// CAFile is the development CA clients should trust ("" without one).
	CAFile string
	// Metrics are the Prometheus metrics (nil when listen.metrics is
	// empty: nothing is counted or timed).
	Metrics *metrics.Metrics

	opt    Options
	server *server.Server
	// mqtt is DPS over MQTT (nil when off).
	mqtt *mqtt.Server
	// closers release what Build opened, last first.
	closers []func()
}

// Run builds the service, listens on the configured addresses and serves
// until ctx ends.
func Run(ctx context.Context, cfg *config.Config, opt Options) error {
	a, err := Build(ctx, cfg, opt)
	if err != nil {
		return err
	}
	defer a.Close()
	grpcLis, err := net.Listen("tcp", cfg.Listen.GRPC)
	if err != nil {
		return fmt.Errorf("listen gRPC: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.Listen.HTTP)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("listen REST: %w", err)
	}
	var mqttLis, metricsLis net.Listener
	if a.mqtt != nil && cfg.Listen.MQTT != "" {
		if mqttLis, err = net.Listen("tcp", cfg.Listen.MQTT); err != nil {
			grpcLis.Close()
			httpLis.Close()
			return fmt.Errorf("listen MQTT: %w", err)
		}
	}
	var pkiLis net.Listener
	if cfg.Listen.PKI != "" && a.Provisioning.Issuer != nil {
		if pkiLis, err = net.Listen("tcp", cfg.Listen.PKI); err != nil {
			grpcLis.Close()
			httpLis.Close()
			if mqttLis != nil {
				mqttLis.Close()
			}
			return fmt.Errorf("listen PKI: %w", err)
		}
	}
	if a.Metrics != nil {
		if metricsLis, err = net.Listen("tcp", cfg.Listen.Metrics); err != nil {
			if pkiLis != nil {
				pkiLis.Close()
			}
			grpcLis.Close()
			httpLis.Close()
			if mqttLis != nil {
				mqttLis.Close()
			}
			return fmt.Errorf("listen metrics: %w", err)
		}
	}
	where := cfg.StorePath()
	if cfg.Storage.Backend == "redis" {
		where = "redis " + strings.Join(cfg.Storage.Redis.Addrs, ",")
	}
	fmt.Fprintf(a.opt.Stdout, "zerotouch serving gRPC on %s and REST on https://%s (store %s)\n", grpcLis.Addr(), httpLis.Addr(), where)
	if a.CAFile != "" {
		fmt.Fprintf(a.opt.Stdout, "development CA (trust it in clients): %s\n", a.CAFile)
	}
	if cfg.Console.Enabled {
		fmt.Fprintf(a.opt.Stdout, "web console: https://%s%s\n", httpLis.Addr(), server.ConsolePath)
	}
	if cfg.DPS.IDScope != "" {
		fmt.Fprintf(a.opt.Stdout, "DPS-compatible device API: https://%s/%s/registrations/{registrationId}/register (ID scope %s)\n", httpLis.Addr(), cfg.DPS.IDScope, cfg.DPS.IDScope)
	}
	if mqttLis != nil {
		fmt.Fprintf(a.opt.Stdout, "DPS over MQTT: mqtts://%s\n", mqttLis.Addr())
	}
	if a.mqtt != nil && cfg.MQTT.WebSockets {
		fmt.Fprintf(a.opt.Stdout, "DPS over MQTT over WebSockets: wss://%s%s\n", httpLis.Addr(), mqtt.WebSocketPath)
	}
	if metricsLis != nil {
		fmt.Fprintf(a.opt.Stdout, "Prometheus metrics: http://%s%s\n", metricsLis.Addr(), metrics.Path)
	}
	if cfg.Debug.PprofListen != "" {
		stopPprof, err := servePprof(cfg.Debug.PprofListen, a.opt.Log)
		if err != nil {
			for _, l := range []net.Listener{grpcLis, httpLis, mqttLis, metricsLis} {
				if l != nil {
					l.Close()
				}
			}
			return err
		}
		defer stopPprof()
	}
	if pkiLis != nil {
		fmt.Fprintf(a.opt.Stdout, "CRLs and OCSP of the issuing CAs: http://%s/pki/{ca}/crl, /ocsp\n", pkiLis.Addr())
	}
	return a.ServeListeners(ctx, Listeners{GRPC: grpcLis, HTTP: httpLis, MQTT: mqttLis, Metrics: metricsLis, PKI: pkiLis})
}

// Build wires the service: the data directory and server certificate
// (the development PKI with --dev), the store, the data key, the owner
// access key on first start, the use cases and the server. Close releases
// what it opened.
func Build(ctx context.Context, cfg *config.Config, opt Options) (a *App, err error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Stdout == nil {
		opt.Stdout = io.Discard
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	built := &App{Config: cfg, opt: opt}
	a = built
	defer func() {
		if err != nil {
			built.Close()
			a = nil
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	serverCert, err := a.certificate()
	if err != nil {
		return nil, err
	}

	store := opt.Store
	if store == nil {
		if store, err = openStore(cfg); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() { store.Close() })
	}
	a.Store = store
	store.SetEventRetention(cfg.Hubs.EventRetention)
	if sw, ok := store.(outboxSweeper); ok {
		sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
		a.closers = append(a.closers, stopSweep)
		go sweepOutboxes(sweepCtx, sw, opt.Log)
	}

	// The data key seals symmetric enrollment keys and DPS shared access
	// keys. A single node makes its own; replicas on Redis must share one,
	// given in the config.
	if a.Sealer, err = secrets.LoadOrCreate(cfg.DataKeyPath(), cfg.Storage.Backend == "embedded" || cfg.Dev); err != nil {
		return nil, err
	}
	a.DPSHostName = cfg.DPS.ServiceHostname
	if a.DPSHostName == "" {
		a.DPSHostName = serviceHost(serverCert)
	}
	if err := bootstrapOwnerKey(ctx, store, a.Sealer, cfg.DataDir, a.DPSHostName, cfg.Dev, opt); err != nil {
		return nil, err
	}

	limiter := opt.Limiter
	if limiter == nil {
		var counter ratelimit.Counter = &ratelimit.Memory{}
		if shared, ok := store.(ratelimit.Counter); ok {
			counter = shared // replicas share their counts
		}
		rl := cfg.Device.RateLimit
		limiter = &ratelimit.Limiter{Counter: counter, Now: opt.Now,
			PerIP:           ratelimit.Rule{Limit: rl.PerIP.Limit, Window: rl.PerIP.Window},
			PerRegistration: ratelimit.Rule{Limit: rl.PerRegistration.Limit, Window: rl.PerRegistration.Window},
			PerIPChallenges: ratelimit.Rule{Limit: rl.TPMChallengesPerIP.Limit, Window: rl.TPMChallengesPerIP.Window}}
	}
	var reg registry.Store = store
	if opt.WrapRegistry != nil {
		reg = opt.WrapRegistry(store)
	}
	// The stores the registration use case reads and writes to, timed by
	// the metrics when they are on.
	var (
		enrollments provisioning.EnrollmentStore = store
		shards      provisioning.ShardSource     = store
		challenges  attestation.ChallengeStore   = store
	)
	if cfg.Listen.Metrics != "" {
		m := metrics.New(opt.Log)
		a.Metrics = m
		enrollments, shards, reg, challenges = m.Enrollments(store), m.Shards(store), m.Registry(reg), m.Challenges(store)
	}
	prov := &provisioning.Service{
		Enrollments: enrollments, Shards: shards, Registry: reg, Challenges: challenges, Now: opt.Now,
		Secrets: a.Sealer, SymmetricKeysDisabled: !cfg.SymmetricKeys.Enabled,
		MaxChainLength: cfg.X509.MaxChainLength, Log: opt.Log, Paths: x509att.NewPathCache(pathCacheSize),
		Limiter: limiter, NearestRegions: cfg.Geo.Nearest, WebhookSyncBudget: cfg.Webhooks.SyncBudget,
		WebhookClient: opt.WebhookClient,
	}
	if prov.WebhookClient == nil {
		if prov.WebhookClient, err = webhookClient(cfg.Webhooks.CAFile); err != nil {
			return nil, err
		}
	}
	var tlsFailed func(listener string)
	if a.Metrics != nil {
		prov.Observer = a.Metrics
		tlsFailed = a.Metrics.TLSHandshakeFailed
	}
	a.Provisioning = prov
	var admStore admin.Store = store
	if opt.WrapAdmin != nil {
		admStore = opt.WrapAdmin(store)
	}
	adm := &admin.Service{Store: admStore, Now: opt.Now, Rand: rand.Reader, Secrets: a.Sealer, Log: opt.Log}
	a.Admin = adm
	// Certificate issuance (ADR 22): issuing CAs, policies and revocations
	// are documents in the store; the CRLs and OCSP answers are published
	// under /pki/ on the REST listener.
	if a.Sealer != nil {
		iss := docs.Issuance{D: store}
		adm.Issuance = iss
		publicURL := cfg.Issuance.PublicURL
		if publicURL == "" {
			publicURL = "https://" + cfg.Listen.HTTP
		}
		prov.Issuer = &issuance.Authority{Store: iss, Sealer: a.Sealer, BaseURL: strings.TrimRight(publicURL, "/"), Now: opt.Now}
	}
	a.checkRevocation(ctx, cfg, store, prov, adm, opt)
	if err := a.keepRecords(ctx, cfg, store, prov, adm, opt); err != nil {
		return nil, err
	}
	var dpsHandler, dpsService http.Handler
	geo := geoLocator(cfg.Geo)
	if cfg.DPS.IDScope != "" {
		dpsHandler = &dpsdevice.Handler{Prov: prov, IDScope: cfg.DPS.IDScope, Log: opt.Log, Locate: geo.LocateRequest}
		dpsService = &dpsservice.Service{HostName: a.DPSHostName, Admin: adm, Now: opt.Now, Log: opt.Log,
			ClientAddr: func(r *http.Request) string { return a.ipFilter.ClientAddr(r.RemoteAddr, r.Header.Values) }}
	}
	// DPS over MQTT, with the server's own certificate, on its listener
	// and over WebSockets on the REST listener.
	var upgrades map[string]http.Handler
	if cfg.DPS.IDScope != "" && (cfg.Listen.MQTT != "" || cfg.MQTT.WebSockets) {
		m := cfg.MQTT
		a.mqtt, err = mqtt.New(mqtt.Config{Prov: prov, IDScope: cfg.DPS.IDScope, Log: opt.Log, ShutdownGrace: cfg.ShutdownGrace, TLSHandshakeFailed: tlsFailed,
			TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}},
			Locate: func(addr string, h http.Header) string {
				return geo.LocateRequest(&http.Request{RemoteAddr: addr, Header: h})
			},
			Limits: mqtt.Limits{MaxPacketBytes: m.MaxPacketBytes, MaxInflight: m.MaxInflight, IdleTimeout: m.IdleTimeout,
				ConnectTimeout: m.ConnectTimeout, MaxConnections: m.MaxConnections, MaxConnectionsPerIP: m.MaxConnectionsPerIP}})
		if err != nil {
			return nil, err
		}
		if cfg.MQTT.WebSockets {
			upgrades = map[string]http.Handler{mqtt.WebSocketPath: a.mqtt.WebSocket()}
		}
	}
	var web http.Handler
	if cfg.Console.Enabled {
		if web, err = console.New(); err != nil {
			return nil, fmt.Errorf("web console: %w", err)
		}
	}
	a.server, err = server.New(server.Config{
		Console:       web,
		IPFilter:      a.ipFilter,
		DPS:           dpsHandler,
		DPSService:    dpsService,
		Geo:           geo,
		DPSScope:      cfg.DPS.IDScope,
		DPSHostName:   a.DPSHostName,
		TLS:           &tls.Config{Certificates: []tls.Certificate{serverCert}},
		Provisioning:  prov,
		Admin:         adm,
		Issuer:        prov.Issuer,
		Log:           opt.Log,
		Ready:         store.Ping,
		ShutdownGrace: cfg.ShutdownGrace,
		MaxHubStreams: cfg.Hubs.MaxStreams, HubPollInterval: cfg.Hubs.PollInterval,
		Upgrades:           upgrades,
		TLSHandshakeFailed: tlsFailed,
	})
	if err != nil {
		return nil, err
	}
	if a.Metrics != nil {
		if err := a.Metrics.Register(a.fleet()); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return a, nil
}

// certificate is the server's TLS certificate: injected, the configured
// files, or (with --dev) the development PKI, made on first use.
func (a *App) certificate() (tls.Certificate, error) {
	if a.opt.Certificate != nil {
		return *a.opt.Certificate, nil
	}
	cfg := a.Config
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	if certFile == "" && cfg.Dev {
		dev, err := pki.EnsureDev(filepath.Join(cfg.DataDir, "pki"), a.opt.Now())
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("development PKI: %w", err)
		}
		certFile, keyFile, a.CAFile = dev.CertFile, dev.KeyFile, dev.CAFile
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	return cert, nil
}

// Listeners are what ServeListeners serves on. MQTT (DPS over MQTT with
// TLS) is optional; MQTT over WebSockets rides on HTTP. Metrics, if set,
// serves the Prometheus metrics (plain HTTP) and needs listen.metrics.
type Listeners struct {
	GRPC, HTTP, MQTT, Metrics net.Listener
	// PKI serves the issuing CAs' CRLs and OCSP over plain HTTP.
	PKI net.Listener
}

// Serve serves gRPC on grpcLis and REST (and the DPS APIs) on httpLis
// until ctx ends, then drains: in-flight requests finish within the
// shutdown grace, and slow webhooks' background decisions land before
// Close closes the store. MQTT over TLS needs ServeListeners.
func (a *App) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	return a.ServeListeners(ctx, Listeners{GRPC: grpcLis, HTTP: httpLis})
}

// ServeListeners is Serve with DPS over MQTT on l.MQTT as well (when the
// configuration turns MQTT on; otherwise l.MQTT is an error).
func (a *App) ServeListeners(ctx context.Context, l Listeners) error {
	grpcLis, httpLis := l.GRPC, l.HTTP
	if l.MQTT != nil && a.mqtt == nil {
		l.MQTT.Close()
		if l.Metrics != nil {
			l.Metrics.Close()
		}
		return errors.New("an MQTT listener was given, but MQTT is off (dps.id_scope is empty)")
	}
	if l.Metrics != nil && a.Metrics == nil {
		l.Metrics.Close()
		if l.MQTT != nil {
			l.MQTT.Close()
		}
		return errors.New("a metrics listener was given, but metrics are off (listen.metrics is empty)")
	}
	if iss := a.Provisioning.Issuer; iss != nil && a.Config.Issuance.PublicURL == "" {
		// Issued certificates name the CRL and OCSP URLs where they are
		// served, as bound (a configured port 0 becomes the real one):
		// plain HTTP when listen.pki is set, else the REST listener.
		switch {
		case l.PKI != nil:
			iss.BaseURL = "http://" + l.PKI.Addr().String()
		case l.HTTP != nil:
			iss.BaseURL = "https://" + l.HTTP.Addr().String()
		}
	}
	defer a.servePKI(l.PKI)()
	// Metrics are served until the rest has drained, so that a scrape
	// sees the last registrations.
	defer a.serveMetrics(l)()
	// The IP filter cuts refused addresses before any TLS work (ADR 21).
	grpcLis = a.ipFilter.Listener(grpcLis, "grpc", ipfilter.Device, ipfilter.Management)
	httpLis = a.ipFilter.Listener(httpLis, "rest", ipfilter.Device, ipfilter.Management)
	if l.MQTT != nil {
		l.MQTT = a.ipFilter.Listener(l.MQTT, string(provisioning.TransportMQTT), ipfilter.Device)
	}
	a.opt.Log.Info("serving", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String())
	if a.opt.Started != nil {
		a.opt.Started(grpcLis.Addr().String(), httpLis.Addr().String())
	}
	// MQTT and the other APIs stop together, whichever stops first.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	mqttDone := make(chan error, 1)
	if a.mqtt != nil {
		go func() { mqttDone <- a.mqtt.Serve(ctx, l.MQTT); stop() }()
	} else {
		mqttDone <- nil
	}
	err := a.server.Serve(ctx, grpcLis, httpLis)
	stop()
	if merr := <-mqttDone; merr != nil && err == nil {
		err = merr
	}
	wctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownGrace)
	defer cancel()
	if werr := a.Provisioning.Wait(wctx); werr != nil {
		a.opt.Log.Warn("stopped with custom allocations still deciding", "err", werr)
	}
	a.opt.Log.Info("stopped")
	return err
}

// Close releases what Build opened (the store, unless it was injected).
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// bootstrapOwnerKey creates the first access key, with every permission,
// when the store has none: it is written to the data directory with mode
// 0600, and printed only by a development server. Only its hash is stored. With a data key it
// also gets a DPS shared access key (sealed), whose connection string is
// written beside it for DPS service clients. Its ID is fixed, so when
// replicas on one Redis start together exactly one of them creates it.
func bootstrapOwnerKey(ctx context.Context, store access.Store, sealer *secrets.Sealer, dataDir, host string, dev bool, opt Options) error {
	n, err := store.CountKeys(ctx)
	if err != nil {
		return fmt.Errorf("count access keys: %w", err)
	}
	if n > 0 {
		return nil
	}
	token, key, err := access.Generate(rand.Reader, "owner", access.All, opt.Now())
	if err != nil {
		return err
	}
	token, key = access.WithID(token, key, access.OwnerKeyID)
	files := map[string]string{OwnerKeyFile: token}
	if sealer != nil {
		sas, err := access.AddSASKey(rand.Reader, sealer, key, access.Primary)
		if err != nil {
			return err
		}
		files[OwnerDPSFile] = access.ConnectionString(host, key.ID, sas)
	}
	// Write the secrets to private temporary files first, store the key,
	// and only then move the files into place: the secrets are never lost
	// after the key is stored, and a replica that loses the race (even one
	// sharing the data directory) leaves the winner's files alone.
	tmps := map[string]string{}
	defer func() {
		for _, tmp := range tmps {
			os.Remove(tmp)
		}
	}()
	for name, content := range files {
		f, err := os.CreateTemp(dataDir, name+".tmp-*")
		if err != nil {
			return fmt.Errorf("write owner key: %w", err)
		}
		tmps[name] = f.Name()
		_, werr := fmt.Fprintln(f, content)
		if err := errors.Join(werr, f.Chmod(0o600), f.Close()); err != nil {
			return fmt.Errorf("write owner key: %w", err)
		}
	}
	if err := store.CreateKey(ctx, key); err != nil {
		if errors.Is(err, fault.ErrAlreadyExists) {
			return nil // another replica created it first
		}
		return fmt.Errorf("store owner key: %w", err)
	}
	for name, tmp := range tmps {
		if err := os.Rename(tmp, filepath.Join(dataDir, name)); err != nil {
			delete(tmps, name) // keep it: it holds a stored key's secret
			return fmt.Errorf("write owner key (the key is stored; its secret is in %s): %w", tmp, err)
		}
		delete(tmps, name)
	}
	// Only a development server prints the secret: a production one's
	// stdout ends up in container logs.
	if dev {
		fmt.Fprintf(opt.Stdout, "created the owner access key (shown once; also in %s):\n  %s\n", filepath.Join(dataDir, OwnerKeyFile), token)
	} else {
		fmt.Fprintf(opt.Stdout, "created the owner access key; its secret is in %s (mode 0600), and nowhere else\n", filepath.Join(dataDir, OwnerKeyFile))
	}
	if _, ok := files[OwnerDPSFile]; ok {
		fmt.Fprintf(opt.Stdout, "DPS service connection string for it (for DPS service SDKs): %s\n", filepath.Join(dataDir, OwnerDPSFile))
	}
	return nil
}

// serviceHost is the host name clients are meant to use: the server
// certificate's first DNS name, else localhost.
func serviceHost(cert tls.Certificate) string {
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil && len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return "localhost"
}

// servePprof serves the Go profiler on a loopback address, for profiling
// under load (docs/performance.md).
func servePprof(addr string, log *slog.Logger) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	log.Info("pprof listening", "addr", l.Addr().String())
	return func() { srv.Close() }, nil
}

// geoLocator turns the geo configuration into the server's locator (nil
// when nothing is configured).
func geoLocator(g config.Geo) *server.Geo {
	nets, trusted := g.Prefixes()
	if len(nets) == 0 && g.ProxyHeader == "" {
		return nil
	}
	out := &server.Geo{TrustedProxies: trusted, Header: g.ProxyHeader}
	for p, r := range nets {
		out.Networks = append(out.Networks, server.GeoNetwork{Prefix: p, Region: r})
	}
	return out
}

// webhookClient calls custom allocation webhooks: TLS 1.2+, the system's
// CAs plus caFile's, no redirects (a webhook answers itself).
func webhookClient(caFile string) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		certs, err := pki.LoadCertificates(caFile)
		if err != nil {
			return nil, fmt.Errorf("webhooks.ca_file: %w", err)
		}
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// servePKI serves the issuing CAs' CRLs and OCSP over plain HTTP on l
// (listen.pki), under the IP filter's device rules, until the returned
// stop is called.
func (a *App) servePKI(l net.Listener) (stop func()) {
	if l == nil {
		return func() {}
	}
	if a.Provisioning.Issuer == nil {
		l.Close()
		return func() {}
	}
	l = a.ipFilter.Listener(l, "pki", ipfilter.Device)
	srv := &http.Server{Handler: server.PKIHandler(a.Provisioning.Issuer), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.opt.Log.Error("PKI listener failed", "err", err)
		}
	}()
	a.opt.Log.Info("serving CRLs and OCSP", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}
