package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Stored is one CRL as the store keeps it: uploaded by an operator for a
// CA certificate, or fetched from a distribution point.
type Stored struct {
	// ID is "ca:" + the CA's name (uploaded) or "cdp:" + a hash of the
	// URL and the issuer (fetched).
	ID string
	// CA is the uploaded CRL's CA name; URL the fetched one's
	// distribution point.
	CA, URL string
	// IssuerDER is the certificate that signed the CRL (the uploaded
	// CA's, or the issuer of the certificate that named the distribution
	// point), to check it again on every replica.
	IssuerDER []byte
	// DER is the CRL.
	DER []byte
	// Updated is when it was uploaded or when a fetch brought this CRL.
	Updated time.Time
	// Disabled is the Digest of the CRL whose newly listed certificates
	// the disabling pass has processed completely (empty: none): when it
	// is not this CRL's, any replica that holds it runs the pass again
	// over all its serials (ADR 23).
	Disabled string
	Etag     string
}

// Digest names a CRL's DER for Stored.Disabled.
func Digest(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:16])
}

// disabled reports whether the disabling pass completed for this CRL.
func (s *Stored) disabled() bool { return s.Disabled != "" && s.Disabled == Digest(s.DER) }

// Store keeps CRLs. Errors are fault kinds: NotFound, AlreadyExists,
// Conflict on an etag mismatch, Unavailable.
type Store interface {
	// ListCRLs returns every stored CRL.
	ListCRLs(ctx context.Context) ([]*Stored, error)
	// GetCRL returns one, or NotFound.
	GetCRL(ctx context.Context, id string) (*Stored, error)
	// PutCRL writes c: as an update if c.Etag is set (Conflict when it is
	// not current, NotFound when it is gone), else as a create
	// (AlreadyExists when there). It returns the new etag.
	PutCRL(ctx context.Context, c *Stored) (etag string, err error)
	// DeleteCRL removes one (NotFound if absent; Conflict when etag is
	// set and not current).
	DeleteCRL(ctx context.Context, id, etag string) error
	// CRLsVersion changes whenever a CRL is written or deleted.
	CRLsVersion(ctx context.Context) (uint64, error)
}
