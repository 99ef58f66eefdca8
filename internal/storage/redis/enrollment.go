package redis

import (
	"context"
	"errors"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

var (
	cas        = table[record.CA, *enrollment.CA]{"ca", "CA certificate", (*record.CA).Domain, func(r *record.CA) string { return r.Etag }}
	groups     = table[record.Group, *enrollment.Group]{"grp", "enrollment group", (*record.Group).Domain, func(r *record.Group) string { return r.Etag }}
	shards     = table[record.Shard, *allocation.Shard]{"shard", "shard", (*record.Shard).Domain, func(r *record.Shard) string { return r.Etag }}
	accessKeys = table[record.AccessKey, *access.Key]{"akey", "access key", (*record.AccessKey).Domain, func(*record.AccessKey) string { return "" }}
	clusters   = table[record.Cluster, *allocation.Cluster]{"hubc", "hub cluster", (*record.Cluster).Domain, func(r *record.Cluster) string { return r.Etag }}
)

// Index keys, all in the configuration slot. Unique indexes are one string
// key per value, so a transaction watches only the values it touches and
// concurrent creates (a bulk upload) do not collide.
func (s *Store) caThumbIndex(thumb string) string { return s.cfgKey("ca_thumb", thumb) }
func (s *Store) caSubjectIndex(key string) string { return s.cfgKey("ca_subj", key) }
func (s *Store) groupCAIndex(ca string) string    { return s.cfgKey("grp_ca", ca) }

// getString returns a string key's value, "" when absent.
func getString(ctx context.Context, c goredis.Cmdable, key string) (string, error) {
	v, err := c.Get(ctx, key).Result()
	if errors.Is(err, goredis.Nil) {
		return "", nil
	}
	return v, err
}

// CreateCA implements enrollment.CAStore.
func (s *Store) CreateCA(ctx context.Context, ca *enrollment.CA) (string, error) {
	etag := newEtag()
	subj := s.caSubjectIndex(ca.SubjectKey)
	err := cas.create(ctx, s, ca.Name, record.FromCA(ca, etag), []string{s.caThumbIndex(ca.Thumbprint)},
		func(tx *goredis.Tx) error {
			other, err := getString(ctx, tx, s.caThumbIndex(ca.Thumbprint))
			if err != nil {
				return err
			}
			if other != "" {
				return fault.Existsf("this certificate is already uploaded as CA certificate %q", other)
			}
			return nil
		},
		func(p goredis.Pipeliner) {
			p.Set(ctx, s.caThumbIndex(ca.Thumbprint), ca.Name, 0)
			p.SAdd(ctx, subj, ca.Name)
		})
	return etag, err
}

// GetCA implements enrollment.CAStore.
func (s *Store) GetCA(ctx context.Context, name string) (*enrollment.CA, error) {
	return cas.get(ctx, s, name)
}

// FindCAByThumbprint implements enrollment.CAStore.
func (s *Store) FindCAByThumbprint(ctx context.Context, thumbprint string) (*enrollment.CA, error) {
	return cas.via(ctx, s, s.caThumbIndex(thumbprint))
}

// FindCAsBySubject implements enrollment.CAStore.
func (s *Store) FindCAsBySubject(ctx context.Context, subjectKey string) ([]*enrollment.CA, error) {
	names, err := s.c.SMembers(ctx, s.caSubjectIndex(subjectKey)).Result()
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return cas.many(ctx, s, names)
}

// ListCAs implements enrollment.CAStore.
func (s *Store) ListCAs(ctx context.Context, p enrollment.Page) ([]*enrollment.CA, string, error) {
	return cas.page(ctx, s, p.Token, p.Limit)
}

// UpdateCA implements enrollment.CAStore.
func (s *Store) UpdateCA(ctx context.Context, ca *enrollment.CA) (string, error) {
	return cas.update(ctx, s, ca.Name, ca.Etag, func(r *record.CA, etag string) { r.ApplyUpdate(ca, etag) })
}

// DeleteCA implements enrollment.CAStore.
func (s *Store) DeleteCA(ctx context.Context, name, etag string) error {
	return cas.remove(ctx, s, name, etag, []string{s.groupCAIndex(name)},
		func(tx *goredis.Tx, rec *record.CA) error {
			g, err := getString(ctx, tx, s.groupCAIndex(name))
			if err != nil {
				return err
			}
			if g != "" {
				return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "CA certificate %q is used by enrollment group %q; delete the group first", name, g)
			}
			return nil
		},
		func(p goredis.Pipeliner, rec *record.CA) {
			p.Del(ctx, s.caThumbIndex(rec.Thumbprint))
			p.SRem(ctx, s.caSubjectIndex(rec.SubjectKey), name)
		})
}

// GroupsVersion returns a number that changes whenever an enrollment group
// is created, updated or deleted.
func (s *Store) GroupsVersion(ctx context.Context) (uint64, error) {
	return groups.readVersion(ctx, s)
}

