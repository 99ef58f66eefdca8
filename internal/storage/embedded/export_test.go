package embedded

import bolt "go.etcd.io/bbolt"

// SetMaxChallenges lowers the bound on outstanding challenges for a test.
func SetMaxChallenges(s *Store, n int) { s.challenges.max = n }

// DropShardCounts removes the shard count bucket, as in a file written
// before it existed.
func DropShardCounts(s *Store) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bShardCount) })
}

// DropDeviceIndex removes the individual device-ID index, as in a file
// written before it existed.
func DropDeviceIndex(s *Store) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bIndDevice) })
}
