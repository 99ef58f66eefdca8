// Package metrics is Zerotouch's Prometheus instrumentation: the metric
// definitions (docs/metrics.md lists them), on a private registry with the
// Go and process collectors, served on /metrics of a listener of its own.
//
// It implements the observer the registration use case declares
// (provisioning.Observer), wraps the stores that use case reads and writes
// to time their calls, counts TLS handshake failures for the transports,
// and reads fleet gauges from the store when scraped. Only the wiring
// (internal/app) builds it: use cases, transports and stores never import
// it, and it never imports a transport or a store.
//
// Label values are bounded: outcomes, reasons, attestation types,
// transports, listeners, rules, operations, and the shards and hub
// clusters an operator created. Never a registration ID, a device ID or an
// address.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Listeners whose TLS handshake failures are counted.
const (
	ListenerGRPC = "grpc"
	// ListenerHTTP serves REST, the DPS HTTPS APIs and MQTT over
	// WebSockets.
	ListenerHTTP = "http"
	ListenerMQTT = "mqtt"
)

// Buckets of the latency histograms, in seconds. A registration takes
// about a millisecond of server time on a 2-core machine (the TLS handshake
// is not in it); a store call tens of microseconds (embedded) to a
// millisecond (Redis over a network).
var (
	registrationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	storeBuckets        = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
	webhookBuckets      = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// Metrics holds Zerotouch's metrics and their registry.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	registrations       *prometheus.CounterVec
	registrationSeconds *prometheus.HistogramVec
	tlsFailures         *prometheus.CounterVec
	rateLimited         *prometheus.CounterVec
	storeSeconds        *prometheus.HistogramVec
	storeErrors         *prometheus.CounterVec
	webhookSeconds      prometheus.Histogram
	webhookFailures     prometheus.Counter
	webhookFallbacks    *prometheus.CounterVec
}

// New makes the metrics on a fresh registry, with the Go and process
// collectors and zerotouch_build_info. log receives errors of scrapes
// (nil: discarded).
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log}
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zerotouch_registrations_total",
		Help: "Registration steps, by outcome (assigned, assigning, refused, error), reason, attestation type, transport and shard (assigned only).",
	}, []string{"outcome", "reason", "attestation", "transport", "shard"})
	m.registrationSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "zerotouch_registration_duration_seconds",
		Help:    "Server time of a registration step in the use case (attestation, matching, allocation, the store write; not the TLS handshake or the transport's decoding), by transport and outcome.",
		Buckets: registrationBuckets,
	}, []string{"transport", "outcome"})
	m.tlsFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zerotouch_tls_handshake_failures_total",
		Help: "TLS handshakes that failed on a listener (grpc, http, mqtt), including clients that closed or timed out before finishing one.",
	}, []string{"listener"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zerotouch_rate_limited_total",
		Help: "Device requests refused with RATE_LIMITED, by rule (per_ip, per_registration, tpm_challenges_per_ip).",
	}, []string{"rule"})
	m.storeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "zerotouch_store_call_duration_seconds",
		Help:    "Store calls of the registration use case, by operation.",
		Buckets: storeBuckets,
	}, []string{"operation"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zerotouch_store_errors_total",
		Help: "Store calls of the registration use case that failed (unavailable or internal; not answers such as not found or conflict), by operation.",
	}, []string{"operation"})
	m.webhookSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "zerotouch_webhook_duration_seconds",
		Help:    "Custom allocation webhook calls, successful or not.",
		Buckets: webhookBuckets,
	})
	m.webhookFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "zerotouch_webhook_failures_total",
		Help: "Custom allocation webhook calls that failed: unreachable, timed out, an answer other than 200, or an answer that is not a valid choice.",
	})
	m.webhookFallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zerotouch_webhook_fallbacks_total",
		Help: "Failed webhook calls whose enrollment's fallback policy allocated instead, by that policy.",
	}, []string{"policy"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "zerotouch_build_info",
		Help:        "Always 1: the build's version and Go version.",
		ConstLabels: prometheus.Labels{"version": version(), "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), build,
		m.registrations, m.registrationSeconds, m.tlsFailures, m.rateLimited, m.storeSeconds, m.storeErrors,
		m.webhookSeconds, m.webhookFailures, m.webhookFallbacks)

	// Series whose label values are known up front start at zero, so that
	// dashboards and rate() see them before the first event.
	for _, r := range []string{provisioning.RulePerIP, provisioning.RulePerRegistration, provisioning.RuleTPMChallengesPerIP} {
		m.rateLimited.WithLabelValues(r)
	}
	for _, p := range []enrollment.Policy{enrollment.PolicyHashed, enrollment.PolicyStatic, enrollment.PolicyGeo} {
		m.webhookFallbacks.WithLabelValues(string(p))
	}
	return m
}

// version is the main module's version as the build recorded it.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// Gatherer is the registry, for tests and for serving elsewhere.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Register adds a collector (a Fleet) to the registry.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// FailedAttemptsDropped counts the refusals the failed-attempt log's full
// queue dropped (ADR 20), read from dropped at scrape time.
func (m *Metrics) FailedAttemptsDropped(dropped func() int64) error {
	return m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "zerotouch_failed_attempts_dropped_total",
		Help: "Refused device requests the failed-attempt log dropped because its write queue was full (an attack, or a store too slow)."},
		func() float64 { return float64(dropped()) }))
}

// Listener starts the TLS handshake failure counter of a listener at zero
// (a listener that is served).
func (m *Metrics) Listener(name string) { m.tlsFailures.WithLabelValues(name) }

// TLSHandshakeFailed counts a failed TLS handshake on a listener.
func (m *Metrics) TLSHandshakeFailed(listener string) { m.tlsFailures.WithLabelValues(listener).Inc() }

// Registered implements provisioning.Observer.
func (m *Metrics) Registered(o provisioning.Outcome) {
	att := string(o.Attestation)
	if att == "" {
		att = "none"
	}
	m.registrations.WithLabelValues(o.Outcome, string(o.Reason), att, string(o.Transport), o.Shard).Inc()
	m.registrationSeconds.WithLabelValues(string(o.Transport), o.Outcome).Observe(o.Duration.Seconds())
}

// RateLimited implements provisioning.Observer.
func (m *Metrics) RateLimited(rule string) { m.rateLimited.WithLabelValues(rule).Inc() }

// WebhookCalled implements provisioning.Observer.
func (m *Metrics) WebhookCalled(d time.Duration, err error) {
	m.webhookSeconds.Observe(d.Seconds())
	if err != nil {
		m.webhookFailures.Inc()
	}
}

// WebhookFallback implements provisioning.Observer.
func (m *Metrics) WebhookFallback(policy string) { m.webhookFallbacks.WithLabelValues(policy).Inc() }

// storeFailed reports whether a store call failed, as opposed to
// answering (not found, already exists, a conflict) or being abandoned by
// its caller.
func storeFailed(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	k := fault.KindOf(err)
	return k == fault.Internal || k == fault.Unavailable
}

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format. A collector that fails is logged, and the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		ErrorLog:            slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// Serve serves Path on l until ctx ends, then stops (within 5 s) and
// returns nil; it returns the error if l fails first.
func (m *Metrics) Serve(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv.Shutdown(sctx) != nil {
		srv.Close()
	}
	<-errc
	return nil
}
