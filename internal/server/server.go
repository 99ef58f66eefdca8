// Package server exposes Zerotouch over gRPC and over REST (grpc-gateway,
// in-process), with health checking, reflection, the OpenAPI document and
// graceful shutdown. It converts between protobuf and domain types, and
// errors to status in exactly one place (toStatus); requests the transports
// refuse before any service runs get their reasons in input.go. It knows
// stores only as interfaces.
package server

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

//go:embed openapi/zerotouch.swagger.json
var openAPIDocument []byte

// Limits on what a client can make the server hold.
const (
	maxRequestBytes = 1 << 20
	// maxBatchBytes bounds a REST batch create and a CRL upload (JSON and
	// base64 inflate what gRPC carries in under maxGRPCBytes).
	maxBatchBytes = 4 << 20
	// maxGRPCBytes bounds any gRPC message: a batch of 1,000 TPM EKs is
	// about 350 KB. A larger message is refused with BODY_TOO_LARGE up to
	// maxGRPCFrameBytes; past that gRPC stops reading it and answers
	// RESOURCE_EXHAUSTED itself, before any of the server's code runs.
	maxGRPCBytes         = 2 << 20
	maxGRPCFrameBytes    = 2 * maxGRPCBytes
	maxConcurrentStreams = 256
	// readHeaderTimeout bounds the TLS handshake and the request headers.
	// It is generous because a fleet arriving at once (after an outage, at
	// the factory) queues for handshakes: 10,000 devices on a 2-core box wait
	// up to ~20 s for theirs.
	readHeaderTimeout = 30 * time.Second
	requestTimeout    = 60 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Config is what the server needs. TLS must hold the server certificate;
// the server requests (never requires) client certificates itself.
type Config struct {
	TLS          *tls.Config
	Provisioning *provisioning.Service
	Admin        *admin.Service
	Log          *slog.Logger
	// Ready reports whether the service can serve (the store answers).
	Ready func(context.Context) error
	// ShutdownGrace bounds how long in-flight requests may finish.
	ShutdownGrace time.Duration
	// DPS, if set, serves the DPS-compatible device API under
	// /{DPSScope}/registrations/ on the REST listener.
	DPS      http.Handler
	DPSScope string
	// DPSHostName is the host name DPS service SAS tokens must name; the
	// access-key API returns it for connection strings.
	DPSHostName string
	// DPSService, if set, serves the DPS-compatible service API
	// (/enrollments, /enrollmentGroups, /registrations, any case).
	DPSService http.Handler
	// MaxHubStreams bounds the assignment streams one hub cluster may hold
	// open on this replica (default DefaultMaxHubStreams);
	// HubPollInterval is how often an idle stream looks for new events
	// (default DefaultHubPollInterval).
	MaxHubStreams   int
	HubPollInterval time.Duration
	// Geo, if set, locates clients for the geo allocation policy.
	Geo *Geo
	// Upgrades, if set, serves these exact paths on the REST listener
	// outside the request middleware: handlers that take their connection
	// over (MQTT over WebSockets at /$iothub/websocket).
	Upgrades map[string]http.Handler
	// IPFilter, if set, refuses requests by client address (ADR 21); the
	// listeners should be wrapped by its Listener too.
	IPFilter *ipfilter.Filter
	// Issuer, if set, publishes the issuing CAs' CRLs and answers OCSP
	// under /pki/ on the REST listener (ADR 22).
	Issuer *issuance.Authority
	// Console, if set, serves the web console under ConsolePath on the
	// REST listener (and / redirects there). It runs behind the request
	// middleware (request IDs, the IP filter as a management path).
	Console http.Handler
	// TLSHandshakeFailed, if set, is called with "grpc" or "http" for
	// every TLS handshake on that listener that fails, including a client
	// that closes or times out before finishing it (a TCP health check).
	TLSHandshakeFailed func(listener string)
}

// ConsolePath is where Config.Console is served.
const ConsolePath = "/console/"

// Server is a running Zerotouch API.
type Server struct {
	cfg    Config
	grpc   *grpc.Server
	http   *http.Server
	health *health.Server
	hubs   *hubStreams
}

// New builds the gRPC server and the REST gateway.
func New(cfg Config) (*Server, error) {
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil {
		return nil, errors.New("server: a TLS server certificate is required")
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 20 * time.Second
	}
	tlsCfg := cfg.TLS.Clone()
	tlsCfg.MinVersion = max(tlsCfg.MinVersion, tls.VersionTLS12)
	// Devices with TPM or symmetric keys share this endpoint, so a client
	// certificate is requested, not required. Go still checks the client's
	// CertificateVerify (possession of the leaf key); chains are verified
	// once, by attestation, against the enrollment's CA.
	tlsCfg.ClientAuth = tls.RequestClientCert

	// One value per gRPC service; the management services share base.
	b := base{admin: cfg.Admin, log: cfg.Log, ipf: cfg.IPFilter}
	device := &deviceService{prov: cfg.Provisioning, log: cfg.Log}
	cas := &caService{base: b}
	enrollments := &enrollmentService{base: b, imports: newImportSlots()}
	hubs := &hubService{base: b}
	registrations := &registrationService{base: b}
	keys := &accessKeyService{base: b, dpsHost: cfg.DPSHostName}
	audits := &auditService{base: b}
	ipf := &ipFilterService{base: b}
	failed := &failedAttemptService{base: b}
	issuing := &issuanceService{base: b, issuer: cfg.Issuer}
	assignments := &hubAssignmentService{base: b, hubs: newHubStreams(cfg.MaxHubStreams, cfg.HubPollInterval)}
	s := &Server{cfg: cfg, health: health.NewServer(), hubs: assignments.hubs}

	dec := newRequestDecoder(maxGRPCBytes, cfg.Log)
	creds := credentials.NewTLS(tlsCfg)
	if cfg.TLSHandshakeFailed != nil {
		creds = handshakeCounter{TransportCredentials: creds, failed: func() { cfg.TLSHandshakeFailed("grpc") }}
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(maxGRPCFrameBytes),
		grpc.ForceServerCodecV2(dec),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.ConnectionTimeout(readHeaderTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.UnknownServiceHandler(unknownMethod),
	)
	// Every service is registered through reg, so that its requests are
	// decoded by dec.
	reg := decodingRegistrar{Server: s.grpc, dec: dec}
	pb.RegisterDeviceRegistrationServiceServer(reg, device)
	pb.RegisterCertificateAuthorityServiceServer(reg, cas)
	pb.RegisterEnrollmentServiceServer(reg, enrollments)
	pb.RegisterHubServiceServer(reg, hubs)
	pb.RegisterRegistrationServiceServer(reg, registrations)
	pb.RegisterAccessKeyServiceServer(reg, keys)
	pb.RegisterAuditServiceServer(reg, audits)
	pb.RegisterIPFilterServiceServer(reg, ipf)
	pb.RegisterFailedAttemptServiceServer(reg, failed)
	pb.RegisterIssuanceServiceServer(reg, issuing)
	pb.RegisterHubAssignmentServiceServer(reg, assignments)
	healthpb.RegisterHealthServer(reg, s.health)
	reflection.Register(reg)

	gw := runtime.NewServeMux(
		runtime.WithErrorHandler(httpErrorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newJSONMarshaler()),
		// No POST-as-GET with a form body: bodies are JSON.
		runtime.WithDisablePathLengthFallback(),
	)
	ctx := context.Background()
	for _, err := range []error{
		pb.RegisterDeviceRegistrationServiceHandlerServer(ctx, gw, device),
		pb.RegisterCertificateAuthorityServiceHandlerServer(ctx, gw, cas),
		pb.RegisterEnrollmentServiceHandlerServer(ctx, gw, enrollments),
		pb.RegisterHubServiceHandlerServer(ctx, gw, hubs),
		pb.RegisterRegistrationServiceHandlerServer(ctx, gw, registrations),
		pb.RegisterAccessKeyServiceHandlerServer(ctx, gw, keys),
		pb.RegisterAuditServiceHandlerServer(ctx, gw, audits),
		pb.RegisterIPFilterServiceHandlerServer(ctx, gw, ipf),
		pb.RegisterFailedAttemptServiceHandlerServer(ctx, gw, failed),
		pb.RegisterIssuanceServiceHandlerServer(ctx, gw, issuing),
	} {
		if err != nil {
			return nil, fmt.Errorf("server: register gateway: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", requireJSON(gw, gw))
	// Client streaming, which the gateway cannot map (importhttp.go).
	mux.Handle("POST "+importPath, enrollments.importHandler(gw))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPIDocument)
	})
	if cfg.DPS != nil || cfg.DPSService != nil {
		doc, err := dpsOpenAPI()
		if err != nil {
			return nil, fmt.Errorf("server: the DPS OpenAPI document: %w", err)
		}
		mux.HandleFunc("GET /openapi-dps.json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(doc)
		})
	}
	if cfg.DPS != nil {
		mux.Handle("/"+cfg.DPSScope+"/registrations/", cfg.DPS)
		if nf, ok := cfg.DPS.(interface {
			NotFound(http.ResponseWriter, *http.Request)
		}); ok {
			// The service API's paths are matched case-insensitively (the
			// Node SDK sends /enrollmentgroups/…), so they are routed here.
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				if cfg.DPSService != nil && dpsservice.Handles(r.URL.Path) {
					cfg.DPSService.ServeHTTP(w, r)
					return
				}
				nf.NotFound(w, r)
			})
		}
	}
	if cfg.Console != nil {
		mux.Handle(ConsolePath, cfg.Console)
		mux.Handle("GET /{$}", http.RedirectHandler(ConsolePath, http.StatusFound))
	}
	if cfg.Issuer != nil {
		mux.Handle("/pki/", pkiHandler(cfg.Issuer))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(r.Context()); err != nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})

	httpTLS := tlsCfg.Clone()
	httpTLS.NextProtos = []string{"h2", "http/1.1"}
	s.http = &http.Server{
		Handler:           s.withUpgrades(cfg.Upgrades, s.httpMiddleware(mux)),
		TLSConfig:         httpTLS,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       requestTimeout,
		WriteTimeout:      requestTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog(cfg.Log, cfg.TLSHandshakeFailed),
	}
	return s, nil
}

