package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

// The assignment log (docs/adr/0015-assignment-stream.md). Each shard's
// log is a stream, {<prefix>:log:<shard>}, whose entry IDs are "<seq>-0"
// with seq from a counter in the same slot. A device's record and its
// shard's stream are in different slots, so a registration write cannot
// append to the stream in the same transaction. Instead it pushes the
// events onto an outbox in the device's own slot, in the MULTI that writes
// the device, and then relays them: each is appended to its stream (a
// script: INCR the counter, XADD) and popped from the outbox. A replica
// that dies between the two leaves the outbox behind; every replica's
// sweeper relays outboxes older than a few seconds. The set of devices
// with an outbox is an index written before the MULTI (like the list
// indexes): a failure leaves at worst an entry the sweeper drops.
//
// Delivery is at least once: a relay that dies after the XADD and before
// the pop appends the event again when the sweeper relays it. Hubs apply
// events by identity version, so a duplicate changes nothing.

func (s *Store) logKey(shard string) string    { return "{" + s.prefix + ":log:" + shard + "}" }
func (s *Store) logSeqKey(shard string) string { return s.logKey(shard) + ":seq" }
func (s *Store) outboxKey(key string) string   { return s.regKey(key) + ":ob" }
func (s *Store) outboxIndex() string           { return s.prefix + ":ix:outbox" }
func (s *Store) ackKey() string                { return s.prefix + ":acks" }

// SetEventRetention sets how many events each shard's log keeps (default
// registry.DefaultEventRetention).
func (s *Store) SetEventRetention(n int) { s.retention.Store(int64(max(1, n))) }

func (s *Store) eventRetention() int64 {
	if n := s.retention.Load(); n > 0 {
		return n
	}
	return registry.DefaultEventRetention
}

