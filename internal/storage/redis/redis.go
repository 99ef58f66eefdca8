// Package redis is the production store: every store interface on Redis
// (standalone, Sentinel or Cluster, through go-redis's UniversalClient), so
// that Zerotouch replicas are stateless and any replica serves any request.
// It passes the storagetest conformance suite against a real redis-server,
// a real 3-master cluster, and a master behind a real Sentinel.
//
// Layout (see docs/adr/0007-redis-layout.md): enrollment configuration
// (CAs, groups, shards, access keys) shares one hash slot, {<prefix>:cfg},
// so its multi-key updates are WATCH/MULTI transactions; a registration and
// its registry identity are one key, {<prefix>:r:<registration key>}, so a
// device is written whole or not at all, and an individual enrollment is a
// key in the same slot (individual.go, ADR 24); a device ID is held by the
// record of the registration of that name, or else by a claim in that
// registration's slot (registry.go); the thumbprint and name claims and the
// list indexes live in their own slots. Keys in several slots are written
// so that a failure leaves at worst an entry that readers ignore. Lists
// page over sorted sets; no request scans the keyspace.
package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Options configure the connection. Zero durations take the defaults
// (fail fast: a request never hangs on an unreachable Redis).
type Options struct {
	// Addrs: one address for standalone, several (or Cluster) for Redis
	// Cluster, the sentinels' addresses with MasterName for Sentinel.
	Addrs      []string
	Cluster    bool
	MasterName string
	Username   string
	Password   string
	DB         int
	TLS        *tls.Config
	// KeyPrefix namespaces every key; default "zt".
	KeyPrefix    string
	PoolSize     int
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	PoolTimeout  time.Duration
	// Hook, if set, sees every command and pipeline sent (a test counts
	// round trips with it).
	Hook goredis.Hook
}

// Defaults for Options.
const (
	DefaultDialTimeout  = time.Second
	DefaultReadTimeout  = 500 * time.Millisecond
	DefaultWriteTimeout = 500 * time.Millisecond
	DefaultPoolTimeout  = time.Second
	maxTxAttempts       = 16
)

// Store is the Redis-backed store.
type Store struct {
	c         goredis.UniversalClient
	prefix    string
	retention atomic.Int64 // events kept per shard's log; 0 for the default
	relayOff  atomic.Bool  // tests: leave outboxes for the sweeper
	// changes wakes this process's assignment streams after its writes.
	changes registry.Broadcast
	// shardCache holds AllShards' decoded shards (enrollment.go).
	shardCache atomic.Pointer[shardList]
	// indLayoutReady: individual enrollments are known to be in the
	// layout of individual.go (ensureLayout, under indLayoutMu).
	indLayoutReady atomic.Bool
	indLayoutMu    sync.Mutex
	indMoving      chan struct{} // closed when the running move ends
	indMoveErr     error         // the last move's failure
	// attemptsTTL is the failed-attempt log's retention (attempts.go).
	attemptsTTL atomic.Int64
	// The relayer (events.go): writes queue their outboxes on relayQ.
	relayQ    chan *relayJob
	closing   chan struct{}
	relayDone chan struct{}
	closeOnce sync.Once
}

// Open connects (lazily: an unreachable Redis is reported by the first
// request and by Ping, not here).
func Open(opt Options) (*Store, error) {
	if len(opt.Addrs) == 0 {
		return nil, errors.New("redis: at least one address is required")
	}
	prefix := opt.KeyPrefix
	if prefix == "" {
		prefix = "zt"
	}
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:         opt.Addrs,
		IsClusterMode: opt.Cluster,
		MasterName:    opt.MasterName,
		Username:      opt.Username,
		Password:      opt.Password,
		DB:            opt.DB,
		TLSConfig:     opt.TLS,
		PoolSize:      opt.PoolSize,
		DialTimeout:   orDefault(opt.DialTimeout, DefaultDialTimeout),
		ReadTimeout:   orDefault(opt.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:  orDefault(opt.WriteTimeout, DefaultWriteTimeout),
		PoolTimeout:   orDefault(opt.PoolTimeout, DefaultPoolTimeout),
		MaxRetries:    1,
	})
	if opt.Hook != nil {
		c.AddHook(opt.Hook)
	}
	s := &Store{c: c, prefix: prefix, relayQ: make(chan *relayJob, 4*relayBatchMax), closing: make(chan struct{}), relayDone: make(chan struct{})}
	go s.relayer()
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Close closes the client; calling it again is a no-op.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.relayDone // a write still queued is left to the sweeper
	if err := s.c.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return err
	}
	return nil
}

// Ping reports whether Redis answers (every master, for a cluster).
func (s *Store) Ping(ctx context.Context) error {
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		return s.fail(ctx, cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error { return n.Ping(ctx).Err() }))
	}
	return s.fail(ctx, s.c.Ping(ctx).Err())
}

// Client exposes the client, for operational tools and tests (INFO memory).
func (s *Store) Client() goredis.UniversalClient { return s.c }

// fail classifies a Redis error: the caller's own cancellation passes
// through; anything else that is not already classified means Redis could
// not serve, which is Unavailable (retryable).
func (s *Store) fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fault.Wrap(fault.Unavailable, fault.StoreUnavailable, err, "the store is unavailable; retry shortly")
}

// cfgKey names a configuration key; all share the {prefix:cfg} slot.
func (s *Store) cfgKey(parts ...string) string {
	k := "{" + s.prefix + ":cfg}"
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

func newEtag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// watch runs fn as an optimistic transaction over keys (one slot), retrying
// when a watched key changed underneath.
func (s *Store) watch(ctx context.Context, fn func(*goredis.Tx) error, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for attempt := range maxTxAttempts {
		err := s.c.Watch(ctx, fn, keys...)
		if !errors.Is(err, goredis.TxFailedErr) {
			return s.fail(ctx, err)
		}
		// Someone else changed a watched key: back off a little, with jitter.
		time.Sleep(time.Duration(mrand.Int64N(int64(attempt+1) * int64(time.Millisecond))))
	}
	return fault.New(fault.Unavailable, fault.StoreUnavailable, "too much contention on %v; retry", keys)
}

// getJSON reads a JSON record; ok is false when the key is absent.
func getJSON(ctx context.Context, c goredis.Cmdable, key string, v any) (bool, error) {
	raw, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fault.Wrap(fault.Internal, fault.InternalError, err, "decode %s", key)
	}
	return true, nil
}

func decodeString(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fault.Wrap(fault.Internal, fault.InternalError, err, "decode record")
	}
	return nil
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "encode %T", v)
	}
	return b, nil
}

// rangePage reads up to limit members of a lexicographic sorted set after
// token, and the next token ("" at the end).
func rangePage(ctx context.Context, c goredis.Cmdable, zkey, prefix, token string, limit int) ([]string, string, error) {
	start := "[" + prefix
	if token != "" {
		after, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(after) < len(prefix) || string(after[:len(prefix)]) != prefix {
			return nil, "", fault.Invalidf("page_token is not valid")
		}
		start = "(" + string(after)
	}
	stop := "+"
	if prefix != "" {
		stop = "(" + prefix + "\xff"
	}
	members, err := c.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: zkey, Start: start, Stop: stop, ByLex: true, Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, "", err
	}
	if len(members) > limit {
		return members[:limit], base64.RawURLEncoding.EncodeToString([]byte(members[limit-1])), nil
	}
	return members, "", nil
}

func checkEtag(what, id, want, have string) error {
	if want != have {
		return fault.EtagMismatchf("%s %q was changed by someone else (etag %q is not current)", what, id, want)
	}
	return nil
}