// withUpgrades routes the upgrade paths around next (whose response
// recorder cannot be hijacked), after the IP filter's check.
func (s *Server) withUpgrades(upgrades map[string]http.Handler, next http.Handler) http.Handler {
	if len(upgrades) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := upgrades[r.URL.Path]; ok {
			if !s.httpIPFiltered(w, r) {
				h.ServeHTTP(w, r)
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) ready(ctx context.Context) error {
	if s.cfg.Ready == nil {
		return nil
	}
	return s.cfg.Ready(ctx)
}

// Serve serves gRPC on grpcLis and REST on httpLis until ctx is done, then
// shuts down gracefully: it stops taking connections, lets in-flight
// requests finish within ShutdownGrace, and then closes what is left.
func (s *Server) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.watchReadiness(watchCtx)
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(grpcLis) }()
	go func() { errc <- s.http.Serve(tlsListener(httpLis, s.http.TLSConfig)) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.health.Shutdown()
	s.hubs.stop() // assignment streams never end by themselves
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			s.grpc.Stop()
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.http.Shutdown(sctx); err != nil {
			s.http.Close()
		}
	}()
	wg.Wait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return serveErr
	}
	return nil
}

// watchReadiness keeps the gRPC health status in step with the store:
// NOT_SERVING while it does not answer, SERVING again once it does.
func (s *Server) watchReadiness(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	serving := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		ok := s.ready(cctx) == nil
		cancel()
		if ok == serving || ctx.Err() != nil {
			continue
		}
		serving = ok
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ok {
			st = healthpb.HealthCheckResponse_SERVING
		}
		s.health.SetServingStatus("", st)
		s.cfg.Log.Warn("readiness changed", "serving", ok)
	}
}

