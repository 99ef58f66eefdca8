package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
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
// script: INCR the counter, XADD) and removed from the outbox. A replica
// that dies between the two leaves the outbox behind; every replica's
// sweeper relays outboxes older than a few seconds. Each write marks
// itself in an index (a sorted set by time) before its MULTI and removes
// its own mark once relayed; a mark left behind is what the sweeper
// follows.
//
// Delivery is at least once: a relay that dies after the XADD and before
// the removal appends the event again when the sweeper relays it. Hubs apply
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
)

// outboxEntries encodes the events that turn old into new for the outbox,
// in the compact encoding (record.Event.MarshalBinary), each with a nonce
// of 8 random bytes that makes it unique in its outbox. The stream keeps
// them as they are; decodeEvent reads them, and the JSON of earlier
// builds.
func outboxEntries(old, new *registry.Identity) ([]any, error) {
	var out []any
	for _, ev := range registry.Changes(old, new, time.Now()) {
		rec := record.FromEvent(ev)
		var nonce [8]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return nil, err
		}
		rec.Nonce = string(nonce[:])
		raw, err := rec.MarshalBinary()
		if err != nil {
			return nil, err
		}
		// The shard first, so a relay need not decode the event.
		out = append(out, ev.Shard+"\x00"+string(raw))
	}
	return out, nil
}

// newMark is a write's entry in the outbox index: the device key and a
// nonce (each write has its own, so one write never removes another's),
// scored with the time in microseconds (the sweeper's age test).
func (s *Store) newMark(key string) goredis.Z {
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return goredis.Z{Score: float64(time.Now().UnixMicro()), Member: key + "\x00" + base64.RawURLEncoding.EncodeToString(nonce[:])}
}

// pushOutbox queues the events in the write's MULTI and reads the whole
// outbox back in the same transaction: events a stopped writer left are
// relayed first, so a device's events keep their order.
func (s *Store) pushOutbox(ctx context.Context, p goredis.Pipeliner, key string, events []any) *goredis.StringSliceCmd {
	p.RPush(ctx, s.outboxKey(key), events...)
	return p.LRange(ctx, s.outboxKey(key), 0, -1)
}

// relayJob is one write's (or one sweep's) outbox to relay.
type relayJob struct {
	key     string
	entries []string
	mark    any
	err     error
	done    chan struct{}
}

// relayBatchMax bounds how many outboxes one round of the relayer takes.
const relayBatchMax = 256

// relay finishes a write: if it committed (werr nil), it relays the
// outbox read in its transaction and drops the write's mark; if it was
// refused before its transaction ran (a fault other than UNAVAILABLE: the
// registration exists, the etag is stale), it drops the mark. Otherwise
// the transaction may have committed with its reply lost (a timeout, a
// dropped connection, a caller gone): the mark stays, and the sweeper
// relays what the outbox holds, or drops the mark if nothing. Concurrent
// writes are relayed together (two round trips per batch, as a group
// commit), and the write returns once its events are in the log. A failed
// relay leaves the mark for the sweeper. It reports whether the events
// are known to be in the log.
func (s *Store) relay(ctx context.Context, key string, outbox *goredis.StringSliceCmd, mark goredis.Z, werr error) (relayed bool) {
	if f, ok := fault.As(werr); werr != nil && (!ok || f.Kind == fault.Unavailable) {
		return false
	}
	job := &relayJob{key: key, mark: mark.Member, done: make(chan struct{})}
	if werr == nil && outbox != nil {
		job.entries = outbox.Val()
	}
	if s.relayOff.Load() {
		return false
	}
	select {
	case s.relayQ <- job:
		select {
		case <-job.done:
			relayed = job.err == nil
		case <-ctx.Done():
		case <-s.relayDone: // closed: the sweeper relays it
		}
	default: // the relayer is saturated: relay this one here
		s.relayBatch(ctx, []*relayJob{job})
		relayed = job.err == nil
	}
	if len(job.entries) > 0 {
		s.changes.Notify()
	}
	return relayed
}

// Changed returns a channel closed by the next registration write this
// process relays (assignment streams wake on it; other replicas' writes
// are found by polling).
func (s *Store) Changed() <-chan struct{} { return s.changes.Changed() }

