package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// scrape serves m on a loopback listener, reads /metrics over HTTP and
// parses it.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	res, err := http.Get("http://" + l.Addr().String() + Path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s\n%s", Path, res.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value is the value of the family's series with exactly these labels
// (a counter's or gauge's value, a histogram's count); ok is false when
// there is no such series.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if want, ok := labels[lp.GetName()]; !ok || want != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsOutcomes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, provisioning.OutcomeAssigned},
		{fault.New(fault.Unavailable, fault.Assigning, "deciding"), provisioning.OutcomeAssigning},
		{fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "off"), provisioning.OutcomeRefused},
		{fault.New(fault.Unauthenticated, fault.CertificateUntrusted, "who"), provisioning.OutcomeRefused},
		{fault.New(fault.ResourceExhausted, fault.RateLimited, "slow down"), provisioning.OutcomeRefused},
		{fault.New(fault.Unavailable, fault.StoreUnavailable, "down"), provisioning.OutcomeError},
		{fault.New(fault.Unavailable, fault.CustomAllocationFailed, "webhook"), provisioning.OutcomeError},
		{errors.New("unclassified"), provisioning.OutcomeError},
	} {
		if got := provisioning.OutcomeOf(c.err); got != c.want {
			t.Errorf("OutcomeOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// TestMetricsServe: the registry holds the Go and process collectors, the build
// information and the counters whose labels are known up front (at zero);
// what is observed is served exactly.
func TestMetricsServe(t *testing.T) {
	m := New(nil)
	for range 3 {
		m.Registered(provisioning.Outcome{Outcome: provisioning.OutcomeAssigned, Attestation: registry.X509, Transport: provisioning.TransportGRPC,
			Shard: "s1", Duration: 2 * time.Millisecond})
	}
	m.Registered(provisioning.Outcome{Outcome: provisioning.OutcomeRefused, Reason: fault.CertificateUntrusted, Attestation: registry.X509,
		Transport: provisioning.TransportREST, Duration: time.Millisecond})
	m.Registered(provisioning.Outcome{Outcome: provisioning.OutcomeRefused, Reason: fault.CertificateMissing, Transport: provisioning.TransportDPS})
	m.RateLimited(provisioning.RulePerRegistration)
	m.WebhookCalled(30*time.Millisecond, nil)
	m.WebhookCalled(time.Second, errors.New("timeout"))
	m.WebhookFallback("hashed")
	m.Listener(ListenerMQTT)
	m.TLSHandshakeFailed(ListenerGRPC)
	m.TLSHandshakeFailed(ListenerGRPC)

	fams := scrape(t, m)
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	bi := fams["zerotouch_build_info"]
	if bi == nil || len(bi.GetMetric()) != 1 || bi.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("build info: %v", bi)
	}
	for _, lp := range bi.GetMetric()[0].GetLabel() {
		if lp.GetValue() == "" || (lp.GetName() != "version" && lp.GetName() != "goversion") {
			t.Errorf("build info label %s=%q", lp.GetName(), lp.GetValue())
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zerotouch_registrations_total", map[string]string{"outcome": "assigned", "reason": "", "attestation": "x509", "transport": "grpc", "shard": "s1"}, 3},
		{"zerotouch_registrations_total", map[string]string{"outcome": "refused", "reason": "CERTIFICATE_UNTRUSTED", "attestation": "x509", "transport": "rest", "shard": ""}, 1},
		{"zerotouch_registrations_total", map[string]string{"outcome": "refused", "reason": "CERTIFICATE_MISSING", "attestation": "none", "transport": "dps-https", "shard": ""}, 1},
		{"zerotouch_registration_duration_seconds", map[string]string{"transport": "grpc", "outcome": "assigned"}, 3},
		{"zerotouch_registration_duration_seconds", map[string]string{"transport": "rest", "outcome": "refused"}, 1},
		{"zerotouch_rate_limited_total", map[string]string{"rule": "per_registration"}, 1},
		{"zerotouch_rate_limited_total", map[string]string{"rule": "per_ip"}, 0},
		{"zerotouch_rate_limited_total", map[string]string{"rule": "tpm_challenges_per_ip"}, 0},
		{"zerotouch_webhook_duration_seconds", map[string]string{}, 2},
		{"zerotouch_webhook_failures_total", map[string]string{}, 1},
		{"zerotouch_webhook_fallbacks_total", map[string]string{"policy": "hashed"}, 1},
		{"zerotouch_webhook_fallbacks_total", map[string]string{"policy": "geo"}, 0},
		{"zerotouch_tls_handshake_failures_total", map[string]string{"listener": "grpc"}, 2},
		{"zerotouch_tls_handshake_failures_total", map[string]string{"listener": "mqtt"}, 0},
	} {
		if got, ok := value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n := len(fams["zerotouch_registrations_total"].GetMetric()); n != 3 {
		t.Errorf("%d registration series, want 3", n)
	}
	// The histogram's buckets: 2 ms falls in the 2.5 ms bucket, not the 1 ms one.
	for _, mt := range fams["zerotouch_registration_duration_seconds"].GetMetric() {
		if mt.GetLabel()[0].GetValue() != "assigned" {
			continue
		}
		for _, b := range mt.GetHistogram().GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 0.0025 {
				want = 3
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
}

// TestMetricsServeStops: Serve returns nil when its context ends, and the error
// when its listener fails.
func TestMetricsServeStops(t *testing.T) {
	m := New(nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := m.Serve(t.Context(), l); err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Serve(ctx, l); err != nil {
		t.Fatalf("Serve after its context ended: %v", err)
	}
	// Only GET /metrics is served.
	res := httpGet(t, m, "/")
	if res != http.StatusNotFound {
		t.Fatalf("GET /: %d", res)
	}
}

func httpGet(t *testing.T, m *Metrics, path string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	res, err := http.Get("http://" + l.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestMetricsStoreFailed(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fault.NotFoundf("no"), false},
		{fault.Existsf("yes"), false},
		{fault.New(fault.Conflict, fault.EtagMismatch, "etag"), false},
		{context.Canceled, false},
		{fmt.Errorf("read: %w", context.Canceled), false},
		{context.DeadlineExceeded, true},
		{fault.New(fault.Unavailable, fault.StoreUnavailable, "down"), true},
		{errors.New("disk on fire"), true},
	} {
		if got := storeFailed(c.err); got != c.want {
			t.Errorf("storeFailed(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestMetricsNoAttestationIsNone(t *testing.T) {
	m := New(nil)
	m.Registered(provisioning.Outcome{Outcome: provisioning.OutcomeRefused, Reason: fault.CertificateMissing, Transport: provisioning.TransportMQTT})
	if got := testutil.ToFloat64(m.registrations.WithLabelValues("refused", "CERTIFICATE_MISSING", "none", "dps-mqtt", "")); got != 1 {
		t.Fatalf("counted %v", got)
	}
	if version() == "" {
		t.Fatal("no version")
	}
}

// BenchmarkMetricsPerRegistration is what the metrics add to one
// registration: its count and latency, and eight timed store calls.
func BenchmarkMetricsPerRegistration(b *testing.B) {
	m := New(nil)
	ops := []*storeOp{m.op("get_registration"), m.op("find_ca_by_thumbprint"), m.op("find_cas_by_subject"), m.op("find_group_by_ca"),
		m.op("reserved_by_individual"), m.op("get_registration"), m.op("all_shards"), m.op("create_registration")}
	o := provisioning.Outcome{Outcome: provisioning.OutcomeAssigned, Attestation: registry.X509, Transport: provisioning.TransportGRPC,
		Shard: "shard-a", Duration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var err error
		for pb.Next() {
			for _, op := range ops {
				op.done(time.Now(), &err)
			}
			m.Registered(o)
		}
	})
}
