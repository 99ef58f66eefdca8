package e2e

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestCustomAllocationWebhook runs custom allocation against a real HTTPS
// webhook in the test. The receiver checks every request's signature
// (with the secret from GetWebhookSecret) and timestamp, and answers by
// the device: a linked hub with a payload and a twin, too slowly, a hub
// that is not linked, or a 500. A failed webhook falls back to hashing
// when the enrollment says so, and otherwise refuses the device, writing
// nothing.
func TestCustomAllocationWebhook(t *testing.T) {
	var mu sync.Mutex
	var secret []byte
	var problems []string
	var seen []map[string]json.RawMessage
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get(provisioning.WebhookTimestampHeader)
		mu.Lock()
		key := secret
		mu.Unlock()
		want := provisioning.SignWebhook(key, ts, body)
		n, _ := strconv.ParseInt(ts, 10, 64)
		if !hmac.Equal([]byte(want), []byte(r.Header.Get(provisioning.WebhookSignatureHeader))) || time.Since(time.Unix(n, 0)).Abs() > time.Minute {
			mu.Lock()
			problems = append(problems, "bad signature or timestamp")
			mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req struct {
			EnrollmentGroup      map[string]json.RawMessage `json:"enrollmentGroup"`
			DeviceRuntimeContext struct {
				RegistrationID string          `json:"registrationId"`
				Payload        json.RawMessage `json:"payload"`
			} `json:"deviceRuntimeContext"`
			LinkedHubs []string `json:"linkedHubs"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.LinkedHubs) != 2 || req.EnrollmentGroup == nil {
			mu.Lock()
			problems = append(problems, "malformed AllocationRequest: "+string(body))
			mu.Unlock()
		}
		mu.Lock()
		seen = append(seen, map[string]json.RawMessage{"id": json.RawMessage(strconv.Quote(req.DeviceRuntimeContext.RegistrationID)), "payload": req.DeviceRuntimeContext.Payload})
		mu.Unlock()
		id := req.DeviceRuntimeContext.RegistrationID
		switch {
		case strings.HasPrefix(id, "wh-slow"):
			// Never answers in time: held until Zerotouch gives up (its 1 s
			// timeout closes the request). Were no timeout enforced, the
			// answer after the cap would assign the device with a payload,
			// which the fallback assertions below refuse.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Second):
			}
			w.Write([]byte(`{"iotHubHostName":"wh-b.hubs.example.com","payload":{"late":true}}`))
		case strings.HasPrefix(id, "wh-unlinked"):
			w.Write([]byte(`{"iotHubHostName":"evil.example.com"}`))
		case strings.HasPrefix(id, "wh-500"):
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.Write([]byte(`{"iotHubHostName":"wh-b.hubs.example.com","payload":{"site":"line-3"},"initialTwin":{"tags":{"chosen":"by-webhook"}}}`))
		}
	}))
	defer hook.Close()

	e := startWith(t, options{webhooks: hook.Client()})
	e.createShard("wh-a", 1)
	e.createShard("wh-b", 1)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	s, err := enr.GetWebhookSecret(e.owner(), &pb.GetWebhookSecretRequest{Url: hook.URL + "/allocate"})
	if err != nil || len(s.GetSecret()) != 32 {
		t.Fatalf("GetWebhookSecret: %v %v", s, err)
	}
	mu.Lock()
	secret = s.GetSecret()
	mu.Unlock()
	if _, err := enr.GetWebhookSecret(e.owner(), &pb.GetWebhookSecretRequest{Url: "http://plain.example.com"}); codeOf(err) != 3 {
		t.Fatalf("secret of a non-https URL: %v", err)
	}
	if _, err := enr.GetWebhookSecret(as(t.Context(), e.readerKey), &pb.GetWebhookSecretRequest{Url: hook.URL + "/allocate"}); codeOf(err) != 7 {
		t.Fatalf("secret without ServiceConfig: %v", err)
	}

	group := func(id string, fallback pb.AllocationPolicy) []byte {
		g, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: id,
			AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
			Allocation: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM,
				Webhook: &pb.Webhook{Url: hook.URL + "/allocate", TimeoutSeconds: 1, FallbackPolicy: fallback}}}})
		if err != nil {
			t.Fatalf("group %s: %v", id, err)
		}
		if g.GetAllocation().GetWebhook().GetUrl() != hook.URL+"/allocate" {
			t.Fatalf("group webhook: %v", g.GetAllocation())
		}
		return g.GetSymmetricKey().GetPrimaryKey()
	}
	withFallback := group("wh-fallback", pb.AllocationPolicy_ALLOCATION_POLICY_HASHED)
	strict := group("wh-strict", pb.AllocationPolicy_ALLOCATION_POLICY_UNSPECIFIED)

	devs := e.dpsDevices()
	register := func(groupKey []byte, regID, payload string) (int, dpsdevice.OperationStatus) {
		t.Helper()
		return devs.registerWith(regID, symkey.DeriveDeviceKey(groupKey, regID), "", payload)
	}

	// The webhook decides: its hub, payload and twin.
	code, op := register(strict, "wh-ok-1", `{"model":"X1"}`)
	if code != 200 || op.Status != "assigned" || op.RegistrationState.AssignedHub != "wh-b.hubs.example.com" || string(op.RegistrationState.Payload) != `{"site":"line-3"}` {
		t.Fatalf("webhook allocation: %d %+v", code, op.RegistrationState)
	}
	if ident, err := e.store.GetIdentity(t.Context(), "wh-ok-1"); err != nil || !strings.Contains(string(ident.InitialTwin), "by-webhook") {
		t.Fatalf("the webhook's twin: %v %v", ident, err)
	}
	mu.Lock()
	if len(seen) != 1 || string(seen[0]["payload"]) != `{"model":"X1"}` {
		t.Fatalf("the device's payload did not reach the webhook: %v", seen)
	}
	mu.Unlock()
	// The payload is kept: a status lookup shows it again.
	if reg, _ := e.store.GetRegistration(t.Context(), "wh-ok-1"); string(reg.Payload) != `{"site":"line-3"}` {
		t.Fatalf("stored payload %q", reg.Payload)
	}
	// … and so does the DPS service API's registration state.
	svcID, svcKey := e.newSASKey("wh-svc", access.RegistrationRead)
	var st dpsservice.DeviceRegistrationState
	svc := e.serviceClient(svcID, svcKey)
	svc.mustOK(svc.call("GET", "/registrations/wh-ok-1", ""), 200).decode(t, &st)
	if string(st.Payload) != `{"site":"line-3"}` {
		t.Fatalf("registration state payload %q", st.Payload)
	}

	// A device payload over 4 KiB is refused before any webhook call.
	if code, op := register(strict, "wh-ok-big", `{"pad":"`+strings.Repeat("x", 5000)+`"}`); code != 400 {
		t.Fatalf("oversized payload: %d %+v", code, op.RegistrationState)
	}
	e.assertNoRegistration("wh-ok-big")

	// Failures with a fallback: hashed over the linked shards.
	for _, id := range []string{"wh-slow-1", "wh-unlinked-1", "wh-500-1"} {
		code, op := register(withFallback, id, "null")
		if code != 200 || op.Status != "assigned" || len(op.RegistrationState.Payload) != 0 {
			t.Fatalf("%s with a fallback: %d %+v", id, code, op.RegistrationState)
		}
	}
	// Failures without one: refused, nothing written.
	for _, id := range []string{"wh-slow-2", "wh-unlinked-2", "wh-500-2"} {
		code, op := register(strict, id, "null")
		if code == 200 && op.Status == "assigned" {
			t.Fatalf("%s without a fallback was assigned: %+v", id, op.RegistrationState)
		}
		var eb apierr.DPSErrorBody
		if json.Unmarshal([]byte(op.RegistrationState.ErrorMessage), &eb); eb.Info["reason"] != "CUSTOM_ALLOCATION_FAILED" {
			t.Fatalf("%s: %d %s", id, code, op.RegistrationState.ErrorMessage)
		}
		e.assertNoRegistration(id)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) != 0 {
		t.Fatalf("the webhook receiver saw: %v", problems)
	}

	// Malformed webhook settings are refused.
	for name, w := range map[string]*pb.Webhook{
		"http":          {Url: "http://x.example.com/a"},
		"no host":       {Url: "https:///a"},
		"long timeout":  {Url: "https://x.example.com/a", TimeoutSeconds: 31},
		"custom fb":     {Url: "https://x.example.com/a", FallbackPolicy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM},
		"static fb bad": {Url: "https://x.example.com/a", FallbackPolicy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC},
	} {
		if _, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "wh-bad",
			AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
			Allocation:      &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Webhook: w}}}); codeOf(err) != 3 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "wh-bad",
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
		Allocation:      &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_HASHED, Webhook: &pb.Webhook{Url: "https://x.example.com"}}}}); codeOf(err) != 3 {
		t.Errorf("a webhook without the custom policy: %v", err)
	}
}

// TestWebhookPollableOperation: a webhook slower than the sync budget
// turns a DPS registration into a pollable operation (202 "assigning" with
// Retry-After); the device polls until the background decision lands, and
// gets its assignment and the webhook's payload. Registering again while
// it is pending asks the webhook nothing more; an operation past its
// deadline with no registration reads as failed.
func TestWebhookPollableOperation(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	// The webhook answers only when the test releases it, so every step
	// below sees a decision that is pending, or made, for certain.
	release := make(chan struct{})
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte(`{"iotHubHostName":"poll-b.hubs.example.com","payload":{"slow":true}}`))
	}))
	defer hook.Close()
	e := startWith(t, options{webhooks: hook.Client(), webhookBudget: 300 * time.Millisecond})
	e.createShard("poll-a", 1)
	e.createShard("poll-b", 1)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	g, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "poll",
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
		Allocation:      &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Webhook: &pb.Webhook{Url: hook.URL, TimeoutSeconds: 5}}}})
	if err != nil {
		t.Fatal(err)
	}
	key := symkey.DeriveDeviceKey(g.GetSymmetricKey().GetPrimaryKey(), "poll-dev")
	auth := func() string {
		return symkey.Sign(key, idScope+"/registrations/poll-dev", time.Now().Add(time.Hour), "registration")
	}
	code, hdr, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/poll-dev/register", auth(), `{"registrationId":"poll-dev"}`, nil)
	op := decodeOp(t, raw)
	if code != 202 || op.Status != "assigning" || hdr.Get("Retry-After") == "" || !strings.HasPrefix(op.OperationID, "0.assigning.") {
		t.Fatalf("slow webhook: %d %v %s", code, hdr, raw)
	}
	// Registering again while it is pending: still assigning, no new call.
	if code, _, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/poll-dev/register", auth(), `{"registrationId":"poll-dev"}`, nil); code != 202 {
		t.Fatalf("second PUT while pending: %d %s", code, raw)
	}
	// Polling while the webhook decides: assigning.
	poll := func() (int, dpsdevice.OperationStatus) {
		code, _, raw := e.dpsCall("GET", "/"+idScope+"/registrations/poll-dev/operations/"+op.OperationID, auth(), "", nil)
		return code, decodeOp(t, raw)
	}
	if code, pending := poll(); code != 202 || pending.Status != "assigning" {
		t.Fatalf("poll while pending: %d %+v", code, pending)
	}
	// The webhook answers; a graceful stop waits for the background
	// decision (Wait), so it is written before the store would close.
	close(release)
	if err := e.prov.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetRegistration(t.Context(), "poll-dev"); err != nil {
		t.Fatalf("after Wait the registration must exist: %v", err)
	}
	code, final := poll()
	if code != 200 {
		t.Fatalf("poll after the decision: %d %+v", code, final)
	}
	if final.Status != "assigned" || final.RegistrationState.AssignedHub != "poll-b.hubs.example.com" || string(final.RegistrationState.Payload) != `{"slow":true}` {
		t.Fatalf("decided: %+v", final.RegistrationState)
	}
	mu.Lock()
	if calls != 1 {
		t.Errorf("the webhook was called %d times, want 1", calls)
	}
	mu.Unlock()
	// Past its deadline with no registration, an operation reads as failed.
	past := "0.assigning." + base64.RawURLEncoding.EncodeToString([]byte("poll-dev-2|"+strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)))
	key2 := symkey.DeriveDeviceKey(g.GetSymmetricKey().GetPrimaryKey(), "poll-dev-2")
	code, _, raw = e.dpsCall("GET", "/"+idScope+"/registrations/poll-dev-2/operations/"+past,
		symkey.Sign(key2, idScope+"/registrations/poll-dev-2", time.Now().Add(time.Hour), "registration"), "", nil)
	if op := decodeOp(t, raw); code != 200 || op.Status != "failed" {
		t.Fatalf("expired operation: %d %s", code, raw)
	}
}
