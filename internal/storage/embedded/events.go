package embedded

import (
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

// The assignment log: bucket bLog holds one bucket per shard whose keys are
// the events' seqs (8 bytes, big endian) and whose sequence is the newest
// seq; bAck maps "<cluster>\x00<shard>" to the acknowledged seq. Events are
// appended in the transaction that changes the registration.

// SetEventRetention sets how many events each shard's log keeps (default
// registry.DefaultEventRetention).
func (s *Store) SetEventRetention(n int) { s.retention.Store(int64(max(1, n))) }

func (s *Store) eventRetention() uint64 {
	if n := s.retention.Load(); n > 0 {
		return uint64(n)
	}
	return registry.DefaultEventRetention
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// appendEvents appends the events that turn old into new to their shards'
// logs and trims each log to the retention.
func (s *Store) appendEvents(tx *bolt.Tx, old, new *registry.Identity) error {
	for _, ev := range registry.Changes(old, new, time.Now()) {
		b, err := tx.Bucket(bLog).CreateBucketIfNotExists([]byte(ev.Shard))
		if err != nil {
			return err
		}
		b.FillPercent = 1 // keys only ever grow: pack pages full
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(b, string(seqKey(seq)), record.FromEvent(ev)); err != nil {
			return err
		}
		keep := s.eventRetention()
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k)+keep <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadEvents implements registry.EventLog.
func (s *Store) ReadEvents(ctx context.Context, shard string, after uint64, limit int) ([]*registry.Event, error) {
	var out []*registry.Event
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bLog).Bucket([]byte(shard))
		if b == nil {
			if after != 0 {
				return registry.CursorExpired(shard, after)
			}
			return nil
		}
		c := b.Cursor()
		first := uint64(0)
		if k, _ := c.First(); k != nil {
			first = binary.BigEndian.Uint64(k)
		}
		if !registry.CheckCursor(after, first, b.Sequence()) {
			return registry.CursorExpired(shard, after)
		}
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			rec, err := record.DecodeEvent(v, shard)
			if err != nil {
				return fault.Wrap(fault.Internal, fault.InternalError, err, "decode event %d of shard %q", binary.BigEndian.Uint64(k), shard)
			}
			out = append(out, rec.Domain(binary.BigEndian.Uint64(k)))
		}
		return nil
	})
	return out, err
}

// LogHead implements registry.EventLog.
func (s *Store) LogHead(ctx context.Context, shard string) (uint64, error) {
	var head uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bLog).Bucket([]byte(shard)); b != nil {
			head = b.Sequence()
		}
		return nil
	})
	return head, err
}

// LogHeads implements registry.EventLog.
func (s *Store) LogHeads(ctx context.Context, shards []string) ([]uint64, error) {
	heads := make([]uint64, len(shards))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for i, sh := range shards {
			if b := tx.Bucket(bLog).Bucket([]byte(sh)); b != nil {
				heads[i] = b.Sequence()
			}
		}
		return nil
	})
	return heads, err
}

// AckEvents implements registry.EventLog.
func (s *Store) AckEvents(ctx context.Context, cluster, shard string, seq uint64) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bAck).Put(indexKey(cluster, shard), seqKey(seq))
	})
}

// AckedEvent implements registry.EventLog.
func (s *Store) AckedEvent(ctx context.Context, cluster, shard string) (uint64, error) {
	var seq uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if v := tx.Bucket(bAck).Get(indexKey(cluster, shard)); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// ListIdentities implements registry.EventLog: it walks the shard index.
func (s *Store) ListIdentities(ctx context.Context, shard, token string, limit int) ([]*registry.Identity, string, error) {
	var out []*registry.Identity
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		prefix := indexKey(shard, "")
		var err error
		next, err = page(tx.Bucket(bRegShard), prefix, token, limit, func(k, _ []byte) (bool, error) {
			reg, err := registrations.load(tx, string(k[len(prefix):]))
			if err != nil {
				return false, err
			}
			id, err := identities.load(tx, reg.DeviceID)
			if err != nil {
				return false, err
			}
			out = append(out, id.Domain())
			return true, nil
		})
		return err
	})
	return out, next, err
}
