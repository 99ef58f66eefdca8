package embedded

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
)

// bDocs holds one nested bucket per document kind (docs.Docs); a kind's
// version is its bucket's sequence.
var bDocs = []byte("docs")

func docsBucket(tx *bolt.Tx, kind string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bDocs)
	if root == nil {
		if !create {
			return nil, nil
		}
		var err error
		if root, err = tx.CreateBucket(bDocs); err != nil {
			return nil, err
		}
	}
	if b := root.Bucket([]byte(kind)); b != nil || !create {
		return b, nil
	}
	return root.CreateBucket([]byte(kind))
}

// GetDoc implements docs.Docs.
func (s *Store) GetDoc(ctx context.Context, kind, name string) (*docs.Doc, error) {
	var out *docs.Doc
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b, _ := docsBucket(tx, kind, false)
		var v []byte
		if b != nil {
			v = b.Get([]byte(name))
		}
		if v == nil {
			return fault.NotFoundf("%s %q not found", kind, name)
		}
		out = docs.Decode(name, bytes.Clone(v))
		return nil
	})
	return out, err
}

// PutDoc implements docs.Docs.
func (s *Store) PutDoc(ctx context.Context, kind, name string, raw []byte, ifMatch string, mode docs.Mode) (string, error) {
	var etag string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := docsBucket(tx, kind, true)
		if err != nil {
			return err
		}
		cur := b.Get([]byte(name))
		switch {
		case mode == docs.Create && cur != nil:
			return fault.Existsf("%s %q already exists", kind, name)
		case mode == docs.Update && cur == nil:
			return fault.NotFoundf("%s %q not found", kind, name)
		case mode == docs.Update && ifMatch != "" && docs.Decode(name, cur).Etag != ifMatch:
			return fault.EtagMismatchf("%s %q was changed by someone else (etag %q is not current)", kind, name, ifMatch)
		}
		if etag, err = nextEtag(tx); err != nil {
			return err
		}
		if _, err := b.NextSequence(); err != nil {
			return err
		}
		return b.Put([]byte(name), docs.Encode(etag, raw))
	})
	return etag, err
}

// DeleteDoc implements docs.Docs.
func (s *Store) DeleteDoc(ctx context.Context, kind, name, ifMatch string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := docsBucket(tx, kind, false)
		if err != nil {
			return err
		}
		var cur []byte
		if b != nil {
			cur = b.Get([]byte(name))
		}
		if cur == nil {
			return fault.NotFoundf("%s %q not found", kind, name)
		}
		if ifMatch != "" && docs.Decode(name, cur).Etag != ifMatch {
			return fault.EtagMismatchf("%s %q was changed by someone else (etag %q is not current)", kind, name, ifMatch)
		}
		if _, err := b.NextSequence(); err != nil {
			return err
		}
		return b.Delete([]byte(name))
	})
}

// ListDocs implements docs.Docs.
func (s *Store) ListDocs(ctx context.Context, kind, after string, limit int) ([]*docs.Doc, error) {
	var out []*docs.Doc
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b, _ := docsBucket(tx, kind, false)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, docs.Decode(string(k), bytes.Clone(v)))
		}
		return nil
	})
	return out, err
}

// DocsVersion implements docs.Docs.
func (s *Store) DocsVersion(ctx context.Context, kinds ...string) (uint64, error) {
	var v uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, kind := range kinds {
			if b, _ := docsBucket(tx, kind, false); b != nil {
				v += b.Sequence()
			}
		}
		return nil
	})
	return v, err
}
