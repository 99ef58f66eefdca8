// Package ratelimit bounds how often clients may call the device endpoint:
// per source IP and per registration ID, in fixed windows. Counters live in
// a Counter (Redis for replicas, so every replica sees the same counts;
// process memory for the single-node embedded store) and expire with their
// window; the window a count belongs to is part of its key, so a counter
// that lingers past its window is never read again.
package ratelimit

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Counter counts events in windows.
type Counter interface {
	// Hit adds one to key's counter for the window that starts at start and
	// lasts window, and returns the count so far in that window.
	Hit(ctx context.Context, key string, start time.Time, window time.Duration) (int64, error)
}

// Rule allows Limit events per Window; a Limit of 0 means no limit.
type Rule struct {
	Limit  int64
	Window time.Duration
}

// Limiter applies the device endpoint's rules. A nil Limiter allows all.
type Limiter struct {
	Counter         Counter
	Now             func() time.Time
	PerIP           Rule
	PerRegistration Rule
	// PerIPChallenges bounds TPM first steps from one address: each
	// costs a public-key operation (the challenge itself is stateless).
	PerIPChallenges Rule
}

// AllowPeer counts a request from addr ("ip:port" or "ip").
func (l *Limiter) AllowPeer(ctx context.Context, addr string) error {
	if l == nil {
		return nil
	}
	return l.allow(ctx, "ip:"+peerIP(addr), l.PerIP, "requests from this address")
}

// Hit is a count a Counter is asked to make: Counter.Hit's arguments.
type Hit struct {
	Key    string
	Start  time.Time
	Window time.Duration
}

// PeerHit is the count AllowPeer makes for addr now, if its rule is on: a
// store that reads ahead (issue #17) makes it in the same round trip as
// its reads, and AllowPeer then takes that count.
func (l *Limiter) PeerHit(addr string) (Hit, bool) {
	if l == nil || l.PerIP.Limit <= 0 || l.PerIP.Window <= 0 {
		return Hit{}, false
	}
	return Hit{Key: "ip:" + peerIP(addr), Start: l.Now().Truncate(l.PerIP.Window), Window: l.PerIP.Window}, true
}

// peerIP is addr's IP ("ip:port" or "ip").
func peerIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// AllowChallenge counts a TPM first step from addr.
func (l *Limiter) AllowChallenge(ctx context.Context, addr string) error {
	if l == nil {
		return nil
	}
	return l.allow(ctx, "tpmch:"+peerIP(addr), l.PerIPChallenges, "TPM challenges for this address")
}

// AllowRegistration counts a registration of an attested device.
func (l *Limiter) AllowRegistration(ctx context.Context, registrationKey string) error {
	if l == nil {
		return nil
	}
	return l.allow(ctx, "reg:"+registrationKey, l.PerRegistration, "registrations of this device")
}

func (l *Limiter) allow(ctx context.Context, key string, r Rule, what string) error {
	if r.Limit <= 0 || r.Window <= 0 {
		return nil
	}
	now := l.Now()
	start := now.Truncate(r.Window)
	n, err := l.Counter.Hit(ctx, key, start, r.Window)
	if err != nil {
		return err
	}
	if n > r.Limit {
		e := fault.New(fault.ResourceExhausted, fault.RateLimited, "too many %s: at most %d per %s", what, r.Limit, r.Window)
		e.RetryAfter = start.Add(r.Window).Sub(now)
		return e
	}
	return nil
}

// Memory is a Counter in process memory, for a single node. It keeps at
// most MaxKeys live counters; past that, new keys are refused (counted as
// over the limit) until old windows end.
type Memory struct {
	mu      sync.Mutex
	entries map[string]memEntry
	hits    int
}

type memEntry struct {
	count int64
	ends  time.Time
}

// MaxKeys bounds the memory counter.
const MaxKeys = 1 << 20

// Hit implements Counter.
func (m *Memory) Hit(_ context.Context, key string, start time.Time, window time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[string]memEntry{}
	}
	ends := start.Add(window)
	m.hits++
	if m.hits%1024 == 0 || len(m.entries) >= MaxKeys {
		for k, e := range m.entries {
			if !e.ends.After(start) {
				delete(m.entries, k)
			}
		}
	}
	e, ok := m.entries[key]
	if !ok || !e.ends.Equal(ends) {
		if len(m.entries) >= MaxKeys {
			return 1 << 62, nil
		}
		e = memEntry{ends: ends}
	}
	e.count++
	m.entries[key] = e
	return e.count, nil
}
