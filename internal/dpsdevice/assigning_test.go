package dpsdevice

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
)

// TestAssigning: a first registration whose custom allocation webhook is
// slower than the sync budget is answered 202 "assigning" with a retry
// hint; polling its operation answers the same until the webhook decides,
// then the registration, with the webhook's payload. The device's payload
// reaches the webhook.
func TestAssigning(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	got := make(chan json.RawMessage, 1)
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			DeviceRuntimeContext struct {
				Payload json.RawMessage `json:"payload"`
			} `json:"deviceRuntimeContext"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		got <- req.DeviceRuntimeContext.Payload
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"iotHubHostName":"hub-b.example.com","payload":{"site":"line-3"}}`))
	}))
	defer hook.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before hook.Close, even when the test fails early
	f.prov.WebhookClient = hook.Client()
	f.prov.WebhookSyncBudget = 50 * time.Millisecond
	custom := func(e *enrollment.Individual) {
		e.Allocation = enrollment.Allocation{Policy: enrollment.PolicyCustom, Webhook: &enrollment.Webhook{URL: hook.URL + "/alloc", Timeout: 10 * time.Second}}
	}
	f.symmetric("wh-1", custom)

	rec := f.register("wh-1", `{"payload":{"model":"m1"}}`)
	op := decode[OperationStatus](t, rec, 202)
	if op.Status != "assigning" || !strings.HasPrefix(op.OperationID, "0.assigning.") || op.RegistrationState.Status != "assigning" || op.RegistrationState.RegistrationID != "wh-1" {
		t.Fatalf("assigning: %+v", op)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "5" {
		t.Fatalf("Retry-After %q (the webhook's timeout less the budget, at most 5 s)", ra)
	}
	if p := <-got; string(p) != `{"model":"m1"}` {
		t.Fatalf("the webhook got payload %s", p)
	}
	poll := request{method: "GET", path: "/" + scope + "/registrations/wh-1/operations/" + op.OperationID, auth: sas(f.keyOf["wh-1"], "wh-1")}
	rec = f.do(poll)
	if pending := decode[OperationStatus](t, rec, 202); pending.OperationID != op.OperationID || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("pending poll: %+v %v", pending, rec.Header())
	}
	// Registering again while the webhook decides: still assigning.
	if again := decode[OperationStatus](t, f.register("wh-1", ""), 202); again.Status != "assigning" {
		t.Fatalf("second register: %+v", again)
	}
	free()
	if err := f.prov.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := decode[OperationStatus](t, f.do(poll), 200)
	if done.Status != "assigned" || done.OperationID == op.OperationID || !strings.HasPrefix(done.OperationID, "0.") ||
		done.RegistrationState.AssignedHub != "hub-b.example.com" || string(done.RegistrationState.Payload) != `{"site":"line-3"}` {
		t.Fatalf("decided: %+v %+v", done, done.RegistrationState)
	}
	// Another device's pending operation ID is no operation of this one.
	other := AssigningOperationID("wh-9", time.Now().Add(time.Minute))
	refused(t, f.do(request{method: "GET", path: "/" + scope + "/registrations/wh-1/operations/" + other, auth: poll.auth}), 404, "RESOURCE_NOT_FOUND")

	// An assignment never decided by its deadline: the operation failed.
	f.symmetric("wh-2", custom)
	expired := AssigningOperationID("wh-2", time.Now().Add(-time.Second))
	failed := decode[OperationStatus](t, f.do(request{method: "GET", path: "/" + scope + "/registrations/wh-2/operations/" + expired, auth: sas(f.keyOf["wh-2"], "wh-2")}), 200)
	if failed.Status != "failed" || failed.OperationID != expired || failed.RegistrationState.ErrorCode != 503000 ||
		!strings.Contains(failed.RegistrationState.ErrorMessage, "CUSTOM_ALLOCATION_FAILED") {
		t.Fatalf("expired: %+v %+v", failed, failed.RegistrationState)
	}
}

// An assigning operation ID names its registration and deadline, and only
// that registration can use it.
func TestAssigningOperationID(t *testing.T) {
	deadline := time.Unix(1_900_000_000, 0)
	id := AssigningOperationID("Dev-1", deadline)
	if got, ok := ParseAssigningOperationID(id, "dev-1"); !ok || !got.Equal(deadline) {
		t.Fatalf("round trip: %v %v", got, ok)
	}
	for _, bad := range []struct{ op, reg string }{{id, "dev-2"}, {"0.assigning.%%%", "dev-1"}, {"0.assigning.", "dev-1"}, {"0.other", "dev-1"},
		{"0.assigning." + strings.Repeat("A", 10), "dev-1"}, {AssigningOperationID("dev-1|x", deadline), "dev-1"}} {
		if _, ok := ParseAssigningOperationID(bad.op, bad.reg); ok {
			t.Errorf("parsed %q for %q", bad.op, bad.reg)
		}
	}
}
