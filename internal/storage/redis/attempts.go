package redis

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/attempts"
)

// The failed-attempt log (ADR 20): one slot per hour, {prefix:att:<unix>},
// holding a list of the hour's records and a hash per summary kind; each
// key expires with the log's retention, so pruning is Redis's own.
func (s *Store) attemptsKey(h time.Time, part string) string {
	return "{" + s.prefix + ":att:" + strconv.FormatInt(h.Unix(), 10) + "}:" + part
}

// SetAttemptsRetention sets how long an hour's keys live.
func (s *Store) SetAttemptsRetention(d time.Duration) { s.attemptsTTL.Store(int64(d)) }

func (s *Store) attemptsExpiry(h time.Time) time.Duration {
	ttl := time.Duration(s.attemptsTTL.Load())
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	return time.Until(h.Add(ttl + time.Hour))
}

// AppendAttempts implements attempts.Store: one MULTI of an RPUSH, the
// HINCRBYs and the expiries.
func (s *Store) AppendAttempts(ctx context.Context, b attempts.Batch) error {
	exp := s.attemptsExpiry(b.Hour)
	if exp <= 0 {
		return nil // already past retention
	}
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		if len(b.Records) > 0 {
			vals := make([]any, len(b.Records))
			for i, a := range b.Records {
				raw, err := json.Marshal(a)
				if err != nil {
					return err
				}
				vals[i] = raw
			}
			p.RPush(ctx, s.attemptsKey(b.Hour, "r"), vals...)
			p.Expire(ctx, s.attemptsKey(b.Hour, "r"), exp)
		}
		for kind, counts := range b.Counts {
			key := s.attemptsKey(b.Hour, "c:"+kind)
			for k, n := range counts {
				p.HIncrBy(ctx, key, k, n)
			}
			p.Expire(ctx, key, exp)
		}
		return nil
	})
	return s.fail(ctx, err)
}

// HourAttempts implements attempts.Store.
func (s *Store) HourAttempts(ctx context.Context, hour time.Time, offset, limit int) ([]attempts.Attempt, error) {
	if limit <= 0 {
		return nil, nil
	}
	raw, err := s.c.LRange(ctx, s.attemptsKey(hour, "r"), int64(offset), int64(offset+limit-1)).Result()
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := make([]attempts.Attempt, 0, len(raw))
	for _, r := range raw {
		var a attempts.Attempt
		if err := json.Unmarshal([]byte(r), &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// HourCounts implements attempts.Store.
func (s *Store) HourCounts(ctx context.Context, hour time.Time, kind string) (map[string]int64, error) {
	raw, err := s.c.HGetAll(ctx, s.attemptsKey(hour, "c:"+kind)).Result()
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := make(map[string]int64, len(raw))
	for k, v := range raw {
		n, _ := strconv.ParseInt(v, 10, 64)
		out[k] = n
	}
	return out, nil
}

// PruneAttempts implements attempts.Store. The hours' keys expire by
// themselves; this deletes those of the retention's span before cutoff
// at once (a shortened retention, a test).
func (s *Store) PruneAttempts(ctx context.Context, cutoff time.Time) error {
	ttl := time.Duration(s.attemptsTTL.Load())
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for h := attempts.Hour(cutoff.Add(-ttl - time.Hour)); h.Before(attempts.Hour(cutoff)); h = h.Add(time.Hour) {
			for _, part := range []string{"r", "c:" + attempts.ByRegistration, "c:" + attempts.BySource, "c:" + attempts.ByReason} {
				p.Del(ctx, s.attemptsKey(h, part))
			}
		}
		return nil
	})
	return s.fail(ctx, err)
}
