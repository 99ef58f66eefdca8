package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

var shards = table[record.Shard, *allocation.Shard]{bShard, "shard", (*record.Shard).Domain, func(r *record.Shard) string { return r.Etag }}

// CreateShard implements allocation.Store.
func (s *Store) CreateShard(ctx context.Context, sh *allocation.Shard) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if shards.exists(tx, sh.ID) {
			return fault.Existsf("shard %q already exists", sh.ID)
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		return shards.put(tx, sh.ID, record.FromShard(sh, etag))
	})
	return etag, err
}

// GetShard implements allocation.Store.
func (s *Store) GetShard(ctx context.Context, id string) (*allocation.Shard, error) {
	sh, err := shards.get(ctx, s, id)
	if err != nil {
		return nil, err
	}
	return sh, s.countDevices(ctx, sh)
}

// ListShards implements allocation.Store.
func (s *Store) ListShards(ctx context.Context, token string, limit int) ([]*allocation.Shard, string, error) {
	list, next, err := shards.list(ctx, s, token, limit)
	if err != nil {
		return nil, "", err
	}
	return list, next, s.countDevices(ctx, list...)
}

// countDevices fills in the shards' device counts.
func (s *Store) countDevices(ctx context.Context, list ...*allocation.Shard) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		for _, sh := range list {
			sh.Devices = shardCount(tx, sh.ID)
		}
		return nil
	})
}

// AllShards implements allocation.Store. Every allocation reads every
// shard, so the decoded shards are kept between calls, as of the shard
// bucket's sequence (which every shard write moves); device counts are
// read fresh each time.
func (s *Store) AllShards(ctx context.Context) ([]*allocation.Shard, error) {
	var out []*allocation.Shard
	err := s.view(ctx, func(tx *bolt.Tx) error {
		list, err := s.shardCache.get(tx)
		if err != nil {
			return err
		}
		out = make([]*allocation.Shard, len(list))
		for i, sh := range list {
			c := *sh
			c.Devices = shardCount(tx, c.ID)
			out[i] = &c
		}
		return nil
	})
	return out, err
}

// shardCache holds the decoded shards as of a shard bucket sequence.
// Concurrent readers that find it stale each decode and store; they store
// the same thing.
type shardCache struct{ p atomic.Pointer[shardList] }

type shardList struct {
	seq  uint64
	list []*allocation.Shard
}

func (c *shardCache) get(tx *bolt.Tx) ([]*allocation.Shard, error) {
	seq := tx.Bucket(bShard).Sequence()
	if cur := c.p.Load(); cur != nil && cur.seq == seq {
		return cur.list, nil
	}
	var list []*allocation.Shard
	err := tx.Bucket(bShard).ForEach(func(k, _ []byte) error {
		rec, err := shards.load(tx, string(k))
		if err == nil {
			list = append(list, rec.Domain())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.p.Store(&shardList{seq: seq, list: list})
	return list, nil
}

// UpdateShard implements allocation.Store.
func (s *Store) UpdateShard(ctx context.Context, sh *allocation.Shard) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, e, err := shards.cas(tx, sh.ID, sh.Etag)
		if err != nil {
			return err
		}
		etag = e
		rec.ApplyUpdate(sh, etag)
		return shards.put(tx, sh.ID, rec)
	})
	return etag, err
}

// DeleteShard implements allocation.Store.
func (s *Store) DeleteShard(ctx context.Context, id, etag string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		prefix := indexKey(id, "")
		if k, _ := tx.Bucket(bRegShard).Cursor().Seek(prefix); k != nil && hasPrefix(k, prefix) {
			return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "shard %q still has registered devices", id)
		}
		_, err := shards.loadForDelete(tx, id, etag)
		return err
	})
}

var (
	registrations = table[record.Registration, *registry.Registration]{bReg, "registration", (*record.Registration).Domain, func(r *record.Registration) string { return r.Etag }}
	identities    = table[record.Identity, *registry.Identity]{bIdentity, "identity", (*record.Identity).Domain, func(*record.Identity) string { return "" }}
)

func indexKey(a, key string) []byte { return []byte(a + "\x00" + key) }

// certKey is a registration's entry in the certificate index.
func certKey(ref record.CertRef, key string) []byte {
	return []byte(ref.Issuer + "\x00" + ref.Serial + "\x00" + key)
}

// putRegistration writes the registration, its identity and its indexes.
func putRegistration(tx *bolt.Tx, key string, reg *record.Registration, id *record.Identity) error {
	if err := putJSON(tx.Bucket(bReg), key, reg); err != nil {
		return err
	}
	if reg.GroupID != "" {
		if err := tx.Bucket(bRegGroup).Put(indexKey(reg.GroupID, key), nil); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bRegShard).Put(indexKey(reg.Shard, key), nil); err != nil {
		return err
	}
	if err := addShardCount(tx, reg.Shard, 1); err != nil {
		return err
	}
	for _, ref := range id.Chain {
		if err := tx.Bucket(bRegCert).Put(certKey(ref, key), nil); err != nil {
			return err
		}
	}
	if err := putJSON(tx.Bucket(bIdentity), id.DeviceID, id); err != nil {
		return err
	}
	return tx.Bucket(bIdentityReg).Put([]byte(id.DeviceID), []byte(key))
}

