package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
)

func TestFixedWindows(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 10, 0, time.UTC)
	l := &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: func() time.Time { return now },
		PerIP: ratelimit.Rule{Limit: 3, Window: time.Minute}}
	ctx := context.Background()
	for i := range 3 {
		if err := l.AllowPeer(ctx, "192.0.2.1:5000"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := l.AllowPeer(ctx, "192.0.2.1:6000") // another port, same address
	fe, ok := fault.As(err)
	if !ok || fe.Reason != fault.RateLimited || fe.Kind != fault.ResourceExhausted || fe.RetryAfter != 50*time.Second {
		t.Fatalf("fourth request: %v", err)
	}
	if err := l.AllowPeer(ctx, "192.0.2.2:5000"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	now = now.Add(50 * time.Second) // the next window
	if err := l.AllowPeer(ctx, "192.0.2.1:5000"); err != nil {
		t.Fatalf("next window: %v", err)
	}
	var nilLimiter *ratelimit.Limiter
	if err := nilLimiter.AllowRegistration(ctx, "x"); err != nil {
		t.Fatalf("nil limiter: %v", err)
	}
	off := &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now}
	for range 100 {
		if err := off.AllowRegistration(ctx, "x"); err != nil {
			t.Fatalf("no rule: %v", err)
		}
	}
}

func TestMemoryForgetsEndedWindows(t *testing.T) {
	m := &ratelimit.Memory{}
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		if _, err := m.Hit(ctx, fmt.Sprintf("k%d", i), start, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// Hits in a later window sweep the ended one.
	for i := range 2048 {
		n, _ := m.Hit(ctx, fmt.Sprintf("k%d", i), start.Add(time.Minute), time.Minute)
		if n != 1 {
			t.Fatalf("a new window started at %d", n)
		}
	}
}
