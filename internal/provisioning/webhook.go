package provisioning

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Limits on what a webhook and a device hand over.
const (
	maxWebhookAnswer = 64 << 10
	// MaxPayload bounds a device's payload and a webhook's payload.
	MaxPayload = 4 << 10
)

// Webhook request headers: the receiver recomputes the signature over
// timestamp, ".", and the body, with the webhook's secret, and refuses old
// timestamps.
const (
	WebhookTimestampHeader = "X-Zerotouch-Timestamp"
	WebhookSignatureHeader = "X-Zerotouch-Signature"
)

// SignWebhook is the signature header's value: "v1=" and the hex
// HMAC-SHA256 of timestamp "." body.
func SignWebhook(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// webhookAnswer is what a custom allocation adds to the assignment.
type webhookAnswer struct {
	payload []byte
	twin    []byte
}

// allocationRequest is DPS's AllocationRequest.
type allocationRequest struct {
	IndividualEnrollment map[string]any `json:"individualEnrollment,omitempty"`
	EnrollmentGroup      map[string]any `json:"enrollmentGroup,omitempty"`
	DeviceRuntimeContext map[string]any `json:"deviceRuntimeContext"`
	LinkedHubs           []string       `json:"linkedHubs"`
}

// allocationResponse is DPS's AllocationResponse.
type allocationResponse struct {
	IoTHubHostName string          `json:"iotHubHostName"`
	InitialTwin    json.RawMessage `json:"initialTwin"`
	Payload        json.RawMessage `json:"payload"`
}

// custom asks the enrollment's webhook where the device goes. On failure
// it applies the webhook's fallback policy, or refuses the device with
// CUSTOM_ALLOCATION_FAILED.
func (s *Service) custom(ctx context.Context, p plan, candidates []*allocation.Shard, existing *registry.Registration) (*allocation.Shard, *webhookAnswer, error) {
	wh := p.alloc.Webhook
	budget := s.WebhookSyncBudget
	if existing != nil || budget <= 0 || wh.EffectiveTimeout() <= budget || !p.canPoll {
		sh, ans, err := s.callWebhook(ctx, p, candidates, existing)
		return s.afterWebhook(ctx, p, candidates, existing, sh, ans, err)
	}
	// A first assignment through a webhook that may be slow: wait for it
	// up to the budget, then let it finish in the background while the
	// device polls (ASSIGNING).
	type result struct {
		sh  *allocation.Shard
		ans *webhookAnswer
		err error
	}
	done := make(chan result, 1)
	bg := context.WithoutCancel(ctx)
	go func() {
		sh, ans, err := s.callWebhook(bg, p, candidates, existing)
		sh, ans, err = s.afterWebhook(bg, p, candidates, existing, sh, ans, err)
		done <- result{sh, ans, err}
	}()
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case r := <-done:
		return r.sh, r.ans, r.err
	case <-t.C:
		return nil, nil, &pendingAssignment{wait: func() (*allocation.Shard, *webhookAnswer, error) { r := <-done; return r.sh, r.ans, r.err },
			retryAfter: wh.EffectiveTimeout() - budget}
	}
}

// pendingAssignment is a webhook still deciding after the sync budget.
type pendingAssignment struct {
	wait       func() (*allocation.Shard, *webhookAnswer, error)
	retryAfter time.Duration
}

func (*pendingAssignment) Error() string { return "the custom allocation webhook is still deciding" }

// afterWebhook applies the fallback policy to a failed webhook call.
func (s *Service) afterWebhook(ctx context.Context, p plan, candidates []*allocation.Shard, existing *registry.Registration,
	sh *allocation.Shard, ans *webhookAnswer, err error) (*allocation.Shard, *webhookAnswer, error) {
	wh := p.alloc.Webhook
	if err == nil {
		return sh, ans, nil
	}
	s.log(slog.LevelWarn, "custom allocation webhook failed", "registration_id", p.regID, "webhook", wh.URL, "fallback", string(wh.Fallback), "err", err)
	if wh.Fallback == "" {
		return nil, nil, fault.Wrap(fault.Unavailable, fault.CustomAllocationFailed, err, "the custom allocation webhook failed and the enrollment has no fallback")
	}
	if s.Observer != nil {
		s.Observer.WebhookFallback(string(wh.Fallback))
	}
	fb := p
	fb.alloc.Policy, fb.alloc.Webhook = wh.Fallback, nil
	return s.pick(ctx, fb, candidates, existing)
}

