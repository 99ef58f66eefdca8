package embedded

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

var clusters = table[record.Cluster, *allocation.Cluster]{bCluster, "hub cluster", (*record.Cluster).Domain, func(r *record.Cluster) string { return r.Etag }}

// CreateCluster implements allocation.ClusterStore.
func (s *Store) CreateCluster(ctx context.Context, c *allocation.Cluster) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if clusters.exists(tx, c.ID) {
			return fault.Existsf("hub cluster %q already exists", c.ID)
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		return clusters.put(tx, c.ID, record.FromCluster(c, etag))
	})
	return etag, err
}

// GetCluster implements allocation.ClusterStore.
func (s *Store) GetCluster(ctx context.Context, id string) (*allocation.Cluster, error) {
	return clusters.get(ctx, s, id)
}

// ListClusters implements allocation.ClusterStore.
func (s *Store) ListClusters(ctx context.Context, token string, limit int) ([]*allocation.Cluster, string, error) {
	return clusters.list(ctx, s, token, limit)
}

// UpdateCluster implements allocation.ClusterStore.
func (s *Store) UpdateCluster(ctx context.Context, c *allocation.Cluster) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, e, err := clusters.cas(tx, c.ID, c.Etag)
		if err != nil {
			return err
		}
		etag = e
		rec.ApplyUpdate(c, etag)
		return clusters.put(tx, c.ID, rec)
	})
	return etag, err
}

// DeleteCluster implements allocation.ClusterStore: refused while a shard
// belongs to the cluster (checked in the same transaction).
func (s *Store) DeleteCluster(ctx context.Context, id, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		err := tx.Bucket(bShard).ForEach(func(k, _ []byte) error {
			rec, err := shards.load(tx, string(k))
			if err == nil && rec.Cluster == id {
				return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "hub cluster %q still owns shard %q", id, rec.ID)
			}
			return err
		})
		if err != nil {
			return err
		}
		_, err = clusters.loadForDelete(tx, id, etag)
		return err
	})
}
