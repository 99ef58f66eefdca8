package redis

import (
	"context"
	"encoding/json"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
)

// The IP filter's rules are one record in the config slot (ADR 21).
func (s *Store) ipFilterKey() string { return s.cfgKey("ipfilter") }

type ipFilterRecord struct {
	Rules ipfilter.Rules `json:"rules"`
	Etag  string         `json:"etag"`
}

// GetIPFilter implements ipfilter.Store: one GET, every second on every
// replica.
func (s *Store) GetIPFilter(ctx context.Context) (*ipfilter.Rules, error) {
	var rec ipFilterRecord
	ok, err := getJSON(ctx, s.c, s.ipFilterKey(), &rec)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if !ok {
		return nil, fault.NotFoundf("no IP filter rules were set")
	}
	rec.Rules.Etag = rec.Etag
	return &rec.Rules, nil
}

// PutIPFilter implements ipfilter.Store.
func (s *Store) PutIPFilter(ctx context.Context, rs *ipfilter.Rules, ifMatch string) (string, error) {
	etag := newEtag()
	key := s.ipFilterKey()
	err := s.watch(ctx, func(tx *goredis.Tx) error {
		var cur ipFilterRecord
		if _, err := getJSON(ctx, tx, key, &cur); err != nil {
			return err
		}
		if ifMatch != "" && ifMatch != cur.Etag {
			return fault.EtagMismatchf("the IP filter was changed by someone else (etag %q is not current)", ifMatch)
		}
		raw, err := json.Marshal(ipFilterRecord{Rules: *rs, Etag: etag})
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, key, raw, 0)
			return nil
		})
		return err
	}, key)
	return etag, err
}
