package embedded

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

type shardRecord struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`
	Hostname string    `json:"host"`
	Weight   int       `json:"w"`
	State    string    `json:"state"`
	Etag     string    `json:"etag"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

func (r *shardRecord) domain() *allocation.Shard {
	return &allocation.Shard{ID: r.ID, Hostname: r.Hostname, Weight: r.Weight, State: allocation.State(r.State),
		Etag: r.Etag, Created: r.Created, Updated: r.Updated}
}

var shards = table[shardRecord, *allocation.Shard]{bShard, "shard", (*shardRecord).domain, func(r *shardRecord) string { return r.Etag }}

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
		rec := shardRecord{V: schemaVersion, ID: sh.ID, Hostname: sh.Hostname, Weight: sh.Weight, State: string(sh.State),
			Etag: etag, Created: sh.Created, Updated: sh.Updated}
		return shards.put(tx, sh.ID, &rec)
	})
	return etag, err
}

// GetShard implements allocation.Store.
func (s *Store) GetShard(ctx context.Context, id string) (*allocation.Shard, error) {
	return shards.get(ctx, s, id)
}

// ListShards implements allocation.Store.
func (s *Store) ListShards(ctx context.Context, token string, limit int) ([]*allocation.Shard, string, error) {
	return shards.list(ctx, s, token, limit)
}

// AllShards implements allocation.Store.
func (s *Store) AllShards(ctx context.Context) ([]*allocation.Shard, error) {
	var out []*allocation.Shard
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bShard).ForEach(func(k, _ []byte) error {
			rec, err := shards.load(tx, string(k))
			if err == nil {
				out = append(out, rec.domain())
			}
			return err
		})
	})
	return out, err
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
		rec.Hostname, rec.Weight, rec.State, rec.Updated, rec.Etag = sh.Hostname, sh.Weight, string(sh.State), sh.Updated, etag
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

type registrationRecord struct {
	V              int       `json:"v"`
	RegistrationID string    `json:"reg"`
	DeviceID       string    `json:"dev"`
	Shard          string    `json:"shard"`
	Hub            string    `json:"hub"`
	Status         string    `json:"st"`
	Substatus      string    `json:"sub"`
	Attestation    string    `json:"att"`
	GroupID        string    `json:"grp,omitempty"`
	Individual     bool      `json:"ind,omitempty"`
	Thumbprint     string    `json:"thumb,omitempty"`
	Etag           string    `json:"etag"`
	Created        time.Time `json:"created"`
	Updated        time.Time `json:"updated"`
}

func (r *registrationRecord) domain() *registry.Registration {
	return &registry.Registration{RegistrationID: r.RegistrationID, DeviceID: r.DeviceID, Shard: r.Shard, AssignedHub: r.Hub,
		Status: registry.Status(r.Status), Substatus: registry.Substatus(r.Substatus), AttestationType: registry.AttestationType(r.Attestation),
		GroupID: r.GroupID, Individual: r.Individual, CredentialThumbprint: r.Thumbprint, Etag: r.Etag, Created: r.Created, Updated: r.Updated}
}

func toRegistrationRecord(r *registry.Registration, etag string) *registrationRecord {
	return &registrationRecord{V: schemaVersion, RegistrationID: r.RegistrationID, DeviceID: r.DeviceID, Shard: r.Shard, Hub: r.AssignedHub,
		Status: string(r.Status), Substatus: string(r.Substatus), Attestation: string(r.AttestationType), GroupID: r.GroupID,
		Individual: r.Individual, Thumbprint: r.CredentialThumbprint, Etag: etag, Created: r.Created, Updated: r.Updated}
}

type identityRecord struct {
	V              int       `json:"v"`
	DeviceID       string    `json:"dev"`
	RegistrationID string    `json:"reg"`
	Shard          string    `json:"shard"`
	Status         string    `json:"st"`
	CredType       string    `json:"ct"`
	X509Thumbprint string    `json:"x5t,omitempty"`
	CAThumbprint   string    `json:"cat,omitempty"`
	Version        int64     `json:"ver"`
	Created        time.Time `json:"created"`
	Updated        time.Time `json:"updated"`
}

