// Package docs is the storage primitive for small operator-managed
// documents that need no index of their own (issuing CAs, credential
// policies, revocations): named documents grouped by kind, each written
// with an etag, and a version per kind that every write advances so that
// caches can tell when to reload. Both backends implement Docs; Issuance
// builds issuance.Store on it, so the records' encoding lives in one place.
package docs

import "context"

// Mode says how PutDoc treats an existing document.
type Mode int

// Put modes.
const (
	// Create fails with AlreadyExists when the document exists.
	Create Mode = iota
	// Update fails with NotFound when it does not, and with Conflict
	// (ETAG_MISMATCH) when ifMatch is set and not its etag.
	Update
)

// Doc is one stored document.
type Doc struct {
	Name string
	Raw  []byte
	Etag string
}

// Docs is what a backend implements. Kinds and names are short ASCII
// strings without NUL; names sort bytewise.
type Docs interface {
	// GetDoc returns one document, or NotFound.
	GetDoc(ctx context.Context, kind, name string) (*Doc, error)
	// PutDoc writes a document as mode says and returns its new etag.
	PutDoc(ctx context.Context, kind, name string, raw []byte, ifMatch string, mode Mode) (etag string, err error)
	// DeleteDoc removes a document (NotFound if absent; Conflict when
	// ifMatch is set and not its etag).
	DeleteDoc(ctx context.Context, kind, name, ifMatch string) error
	// ListDocs returns a kind's documents in name order, at most limit of
	// them after the name after ("" for the first).
	ListDocs(ctx context.Context, kind, after string, limit int) ([]*Doc, error)
	// DocsVersion reads the sum of the kinds' versions in one read: it
	// changes whenever a document of any of them does.
	DocsVersion(ctx context.Context, kinds ...string) (uint64, error)
}

// encode and decode are how both backends store a document's value: its
// etag, a newline, its bytes.
func Encode(etag string, raw []byte) []byte {
	return append(append([]byte(etag), '\n'), raw...)
}

// Decode splits a stored value.
func Decode(name string, v []byte) *Doc {
	for i, c := range v {
		if c == '\n' {
			return &Doc{Name: name, Etag: string(v[:i]), Raw: v[i+1:]}
		}
	}
	return &Doc{Name: name, Raw: v}
}
