package provisioning

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// observed records what the use case reports to its Observer.
type observed struct {
	mu        sync.Mutex
	outcomes  []Outcome
	limited   []string
	webhooks  []error
	fallbacks []string
}

func (o *observed) Registered(out Outcome) {
	o.mu.Lock()
	o.outcomes = append(o.outcomes, out)
	o.mu.Unlock()
}
func (o *observed) RateLimited(rule string) {
	o.mu.Lock()
	o.limited = append(o.limited, rule)
	o.mu.Unlock()
}
func (o *observed) WebhookCalled(_ time.Duration, err error) {
	o.mu.Lock()
	o.webhooks = append(o.webhooks, err)
	o.mu.Unlock()
}
func (o *observed) WebhookFallback(policy string) {
	o.mu.Lock()
	o.fallbacks = append(o.fallbacks, policy)
	o.mu.Unlock()
}

// last is the outcome of the last registration step, and how many were
// observed.
func (o *observed) last() (Outcome, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.outcomes) == 0 {
		return Outcome{}, 0
	}
	return o.outcomes[len(o.outcomes)-1], len(o.outcomes)
}

// TestObserver: every registration step is observed once with its
// outcome, reason, attestation, transport and shard; lookups are not
// registrations; a rate-limit refusal names its rule; a webhook call and
// its fallback are observed.
func TestObserver(t *testing.T) {
	f := newFixture(t)
	obs := &observed{}
	f.s.Observer = obs
	ctx := t.Context()

	res, err := f.s.Register(ctx, f.device("sensor-1"))
	if err != nil {
		t.Fatal(err)
	}
	if o, n := obs.last(); n != 1 || o.Outcome != OutcomeAssigned || o.Reason != "" || o.Attestation != registry.X509 ||
		o.Transport != TransportGRPC || o.Shard != res.Registration.Shard || o.Duration <= 0 {
		t.Fatalf("assigned: %+v (%d observed)", o, n)
	}
	if _, err := f.s.Lookup(ctx, f.device("sensor-1")); err != nil {
		t.Fatal(err)
	}
	if _, n := obs.last(); n != 1 {
		t.Fatalf("a lookup was observed as a registration")
	}

	f.store.set("GetRegistration", fault.New(fault.Unavailable, fault.StoreUnavailable, "down"))
	_, err = f.s.Register(ctx, f.device("sensor-2"))
	wantReason(t, err, fault.StoreUnavailable)
	f.store.set("", nil)
	if o, n := obs.last(); n != 2 || o.Outcome != OutcomeError || o.Reason != fault.StoreUnavailable || o.Shard != "" || o.Attestation != registry.X509 {
		t.Fatalf("store down: %+v", o)
	}
	_, err = f.s.Register(ctx, Request{Transport: TransportDPS})
	wantReason(t, err, fault.CertificateMissing)
	if o, n := obs.last(); n != 3 || o.Outcome != OutcomeRefused || o.Attestation != "" || o.Transport != TransportDPS {
		t.Fatalf("no evidence: %+v", o)
	}

	// Rate limits: each refusal names its rule.
	f.s.Limiter = &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now,
		PerIP: ratelimit.Rule{Limit: 3, Window: time.Hour}, PerRegistration: ratelimit.Rule{Limit: 1, Window: time.Hour}}
	for range 2 {
		_, err = f.s.Register(ctx, f.device("sensor-3"))
	}
	wantReason(t, err, fault.RateLimited)
	if o, _ := obs.last(); o.Outcome != OutcomeRefused || o.Reason != fault.RateLimited {
		t.Fatalf("rate limited: %+v", o)
	}
	for range 2 {
		_, err = f.s.Register(ctx, f.device("sensor-4"))
	}
	wantReason(t, err, fault.RateLimited)
	if obs.limited[0] != RulePerRegistration || obs.limited[1] != RulePerIP || len(obs.limited) != 2 {
		t.Fatalf("rules: %v", obs.limited)
	}
	f.s.Limiter = nil

	// A webhook that fails, with a hashed fallback.
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer hook.Close()
	f.s.WebhookClient = hook.Client()
	root, err := pki.NewCA("Hooked Root", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := enrollment.NewCA("hooked-root", root.Cert, time.Now())
	ca.Verified = true
	must(t)(f.store.CreateCA(ctx, ca))
	must(t)(f.store.CreateGroup(ctx, &enrollment.Group{ID: "hooked", CAName: "hooked-root", Allocation: enrollment.Allocation{Policy: enrollment.PolicyCustom,
		Webhook: &enrollment.Webhook{URL: hook.URL + "/allocate", Timeout: 5 * time.Second, Fallback: enrollment.PolicyHashed}}}))
	d, err := pki.NewDevice("hooked-1", root, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Register(ctx, Request{RegistrationID: "hooked-1", Evidence: X509Chain{Chain: []*x509.Certificate{d.Cert}}, Transport: TransportREST}); err != nil {
		t.Fatal(err)
	}
	if len(obs.webhooks) != 1 || obs.webhooks[0] == nil || len(obs.fallbacks) != 1 || obs.fallbacks[0] != "hashed" {
		t.Fatalf("webhook calls %v, fallbacks %v", obs.webhooks, obs.fallbacks)
	}
	if o, _ := obs.last(); o.Outcome != OutcomeAssigned || o.Transport != TransportREST {
		t.Fatalf("after the fallback: %+v", o)
	}
}
