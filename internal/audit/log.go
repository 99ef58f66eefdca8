package audit

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Log appends records to a chain and reads them back.
type Log struct {
	Store Store
	Chain *Chain
	Now   func() time.Time

	mu      sync.Mutex
	queue   []*pending
	leading bool
}

type pending struct {
	r    *Record
	done chan error
}

// maxBatch bounds the records one append writes.
const maxBatch = 256

// Append records r (its Seq, Prev and, if zero, Time are filled in).
// Concurrent appends are written together: the first caller writes the
// queue's records in batches until it is empty, and each caller returns
// when its record is stored. The write is not cancelled with ctx: a change
// that happened is recorded.
func (l *Log) Append(ctx context.Context, r *Record) error {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	p := &pending{r: r, done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, p)
	lead := !l.leading
	l.leading = true
	l.mu.Unlock()
	if lead {
		l.flush(context.WithoutCancel(ctx))
	}
	return <-p.done
}

func (l *Log) flush(ctx context.Context) {
	for {
		l.mu.Lock()
		n := min(len(l.queue), maxBatch)
		batch := l.queue[:n:n]
		l.queue = l.queue[n:]
		if n == 0 {
			l.leading = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		recs := make([]*Record, len(batch))
		for i, p := range batch {
			recs[i] = p.r
		}
		err := l.Store.AppendAudit(ctx, recs, l.Chain.Link)
		for _, p := range batch {
			p.done <- err
		}
	}
}

func (l *Log) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Filter narrows a listing; empty fields match everything.
type Filter struct {
	ActorID  string
	Action   string
	Resource string
	Outcome  string
	// Since and Until bound the record's time (Until exclusive).
	Since, Until time.Time
}

// Validate checks a filter's fields.
func (f Filter) Validate() error {
	for name, v := range map[string]string{"actor": f.ActorID, "action": f.Action, "resource": f.Resource} {
		if len(v) > 256 {
			return fault.Invalidf("filter %s is longer than 256 characters", name)
		}
	}
	switch f.Outcome {
	case "", Done, Refused:
	default:
		return fault.Invalidf("filter outcome %q is not one of done, refused", f.Outcome)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fault.Invalidf("filter since must be before until")
	}
	return nil
}

func (f Filter) match(r *Record) bool {
	return (f.ActorID == "" || r.ActorID == f.ActorID) && (f.Action == "" || strings.EqualFold(r.Action, f.Action)) &&
		(f.Resource == "" || strings.EqualFold(r.Resource, f.Resource)) && (f.Outcome == "" || r.Outcome == f.Outcome) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) && (f.Until.IsZero() || r.Time.Before(f.Until))
}

// scanBudget bounds the entries one List call reads, so that a filter
// that matches little cannot make a request walk the whole log: the page
// comes back short, with a token to go on.
const scanBudget = 10000

// readPage is how many entries List reads per store call.
const readPage = 500

// List returns up to limit records matching f, newest first, and the
// token of the next page ("" at the end). token is "" for the newest.
func (l *Log) List(ctx context.Context, f Filter, token string, limit int) ([]*Record, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	head, anchor, err := l.Store.AuditHeads(ctx)
	if err != nil {
		return nil, "", err
	}
	from := head.Seq
	if token != "" {
		n, err := strconv.ParseUint(token, 10, 64)
		if err != nil || n > head.Seq {
			return nil, "", fault.Invalidf("page_token is not valid")
		}
		from = n
	}
	var out []*Record
	scanned := 0
	for from > anchor.Seq && len(out) < limit {
		if scanned >= scanBudget {
			return out, strconv.FormatUint(from, 10), nil
		}
		page, err := l.Store.AuditEntries(ctx, from, min(readPage, scanBudget-scanned), true)
		if err != nil {
			return nil, "", err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			scanned++
			from = e.Seq - 1
			r, err := Decode(e)
			if err != nil {
				return nil, "", fault.Wrap(fault.Internal, fault.InternalError, err, "decode audit entry")
			}
			if !f.Since.IsZero() && r.Time.Before(f.Since) {
				return out, "", nil // older entries are older still
			}
			if f.match(r) {
				out = append(out, r)
				if len(out) == limit {
					break
				}
			}
		}
	}
	if from <= anchor.Seq {
		return out, "", nil
	}
	return out, strconv.FormatUint(from, 10), nil
}

// maxPrune bounds the entries one Prune call removes.
const maxPrune = 10000

// Prune removes entries older than cutoff from the front of the chain (at
// most maxPrune per call) and records that it did; it returns how many it
// removed.
func (l *Log) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	_, anchor, err := l.Store.AuditHeads(ctx)
	if err != nil {
		return 0, err
	}
	var upTo Head
	n := 0
	for next := anchor.Seq + 1; n < maxPrune; {
		page, err := l.Store.AuditEntries(ctx, next, min(readPage, maxPrune-n), false)
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			break
		}
		stop := false
		for _, e := range page {
			r, err := Decode(e)
			if err != nil {
				return 0, err
			}
			if !r.Time.Before(cutoff) {
				stop = true
				break
			}
			upTo = Head{Seq: e.Seq, MAC: e.MAC}
			n++
		}
		if stop {
			break
		}
		next = page[len(page)-1].Seq + 1
	}
	if n == 0 {
		return 0, nil
	}
	// The record first: it vouches for the anchor the prune moves to.
	if err := l.Append(ctx, &Record{ActorID: "system", Action: PruneAction, Resource: "audit", Outcome: Done,
		AnchorSeq: upTo.Seq, AnchorMAC: hex.EncodeToString(upTo.MAC),
		Summary: "removes " + strconv.Itoa(n) + " entries older than " + cutoff.UTC().Format(time.RFC3339) + "; anchor entry " + strconv.FormatUint(upTo.Seq, 10)}); err != nil {
		return 0, err
	}
	if err := l.Store.PruneAudit(ctx, upTo); err != nil {
		return 0, err
	}
	return n, nil
}