// relayer runs until the store closes, relaying the queued outboxes in
// batches.
func (s *Store) relayer() {
	defer close(s.relayDone)
	for {
		var job *relayJob
		select {
		case job = <-s.relayQ:
		case <-s.closing:
			return
		}
		batch := []*relayJob{job}
	drain:
		for len(batch) < relayBatchMax {
			select {
			case j := <-s.relayQ:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.relayBatch(ctx, batch)
		cancel()
		for _, j := range batch {
			close(j.done)
		}
	}
}

// relayBatch appends the jobs' outbox entries to their shards' streams
// (one pipeline; a device's entries in order), then removes the relayed
// entries from the outboxes and the jobs' marks (a second pipeline). A
// job any of whose appends failed keeps its entries and mark for the
// sweeper.
func (s *Store) relayBatch(ctx context.Context, jobs []*relayJob) {
	appends := make([][]*goredis.Cmd, len(jobs))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, j := range jobs {
			for _, raw := range j.entries {
				shard, event, ok := strings.Cut(raw, "\x00")
				if !ok || shard == "" {
					continue // never written by this code: removed below without relaying
				}
				// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT.
				appends[i] = append(appends[i], appendEvent.Eval(ctx, p, []string{s.logKey(shard), s.logSeqKey(shard)}, event, s.eventRetention()))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		for _, j := range jobs {
			j.err = s.fail(ctx, err)
		}
	}
	_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, j := range jobs {
			for _, c := range appends[i] {
				if c.Err() != nil {
					j.err = c.Err()
				}
			}
			if j.err != nil {
				continue
			}
			for _, raw := range j.entries {
				p.LRem(ctx, s.outboxKey(j.key), 1, raw) // entries are unique (nonce)
			}
			p.ZRem(ctx, s.outboxIndex(), j.mark)
		}
		return nil
	})
}

// SweepOutboxes relays the outboxes of writes marked more than olderThan
// ago (a replica that stopped between a write and its relay, a write whose
// outcome it did not learn) and returns how many marks it cleared. Every
// replica runs it periodically; relaying an outbox that its writer is
// relaying too only duplicates events. A mark it cannot relay is passed
// over, not allowed to hold up the others; the first such failure is
// returned at the end.
func (s *Store) SweepOutboxes(ctx context.Context, olderThan time.Duration) (int, error) {
	n, skipped := 0, 0
	var first error
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		maxScore := strconv.FormatInt(time.Now().Add(-olderThan).UnixMicro(), 10)
		zs, err := s.c.ZRangeByScore(ctx, s.outboxIndex(), &goredis.ZRangeBy{Min: "-inf", Max: maxScore, Offset: int64(skipped), Count: 100}).Result()
		if err != nil {
			return n, s.fail(ctx, err)
		}
		for _, member := range zs {
			key, _, _ := strings.Cut(member, "\x00")
			entries, err := s.c.LRange(ctx, s.outboxKey(key), 0, -1).Result()
			job := &relayJob{key: key, entries: entries, mark: member, err: err}
			if err == nil {
				s.relayBatch(ctx, []*relayJob{job})
			}
			if job.err != nil {
				if first == nil {
					first = s.fail(ctx, fmt.Errorf("relay the outbox of %q: %w", key, job.err))
				}
				skipped++ // its mark stays, before the ones still to read
				continue
			}
			if len(entries) > 0 {
				s.changes.Notify()
			}
			n++
		}
		if len(zs) < 100 {
			return n, first
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
		return nil, registry.CursorExpired(shard, after)
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
		ev, err := decodeEvent(raw, shard, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// decodeEvent decodes a log entry of shard: compact, or the JSON of
// earlier builds.
func decodeEvent(raw, shard string, seq uint64) (*registry.Event, error) {
	rec, err := record.DecodeEvent([]byte(raw), shard)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode event %d of shard %q", seq, shard)
	}
	return rec.Domain(seq), nil
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

// LogHeads implements registry.EventLog: one pipeline of GETs (split by
// slot on a cluster).
func (s *Store) LogHeads(ctx context.Context, shards []string) ([]uint64, error) {
	cmds := make([]*goredis.StringCmd, len(shards))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, sh := range shards {
			cmds[i] = p.Get(ctx, s.logSeqKey(sh))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.fail(ctx, err)
	}
	heads := make([]uint64, len(shards))
	for i, c := range cmds {
		v, err := c.Uint64()
		switch {
		case errors.Is(err, goredis.Nil):
		case err != nil:
			return nil, s.fail(ctx, err)
		default:
			heads[i] = v
		}
	}
	return heads, nil
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
