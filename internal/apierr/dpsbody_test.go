package apierr

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// TestDPSBody: DPS's error body carries the errorCode, the request ID as
// trackingId, the message, the reason in info and a UTC timestamp with
// DPS's seven fractional digits.
func TestDPSBody(t *testing.T) {
	a := Classify(context.Background(), nil, "req-9", fault.New(fault.Conflict, fault.EtagMismatch, "changed"), Operator)
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	raw, err := json.Marshal(a.DPSBody("req-9", at))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"errorCode":412000,"trackingId":"req-9","message":"changed","info":{"reason":"ETAG_MISMATCH"},"timestampUtc":"2030-01-02T02:04:05.1234567Z"}`
	if string(raw) != want {
		t.Fatalf("body:\n got %s\nwant %s", raw, want)
	}
}