// TrustVersion changes whenever a CA certificate or an enrollment group
// is written (provisioning's cache of them, ADR 16): one MGET of the two
// tables' versions, which share the config slot.
func (s *Store) TrustVersion(ctx context.Context) (uint64, error) {
	if ahead, ok := s.readAheadAll(ctx, cas.version(s), groups.version(s)); ok {
		vals := make([]any, len(ahead))
		for i, v := range ahead {
			if v.exists {
				vals[i] = v.val
			}
		}
		return sumVersions(vals)
	}
	vals, err := s.c.MGet(ctx, cas.version(s), groups.version(s)).Result()
	if err != nil {
		return 0, s.fail(ctx, err)
	}
	return sumVersions(vals)
}

// CreateGroup implements enrollment.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	etag := newEtag()
	if g.CAName == "" { // symmetric-key groups have no CA
		return etag, groups.create(ctx, s, g.ID, record.FromGroup(g, etag), nil, nil, nil)
	}
	err := groups.create(ctx, s, g.ID, record.FromGroup(g, etag), []string{cas.key(s, g.CAName), s.groupCAIndex(g.CAName)},
		func(tx *goredis.Tx) error {
			n, err := tx.Exists(ctx, cas.key(s, g.CAName)).Result()
			if err != nil {
				return err
			}
			if n == 0 {
				return fault.New(fault.FailedPrecondition, fault.ResourceNotFound, "CA certificate %q does not exist", g.CAName)
			}
			other, err := getString(ctx, tx, s.groupCAIndex(g.CAName))
			if err != nil {
				return err
			}
			if other != "" {
				return fault.Existsf("CA certificate %q already has enrollment group %q", g.CAName, other)
			}
			return nil
		},
		func(p goredis.Pipeliner) { p.Set(ctx, s.groupCAIndex(g.CAName), g.ID, 0) })
	return etag, err
}

// GetGroup implements enrollment.GroupStore.
func (s *Store) GetGroup(ctx context.Context, id string) (*enrollment.Group, error) {
	return groups.get(ctx, s, id)
}

// FindGroupByCA implements enrollment.GroupStore.
func (s *Store) FindGroupByCA(ctx context.Context, caName string) (*enrollment.Group, error) {
	return groups.via(ctx, s, s.groupCAIndex(caName))
}

// ListGroups implements enrollment.GroupStore.
func (s *Store) ListGroups(ctx context.Context, p enrollment.Page) ([]*enrollment.Group, string, error) {
	return groups.page(ctx, s, p.Token, p.Limit)
}

// UpdateGroup implements enrollment.GroupStore.
func (s *Store) UpdateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	return groups.update(ctx, s, g.ID, g.Etag, func(r *record.Group, etag string) { r.ApplyUpdate(g, etag) })
}

// DeleteGroup implements enrollment.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, id, etag string) error {
	return groups.remove(ctx, s, id, etag, nil, nil, func(p goredis.Pipeliner, rec *record.Group) {
		if rec.CAName != "" {
			p.Del(ctx, s.groupCAIndex(rec.CAName))
		}
	})
}

// CreateShard implements allocation.Store.
func (s *Store) CreateShard(ctx context.Context, sh *allocation.Shard) (string, error) {
	etag := newEtag()
	return etag, shards.create(ctx, s, sh.ID, record.FromShard(sh, etag), nil, nil, nil)
}

// GetShard implements allocation.Store.
func (s *Store) GetShard(ctx context.Context, id string) (*allocation.Shard, error) {
	sh, err := shards.get(ctx, s, id)
	if err != nil {
		return nil, err
	}
	return sh, s.countDevices(ctx, []*allocation.Shard{sh}, false)
}

// ListShards implements allocation.Store.
func (s *Store) ListShards(ctx context.Context, token string, limit int) ([]*allocation.Shard, string, error) {
	list, next, err := shards.page(ctx, s, token, limit)
	if err != nil {
		return nil, "", err
	}
	return list, next, s.countDevices(ctx, list, false)
}

