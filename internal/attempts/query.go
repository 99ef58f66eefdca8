package attempts

import (
	"context"
	"sort"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Log reads the failed-attempt log.
type Log struct {
	Store Store
	Now   func() time.Time
	// Retention is how far back the log reaches.
	Retention time.Duration
}

// scanBudget bounds the records one List call reads, so that a filter that
// matches little cannot make a request walk every hour: the page comes
// back short, with a token to go on.
const scanBudget = 20_000

const readPage = 1000

func (l *Log) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// span is the hours a time range covers, newest first, within retention.
func (l *Log) span(since, until time.Time) (newest, oldest time.Time) {
	now := l.now()
	oldest = Hour(now.Add(-l.Retention))
	if !since.IsZero() && since.After(oldest) {
		oldest = Hour(since)
	}
	newest = Hour(now)
	if !until.IsZero() && until.Before(now) {
		newest = Hour(until.Add(-time.Nanosecond))
	}
	return newest, oldest
}

// List returns up to limit stored attempts matching f, newest hour first
// (within an hour, in the order they were stored), and the token of the
// next page ("" at the end).
func (l *Log) List(ctx context.Context, f Filter, token string, limit int) ([]Attempt, string, error) {
	if err := f.Parse(); err != nil {
		return nil, "", err
	}
	hour, oldest := l.span(f.Since, f.Until)
	offset := 0
	if token != "" {
		h, off, err := parseToken(token)
		if err != nil {
			return nil, "", err
		}
		if h.After(hour) || h.Before(oldest) {
			return nil, "", fault.Invalidf("page_token is not valid for this filter")
		}
		hour, offset = h, off
	}
	var out []Attempt
	scanned := 0
	for !hour.Before(oldest) {
		for {
			if scanned >= scanBudget || len(out) >= limit {
				return out, pageToken(hour, offset), nil
			}
			n := min(readPage, scanBudget-scanned)
			page, err := l.Store.HourAttempts(ctx, hour, offset, n)
			if err != nil {
				return nil, "", err
			}
			for _, a := range page {
				scanned++
				offset++
				if f.match(&a) {
					out = append(out, a)
					if len(out) >= limit {
						return out, pageToken(hour, offset), nil
					}
				}
			}
			if len(page) < n {
				break
			}
		}
		hour, offset = hour.Add(-time.Hour), 0
	}
	return out, "", nil
}

// Count is one key's refusals in one hour.
type Count struct {
	Hour time.Time
	Key  string
	N    int64
}

// Summarize returns, for each hour of the range (newest first), the top
// keys of a kind (registration_id, source or reason) by refusals, and the
// top keys over the whole range.
func (l *Log) Summarize(ctx context.Context, kind string, since, until time.Time, top int) (hours []Count, total []Count, err error) {
	switch kind {
	case ByRegistration, BySource, ByReason:
	default:
		return nil, nil, fault.Invalidf("summary by %q is not one of %s, %s, %s", kind, ByRegistration, BySource, ByReason)
	}
	if top < 1 || top > 100 {
		return nil, nil, fault.Invalidf("top must be 1-100, not %d", top)
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return nil, nil, fault.Invalidf("since must be before until")
	}
	newest, oldest := l.span(since, until)
	sum := map[string]int64{}
	for h := newest; !h.Before(oldest); h = h.Add(-time.Hour) {
		counts, err := l.Store.HourCounts(ctx, h, kind)
		if err != nil {
			return nil, nil, err
		}
		// The range's totals add each hour's leading keys only, so that
		// the answer's cost does not grow with every key an attacker made
		// up: exact for any key in an hour's top 10 x N, a lower bound
		// otherwise.
		for _, c := range topOf(h, counts, 10*top) {
			sum[c.Key] += c.N
		}
		hours = append(hours, topOf(h, counts, top)...)
	}
	return hours, topOf(time.Time{}, sum, top), nil
}

func topOf(h time.Time, counts map[string]int64, top int) []Count {
	out := make([]Count, 0, len(counts))
	for k, n := range counts {
		out = append(out, Count{Hour: h, Key: k, N: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > top {
		out = out[:top]
	}
	return out
}
