package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// flight is one fetch that concurrent callers share.
type flight struct {
	done chan struct{}
	e    *entry
	err  error
}

// errRecentlyFailed answers callers while a failed fetch is backing off.
var errRecentlyFailed = errors.New("the last fetch failed less than 30 s ago")

// MaxSources bounds the CRLs kept (uploaded and fetched): a CA whose
// certificates each named another distribution point cannot fill the
// store.
const MaxSources = 1000

var errTooManySources = fmt.Errorf("more than %d CRL sources are known", MaxSources)

// fetched returns the CRL at url (a distribution point that cert names)
// for certificates of issuer: the one held, when it is fresh; otherwise
// one fetched now (shared by concurrent callers, not retried within
// failBackoff of a failure). When the fetch fails it returns the stale
// CRL held, if any, with the error.
func (c *Checker) fetched(ctx context.Context, url string, cert, issuer *x509.Certificate, issuerID string) (*entry, error) {
	id := cdpID(url, issuerID)
	now := c.now()
	c.mu.Lock()
	e := c.crls[id]
	if e != nil && e.crl.Fresh(now) {
		c.mu.Unlock()
		return e, nil
	}
	if until, ok := c.failed[id]; ok && now.Before(until) {
		c.mu.Unlock()
		return e, errRecentlyFailed
	}
	if e == nil && len(c.crls) >= MaxSources {
		c.mu.Unlock()
		c.Log.Warn("too many CRL sources; a new distribution point is not fetched", "url", url, "max", MaxSources)
		return nil, errTooManySources
	}
	c.mu.Unlock()
	got, err := c.fetchShared(ctx, id, url, cert, issuer)
	if err != nil {
		return e, err
	}
	return got, nil
}

