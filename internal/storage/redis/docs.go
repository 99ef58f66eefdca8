package redis

import (
	"context"
	"errors"
	"slices"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
)

// Documents (docs.Docs) live in the config slot: one hash per kind, field
// = name, value = etag and bytes; each kind's version is a field of one
// hash that every write increments in the same transaction.
func (s *Store) docsKey(kind string) string { return s.cfgKey("doc", kind) }
func (s *Store) docsVersionKey() string     { return s.cfgKey("docv") }

// GetDoc implements docs.Docs.
func (s *Store) GetDoc(ctx context.Context, kind, name string) (*docs.Doc, error) {
	v, err := s.c.HGet(ctx, s.docsKey(kind), name).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, fault.NotFoundf("%s %q not found", kind, name)
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return docs.Decode(name, v), nil
}

// PutDoc implements docs.Docs.
func (s *Store) PutDoc(ctx context.Context, kind, name string, raw []byte, ifMatch string, mode docs.Mode) (string, error) {
	key := s.docsKey(kind)
	etag := newEtag()
	err := s.watch(ctx, func(tx *goredis.Tx) error {
		cur, err := tx.HGet(ctx, key, name).Bytes()
		exists := err == nil
		if err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
		switch {
		case mode == docs.Create && exists:
			return fault.Existsf("%s %q already exists", kind, name)
		case mode == docs.Update && !exists:
			return fault.NotFoundf("%s %q not found", kind, name)
		case mode == docs.Update && ifMatch != "" && docs.Decode(name, cur).Etag != ifMatch:
			return fault.EtagMismatchf("%s %q was changed by someone else (etag %q is not current)", kind, name, ifMatch)
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, key, name, docs.Encode(etag, raw))
			p.HIncrBy(ctx, s.docsVersionKey(), kind, 1)
			return nil
		})
		return err
	}, key)
	return etag, err
}

// DeleteDoc implements docs.Docs.
func (s *Store) DeleteDoc(ctx context.Context, kind, name, ifMatch string) error {
	key := s.docsKey(kind)
	return s.watch(ctx, func(tx *goredis.Tx) error {
		cur, err := tx.HGet(ctx, key, name).Bytes()
		if errors.Is(err, goredis.Nil) {
			return fault.NotFoundf("%s %q not found", kind, name)
		}
		if err != nil {
			return err
		}
		if ifMatch != "" && docs.Decode(name, cur).Etag != ifMatch {
			return fault.EtagMismatchf("%s %q was changed by someone else (etag %q is not current)", kind, name, ifMatch)
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HDel(ctx, key, name)
			p.HIncrBy(ctx, s.docsVersionKey(), kind, 1)
			return nil
		})
		return err
	}, key)
}

// ListDocs implements docs.Docs. A kind is small (bounded by its domain:
// issuing CAs, policies) or read whole anyway (a CA's revocations, for its
// CRL), so this reads the hash and sorts.
func (s *Store) ListDocs(ctx context.Context, kind, after string, limit int) ([]*docs.Doc, error) {
	all, err := s.c.HGetAll(ctx, s.docsKey(kind)).Result()
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	names := make([]string, 0, len(all))
	for n := range all {
		if n > after {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) > limit {
		names = names[:limit]
	}
	out := make([]*docs.Doc, len(names))
	for i, n := range names {
		out[i] = docs.Decode(n, []byte(all[n]))
	}
	return out, nil
}

// DocsVersion implements docs.Docs.
func (s *Store) DocsVersion(ctx context.Context, kinds ...string) (uint64, error) {
	vals, err := s.c.HMGet(ctx, s.docsVersionKey(), kinds...).Result()
	if err != nil {
		return 0, s.fail(ctx, err)
	}
	return sumVersions(vals)
}

// sumVersions adds up version counters an MGET or HMGET read (absent
// ones are 0).
func sumVersions(vals []any) (uint64, error) {
	var sum uint64
	for _, v := range vals {
		if str, ok := v.(string); ok {
			n, err := strconv.ParseUint(str, 10, 64)
			if err != nil {
				return 0, fault.Wrap(fault.Internal, fault.InternalError, err, "decode a version")
			}
			sum += n
		}
	}
	return sum, nil
}
