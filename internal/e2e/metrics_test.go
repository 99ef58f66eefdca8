package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
)

// scrapeMetrics reads the server's /metrics over HTTP and parses it.
func (e *env) scrapeMetrics() map[string]*dto.MetricFamily {
	e.t.Helper()
	res, err := http.Get("http://" + e.metricsAddr + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics: %s", res.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return fams
}

// series returns a family's series as "name{l1=v1,l2=v2}" (labels
// sorted) -> value: a counter's or gauge's value, a histogram's count.
func series(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		slices.Sort(ls)
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		out["{"+strings.Join(ls, ",")+"}"] = v
	}
	return out
}

// TestMetrics registers known devices and refusals over gRPC and REST,
// fails TLS handshakes on every listener, and checks the scraped metrics
// exactly; then that every query of the Grafana dashboard names metrics
// the server exports.
func TestMetrics(t *testing.T) {
	// One registration per device per hour: a device's second
	// registration is refused RATE_LIMITED.
	e := startWith(t, options{limiter: &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now,
		PerRegistration: ratelimit.Rule{Limit: 1, Window: time.Hour}}})
	f := e.newFleet()

	registrations := map[string]float64{} // series -> count
	durations := map[string]float64{}
	devices := map[string]float64{}
	for i, tr := range []transport{transports[0], transports[0], transports[1]} {
		id := fmt.Sprintf("metrics-%d", i)
		reg, err := tr.register(e, id, f.device(t, id), f.inter.Cert)
		if err != nil {
			t.Fatalf("%s over %s: %v", id, tr.name, err)
		}
		registrations[fmt.Sprintf("{attestation=x509,outcome=assigned,reason=,shard=%s,transport=%s}", reg.GetShard(), tr.name)]++
		durations[fmt.Sprintf("{outcome=assigned,transport=%s}", tr.name)]++
		devices["{shard="+reg.GetShard()+"}"]++
	}
	// Two refusals of known reasons: a second registration of a device
	// within the hour, and a device that leaves out its intermediate.
	if _, err := e.registerGRPC("metrics-0", f.device(t, "metrics-0"), f.inter.Cert); reasonOf(t, err) != "RATE_LIMITED" {
		t.Fatalf("second registration: %v", err)
	}
	if _, err := e.registerREST("metrics-lonely", f.device(t, "metrics-lonely")); reasonOf(t, err) != "CERTIFICATE_UNTRUSTED" {
		t.Fatalf("no intermediate: %v", err)
	}
	registrations["{attestation=x509,outcome=refused,reason=RATE_LIMITED,shard=,transport=grpc}"]++
	registrations["{attestation=x509,outcome=refused,reason=CERTIFICATE_UNTRUSTED,shard=,transport=rest}"]++
	durations["{outcome=refused,transport=grpc}"]++
	durations["{outcome=refused,transport=rest}"]++

	// A client on each listener that closes before a TLS handshake.
	for _, addr := range []string{e.grpcAddr, e.httpAddr, e.mqttAddr} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// A hub cluster owning an empty shard, with no stream open.
	now := time.Now()
	if _, err := e.store.CreateCluster(t.Context(), &allocation.Cluster{ID: "hubs-metrics", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateShard(t.Context(), &allocation.Shard{ID: "shard-hub", Hostname: "shard-hub.example.com", Weight: 1,
		State: allocation.Active, Cluster: "hubs-metrics", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	devices["{shard=shard-hub}"] = 0
	for _, sh := range []string{"shard-a", "shard-b"} {
		devices["{shard="+sh+"}"] += 0
	}

	// The servers count failed handshakes as their goroutines see them.
	tlsWant := map[string]float64{"{listener=grpc}": 1, "{listener=http}": 1, "{listener=mqtt}": 1}
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fams = e.scrapeMetrics()
		got := series(fams, "zerotouch_tls_handshake_failures_total")
		if fmt.Sprint(got) == fmt.Sprint(tlsWant) || time.Now().After(deadline) {
			break
		}
	}

	for _, c := range []struct {
		name string
		want map[string]float64
	}{
		{"zerotouch_registrations_total", registrations},
		{"zerotouch_registration_duration_seconds", durations},
		{"zerotouch_tls_handshake_failures_total", tlsWant},
		{"zerotouch_rate_limited_total", map[string]float64{"{rule=per_ip}": 0, "{rule=per_registration}": 1, "{rule=tpm_challenges_per_ip}": 0}},
		{"zerotouch_shard_devices", devices},
		{"zerotouch_hub_stream_lag_events", map[string]float64{"{cluster=hubs-metrics,shard=shard-hub}": 0}},
		{"zerotouch_hub_streams", map[string]float64{"{cluster=hubs-metrics}": 0}},
		{"zerotouch_ca_certificates", map[string]float64{"{verified=true}": 1, "{verified=false}": 0}},
		{"zerotouch_enrollment_groups", map[string]float64{"{enabled=true}": 1, "{enabled=false}": 0}},
		{"zerotouch_webhook_duration_seconds", map[string]float64{"{}": 0}},
		{"zerotouch_webhook_failures_total", map[string]float64{"{}": 0}},
	} {
		if got := series(fams, c.name); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
	}
	// The store: three registrations written, every lookup timed, nothing
	// failed.
	calls := series(fams, "zerotouch_store_call_duration_seconds")
	if calls["{operation=create_registration}"] != 3 || calls["{operation=get_registration}"] < 3 || calls["{operation=all_shards}"] != 3 {
		t.Errorf("store calls: %v", calls)
	}
	for s, n := range series(fams, "zerotouch_store_errors_total") {
		if n != 0 {
			t.Errorf("store errors %s = %v", s, n)
		}
	}
	if b := series(fams, "zerotouch_store_bytes")["{}"]; b <= 0 {
		t.Errorf("store bytes %v", b)
	}
	if d, ok := series(fams, "zerotouch_failed_attempts_dropped_total")["{}"]; !ok || d != 0 {
		t.Errorf("failed attempts dropped: %v (present %v), want 0", d, ok)
	}
	if bi := fams["zerotouch_build_info"]; bi == nil || len(bi.GetMetric()) != 1 || len(bi.GetMetric()[0].GetLabel()) != 2 {
		t.Errorf("build info: %v", bi)
	}
	// Never a registration ID or an address in a label.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "metrics-") || strings.Contains(l.GetValue(), "127.0.0.1") {
					t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	t.Run("GrafanaDashboard", func(t *testing.T) { checkDashboard(t, fams) })
}

// checkDashboard parses every PromQL query of the Grafana dashboard and
// checks that each metric it names is exported (a histogram's _bucket,
// _sum and _count by the histogram's name).
func checkDashboard(t *testing.T, fams map[string]*dto.MetricFamily) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "zerotouch-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	exported := func(name string) bool {
		if fams[name] != nil {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && fams[base].GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
		return false
	}
	queries := 0
	for _, expr := range exprs {
		if expr == "prometheus" { // the data source variable's type
			continue
		}
		// A template variable's query: label_values(selector, label).
		if inner, ok := strings.CutPrefix(expr, "label_values("); ok {
			i := strings.LastIndex(inner, ",")
			if i < 0 || !strings.HasSuffix(inner, ")") {
				t.Errorf("variable query %q is not label_values(selector, label)", expr)
				continue
			}
			expr = inner[:i]
		}
		// Grafana's variables, as Grafana substitutes them.
		expr = strings.NewReplacer("$__rate_interval", "2m", "$__interval", "30s").Replace(expr)
		names, err := promqlMetrics(expr)
		if err != nil {
			t.Errorf("query %q: %v", expr, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("query %q names no metric", expr)
		}
		for _, n := range names {
			if !exported(n) {
				t.Errorf("query %q names %s, which the server does not export", expr, n)
			}
		}
		queries++
	}
	if queries < 20 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
}