// removeRegistration deletes the registration's indexes and identity (not
// the registration record itself, which the caller overwrites or deletes).
func removeRegistration(tx *bolt.Tx, key string, reg *record.Registration) error {
	if reg.GroupID != "" {
		if err := tx.Bucket(bRegGroup).Delete(indexKey(reg.GroupID, key)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bRegShard).Delete(indexKey(reg.Shard, key)); err != nil {
		return err
	}
	if err := addShardCount(tx, reg.Shard, -1); err != nil {
		return err
	}
	if id, err := identities.load(tx, reg.DeviceID); err == nil {
		for _, ref := range id.Chain {
			if err := tx.Bucket(bRegCert).Delete(certKey(ref, key)); err != nil {
				return err
			}
		}
	}
	if err := tx.Bucket(bIdentity).Delete([]byte(reg.DeviceID)); err != nil {
		return err
	}
	return tx.Bucket(bIdentityReg).Delete([]byte(reg.DeviceID))
}

// CreateRegistration implements registry.Store.
func (s *Store) CreateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (string, error) {
	if reg.DeviceID != id.DeviceID {
		return "", fault.New(fault.Internal, fault.InternalError, "registration and identity name different devices")
	}
	key := enrollment.Key(reg.RegistrationID)
	var etag string
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		if registrations.exists(tx, key) {
			return fault.Existsf("registration %q already exists", reg.RegistrationID)
		}
		if tx.Bucket(bIdentityReg).Get([]byte(id.DeviceID)) != nil {
			return fault.New(fault.AlreadyExists, fault.DeviceIDConflict, "device ID %q belongs to another registration", id.DeviceID)
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		if err := putRegistration(tx, key, record.FromRegistration(reg, etag), record.FromIdentity(id)); err != nil {
			return err
		}
		return s.appendEvents(tx, nil, id)
	})
	if err == nil {
		s.changes.Notify()
	}
	return etag, err
}

// UpdateRegistration implements registry.Store.
func (s *Store) UpdateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (string, error) {
	if reg.DeviceID != id.DeviceID {
		return "", fault.New(fault.Internal, fault.InternalError, "registration and identity name different devices")
	}
	key := enrollment.Key(reg.RegistrationID)
	var etag string
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		old, e, err := registrations.cas(tx, key, reg.Etag)
		if err != nil {
			return err
		}
		if old.DeviceID != reg.DeviceID {
			return fault.Invalidf("the device ID of registration %q cannot change", reg.RegistrationID)
		}
		oldID, err := identities.load(tx, old.DeviceID)
		if err != nil {
			return err
		}
		if err := removeRegistration(tx, key, old); err != nil {
			return err
		}
		etag = e
		if err := putRegistration(tx, key, record.FromRegistration(reg, etag), record.FromIdentity(id)); err != nil {
			return err
		}
		return s.appendEvents(tx, oldID.Domain(), id)
	})
	if err == nil {
		s.changes.Notify()
	}
	return etag, err
}

// GetRegistration implements registry.Store.
func (s *Store) GetRegistration(ctx context.Context, registrationID string) (*registry.Registration, error) {
	return registrations.get(ctx, s, enrollment.Key(registrationID))
}

// ListRegistrations implements registry.Store. A certificate, group or
// shard filter walks that index; group and shard together walk the group
// index and check the shard.
func (s *Store) ListRegistrations(ctx context.Context, f registry.Filter, token string, limit int) ([]*registry.Registration, string, error) {
	var out []*registry.Registration
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		bucket, prefix := tx.Bucket(bReg), []byte(nil)
		switch {
		case f.Cert != nil:
			bucket, prefix = tx.Bucket(bRegCert), certKey(record.CertRef{Issuer: f.Cert.Issuer, Serial: f.Cert.Serial}, "")
		case f.GroupID != "":
			bucket, prefix = tx.Bucket(bRegGroup), indexKey(f.GroupID, "")
		case f.Shard != "":
			bucket, prefix = tx.Bucket(bRegShard), indexKey(f.Shard, "")
		}
		var err error
		next, err = page(bucket, prefix, token, limit, func(k, v []byte) (bool, error) {
			rec, err := registrations.load(tx, string(k[len(prefix):]))
			if err != nil {
				return false, err
			}
			if f.Shard != "" && rec.Shard != f.Shard {
				return false, nil
			}
			out = append(out, rec.Domain())
			return true, nil
		})
		return err
	})
	return out, next, err
}

// DeleteRegistration implements registry.Store.
func (s *Store) DeleteRegistration(ctx context.Context, registrationID, etag string) error {
	key := enrollment.Key(registrationID)
	defer s.changes.Notify()
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := registrations.loadForDelete(tx, key, etag)
		if err != nil {
			return err
		}
		oldID, err := identities.load(tx, rec.DeviceID)
		if err != nil {
			return err
		}
		if err := removeRegistration(tx, key, rec); err != nil {
			return err
		}
		return s.appendEvents(tx, oldID.Domain(), nil)
	})
}

// GetIdentity implements registry.Store.
func (s *Store) GetIdentity(ctx context.Context, deviceID string) (*registry.Identity, error) {
	return identities.get(ctx, s, deviceID)
}

// addShardCount adds d to a shard's device count.
func addShardCount(tx *bolt.Tx, shard string, d int64) error {
	b := tx.Bucket(bShardCount)
	n := int64(0)
	if v := b.Get([]byte(shard)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n = max(0, n+d)
	if n == 0 {
		return b.Delete([]byte(shard))
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(n))
	return b.Put([]byte(shard), v[:])
}

// shardCount is a shard's device count.
func shardCount(tx *bolt.Tx, shard string) int {
	if v := tx.Bucket(bShardCount).Get([]byte(shard)); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

// rebuildShardCounts creates the count bucket from the shard index.
func rebuildShardCounts(tx *bolt.Tx) error {
	if _, err := tx.CreateBucket(bShardCount); err != nil {
		return err
	}
	return tx.Bucket(bRegShard).ForEach(func(k, _ []byte) error {
		shard, _, ok := bytes.Cut(k, []byte{0})
		if !ok {
			return nil
		}
		return addShardCount(tx, string(shard), 1)
	})
}