func toIdentityRecord(id *registry.Identity) *identityRecord {
	return &identityRecord{V: schemaVersion, DeviceID: id.DeviceID, RegistrationID: id.RegistrationID, Shard: id.Shard,
		Status: string(id.Status), CredType: string(id.Credential.Type), X509Thumbprint: id.Credential.X509Thumbprint,
		CAThumbprint: id.Credential.CAThumbprint, Version: id.Version, Created: id.Created, Updated: id.Updated}
}

func (r *identityRecord) domain() *registry.Identity {
	return &registry.Identity{DeviceID: r.DeviceID, RegistrationID: r.RegistrationID, Shard: r.Shard, Status: registry.IdentityStatus(r.Status),
		Credential: registry.Credential{Type: registry.AttestationType(r.CredType), X509Thumbprint: r.X509Thumbprint, CAThumbprint: r.CAThumbprint},
		Version:    r.Version, Created: r.Created, Updated: r.Updated}
}

var (
	registrations = table[registrationRecord, *registry.Registration]{bReg, "registration", (*registrationRecord).domain, func(r *registrationRecord) string { return r.Etag }}
	identities    = table[identityRecord, *registry.Identity]{bIdentity, "identity", (*identityRecord).domain, func(*identityRecord) string { return "" }}
)

func indexKey(a, key string) []byte { return []byte(a + "\x00" + key) }

// putRegistration writes the registration, its identity and its indexes.
func putRegistration(tx *bolt.Tx, key string, reg *registrationRecord, id *identityRecord) error {
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
	if err := putJSON(tx.Bucket(bIdentity), id.DeviceID, id); err != nil {
		return err
	}
	return tx.Bucket(bIdentityReg).Put([]byte(id.DeviceID), []byte(key))
}

// removeRegistration deletes the registration's indexes and identity (not
// the registration record itself, which the caller overwrites or deletes).
func removeRegistration(tx *bolt.Tx, key string, reg *registrationRecord) error {
	if reg.GroupID != "" {
		if err := tx.Bucket(bRegGroup).Delete(indexKey(reg.GroupID, key)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bRegShard).Delete(indexKey(reg.Shard, key)); err != nil {
		return err
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
		return putRegistration(tx, key, toRegistrationRecord(reg, etag), toIdentityRecord(id))
	})
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
		if err := removeRegistration(tx, key, old); err != nil {
			return err
		}
		etag = e
		return putRegistration(tx, key, toRegistrationRecord(reg, etag), toIdentityRecord(id))
	})
	return etag, err
}

// GetRegistration implements registry.Store.
func (s *Store) GetRegistration(ctx context.Context, registrationID string) (*registry.Registration, error) {
	return registrations.get(ctx, s, enrollment.Key(registrationID))
}

// ListRegistrations implements registry.Store. A group or shard filter
// walks that index; both together walk the group index and check the shard.
func (s *Store) ListRegistrations(ctx context.Context, f registry.Filter, token string, limit int) ([]*registry.Registration, string, error) {
	var out []*registry.Registration
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		bucket, prefix := tx.Bucket(bReg), []byte(nil)
		switch {
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
			out = append(out, rec.domain())
			return true, nil
		})
		return err
	})
	return out, next, err
}

// DeleteRegistration implements registry.Store.
func (s *Store) DeleteRegistration(ctx context.Context, registrationID, etag string) error {
	key := enrollment.Key(registrationID)
	return s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := registrations.loadForDelete(tx, key, etag)
		if err != nil {
			return err
		}
		return removeRegistration(tx, key, rec)
	})
}

// GetIdentity implements registry.Store.
func (s *Store) GetIdentity(ctx context.Context, deviceID string) (*registry.Identity, error) {
	return identities.get(ctx, s, deviceID)
}