func (s *Service) callWebhook(ctx context.Context, p plan, candidates []*allocation.Shard, existing *registry.Registration) (*allocation.Shard, *webhookAnswer, error) {
	wh := p.alloc.Webhook
	if s.Secrets == nil {
		return nil, nil, errors.New("no data key to derive the webhook's secret from")
	}
	linked := map[string]*allocation.Shard{}
	req := allocationRequest{LinkedHubs: []string{}}
	for _, sh := range candidates {
		if sh.State == allocation.Active && !sh.Full() {
			linked[strings.ToLower(sh.Hostname)] = sh
			req.LinkedHubs = append(req.LinkedHubs, sh.Hostname)
		}
	}
	if len(linked) == 0 {
		return nil, nil, fault.New(fault.FailedPrecondition, fault.NoShardAvailable, "no active shard with room is available to the enrollment")
	}
	att := map[string]any{"type": string(p.attType)}
	if p.individual {
		req.IndividualEnrollment = map[string]any{"registrationId": p.regID, "deviceId": p.deviceID, "attestation": att, "allocationPolicy": "custom"}
	} else {
		req.EnrollmentGroup = map[string]any{"enrollmentGroupId": p.groupID, "attestation": att, "allocationPolicy": "custom"}
	}
	rc := map[string]any{"registrationId": p.regID, string(p.attType): map[string]any{}}
	if existing != nil {
		rc["currentIotHubHostName"], rc["currentDeviceId"] = existing.AssignedHub, existing.DeviceID
	}
	if len(p.payload) > 0 {
		rc["payload"] = p.payload
	}
	req.DeviceRuntimeContext = rc
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, wh.EffectiveTimeout())
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	ts := strconv.FormatInt(s.Now().Unix(), 10)
	hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	hr.Header.Set(WebhookTimestampHeader, ts)
	hr.Header.Set(WebhookSignatureHeader, SignWebhook(s.Secrets.WebhookSecret(wh.URL), ts, body))
	start := time.Now()
	sh, out, err := s.exchange(hr, linked)
	if s.Observer != nil {
		s.Observer.WebhookCalled(time.Since(start), err)
	}
	return sh, out, err
}

// exchange sends the AllocationRequest and reads the webhook's choice
// among the linked hubs.
func (s *Service) exchange(hr *http.Request, linked map[string]*allocation.Shard) (*allocation.Shard, *webhookAnswer, error) {
	hc := s.WebhookClient
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(hr)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxWebhookAnswer+1))
	if err != nil {
		return nil, nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("the webhook answered %d", res.StatusCode)
	}
	if len(raw) > maxWebhookAnswer {
		return nil, nil, fmt.Errorf("the webhook's answer is larger than %d bytes", maxWebhookAnswer)
	}
	var ans allocationResponse
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, nil, fmt.Errorf("the webhook's answer is not an AllocationResponse: %w", err)
	}
	sh := linked[strings.ToLower(ans.IoTHubHostName)]
	if sh == nil {
		return nil, nil, fmt.Errorf("the webhook chose %q, which is not one of the linked hubs", ans.IoTHubHostName)
	}
	out := &webhookAnswer{}
	if len(ans.Payload) > 0 && !bytes.Equal(ans.Payload, []byte("null")) {
		if len(ans.Payload) > MaxPayload {
			return nil, nil, fmt.Errorf("the webhook's payload is larger than %d bytes", MaxPayload)
		}
		out.payload = ans.Payload
	}
	if len(ans.InitialTwin) > 0 && !bytes.Equal(ans.InitialTwin, []byte("null")) {
		if err := enrollment.ValidateInitialTwin(ans.InitialTwin); err != nil {
			return nil, nil, fmt.Errorf("the webhook's initialTwin: %w", err)
		}
		out.twin = ans.InitialTwin
	}
	return sh, out, nil
}
