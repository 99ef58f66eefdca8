package redis

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// table is one kind of configuration record in the {prefix:cfg} slot: a
// JSON string per record at cfg:<kind>:<id> and a sorted set cfg:<kind>s of
// IDs for paging.
type table[R, D any] struct {
	kind   string
	what   string
	domain func(*R) D
	etag   func(*R) string
}

func (t table[R, D]) key(s *Store, id string) string { return s.cfgKey(t.kind, id) }
func (t table[R, D]) list(s *Store) string           { return s.cfgKey(t.kind + "s") }

// version is a counter that every write of the table advances in its
// transaction, so that caches of the table can tell when to reload. It
// advances by a random step, so that a Redis that lost its data and saw
// as many writes since cannot land on a version a cache holds.
func (t table[R, D]) version(s *Store) string { return s.cfgKey(t.kind + ":version") }

func versionStep() int64 { return 1 + mrand.Int64N(1<<32) }

// readVersion returns the table's version (0 before its first write).
func (t table[R, D]) readVersion(ctx context.Context, s *Store) (uint64, error) {
	if val, exists, ok := s.readAhead(ctx, t.version(s)); ok {
		if !exists {
			return 0, nil
		}
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return 0, fault.Wrap(fault.Internal, fault.InternalError, err, "decode a version")
		}
		return v, nil
	}
	v, err := s.c.Get(ctx, t.version(s)).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return v, s.fail(ctx, err)
}

// load reads a record, or NotFound.
func (t table[R, D]) load(ctx context.Context, s *Store, c goredis.Cmdable, id string) (*R, error) {
	var rec R
	ok, err := getJSON(ctx, c, t.key(s, id), &rec)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if !ok {
		return nil, fault.NotFoundf("%s %q not found", t.what, id)
	}
	return &rec, nil
}

func (t table[R, D]) get(ctx context.Context, s *Store, id string) (D, error) {
	var zero D
	rec, err := t.load(ctx, s, s.c, id)
	if err != nil {
		return zero, err
	}
	return t.domain(rec), nil
}

// via reads the record that an index key names, or NotFound.
func (t table[R, D]) via(ctx context.Context, s *Store, index string) (D, error) {
	var zero D
	if id, exists, ok := s.readAhead(ctx, index); ok {
		if !exists {
			return zero, fault.NotFoundf("no %s for %q", t.what, index)
		}
		return t.get(ctx, s, id)
	}
	id, err := s.c.Get(ctx, index).Result()
	if errors.Is(err, goredis.Nil) {
		return zero, fault.NotFoundf("no %s for %q", t.what, index)
	}
	if err != nil {
		return zero, s.fail(ctx, err)
	}
	return t.get(ctx, s, id)
}

// page lists records in ID order.
func (t table[R, D]) page(ctx context.Context, s *Store, token string, limit int) ([]D, string, error) {
	ids, next, err := rangePage(ctx, s.c, t.list(s), "", token, limit)
	if err != nil {
		return nil, "", s.fail(ctx, err)
	}
	out, err := t.many(ctx, s, ids)
	return out, next, err
}

// many reads records by ID in one round trip, skipping any that vanished.
func (t table[R, D]) many(ctx context.Context, s *Store, ids []string) ([]D, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = t.key(s, id)
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var out []D
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var rec R
		if err := decodeString(str, &rec); err != nil {
			return nil, err
		}
		out = append(out, t.domain(&rec))
	}
	return out, nil
}

// create writes a new record under id, after check (run inside the
// transaction, with extra keys watched) passes; more adds index writes.
func (t table[R, D]) create(ctx context.Context, s *Store, id string, rec *R, watched []string,
	check func(tx *goredis.Tx) error, more func(p goredis.Pipeliner)) error {
	key := t.key(s, id)
	raw, err := encode(rec)
	if err != nil {
		return err
	}
	return s.watch(ctx, func(tx *goredis.Tx) error {
		n, err := tx.Exists(ctx, key).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return fault.Existsf("%s %q already exists", t.what, id)
		}
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, key, raw, 0)
			p.ZAdd(ctx, t.list(s), goredis.Z{Member: id})
			p.IncrBy(ctx, t.version(s), versionStep())
			if more != nil {
				more(p)
			}
			return nil
		})
		return err
	}, append([]string{key}, watched...)...)
}

// update applies a compare-and-swap change and returns the new etag.
func (t table[R, D]) update(ctx context.Context, s *Store, id, want string, apply func(rec *R, etag string)) (string, error) {
	key := t.key(s, id)
	etag := newEtag()
	err := s.watch(ctx, func(tx *goredis.Tx) error {
		rec, err := t.load(ctx, s, tx, id)
		if err != nil {
			return err
		}
		if err := checkEtag(t.what, id, want, t.etag(rec)); err != nil {
			return err
		}
		apply(rec, etag)
		raw, err := encode(rec)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, key, raw, 0)
			p.IncrBy(ctx, t.version(s), versionStep())
			return nil
		})
		return err
	}, key)
	return etag, err
}

// remove deletes a record; a non-empty want must be its etag; check runs
// inside the transaction; more adds index removals.
func (t table[R, D]) remove(ctx context.Context, s *Store, id, want string, watched []string,
	check func(tx *goredis.Tx, rec *R) error, more func(p goredis.Pipeliner, rec *R)) error {
	key := t.key(s, id)
	return s.watch(ctx, func(tx *goredis.Tx) error {
		rec, err := t.load(ctx, s, tx, id)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(tx, rec); err != nil {
				return err
			}
		}
		if want != "" {
			if err := checkEtag(t.what, id, want, t.etag(rec)); err != nil {
				return err
			}
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, key)
			p.ZRem(ctx, t.list(s), id)
			p.IncrBy(ctx, t.version(s), versionStep())
			if more != nil {
				more(p, rec)
			}
			return nil
		})
		return err
	}, append([]string{key}, watched...)...)
}