var (
	// appendEvent: KEYS stream, counter; ARGV event, retention. Returns the seq.
	appendEvent = goredis.NewScript(`
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], seq .. '-0', 'e', ARGV[1])
return seq`)
	// popIfHead: KEYS outbox; ARGV event. Pops the outbox's head if it is
	// the event (a concurrent relay may have popped it already).
	popIfHead = goredis.NewScript(`
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('LPOP', KEYS[1]) end
return redis.call('LLEN', KEYS[1])`)
	// dropIfScore: KEYS index; ARGV member, score. Removes the member if
	// its score is still the one the caller wrote (no newer write pending).
	dropIfScore = goredis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`)
)

// outboxEntries encodes the events that turn old into new for the outbox.
func outboxEntries(old, new *registry.Identity) ([]any, error) {
	var out []any
	for _, ev := range registry.Changes(old, new, time.Now()) {
		rec := record.FromEvent(ev)
		var nonce [8]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return nil, err
		}
		rec.Nonce = base64.RawURLEncoding.EncodeToString(nonce[:])
		raw, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, string(raw))
	}
	return out, nil
}

// markOutbox adds key to the outbox index before a write that fills its
// outbox; the score (microseconds) tells the sweeper how old it is and
// lets the relay remove exactly its own mark.
func (s *Store) markOutbox(ctx context.Context, key string) (string, error) {
	score := strconv.FormatInt(time.Now().UnixMicro(), 10)
	f, _ := strconv.ParseFloat(score, 64)
	if err := s.c.ZAdd(ctx, s.outboxIndex(), goredis.Z{Score: f, Member: key}).Err(); err != nil {
		return "", s.fail(ctx, err)
	}
	return score, nil
}

// relay appends key's outbox to the shards' streams, oldest first, and
// then drops its index mark if nothing was written since.
func (s *Store) relay(ctx context.Context, key, score string) error {
	if s.relayOff.Load() {
		return nil
	}
	ob := s.outboxKey(key)
	entries, err := s.c.LRange(ctx, ob, 0, -1).Result()
	if err != nil {
		return s.fail(ctx, err)
	}
	left := int64(0)
	for _, raw := range entries {
		var rec record.Event
		if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Shard == "" {
			// Never written by this code: drop it rather than block the outbox.
			left, err = popIfHead.Run(ctx, s.c, []string{ob}, raw).Int64()
			if err != nil {
				return s.fail(ctx, err)
			}
			continue
		}
		if err := appendEvent.Run(ctx, s.c, []string{s.logKey(rec.Shard), s.logSeqKey(rec.Shard)}, raw, s.eventRetention()).Err(); err != nil {
			return s.fail(ctx, err)
		}
		if left, err = popIfHead.Run(ctx, s.c, []string{ob}, raw).Int64(); err != nil {
			return s.fail(ctx, err)
		}
	}
	if left == 0 {
		return s.fail(ctx, dropIfScore.Run(ctx, s.c, []string{s.outboxIndex()}, key, score).Err())
	}
	return nil
}

// SweepOutboxes relays the outboxes marked more than olderThan ago (left
// by a replica that stopped between a write and its relay) and returns how
// many it relayed. Every replica runs it periodically.
func (s *Store) SweepOutboxes(ctx context.Context, olderThan time.Duration) (int, error) {
	n := 0
	for {
		max := strconv.FormatInt(time.Now().Add(-olderThan).UnixMicro(), 10)
		zs, err := s.c.ZRangeByScoreWithScores(ctx, s.outboxIndex(), &goredis.ZRangeBy{Min: "-inf", Max: max, Count: 100}).Result()
		if err != nil {
			return n, s.fail(ctx, err)
		}
		for _, z := range zs {
			key, _ := z.Member.(string)
			if err := s.relay(ctx, key, strconv.FormatFloat(z.Score, 'f', -1, 64)); err != nil {
				return n, err
			}
			n++
		}
		if len(zs) < 100 {
			return n, nil
		}
	}
}

// ReadEvents implements registry.EventLog.
func (s *Store) ReadEvents(ctx context.Context, shard string, after uint64, limit int) ([]*registry.Event, error) {
	var page, first []goredis.XMessage
	var head uint64
	var pageCmd, firstCmd *goredis.XMessageSliceCmd
	var headCmd *goredis.StringCmd
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		pageCmd = p.XRangeN(ctx, s.logKey(shard), strconv.FormatUint(after+1, 10), "+", int64(max(1, limit)))
		firstCmd = p.XRangeN(ctx, s.logKey(shard), "-", "+", 1)
		headCmd = p.Get(ctx, s.logSeqKey(shard))
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.fail(ctx, err)
	}
	page, first = pageCmd.Val(), firstCmd.Val()
	if v := headCmd.Val(); v != "" {
		if head, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "log counter of shard %q", shard)
		}
	}
	firstSeq := uint64(0)
	if len(first) > 0 {
		if firstSeq, err = entrySeq(first[0].ID); err != nil {
			return nil, err
		}
	}
	if !registry.CheckCursor(after, firstSeq, head) {
		return nil, fault.New(fault.FailedPrecondition, fault.CursorExpired,
			"the log of shard %q no longer holds the events after cursor %d; resync from a snapshot (ListShardIdentities)", shard, after)
	}
	if limit <= 0 {
		return nil, nil
	}
	out := make([]*registry.Event, 0, len(page))
	for _, m := range page {
		seq, err := entrySeq(m.ID)
		if err != nil {
			return nil, err
		}
		raw, _ := m.Values["e"].(string)
		var rec record.Event
		if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Identity == nil {
			return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode event %d of shard %q", seq, shard)
		}
		out = append(out, rec.Domain(seq))
	}
	return out, nil
}

func entrySeq(id string) (uint64, error) {
	ms, _, _ := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return 0, fault.Wrap(fault.Internal, fault.InternalError, err, "log entry ID %q", id)
	}
	return seq, nil
}

// LogHead implements registry.EventLog.
func (s *Store) LogHead(ctx context.Context, shard string) (uint64, error) {
	v, err := s.c.Get(ctx, s.logSeqKey(shard)).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return v, s.fail(ctx, err)
}

// AckEvents implements registry.EventLog.
func (s *Store) AckEvents(ctx context.Context, cluster, shard string, seq uint64) error {
	return s.fail(ctx, s.c.HSet(ctx, s.ackKey(), cluster+"\x00"+shard, seq).Err())
}

// AckedEvent implements registry.EventLog.
func (s *Store) AckedEvent(ctx context.Context, cluster, shard string) (uint64, error) {
	v, err := s.c.HGet(ctx, s.ackKey(), cluster+"\x00"+shard).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return v, s.fail(ctx, err)
}

// ListIdentities implements registry.EventLog: it walks the shard index
// (entries whose device moved on are skipped, so a page may be short).
func (s *Store) ListIdentities(ctx context.Context, shard, token string, limit int) ([]*registry.Identity, string, error) {
	keys, next, err := rangePage(ctx, s.c, s.idxShard(shard), "", token, limit)
	if err != nil {
		return nil, "", s.fail(ctx, err)
	}
	devs, err := s.loadDevices(ctx, keys)
	if err != nil {
		return nil, "", err
	}
	var out []*registry.Identity
	for _, d := range devs {
		if d != nil && d.I.Shard == shard {
			out = append(out, d.I)
		}
	}
	return out, next, nil
}
