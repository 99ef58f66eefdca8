package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"sync"
	"time"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/fault"
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
		if e := held[st.ID]; e != nil && bytes.Equal(e.stored.DER, st.DER) && bytes.Equal(e.stored.IssuerDER, st.IssuerDER) {
			// The same CRL rewritten (its disabling mark): no need to
			// check it again.
			crls[st.ID] = &entry{stored: st, issuer: e.issuer, issuerID: e.issuerID, crl: e.crl, checked: checked[st.ID]}
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
		if n := crls[id]; n != nil && n.stored.Etag != e.stored.Etag && e.stored.Updated.After(n.stored.Updated) && !bytes.Equal(n.stored.DER, e.stored.DER) {
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
		c.catchUp()
		// Fetching again runs beside the loop: slow or dead distribution
		// points must not hold up loading the CRLs other replicas stored.
		if c.refreshing.CompareAndSwap(false, true) {
			c.mu.Lock()
			closed := c.closed
			if !closed {
				c.passes.Add(1) // Close waits for it
			}
			c.mu.Unlock()
			if closed {
				return
			}
			go func() {
				defer c.passes.Done()
				defer c.refreshing.Store(false)
				c.RefreshDue(ctx)
			}()
		}
	}
}

// refreshParallel bounds the distribution points fetched at once.
const refreshParallel = 8

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
		if e.unstored {
			at = e.checked // stored again as soon as the floor allows
		}
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
	sem := make(chan struct{}, refreshParallel)
	var wg sync.WaitGroup
	for _, d := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, _ = c.fetchShared(ctx, d.id, d.url, nil, d.issuer) // logged inside
		}()
	}
	wg.Wait()
}

// passKey names one CRL's disabling pass.
func passKey(st *Stored) string { return st.ID + "@" + Digest(st.DER) }

// disable runs the disabling pass of e's CRL for refs (the certificates
// it newly lists) in the background: now, and again after Settle. When
// the first pass completes without error the CRL is marked done in the
// store (Stored.Disabled); otherwise a replica's catchUp runs it again.
// The pass goes on past a registration it could not disable; Close stops
// it.
func (c *Checker) disable(e *entry, refs []registry.CertRef) {
	if c.Revoked == nil {
		return
	}
	c.init()
	key := passKey(e.stored)
	c.mu.Lock()
	if c.closed || c.passing[key] {
		c.mu.Unlock()
		return
	}
	c.passing[key] = true
	c.passes.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.passes.Done()
		ok := c.pass(refs, 1)
		if ok {
			c.markDisabled(e.stored)
		}
		c.mu.Lock()
		delete(c.passing, key)
		if !ok {
			c.retryAt[key] = c.now().Add(orDefault(c.Settle, DefaultSettle))
		} else {
			delete(c.retryAt, key)
		}
		c.mu.Unlock()
		if !ok || len(refs) == 0 {
			return
		}
		select {
		case <-c.bg.Done():
			return
		case <-time.After(orDefault(c.Settle, DefaultSettle)):
		}
		c.pass(refs, 2)
	}()
}

// pass runs one disabling pass; it reports whether it completed.
func (c *Checker) pass(refs []registry.CertRef, n int) bool {
	if len(refs) == 0 {
		return true
	}
	err := c.Revoked(c.bg, refs)
	if err != nil && c.bg.Err() == nil {
		c.Log.Error("disabling the registrations of revoked certificates failed for some (the pass runs again; those it missed are refused when they register)", "certificates", len(refs), "pass", n, "err", err)
	}
	return err == nil && c.bg.Err() == nil
}

// markDisabled records in the store that st's CRL was processed (unless
// it was replaced meanwhile).
func (c *Checker) markDisabled(st *Stored) {
	cur, err := c.Store.GetCRL(c.bg, st.ID)
	if err != nil {
		if fault.KindOf(err) != fault.NotFound && c.bg.Err() == nil {
			c.Log.Warn("could not mark a CRL's disabling pass done; it runs again", "id", st.ID, "err", err)
		}
		return
	}
	d := Digest(st.DER)
	if !bytes.Equal(cur.DER, st.DER) || cur.Disabled == d {
		return
	}
	cur.Disabled = d
	etag, err := c.Store.PutCRL(c.bg, cur)
	if err != nil {
		if k := fault.KindOf(err); k != fault.Conflict && k != fault.NotFound && c.bg.Err() == nil {
			c.Log.Warn("could not mark a CRL's disabling pass done; it runs again", "id", st.ID, "err", err)
		}
		return
	}
	cur.Etag = etag
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.crls[st.ID]; e != nil && bytes.Equal(e.stored.DER, st.DER) && !e.unstored {
		c.crls[st.ID] = &entry{stored: cur, issuer: e.issuer, issuerID: e.issuerID, crl: e.crl, checked: e.checked}
		c.rebuildIssuers()
	}
}

// catchUp runs the disabling pass, over all their serials, of the CRLs
// held whose pass did not complete (their Stored.Disabled is behind),
// once Settle has passed since they were stored (the replica that stored
// one runs its pass first): a replica that stopped, or a pass that
// failed, is resumed by any replica. The pass is idempotent.
func (c *Checker) catchUp() {
	if c.Revoked == nil {
		return
	}
	now := c.now()
	grace := orDefault(c.Settle, DefaultSettle)
	var todo []*entry
	c.mu.Lock()
	for _, e := range c.crls {
		if e.unstored || e.stored.disabled() || now.Sub(e.stored.Updated) < grace {
			continue
		}
		key := passKey(e.stored)
		if c.passing[key] || now.Before(c.retryAt[key]) {
			continue
		}
		todo = append(todo, e)
	}
	c.mu.Unlock()
	for _, e := range todo {
		c.Log.Info("resuming the disabling pass of a CRL", "id", e.stored.ID, "ca", e.stored.CA, "url", e.stored.URL)
		c.disable(e, added(e.crl, nil, e.issuerID))
	}
}
