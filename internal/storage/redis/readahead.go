package redis

import (
	"context"
	"errors"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Read-ahead (issue #17): a registration reads a handful of keys one after
// another (the trust and shard caches' versions, the individual enrollment
// by the credential's thumbprint, whether an individual enrollment reserves
// the name, the registration itself), each a round trip. ReadAhead reads
// them all in one pipeline first; each store read made in the returned
// context takes its key's value once, and reads after that (a retry after
// a conflict, say) go to Redis. The values are a few milliseconds older
// than reading each when needed would give, which changes nothing: every
// write that depends on them checks again atomically (a create refuses an
// existing registration, an update its etag).

type aheadKey struct{ s *Store }

// aheadVal is one key's value as read ahead: GET's value, or EXISTS's
// answer.
type aheadVal struct {
	val    string
	exists bool
	used   bool
}

type ahead struct {
	mu   sync.Mutex
	vals map[string]*aheadVal
	// The rate-limit count made ahead, until Hit takes it.
	countKey string
	count    int64
}

// ReadAhead implements registry.ReadAheader: it reads what a registration
// of registrationID presenting a credential with thumbprint is about to
// read, in one round trip. On any error it reads nothing ahead (each read
// then goes to Redis, as without it).
func (s *Store) ReadAhead(ctx context.Context, req registry.Ahead) context.Context {
	if !s.indLayoutReady.Load() {
		return ctx // the first use of individual enrollments moves them first
	}
	key := enrollment.Key(req.RegistrationID)
	gets := []string{cas.version(s), groups.version(s), shards.version(s), s.regKey(key)}
	if req.Thumbprint != "" {
		gets = append(gets, s.thumbClaim(req.Thumbprint))
	}
	gets = append(gets, s.nameClaim(key))
	exists := []string{s.indKey(key)}
	var getCmds []*goredis.StringCmd
	var existsCmds []*goredis.IntCmd
	var count *goredis.Cmd
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if h := req.Count; h.Key != "" {
			count = s.hit(ctx, p, h.Key, h.Start, h.Window)
		}
		for _, k := range gets {
			getCmds = append(getCmds, p.Get(ctx, k))
		}
		for _, k := range exists {
			existsCmds = append(existsCmds, p.Exists(ctx, k))
		}
		return nil
	})
	a := &ahead{vals: make(map[string]*aheadVal, len(gets)+len(exists))}
	if count != nil {
		// Counted, whatever else failed: Hit must not count it again.
		n, cerr := count.Int64()
		if cerr != nil {
			return ctx
		}
		a.count, a.countKey = n, req.Count.Key
	}
	ctxCounted := context.WithValue(ctx, aheadKey{s}, &ahead{count: a.count, countKey: a.countKey})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return ctxCounted
	}
	for i, c := range getCmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, goredis.Nil):
			a.vals[gets[i]] = &aheadVal{}
		case err != nil:
			return ctxCounted
		default:
			a.vals[gets[i]] = &aheadVal{val: v, exists: true}
		}
	}
	for i, c := range existsCmds {
		n, err := c.Result()
		if err != nil {
			return ctxCounted
		}
		a.vals[exists[i]] = &aheadVal{exists: n > 0}
	}
	return context.WithValue(ctx, aheadKey{s}, a)
}

// readAhead takes key's value if it was read ahead in ctx and not taken
// yet: its value (GET) and whether it exists.
func (s *Store) readAhead(ctx context.Context, key string) (val string, exists, ok bool) {
	a, _ := ctx.Value(aheadKey{s}).(*ahead)
	if a == nil {
		return "", false, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.vals[key]
	if v == nil || v.used {
		return "", false, false
	}
	v.used = true
	return v.val, v.exists, true
}

// countedAhead takes the count made ahead for a rate-limit key, if any.
func (s *Store) countedAhead(ctx context.Context, key string) (int64, bool) {
	a, _ := ctx.Value(aheadKey{s}).(*ahead)
	if a == nil {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.countKey == "" || a.countKey != key {
		return 0, false
	}
	a.countKey = ""
	return a.count, true
}

// readAheadAll takes every key's value, or none of them (when any was not
// read ahead or was taken).
func (s *Store) readAheadAll(ctx context.Context, keys ...string) ([]*aheadVal, bool) {
	a, _ := ctx.Value(aheadKey{s}).(*ahead)
	if a == nil {
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*aheadVal, len(keys))
	for i, k := range keys {
		v := a.vals[k]
		if v == nil || v.used {
			return nil, false
		}
		out[i] = v
	}
	for _, v := range out {
		v.used = true
	}
	return out, true
}
