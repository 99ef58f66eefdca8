// Package embedded is the default store: a single bbolt file in the data
// directory, so that one Zerotouch node needs no other server. It implements
// every store interface (enrollment, allocation, registry, access) and
// passes the storagetest conformance suite.
//
// Multi-key writes happen in one bbolt read-write transaction, so they are
// atomic and serialised; etags come from a store-wide sequence and never
// repeat. Records are private JSON types with a schema version, never the
// domain structs themselves.
package embedded

import (
	"context"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

const schemaVersion = 1

var (
	bMeta       = []byte("meta")
	bCA         = []byte("ca")
	bCAThumb    = []byte("ca_thumb")
	bCASubject  = []byte("ca_subject")
	bGroup      = []byte("group")
	bGroupCA    = []byte("group_ca")
	bIndividual = []byte("individual")
	bIndThumb   = []byte("individual_thumb")
	// bIndDevice maps Key(device ID) to the registration key of the
	// individual enrollment that assigns that device ID (ADR 17).
	bIndDevice = []byte("individual_device")
	bShard     = []byte("shard")
	bReg       = []byte("registration")
	bRegGroup  = []byte("registration_group")
	bRegShard  = []byte("registration_shard")
	// bRegCert indexes registrations by the certificates of their
	// identity's X.509 chain: issuer key, NUL, serial, NUL, registration
	// key (ADR 23).
	bRegCert     = []byte("registration_cert")
	bIdentity    = []byte("identity")
	bIdentityReg = []byte("identity_registration")
	bAccessKey   = []byte("access_key")
	bCluster     = []byte("hub_cluster")
	// bShardCount holds each shard's device count (8 bytes, big endian),
	// kept in the same transactions as the shard index.
	bShardCount = []byte("shard_count")
	// bLog holds each shard's assignment log, bAck the hub clusters'
	// acknowledgements (events.go).
	bLog       = []byte("assignment_log")
	bAck       = []byte("assignment_ack")
	allBuckets = [][]byte{bMeta, bCA, bCAThumb, bCASubject, bGroup, bGroupCA, bIndividual, bIndThumb,
		bShard, bReg, bRegGroup, bRegShard, bRegCert, bIdentity, bIdentityReg, bAccessKey, bCluster, bLog, bAck, bAudit, bAttempts}
	// Buckets of earlier builds, removed on open: challenges now live in
	// memory (challenge.go).
	legacyBuckets = [][]byte{[]byte("challenge"), []byte("challenge_expiry")}
)

// Store is the bbolt-backed store.
type Store struct {
	db         *bolt.DB
	challenges challengeSet
	closeOnce  sync.Once
	closeErr   error
	retention  atomic.Int64 // events kept per shard; 0 for the default
	shardCache shardCache   // decoded shards for AllShards (registry.go)
	changes    registry.Broadcast
}

// Changed returns a channel closed by the next registration write in this
// process (assignment streams wake on it).
func (s *Store) Changed() <-chan struct{} { return s.changes.Changed() }

// Open opens (creating if needed) the store file at path. Only one process
// may hold it; a second Open waits up to a second, then fails.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bIndDevice) == nil {
			// Built before the device-ID index existed: index once.
			if err := rebuildDeviceIndex(tx); err != nil {
				return err
			}
		}
		if tx.Bucket(bShardCount) == nil {
			// Built before shard counts existed: count the shard index once.
			if err := rebuildShardCounts(tx); err != nil {
				return err
			}
		}
		for _, b := range legacyBuckets {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
		}
		meta := tx.Bucket(bMeta)
		if v := meta.Get([]byte("schema")); v != nil {
			if n, _ := strconv.Atoi(string(v)); n != schemaVersion {
				return fmt.Errorf("store schema version %s, this build reads %d", v, schemaVersion)
			}
			return nil
		}
		return meta.Put([]byte("schema"), []byte(strconv.Itoa(schemaVersion)))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise embedded store %s: %w", path, err)
	}
	// Coalesce concurrent registrations into one commit, waiting at most
	// this long for company: a lone registration pays at most this much.
	db.MaxBatchDelay = 2 * time.Millisecond
	return &Store{db: db}, nil
}

// Close closes the file; calling it again is a no-op.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// Size returns the file size in bytes.
func (s *Store) Size() (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}

// Ping reports whether the store is usable.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*bolt.Tx) error { return nil })
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.wrap(s.db.View(fn))
}

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.wrap(s.db.Update(fn))
}

// batch is update for hot-path writes (registrations): concurrent calls
// share one transaction and one fsync. fn may run more than once, so it
// must set its results afresh each time.
func (s *Store) batch(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.wrap(s.db.Batch(fn))
}

func (s *Store) wrap(err error) error {
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return fault.Wrap(fault.Unavailable, fault.StoreUnavailable, err, "the store is closed")
	}
	return err
}

// nextEtag draws a fresh etag from the store-wide sequence.
func nextEtag(tx *bolt.Tx) (string, error) {
	seq, err := tx.Bucket(bMeta).NextSequence()
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(seq, 36), nil
}

// putJSON writes a record: in its compact binary encoding if it has one
// (registrations, identities and log events: record.CompactV1, ADR 1),
// else as JSON.
func putJSON(b *bolt.Bucket, key string, v any) error {
	var raw []byte
	var err error
	if m, ok := v.(encoding.BinaryMarshaler); ok {
		raw, err = m.MarshalBinary()
	} else {
		raw, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// decodeRecord reads a record putJSON wrote, or an earlier build's JSON:
// a record type with a compact encoding decodes both.
func decodeRecord(raw []byte, v any) error {
	if u, ok := v.(encoding.BinaryUnmarshaler); ok {
		return u.UnmarshalBinary(raw)
	}
	return json.Unmarshal(raw, v)
}

// checkEtag enforces compare-and-swap: want "" skips the check on deletes.
func checkEtag(kind, id, want, have string) error {
	if want != have {
		return fault.EtagMismatchf("%s %q was changed by someone else (etag %q is not current)", kind, id, want)
	}
	return nil
}

// pageScanFactor bounds the entries one page examines: limit times this.
// A filter that skips most entries (a sparse shard within a big group)
// answers a short page, even an empty one, with a token to go on, instead
// of walking the whole index in one request (issue #17: no full scans).
const pageScanFactor = 4

// page walks bucket b in key order from after token, calling fn for each
// key/value until limit items were accepted or limit×pageScanFactor
// examined. It returns the next token.
func page(b *bolt.Bucket, prefix []byte, token string, limit int, fn func(k, v []byte) (bool, error)) (string, error) {
	c := b.Cursor()
	var k, v []byte
	if token == "" {
		k, v = c.Seek(prefix)
	} else {
		after, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(after) < len(prefix) || string(after[:len(prefix)]) != string(prefix) {
			return "", fault.Invalidf("page_token is not valid")
		}
		k, v = c.Seek(after)
		if k != nil && string(k) == string(after) {
			k, v = c.Next()
		}
	}
	limit = max(limit, 1)
	n, examined := 0, 0
	for ; k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		ok, err := fn(k, v)
		if err != nil {
			return "", err
		}
		examined++
		if ok {
			n++
		}
		if n == limit || examined >= limit*pageScanFactor {
			if nk, _ := c.Next(); nk != nil && hasPrefix(nk, prefix) {
				return base64.RawURLEncoding.EncodeToString(k), nil
			}
			return "", nil
		}
	}
	return "", nil
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}
