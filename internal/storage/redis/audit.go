package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// The audit chain (ADR 19) lives in its own slot, {prefix:audit}: a hash
// of entries (field: the sequence number; value: the MAC in hex, then the
// body), and the head and the anchor as "<seq>:<mac hex>" strings.
func (s *Store) auditKey(part string) string { return "{" + s.prefix + ":audit}:" + part }

func parseAuditHead(v string) (audit.Head, error) {
	if v == "" {
		return audit.Head{}, nil
	}
	seq, mac, ok := strings.Cut(v, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	m, err2 := hex.DecodeString(mac)
	if !ok || err != nil || err2 != nil {
		return audit.Head{}, fault.New(fault.Internal, fault.InternalError, "the audit head %q is malformed", v)
	}
	return audit.Head{Seq: n, MAC: m}, nil
}

func formatAuditHead(h audit.Head) string {
	return strconv.FormatUint(h.Seq, 10) + ":" + hex.EncodeToString(h.MAC)
}

func (s *Store) auditHead(ctx context.Context, c goredis.Cmdable, part string) (audit.Head, error) {
	v, err := c.Get(ctx, s.auditKey(part)).Result()
	if errors.Is(err, goredis.Nil) {
		return audit.Head{}, nil
	}
	if err != nil {
		return audit.Head{}, err
	}
	return parseAuditHead(v)
}

// AppendAudit implements audit.Store: the batch is linked to the head read
// under WATCH and written in one MULTI/EXEC, retried if another replica
// appended meanwhile.
func (s *Store) AppendAudit(ctx context.Context, recs []*audit.Record, link func(audit.Head, *audit.Record) (audit.Entry, error)) error {
	headKey := s.auditKey("head")
	return s.watch(ctx, func(tx *goredis.Tx) error {
		head, err := s.auditHead(ctx, tx, "head")
		if err != nil {
			return err
		}
		fields := make([]any, 0, 2*len(recs))
		for _, r := range recs {
			e, err := link(head, r)
			if err != nil {
				return err
			}
			fields = append(fields, strconv.FormatUint(e.Seq, 10), hex.EncodeToString(e.MAC)+string(e.Body))
			head = audit.Head{Seq: e.Seq, MAC: e.MAC}
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, s.auditKey("e"), fields...)
			p.Set(ctx, headKey, formatAuditHead(head), 0)
			return nil
		})
		return err
	}, headKey)
}

// AuditHeads implements audit.Store.
func (s *Store) AuditHeads(ctx context.Context) (head, anchor audit.Head, err error) {
	vals, err := s.c.MGet(ctx, s.auditKey("head"), s.auditKey("anchor")).Result()
	if err != nil {
		return head, anchor, s.fail(ctx, err)
	}
	str := func(v any) string { x, _ := v.(string); return x }
	if head, err = parseAuditHead(str(vals[0])); err != nil {
		return head, anchor, err
	}
	anchor, err = parseAuditHead(str(vals[1]))
	return head, anchor, err
}

// AuditEntries implements audit.Store: one HMGET of the next limit
// sequence numbers; missing ones (pruned, or removed by someone with
// access to Redis) are skipped.
func (s *Store) AuditEntries(ctx context.Context, from uint64, limit int, descending bool) ([]audit.Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	seqs := make([]uint64, 0, limit)
	fields := make([]string, 0, limit)
	for i := 0; i < limit; i++ {
		var n uint64
		if descending {
			if uint64(i) >= from {
				break
			}
			n = from - uint64(i)
		} else {
			n = from + uint64(i)
		}
		if n == 0 {
			continue
		}
		seqs = append(seqs, n)
		fields = append(fields, strconv.FormatUint(n, 10))
	}
	if len(fields) == 0 {
		return nil, nil
	}
	vals, err := s.c.HMGet(ctx, s.auditKey("e"), fields...).Result()
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var out []audit.Entry
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		if len(str) < 64 {
			return nil, fault.New(fault.Internal, fault.InternalError, "audit entry %d is shorter than its MAC", seqs[i])
		}
		mac, err := hex.DecodeString(str[:64])
		if err != nil {
			return nil, fault.New(fault.Internal, fault.InternalError, "audit entry %d has a malformed MAC", seqs[i])
		}
		out = append(out, audit.Entry{Seq: seqs[i], MAC: mac, Body: []byte(str[64:])})
	}
	return out, nil
}

// PruneAudit implements audit.Store.
func (s *Store) PruneAudit(ctx context.Context, upTo audit.Head) error {
	headKey, anchorKey := s.auditKey("head"), s.auditKey("anchor")
	return s.watch(ctx, func(tx *goredis.Tx) error {
		head, err := s.auditHead(ctx, tx, "head")
		if err != nil {
			return err
		}
		anchor, err := s.auditHead(ctx, tx, "anchor")
		if err != nil {
			return err
		}
		if upTo.Seq <= anchor.Seq || upTo.Seq > head.Seq {
			return fault.Invalidf("cannot prune the audit log to entry %d (anchor %d, head %d)", upTo.Seq, anchor.Seq, head.Seq)
		}
		var fields []string
		for n := anchor.Seq + 1; n <= upTo.Seq; n++ {
			fields = append(fields, strconv.FormatUint(n, 10))
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for i := 0; i < len(fields); i += 1000 {
				p.HDel(ctx, s.auditKey("e"), fields[i:min(i+1000, len(fields))]...)
			}
			p.Set(ctx, anchorKey, formatAuditHead(upTo), 0)
			return nil
		})
		return err
	}, headKey, anchorKey)
}