// countDevices fills in device counts from the shard indexes (only for
// shards with a capacity when onlyCapped): an upper bound, since an index
// entry is written before its registration and a failed write can leave
// one behind (ADR 7).
func (s *Store) countDevices(ctx context.Context, list []*allocation.Shard, onlyCapped bool) error {
	if !slices.ContainsFunc(list, func(sh *allocation.Shard) bool { return !onlyCapped || sh.Capacity > 0 }) {
		return nil
	}
	cmds := make([]*goredis.IntCmd, len(list))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, sh := range list {
			if !onlyCapped || sh.Capacity > 0 {
				cmds[i] = p.ZCard(ctx, s.idxShard(sh.ID))
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(ctx, err)
	}
	for i, c := range cmds {
		if c != nil {
			list[i].Devices = int(c.Val())
		}
	}
	return nil
}

// AllShards implements allocation.Store. Shards are few (an operator
// creates them), so one read of the list and one MGET suffice.
//
// Every allocation reads every shard, so the decoded shards are kept
// between calls as of the shard table's version (which every shard write
// moves in its transaction): one GET instead of the list and the records
// when nothing changed. Device counts are read fresh.
func (s *Store) AllShards(ctx context.Context) ([]*allocation.Shard, error) {
	v, err := shards.readVersion(ctx, s)
	if err != nil {
		return nil, err
	}
	var cached []*allocation.Shard
	if cur := s.shardCache.Load(); cur != nil && cur.version == v {
		cached = cur.list
	} else {
		ids, err := s.c.ZRange(ctx, shards.list(s), 0, -1).Result()
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if cached, err = shards.many(ctx, s, ids); err != nil {
			return nil, err
		}
		// Read after v, so never older than v: a write in between only
		// makes the next call reload.
		s.shardCache.Store(&shardList{version: v, list: cached})
	}
	list := make([]*allocation.Shard, len(cached))
	for i, sh := range cached {
		c := *sh
		list[i] = &c
	}
	return list, s.countDevices(ctx, list, true)
}

// shardList is AllShards' cache.
type shardList struct {
	version uint64
	list    []*allocation.Shard
}

// UpdateShard implements allocation.Store.
func (s *Store) UpdateShard(ctx context.Context, sh *allocation.Shard) (string, error) {
	return shards.update(ctx, s, sh.ID, sh.Etag, func(r *record.Shard, etag string) { r.ApplyUpdate(sh, etag) })
}

// DeleteShard implements allocation.Store.
func (s *Store) DeleteShard(ctx context.Context, id, etag string) error {
	inUse, err := s.shardInUse(ctx, id)
	if err != nil {
		return err
	}
	if inUse {
		if _, err := shards.load(ctx, s, s.c, id); err != nil {
			return err
		}
		return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "shard %q still has registered devices", id)
	}
	return shards.remove(ctx, s, id, etag, nil, nil, nil)
}

// CreateKey implements access.Store.
func (s *Store) CreateKey(ctx context.Context, k *access.Key) error {
	return accessKeys.create(ctx, s, k.ID, record.FromAccessKey(k), nil, nil, nil)
}

// RotateKey implements access.Store.
func (s *Store) RotateKey(ctx context.Context, id string, slot access.Slot, secretHash, sealedSAS []byte) error {
	_, err := accessKeys.update(ctx, s, id, "", func(rec *record.AccessKey, _ string) { rec.Rotate(slot, secretHash, sealedSAS) })
	return err
}

// TouchKey implements access.Store.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	_, err := accessKeys.update(ctx, s, id, "", func(rec *record.AccessKey, _ string) { rec.LastUsed = at.UTC() })
	return err
}

// GetKey implements access.Store.
func (s *Store) GetKey(ctx context.Context, id string) (*access.Key, error) {
	return accessKeys.get(ctx, s, id)
}

// ListKeys implements access.Store.
func (s *Store) ListKeys(ctx context.Context, token string, limit int) ([]*access.Key, string, error) {
	return accessKeys.page(ctx, s, token, limit)
}

// DeleteKey implements access.Store.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	return accessKeys.remove(ctx, s, id, "", nil, nil, nil)
}

// CountKeys implements access.Store.
func (s *Store) CountKeys(ctx context.Context) (int, error) {
	n, err := s.c.ZCard(ctx, accessKeys.list(s)).Result()
	return int(n), s.fail(ctx, err)
}

// CreateCluster implements allocation.ClusterStore.
func (s *Store) CreateCluster(ctx context.Context, c *allocation.Cluster) (string, error) {
	etag := newEtag()
	return etag, clusters.create(ctx, s, c.ID, record.FromCluster(c, etag), nil, nil, nil)
}

// GetCluster implements allocation.ClusterStore.
func (s *Store) GetCluster(ctx context.Context, id string) (*allocation.Cluster, error) {
	return clusters.get(ctx, s, id)
}

// ListClusters implements allocation.ClusterStore.
func (s *Store) ListClusters(ctx context.Context, token string, limit int) ([]*allocation.Cluster, string, error) {
	return clusters.page(ctx, s, token, limit)
}

// UpdateCluster implements allocation.ClusterStore.
func (s *Store) UpdateCluster(ctx context.Context, c *allocation.Cluster) (string, error) {
	return clusters.update(ctx, s, c.ID, c.Etag, func(r *record.Cluster, etag string) { r.ApplyUpdate(c, etag) })
}

// DeleteCluster implements allocation.ClusterStore: refused while a shard
// belongs to the cluster. Shards and clusters share the configuration
// slot, so the check watches every shard key and the shard list.
func (s *Store) DeleteCluster(ctx context.Context, id, etag string) error {
	ids, err := s.c.ZRange(ctx, shards.list(s), 0, -1).Result()
	if err != nil {
		return s.fail(ctx, err)
	}
	watched := []string{shards.list(s)}
	for _, sid := range ids {
		watched = append(watched, shards.key(s, sid))
	}
	return clusters.remove(ctx, s, id, etag, watched, func(tx *goredis.Tx, _ *record.Cluster) error {
		for _, sid := range ids {
			sh, err := shards.load(ctx, s, tx, sid)
			if fault.KindOf(err) == fault.NotFound {
				continue
			}
			if err != nil {
				return err
			}
			if sh.Cluster == id {
				return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "hub cluster %q still owns shard %q", id, sid)
			}
		}
		return nil
	}, nil)
}
