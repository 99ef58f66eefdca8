package embedded

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// table is one bucket of records (JSON, or compact where the record type
// has a binary encoding: decodeRecord) of type R that read back as domain
// values of type D. It holds the get, find-by-index, list and
// compare-and-swap patterns every resource shares.
type table[R, D any] struct {
	bucket []byte
	what   string // for messages: "enrollment group"
	domain func(*R) D
	etag   func(*R) string
}

// load reads the record under key, or NotFound.
func (t table[R, D]) load(tx *bolt.Tx, key string) (*R, error) {
	raw := tx.Bucket(t.bucket).Get([]byte(key))
	if raw == nil {
		return nil, fault.NotFoundf("%s %q not found", t.what, key)
	}
	var rec R
	if err := decodeRecord(raw, &rec); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode %s %q", t.what, key)
	}
	return &rec, nil
}

func (t table[R, D]) put(tx *bolt.Tx, key string, rec *R) error {
	if err := t.bump(tx); err != nil {
		return err
	}
	return putJSON(tx.Bucket(t.bucket), key, rec)
}

// bump advances the table's version (its bucket's sequence), which every
// write changes, so that caches of the table can tell when to reload.
func (t table[R, D]) bump(tx *bolt.Tx) error {
	_, err := tx.Bucket(t.bucket).NextSequence()
	return err
}

// version reads the table's version.
func (t table[R, D]) version(ctx context.Context, s *Store) (uint64, error) {
	var v uint64
	err := s.view(ctx, func(tx *bolt.Tx) error { v = tx.Bucket(t.bucket).Sequence(); return nil })
	return v, err
}

func (t table[R, D]) exists(tx *bolt.Tx, key string) bool {
	return tx.Bucket(t.bucket).Get([]byte(key)) != nil
}

// get reads one record as a domain value.
func (t table[R, D]) get(ctx context.Context, s *Store, key string) (D, error) {
	var out D
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := t.load(tx, key)
		if err == nil {
			out = t.domain(rec)
		}
		return err
	})
	return out, err
}

// via reads the record an index bucket points to, or NotFound.
func (t table[R, D]) via(ctx context.Context, s *Store, index []byte, indexKey string) (D, error) {
	var out D
	err := s.view(ctx, func(tx *bolt.Tx) error {
		key := tx.Bucket(index).Get([]byte(indexKey))
		if key == nil {
			return fault.NotFoundf("no %s for %q", t.what, indexKey)
		}
		rec, err := t.load(tx, string(key))
		if err == nil {
			out = t.domain(rec)
		}
		return err
	})
	return out, err
}

// list pages through the records in key order.
func (t table[R, D]) list(ctx context.Context, s *Store, token string, limit int) ([]D, string, error) {
	var out []D
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		next, err = page(tx.Bucket(t.bucket), nil, token, limit, func(k, _ []byte) (bool, error) {
			rec, err := t.load(tx, string(k))
			if err != nil {
				return false, err
			}
			out = append(out, t.domain(rec))
			return true, nil
		})
		return err
	})
	return out, next, err
}

// cas loads the record for an update: it must exist and want must be its
// current etag. It returns the record and the etag the write will carry.
func (t table[R, D]) cas(tx *bolt.Tx, key, want string) (*R, string, error) {
	rec, err := t.load(tx, key)
	if err != nil {
		return nil, "", err
	}
	if err := checkEtag(t.what, key, want, t.etag(rec)); err != nil {
		return nil, "", err
	}
	etag, err := nextEtag(tx)
	return rec, etag, err
}

// loadForDelete loads the record for a delete: it must exist, and a
// non-empty want must be its current etag.
func (t table[R, D]) loadForDelete(tx *bolt.Tx, key, want string) (*R, error) {
	rec, err := t.load(tx, key)
	if err != nil {
		return nil, err
	}
	if want != "" {
		if err := checkEtag(t.what, key, want, t.etag(rec)); err != nil {
			return nil, err
		}
	}
	if err := t.bump(tx); err != nil {
		return nil, err
	}
	return rec, tx.Bucket(t.bucket).Delete([]byte(key))
}
