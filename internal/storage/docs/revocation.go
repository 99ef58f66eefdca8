package docs

import (
	"context"
	"encoding/json"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/revocation"
)

// Revocations is revocation.Store on a backend's documents: one document
// of kind "crl" per CRL (ADR 23), named by its ID ("ca:<CA name>" for an
// uploaded one, "cdp:<hash>" for a fetched one). A CRL is at most 10 MiB;
// they are few (one per CA and distribution point) and read whole when
// their version moves.
type Revocations struct{ D Docs }

var _ revocation.Store = Revocations{}

const kindCRL = "crl"

type crlRecord struct {
	V         int       `json:"v"`
	CA        string    `json:"ca,omitempty"`
	URL       string    `json:"url,omitempty"`
	IssuerDER []byte    `json:"issuer"`
	DER       []byte    `json:"der"`
	Updated   time.Time `json:"updated"`
	// Disabled marks the CRL whose disabling pass completed
	// (revocation.Stored.Disabled).
	Disabled string `json:"disabled,omitempty"`
}

func crlDomain(d *Doc) (*revocation.Stored, error) {
	var r crlRecord
	if err := json.Unmarshal(d.Raw, &r); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode CRL %q", d.Name)
	}
	return &revocation.Stored{ID: d.Name, CA: r.CA, URL: r.URL, IssuerDER: r.IssuerDER, DER: r.DER, Updated: r.Updated, Disabled: r.Disabled, Etag: d.Etag}, nil
}

// ListCRLs implements revocation.Store.
func (s Revocations) ListCRLs(ctx context.Context) ([]*revocation.Stored, error) {
	var out []*revocation.Stored
	after := ""
	for {
		ds, err := s.D.ListDocs(ctx, kindCRL, after, 100)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			c, err := crlDomain(d)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		if len(ds) < 100 {
			return out, nil
		}
		after = ds[len(ds)-1].Name
	}
}

// GetCRL implements revocation.Store.
func (s Revocations) GetCRL(ctx context.Context, id string) (*revocation.Stored, error) {
	d, err := s.D.GetDoc(ctx, kindCRL, id)
	if err != nil {
		return nil, err
	}
	return crlDomain(d)
}

// PutCRL implements revocation.Store.
func (s Revocations) PutCRL(ctx context.Context, c *revocation.Stored) (string, error) {
	raw, err := json.Marshal(crlRecord{V: version, CA: c.CA, URL: c.URL, IssuerDER: c.IssuerDER, DER: c.DER, Updated: c.Updated, Disabled: c.Disabled})
	if err != nil {
		return "", fault.Wrap(fault.Internal, fault.InternalError, err, "encode CRL %q", c.ID)
	}
	if c.Etag == "" {
		return s.D.PutDoc(ctx, kindCRL, c.ID, raw, "", Create)
	}
	return s.D.PutDoc(ctx, kindCRL, c.ID, raw, c.Etag, Update)
}

// DeleteCRL implements revocation.Store.
func (s Revocations) DeleteCRL(ctx context.Context, id, etag string) error {
	return s.D.DeleteDoc(ctx, kindCRL, id, etag)
}

// CRLsVersion implements revocation.Store.
func (s Revocations) CRLsVersion(ctx context.Context) (uint64, error) {
	return s.D.DocsVersion(ctx, kindCRL)
}
