package embedded

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

var accessKeys = table[record.AccessKey, *access.Key]{bAccessKey, "access key", (*record.AccessKey).Domain, func(*record.AccessKey) string { return "" }}

// CreateKey implements access.Store.
func (s *Store) CreateKey(ctx context.Context, k *access.Key) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if accessKeys.exists(tx, k.ID) {
			return fault.Existsf("access key %q already exists", k.ID)
		}
		return accessKeys.put(tx, k.ID, record.FromAccessKey(k))
	})
}

// RotateKey implements access.Store.
func (s *Store) RotateKey(ctx context.Context, id string, slot access.Slot, secretHash, sealedSAS []byte) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := accessKeys.load(tx, id)
		if err != nil {
			return err
		}
		rec.Rotate(slot, secretHash, sealedSAS)
		return accessKeys.put(tx, id, rec)
	})
}

// TouchKey implements access.Store.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := accessKeys.load(tx, id)
		if err != nil {
			return err
		}
		rec.LastUsed = at.UTC()
		return accessKeys.put(tx, id, rec)
	})
}

// GetKey implements access.Store.
func (s *Store) GetKey(ctx context.Context, id string) (*access.Key, error) {
	return accessKeys.get(ctx, s, id)
}

// CountKeys implements access.Store.
func (s *Store) CountKeys(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bolt.Tx) error {
		n = tx.Bucket(bAccessKey).Stats().KeyN
		return nil
	})
	return n, err
}

// ListKeys implements access.Store.
func (s *Store) ListKeys(ctx context.Context, token string, limit int) ([]*access.Key, string, error) {
	return accessKeys.list(ctx, s, token, limit)
}

// DeleteKey implements access.Store.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		_, err := accessKeys.loadForDelete(tx, id, "")
		return err
	})
}
