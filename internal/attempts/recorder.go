package attempts

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// clean makes s valid UTF-8 of at most max bytes, cut at a character.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// sourceKey is what the per-source cap counts: an IPv4 address, or an
// IPv6 address's /64 (one host commonly holds a whole /64).
func sourceKey(source string) string {
	a, err := netip.ParseAddr(source)
	if err != nil || a.Is4() {
		return source
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// Bounds of what one replica writes per hour. A source past its bound, or
// an hour past its total, is still counted in the hour's summaries.
const (
	// MaxRecordsPerSource is how many records one source address may
	// leave per hour.
	MaxRecordsPerSource = 100
	// MaxRecordsPerHour is how many records an hour keeps.
	MaxRecordsPerHour = 50_000
	// MaxKeysPerHour bounds the distinct keys of each of an hour's
	// summaries; refusals beyond it count under Overflow.
	MaxKeysPerHour = 20_000
	// queueSize is how many refusals may wait to be written.
	queueSize = 10_000
	// flushEvery is how often the queue is written.
	flushEvery = 500 * time.Millisecond
)

// Recorder takes refusals on the request path and writes them in batches.
// Record never blocks: a full queue drops the refusal and counts it.
type Recorder struct {
	Store Store
	Now   func() time.Time
	Log   *slog.Logger

	queue   chan Attempt
	dropped atomic.Int64
	done    chan struct{}
	stop    context.CancelFunc

	// The current hour's bounds on this replica.
	hour    time.Time
	bySrc   map[string]int
	stored  int
	keys    map[string]map[string]bool
	startMu sync.Once
}

// Start runs the writer until ctx is done or Close.
func (r *Recorder) Start(ctx context.Context) {
	r.startMu.Do(func() {
		r.queue = make(chan Attempt, queueSize)
		r.done = make(chan struct{})
		ctx, r.stop = context.WithCancel(ctx)
		go r.run(ctx)
	})
}

// Record queues a refusal. Its time is set if zero.
func (r *Recorder) Record(a Attempt) {
	if r == nil || r.queue == nil {
		return
	}
	if a.Time.IsZero() {
		a.Time = r.now()
	}
	// Fields a client chose: valid UTF-8 (the API's strings must be), and
	// bounded, cut at a character.
	a.RegistrationID = clean(a.RegistrationID, 128)
	a.RequestID = clean(a.RequestID, 64)
	a.Credential, a.Source = clean(a.Credential, 64), clean(a.Source, 64)
	select {
	case r.queue <- a:
	default:
		r.dropped.Add(1)
	}
}

// Dropped is how many refusals a full queue dropped.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Close writes what is queued and stops the writer.
func (r *Recorder) Close() {
	if r == nil || r.stop == nil {
		return
	}
	r.stop()
	<-r.done
}

func (r *Recorder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Recorder) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	var pending []Attempt
	flush := func() {
		if len(pending) > 0 {
			r.write(context.WithoutCancel(ctx), pending)
			pending = pending[:0]
		}
	}
	for {
		select {
		case a := <-r.queue:
			pending = append(pending, a)
			if len(pending) >= 1000 {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case a := <-r.queue:
					pending = append(pending, a)
				default:
					flush()
					return
				}
			}
		}
	}
}

// write applies this replica's per-hour bounds and writes one batch per
// hour the attempts fall in.
func (r *Recorder) write(ctx context.Context, as []Attempt) {
	batches := map[time.Time]*Batch{}
	for _, a := range as {
		h := Hour(a.Time)
		if h.After(r.hour) {
			r.hour, r.bySrc, r.stored, r.keys = h, map[string]int{}, 0, map[string]map[string]bool{}
		}
		// A straggler from an hour before is counted, not stored.
		b := batches[h]
		if b == nil {
			b = &Batch{Hour: h, Counts: map[string]map[string]int64{}}
			batches[h] = b
		}
		src := sourceKey(a.Source)
		if h.Equal(r.hour) && r.bySrc[src] < MaxRecordsPerSource && r.stored < MaxRecordsPerHour {
			r.bySrc[src]++
			r.stored++
			b.Records = append(b.Records, a)
		}
		for kind, key := range map[string]string{ByRegistration: a.RegistrationID, BySource: a.Source, ByReason: a.Reason} {
			r.count(b, h, kind, key)
		}
	}
	for _, b := range batches {
		if err := r.Store.AppendAttempts(ctx, *b); err != nil && r.Log != nil {
			r.Log.Warn("failed attempts not written", "hour", b.Hour, "records", len(b.Records), "err", err)
		}
	}
}

func (r *Recorder) count(b *Batch, h time.Time, kind, key string) {
	if key == "" {
		key = "-"
	}
	if h.Equal(r.hour) {
		seen := r.keys[kind]
		if seen == nil {
			seen = map[string]bool{}
			r.keys[kind] = seen
		}
		if !seen[key] {
			if len(seen) >= MaxKeysPerHour {
				key = Overflow
			}
			seen[key] = true
		}
	}
	if b.Counts[kind] == nil {
		b.Counts[kind] = map[string]int64{}
	}
	b.Counts[kind][key]++
}
