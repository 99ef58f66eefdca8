package embedded

import (
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// The audit chain (ADR 19): bAudit maps the sequence number (8 bytes, big
// endian) to the entry's MAC (32 bytes) followed by its body; bMeta holds
// the head and the anchor, each a sequence number followed by a MAC.
var (
	bAudit          = []byte("audit")
	auditHeadKey    = []byte("audit_head")
	auditAnchorKey  = []byte("audit_anchor")
	auditMACSize    = 32
	errAuditCorrupt = fault.New(fault.Internal, fault.InternalError, "an audit entry is shorter than its MAC")
)

func auditKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func readHead(tx *bolt.Tx, key []byte) audit.Head {
	v := tx.Bucket(bMeta).Get(key)
	if len(v) < 8 {
		return audit.Head{}
	}
	return audit.Head{Seq: binary.BigEndian.Uint64(v), MAC: append([]byte(nil), v[8:]...)}
}

func writeHead(tx *bolt.Tx, key []byte, h audit.Head) error {
	return tx.Bucket(bMeta).Put(key, append(auditKey(h.Seq), h.MAC...))
}

// AppendAudit implements audit.Store: one transaction links and writes
// the batch after the head it reads.
func (s *Store) AppendAudit(ctx context.Context, recs []*audit.Record, link func(audit.Head, *audit.Record) (audit.Entry, error)) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		head := readHead(tx, auditHeadKey)
		b := tx.Bucket(bAudit)
		for _, r := range recs {
			e, err := link(head, r)
			if err != nil {
				return err
			}
			if err := b.Put(auditKey(e.Seq), append(append([]byte(nil), e.MAC...), e.Body...)); err != nil {
				return err
			}
			head = audit.Head{Seq: e.Seq, MAC: e.MAC}
		}
		return writeHead(tx, auditHeadKey, head)
	})
}

// AuditHeads implements audit.Store.
func (s *Store) AuditHeads(ctx context.Context) (head, anchor audit.Head, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		head, anchor = readHead(tx, auditHeadKey), readHead(tx, auditAnchorKey)
		return nil
	})
	return head, anchor, err
}

// AuditEntries implements audit.Store.
func (s *Store) AuditEntries(ctx context.Context, from uint64, limit int, descending bool) ([]audit.Entry, error) {
	var out []audit.Entry
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bAudit).Cursor()
		k, v := c.Seek(auditKey(from))
		step := c.Next
		if descending {
			if k == nil || binary.BigEndian.Uint64(k) > from {
				k, v = c.Prev()
			}
			step = c.Prev
		}
		for ; k != nil && len(out) < limit; k, v = step() {
			if len(v) < auditMACSize {
				return errAuditCorrupt
			}
			out = append(out, audit.Entry{Seq: binary.BigEndian.Uint64(k), MAC: append([]byte(nil), v[:auditMACSize]...),
				Body: append([]byte(nil), v[auditMACSize:]...)})
		}
		return nil
	})
	return out, err
}

// PruneAudit implements audit.Store.
func (s *Store) PruneAudit(ctx context.Context, upTo audit.Head) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		head, anchor := readHead(tx, auditHeadKey), readHead(tx, auditAnchorKey)
		if upTo.Seq <= anchor.Seq || upTo.Seq > head.Seq {
			return fault.Invalidf("cannot prune the audit log to entry %d (anchor %d, head %d)", upTo.Seq, anchor.Seq, head.Seq)
		}
		var doomed [][]byte
		c := tx.Bucket(bAudit).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= upTo.Seq; k, _ = c.Next() {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		for _, k := range doomed {
			if err := tx.Bucket(bAudit).Delete(k); err != nil {
				return err
			}
		}
		return writeHead(tx, auditAnchorKey, upTo)
	})
}
