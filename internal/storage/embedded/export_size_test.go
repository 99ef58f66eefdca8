package embedded

import (
	"context"

	bolt "go.etcd.io/bbolt"
)

// BucketBytes returns the bytes in use per top-level bucket, counted as
// BytesInUse counts them.
func BucketBytes(ctx context.Context, s *Store) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			st := b.Stats()
			if b.RootPage() == 0 {
				out[string(name)] = int64(st.InlineBucketInuse)
			} else {
				out[string(name)] = int64(st.LeafInuse + st.BranchInuse)
			}
			return nil
		})
	})
	return out, err
}