// fetchShared fetches the CRL of id once for every concurrent caller. The
// fetch does not end with a caller's request: its own timeout bounds it.
// cert is the certificate that named the point (nil when the refresher
// fetches it again).
func (c *Checker) fetchShared(ctx context.Context, id, url string, cert, issuer *x509.Certificate) (*entry, error) {
	c.mu.Lock()
	f := c.flights[id]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flights[id] = f
		go func() {
			f.e, f.err = c.fetchAndStore(context.WithoutCancel(ctx), id, url, cert, issuer)
			c.mu.Lock()
			delete(c.flights, id)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.e, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errNotCovering refuses a fetched CRL that does not speak for the
// certificates of its distribution point.
var errNotCovering = errors.New("the CRL served does not cover the certificates that name this distribution point (its issuing distribution point limits it to other certificates or another partition)")

// fetchAndStore fetches the CRL at url, checks it against issuer, and
// keeps it when it is new (or newer than the one held): in the store
// (compare-and-swap, so that one replica wins a race) and in memory. The
// certificates it newly revokes go to the disabling pass.
//
// A CRL that does not cover cert (the certificate that named url; when
// nil, every kind of certificate the CRL held covers) is refused, and not
// stored: an ARL or another partition served at the point, even signed
// by the right CA, neither stands for the CRL of these certificates nor
// locks out the real one with a higher number.
func (c *Checker) fetchAndStore(ctx context.Context, id, url string, cert, issuer *x509.Certificate) (*entry, error) {
	now := c.now()
	c.mu.Lock()
	cur := c.crls[id]
	c.mu.Unlock()
	crl, der, err := c.fetchCRL(ctx, url, issuer)
	if err == nil {
		switch {
		case cert != nil && !crl.CoversPoint(cert, url):
			err = errNotCovering
		case cert == nil && cur != nil && !crl.CoversAsMuch(cur.crl, url):
			err = errNotCovering
		}
	}
	if err != nil {
		c.mu.Lock()
		c.failed[id] = now.Add(failBackoff)
		c.mu.Unlock()
		c.Log.Warn("could not fetch a CRL", "url", url, "issuer", issuer.Subject.String(), "err", err)
		return nil, err
	}
	c.mu.Lock()
	delete(c.failed, id)
	cur = c.crls[id]
	// A held CRL that does not cover the certificate (stored before
	// fetches were checked for it) gives way to one that does.
	curCovers := cur != nil && (cert == nil || cur.crl.CoversPoint(cert, url))
	if cur != nil && !cur.unstored && curCovers && (bytes.Equal(cur.stored.DER, der) || !crl.Newer(cur.crl)) {
		cur.checked = now // the same CRL, or an older one a cache served: keep ours
		c.mu.Unlock()
		return cur, nil
	}
	if cur != nil && cur.unstored && !bytes.Equal(cur.stored.DER, der) && !crl.Newer(cur.crl) {
		crl, der = cur.crl, cur.stored.DER // store the newer one held
	}
	c.mu.Unlock()
	var st *Stored
	var old *x509att.CRL
	var etag string
	for attempt := 0; ; attempt++ {
		st = &Stored{ID: id, URL: url, IssuerDER: issuer.Raw, DER: der, Updated: now}
		old = nil
		if cur != nil {
			st.Etag = cur.stored.Etag
			// Only a CRL whose disabling pass completed is a base for the
			// serials this one newly lists; otherwise all of them are.
			if !cur.unstored && cur.stored.disabled() {
				old = cur.crl
			}
			if cur.unstored && bytes.Equal(cur.stored.DER, der) {
				st.Updated = cur.stored.Updated
			}
		}
		etag, err = c.Store.PutCRL(ctx, st)
		if k := fault.KindOf(err); k != fault.Conflict && k != fault.AlreadyExists && k != fault.NotFound {
			break
		}
		// Another replica stored one first (it runs the disabling pass),
		// or the document was rewritten (its disabling mark): store ours
		// over what is stored if ours is newer, else use what is stored.
		got, gerr := c.Store.GetCRL(ctx, id)
		if gerr != nil && fault.KindOf(gerr) != fault.NotFound {
			return nil, gerr
		}
		var gotE *entry
		if gerr == nil {
			gotE, _ = parse(got)
			if gotE == nil {
				gotE = &entry{stored: got} // unusable: replaced, all serials new
			}
		}
		if attempt < 2 && (gotE == nil || gotE.crl == nil || (!bytes.Equal(got.DER, der) && crl.Newer(gotE.crl))) {
			cur = gotE
			continue
		}
		if err := c.reload(ctx, true); err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if e := c.crls[id]; e != nil && !e.unstored {
			e.checked = now
			return e, nil
		}
		return nil, fmt.Errorf("the CRL at %s changed while it was stored; retry", url)
	}
	e := &entry{stored: st, issuer: issuer, issuerID: IssuerID(issuer), crl: crl, checked: now}
	if err != nil {
		// Keep using it here; the next fetch (by a registration or the
		// refresher) stores it, and runs the disabling pass then.
		c.Log.Warn("could not store a fetched CRL; using it on this replica only until it is stored", "url", url, "err", err)
		e.unstored = true
	} else {
		st.Etag = etag
	}
	c.mu.Lock()
	c.crls[id] = e
	c.mu.Unlock()
	c.Log.Info("fetched a new CRL", "url", url, "issuer", issuer.Subject.String(), "revoked", crl.Len(), "next_update", crl.NextUpdate)
	if err == nil {
		c.disable(e, added(crl, old, e.issuerID))
	}
	return e, nil
}

// fetchCRL GETs a CRL (DER or PEM, at most x509att.MaxCRLBytes) and
// checks it against issuer.
func (c *Checker) fetchCRL(ctx context.Context, url string, issuer *x509.Certificate) (*x509att.CRL, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := c.do(req, x509att.MaxCRLBytes)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509att.DecodeCRL(body)
	if err != nil {
		return nil, nil, err
	}
	crl, err := x509att.CheckCRL(der, issuer)
	if err != nil {
		return nil, nil, err
	}
	return crl, der, nil
}

// do sends req and reads a 200 answer of at most limit bytes.
func (c *Checker) do(req *http.Request, limit int64) ([]byte, error) {
	resp, err := c.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("%s answered %s", req.URL.Redacted(), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s answered more than %d bytes", req.URL.Redacted(), limit)
	}
	return body, nil
}

// askOCSP asks the responder at url about cert: a current answer held is
// reused; a failure is not retried within failBackoff.
func (c *Checker) askOCSP(ctx context.Context, url string, cert, issuer *x509.Certificate, issuerID string) (*x509att.OCSPAnswer, error) {
	key := issuerID + ":" + x509att.SerialHex(cert.SerialNumber)
	now := c.now()
	c.mu.Lock()
	a := c.ocsp[key]
	until, failed := c.failed["ocsp:"+url]
	c.mu.Unlock()
	if a != nil && (a.Revoked || a.Current(now)) {
		return a, nil
	}
	if failed && now.Before(until) {
		return nil, errRecentlyFailed
	}
	a, err := c.queryOCSP(context.WithoutCancel(ctx), url, cert, issuer, now)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// A responder that answers, but not usefully, is not backed off:
		// only one that cannot be reached.
		if fault.KindOf(err) != fault.InvalidArgument {
			c.failed["ocsp:"+url] = now.Add(failBackoff)
		}
		return nil, err
	}
	delete(c.failed, "ocsp:"+url)
	if len(c.ocsp) >= maxOCSPCache {
		clear(c.ocsp)
	}
	c.ocsp[key] = a
	return a, nil
}

func (c *Checker) queryOCSP(ctx context.Context, url string, cert, issuer *x509.Certificate, now time.Time) (*x509att.OCSPAnswer, error) {
	reqDER, err := x509att.OCSPRequest(cert, issuer)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(reqDER))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Accept", "application/ocsp-response")
	body, err := c.do(req, x509att.MaxOCSPResponseBytes)
	if err != nil {
		return nil, err
	}
	return x509att.CheckOCSP(body, cert, issuer, now)
}

// added names the certificates crl revokes that old (nil: none) did not,
// as Refs names them: issuerID is the IssuerID of the certificate that
// signed crl (checked by x509att.CheckCRL).
func added(crl, old *x509att.CRL, issuerID string) []registry.CertRef {
	var out []registry.CertRef
	for _, s := range crl.Serials() {
		if old == nil || !old.Has(s) {
			out = append(out, registry.CertRef{Issuer: issuerID, Serial: s})
		}
	}
	return out
}
