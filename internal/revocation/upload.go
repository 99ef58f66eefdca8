package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"math/big"
	"time"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// Info describes a CRL uploaded for a CA.
type Info struct {
	CA string
	// Issuer is the CRL issuer's name.
	Issuer                 string
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time
	// Updated is when it was uploaded.
	Updated time.Time
	// Revoked is how many serials it lists; Added (Upload only) how many
	// of them the CRL it replaced did not.
	Revoked, Added int
}

func info(e *entry) *Info {
	return &Info{CA: e.stored.CA, Issuer: e.issuer.Subject.String(), Number: e.crl.Number, ThisUpdate: e.crl.ThisUpdate,
		NextUpdate: e.crl.NextUpdate, Updated: e.stored.Updated, Revoked: e.crl.Len()}
}

// Upload keeps a CRL an operator uploaded (DER) for the CA named ca, whose
// certificate is caCert: it must be signed by that CA (x509att.CheckCRL)
// and, when the CA has an uploaded CRL already, be that CRL or a newer one
// (a higher CRL number, or a later thisUpdate): an older one is refused
// (FailedPrecondition), so a replayed CRL cannot un-revoke anything. The
// registrations holding certificates it newly revokes are disabled in the
// background.
func (c *Checker) Upload(ctx context.Context, ca string, caCert *x509.Certificate, der []byte) (*Info, error) {
	c.init()
	crl, err := x509att.CheckCRL(der, caCert)
	if err != nil {
		return nil, err
	}
	id := uploadID(ca)
	var old *x509att.CRL
	var st *Stored
	for attempt := 0; ; attempt++ {
		old = nil
		etag := ""
		cur, err := c.Store.GetCRL(ctx, id)
		switch {
		case err == nil:
			etag = cur.Etag
			if e, perr := parse(cur); perr == nil && IssuerID(e.issuer) == IssuerID(caCert) {
				if cur.disabled() {
					old = e.crl // else its pass did not complete: all serials
				}
				if bytes.Equal(cur.DER, der) {
					return info(e), nil
				}
				if !crl.Newer(e.crl) {
					return nil, fault.New(fault.FailedPrecondition, fault.FieldInvalid,
						"the CRL is not newer than the one CA %q has (number %v, thisUpdate %s)", ca, e.crl.Number, e.crl.ThisUpdate.UTC().Format(time.RFC3339))
				}
			}
		case fault.KindOf(err) != fault.NotFound:
			return nil, err
		}
		st = &Stored{ID: id, CA: ca, IssuerDER: caCert.Raw, DER: der, Updated: c.now(), Etag: etag}
		if st.Etag, err = c.Store.PutCRL(ctx, st); err != nil {
			// A conflict is often the disabling mark of the CRL replaced
			// (or another upload): read it again.
			if k := fault.KindOf(err); k == fault.Conflict || k == fault.AlreadyExists || k == fault.NotFound {
				if attempt < 2 {
					continue
				}
				return nil, fault.New(fault.Conflict, fault.EtagMismatch, "the CRL of CA %q changed while this one was stored; upload again", ca)
			}
			return nil, err
		}
		break
	}
	e := &entry{stored: st, issuer: caCert, issuerID: IssuerID(caCert), crl: crl}
	c.install(e)
	refs := added(crl, old, e.issuerID)
	c.Log.Info("CRL uploaded", "ca", ca, "revoked", crl.Len(), "added", len(refs), "next_update", crl.NextUpdate)
	c.disable(e, refs)
	out := info(e)
	out.Added = len(refs)
	return out, nil
}

// install puts an entry in the memory copy (the store's version moved; the
// next reload keeps it, having its etag).
func (c *Checker) install(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crls[e.stored.ID] = e
	c.rebuildIssuers()
}

// rebuildIssuers indexes the uploaded CRLs by issuer; c.mu is held.
func (c *Checker) rebuildIssuers() {
	by := map[string][]*entry{}
	for _, e := range c.crls {
		if e.stored.CA != "" {
			by[e.issuerID] = append(by[e.issuerID], e)
		}
	}
	c.byIssuer = by
}

// Uploaded describes the CRL uploaded for CA ca, or NotFound.
func (c *Checker) Uploaded(ctx context.Context, ca string) (*Info, error) {
	st, err := c.Store.GetCRL(ctx, uploadID(ca))
	if err != nil {
		return nil, err
	}
	e, err := parse(st)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "the stored CRL of CA %q does not check", ca)
	}
	return info(e), nil
}

// DeleteUploaded removes the CRL uploaded for CA ca (NotFound if none).
// Registrations it disabled stay disabled.
func (c *Checker) DeleteUploaded(ctx context.Context, ca string) error {
	c.init()
	if err := c.Store.DeleteCRL(ctx, uploadID(ca), ""); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.crls, uploadID(ca))
	c.rebuildIssuers()
	c.mu.Unlock()
	return nil
}
