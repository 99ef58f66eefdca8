package revocation

import (
	"context"
	"crypto/x509"
	"time"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// ensureLoaded loads the stored CRLs once, before the first check.
func (c *Checker) ensureLoaded(ctx context.Context) error {
	c.mu.Lock()
	loaded := c.loaded
	c.mu.Unlock()
	if loaded {
		return nil
	}
	return c.reload(ctx, false)
}

// reload reads the stored CRLs when the store's version moved (always
// when force): CRLs whose etag it holds are kept as parsed, others are
// checked against their issuer again. The copy is labelled with the
// version read before the list, so it is never older than its label.
func (c *Checker) reload(ctx context.Context, force bool) error {
	c.init()
	v, err := c.Store.CRLsVersion(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.loaded && v == c.version && !force {
		c.mu.Unlock()
		return nil
	}
	held := make(map[string]*entry, len(c.crls))
	checked := make(map[string]time.Time, len(c.crls))
	for id, e := range c.crls {
		held[id], checked[id] = e, e.checked
	}
	c.mu.Unlock()
	list, err := c.Store.ListCRLs(ctx)
	if err != nil {
		return err
	}
	crls := make(map[string]*entry, len(list))
	for _, st := range list {
		if e := held[st.ID]; e != nil && e.stored.Etag == st.Etag {
			crls[st.ID] = e
			continue
		}
		e, err := parse(st)
		if err != nil {
			c.Log.Error("a stored CRL does not check against its issuer; ignored", "id", st.ID, "ca", st.CA, "url", st.URL, "err", err)
			continue
		}
		e.checked = st.Updated
		if at, ok := checked[st.ID]; ok && at.After(e.checked) {
			e.checked = at
		}
		crls[st.ID] = e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A fetch or upload that stored a CRL meanwhile is newer than the list.
	for id, e := range c.crls {
		if n := crls[id]; n != nil && n.stored.Etag != e.stored.Etag && e.stored.Updated.After(n.stored.Updated) {
			crls[id] = e
		}
	}
	c.crls, c.version, c.loaded = crls, v, true
	c.rebuildIssuers()
	return nil
}

// parse checks a stored CRL against its stored issuer.
func parse(st *Stored) (*entry, error) {
	issuer, err := x509.ParseCertificate(st.IssuerDER)
	if err != nil {
		return nil, err
	}
	crl, err := x509att.CheckCRL(st.DER, issuer)
	if err != nil {
		return nil, err
	}
	return &entry{stored: st, issuer: issuer, issuerID: IssuerID(issuer), crl: crl}, nil
}

// Run keeps the CRLs current until ctx ends: every Poll it reloads them
// when the store's version moved, and fetches again each fetched CRL that
// is due (Refresh after this replica last fetched it, or three quarters
// of the way to its nextUpdate, whichever comes first, but not within
// 30 s of the last fetch).
func (c *Checker) Run(ctx context.Context) {
	c.init()
	t := time.NewTicker(orDefault(c.Poll, DefaultPoll))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.reload(ctx, false); err != nil {
			if ctx.Err() == nil {
				c.Log.Warn("could not reload the CRLs; those held stay in use", "err", err)
			}
			continue
		}
		c.RefreshDue(ctx)
	}
}

// RefreshDue fetches again every fetched CRL that is due.
func (c *Checker) RefreshDue(ctx context.Context) {
	c.init()
	now := c.now()
	refresh := orDefault(c.Refresh, DefaultRefresh)
	type due struct {
		id, url string
		issuer  *x509.Certificate
	}
	var todo []due
	c.mu.Lock()
	for id, e := range c.crls {
		if e.stored.URL == "" {
			continue
		}
		at := e.checked.Add(refresh)
		if q := e.crl.ThisUpdate.Add(e.crl.NextUpdate.Sub(e.crl.ThisUpdate) * 3 / 4); q.Before(at) {
			at = q
		}
		// A point that keeps serving a CRL near or past its nextUpdate is
		// asked again at most every failBackoff (or Refresh, if shorter).
		if floor := e.checked.Add(min(refresh, failBackoff)); at.Before(floor) {
			at = floor
		}
		if until, ok := c.failed[id]; ok && now.Before(until) {
			continue
		}
		if !now.Before(at) {
			todo = append(todo, due{id, e.stored.URL, e.issuer})
		}
	}
	c.mu.Unlock()
	for _, d := range todo {
		if ctx.Err() != nil {
			return
		}
		_, _ = c.fetchShared(ctx, d.id, d.url, d.issuer) // logged inside
	}
}

// disable runs the disabling pass for refs now and again after Settle,
// in the background.
func (c *Checker) disable(refs []registry.CertRef) {
	if c.Revoked == nil || len(refs) == 0 {
		return
	}
	c.init()
	c.passes.Add(1)
	go func() {
		defer c.passes.Done()
		for pass := range 2 {
			if err := c.Revoked(c.bg, refs); err != nil && c.bg.Err() == nil {
				c.Log.Error("disabling the registrations of revoked certificates failed (the pass runs twice; those it missed are refused when they register)", "certificates", len(refs), "pass", pass+1, "err", err)
			}
			if pass == 1 {
				return
			}
			select {
			case <-c.bg.Done():
				return
			case <-time.After(orDefault(c.Settle, DefaultSettle)):
			}
		}
	}()
}
