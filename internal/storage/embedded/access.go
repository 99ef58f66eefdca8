package embedded

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
)

type accessKeyRecord struct {
	V           int       `json:"v"`
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Permissions []string  `json:"perms"`
	SecretHash  []byte    `json:"hash"`
	Created     time.Time `json:"created"`
}

func (r *accessKeyRecord) domain() *access.Key {
	k := &access.Key{ID: r.ID, Name: r.Name, SecretHash: r.SecretHash, Created: r.Created}
	for _, p := range r.Permissions {
		k.Permissions = append(k.Permissions, access.Permission(p))
	}
	return k
}

var accessKeys = table[accessKeyRecord, *access.Key]{bAccessKey, "access key", (*accessKeyRecord).domain, func(*accessKeyRecord) string { return "" }}

// CreateKey implements access.Store.
func (s *Store) CreateKey(ctx context.Context, k *access.Key) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if accessKeys.exists(tx, k.ID) {
			return fault.Existsf("access key %q already exists", k.ID)
		}
		rec := accessKeyRecord{V: schemaVersion, ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Created: k.Created}
		for _, p := range k.Permissions {
			rec.Permissions = append(rec.Permissions, string(p))
		}
		return accessKeys.put(tx, k.ID, &rec)
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
