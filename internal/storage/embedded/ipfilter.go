package embedded

import (
	"context"
	"encoding/json"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
)

// The IP filter's rules are one record in bMeta (ADR 21).
var ipFilterKey = []byte("ip_filter")

type ipFilterRecord struct {
	Rules ipfilter.Rules `json:"rules"`
	Etag  string         `json:"etag"`
}

// GetIPFilter implements ipfilter.Store.
func (s *Store) GetIPFilter(ctx context.Context) (*ipfilter.Rules, error) {
	var rec ipFilterRecord
	found := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bMeta).Get(ipFilterKey)
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fault.NotFoundf("no IP filter rules were set")
	}
	rec.Rules.Etag = rec.Etag
	return &rec.Rules, nil
}

// PutIPFilter implements ipfilter.Store.
func (s *Store) PutIPFilter(ctx context.Context, rs *ipfilter.Rules, ifMatch string) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var cur ipFilterRecord
		if v := tx.Bucket(bMeta).Get(ipFilterKey); v != nil {
			if err := json.Unmarshal(v, &cur); err != nil {
				return err
			}
		}
		if ifMatch != "" && ifMatch != cur.Etag {
			return fault.EtagMismatchf("the IP filter was changed by someone else (etag %q is not current)", ifMatch)
		}
		var err error
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		raw, err := json.Marshal(ipFilterRecord{Rules: *rs, Etag: etag})
		if err != nil {
			return err
		}
		return tx.Bucket(bMeta).Put(ipFilterKey, raw)
	})
	return etag, err
}