func tlsListener(l net.Listener, cfg *tls.Config) net.Listener { return tls.NewListener(l, cfg) }

// unaryInterceptor gives each call a request ID, turns panics into
// Internal, and logs the outcome.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	id := newRequestID(firstMetadata(ctx, "x-request-id"))
	ctx = withRequestID(ctx, id)
	if addr, _ := peerInfo(ctx); s.cfg.Geo != nil {
		ctx = withRegion(ctx, s.cfg.Geo.locate(addr, func(k string) string { return firstMetadata(ctx, strings.ToLower(k)) }))
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	if err := s.ipFiltered(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.ErrorContext(ctx, "panic", "request_id", id, "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = reasonStatus(codes.Internal, fault.InternalError, "internal error")
		}
		s.logCall(ctx, id, info.FullMethod, status.Code(err), time.Since(start))
	}()
	return handler(ctx, req)
}

func (s *Server) logCall(ctx context.Context, id, method string, code codes.Code, d time.Duration) {
	level := slog.LevelInfo
	if strings.HasPrefix(method, "/zerotouch.v1.DeviceRegistrationService/") || strings.HasPrefix(method, "/grpc.health") {
		level = slog.LevelDebug
	}
	s.cfg.Log.Log(ctx, level, "call", "request_id", id, "method", method, "code", code.String(), "duration", d)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// httpMiddleware does for REST what unaryInterceptor does for gRPC, bounds
// request bodies, and hands the TLS state to the in-process services.
func (s *Server) httpMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID(r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Request-Id", id)
		r.Header.Set("X-Request-Id", id)
		ctx := withHTTPPeer(withRequestID(r.Context(), id), r.RemoteAddr, r.TLS)
		ctx = withRegion(ctx, s.cfg.Geo.locate(r.RemoteAddr, r.Header.Get))
		r = r.WithContext(ctx)
		limit := int64(maxRequestBytes)
		if r.URL.Path == importPath {
			limit = maxImportBodyBytes // each line is bounded by the handler
		}
		if r.URL.Path == "/v1/enrollments:batchCreate" || strings.HasSuffix(r.URL.Path, ":uploadCrl") ||
			r.Method == http.MethodPost && (strings.EqualFold(r.URL.Path, "/enrollments") || strings.EqualFold(r.URL.Path, "/enrollmentGroups")) {
			limit = maxBatchBytes
		}
		if s.httpIPFiltered(w, r) {
			return
		}
		r.Body = newLimitedBody(w, r.Body, limit)
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Log.ErrorContext(ctx, "panic", "request_id", id, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				http.Error(rec, "internal error", http.StatusInternalServerError)
			}
			level := slog.LevelInfo
			if strings.HasPrefix(r.URL.Path, "/v1/registrations/") && strings.Contains(r.URL.Path, ":") || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" ||
				s.cfg.Console != nil && strings.HasPrefix(r.URL.Path, ConsolePath) && rec.code < 400 ||
				s.cfg.DPS != nil && strings.HasPrefix(r.URL.Path, "/"+s.cfg.DPSScope+"/") {
				level = slog.LevelDebug
			}
			s.cfg.Log.Log(ctx, level, "http", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.code, "duration", time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}
