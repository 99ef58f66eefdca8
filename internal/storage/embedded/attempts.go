package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/attempts"
)

// The failed-attempt log (ADR 20): bAttempts holds one bucket per hour
// (named by its Unix time, 8 bytes big endian), which holds the hour's
// records (bucket "r": a sequence number → JSON) and a bucket per summary
// kind (key → count, 8 bytes big endian).
var bAttempts = []byte("failed_attempts")

func hourKey(h time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(h.Unix())) }

// AppendAttempts implements attempts.Store.
func (s *Store) AppendAttempts(ctx context.Context, b attempts.Batch) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		hb, err := tx.Bucket(bAttempts).CreateBucketIfNotExists(hourKey(b.Hour))
		if err != nil {
			return err
		}
		recs, err := hb.CreateBucketIfNotExists([]byte("r"))
		if err != nil {
			return err
		}
		for _, a := range b.Records {
			seq, err := recs.NextSequence()
			if err != nil {
				return err
			}
			raw, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := recs.Put(binary.BigEndian.AppendUint64(nil, seq), raw); err != nil {
				return err
			}
		}
		for kind, counts := range b.Counts {
			kb, err := hb.CreateBucketIfNotExists([]byte("c:" + kind))
			if err != nil {
				return err
			}
			for key, n := range counts {
				var cur uint64
				if v := kb.Get([]byte(key)); len(v) == 8 {
					cur = binary.BigEndian.Uint64(v)
				}
				if err := kb.Put([]byte(key), binary.BigEndian.AppendUint64(nil, cur+uint64(n))); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// HourAttempts implements attempts.Store.
func (s *Store) HourAttempts(ctx context.Context, hour time.Time, offset, limit int) ([]attempts.Attempt, error) {
	var out []attempts.Attempt
	err := s.view(ctx, func(tx *bolt.Tx) error {
		hb := tx.Bucket(bAttempts).Bucket(hourKey(hour))
		if hb == nil || hb.Bucket([]byte("r")) == nil {
			return nil
		}
		c := hb.Bucket([]byte("r")).Cursor()
		// Sequence numbers start at 1 and have no gaps: seek straight to
		// the offset-th record.
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, uint64(offset)+1)); k != nil && len(out) < limit; k, v = c.Next() {
			var a attempts.Attempt
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// HourCounts implements attempts.Store.
func (s *Store) HourCounts(ctx context.Context, hour time.Time, kind string) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		hb := tx.Bucket(bAttempts).Bucket(hourKey(hour))
		if hb == nil || hb.Bucket([]byte("c:"+kind)) == nil {
			return nil
		}
		return hb.Bucket([]byte("c:" + kind)).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	return out, err
}

// PruneAttempts implements attempts.Store.
func (s *Store) PruneAttempts(ctx context.Context, cutoff time.Time) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bAttempts)
		var doomed [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && int64(binary.BigEndian.Uint64(k)) < cutoff.Unix(); k, _ = c.Next() {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		for _, k := range doomed {
			if err := b.DeleteBucket(k); err != nil {
				return err
			}
		}
		return nil
	})
}
