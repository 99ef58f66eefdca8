package x509

import (
	"bytes"
	"crypto/sha256"
	cx509 "crypto/x509"
	"sync"
	"sync/atomic"
	"time"
)

// PathCache remembers verified paths from an issuing CA up to its anchor,
// so that a device whose chain reaches an issuing CA seen before costs one
// signature verification (leaf by issuer) instead of one per link.
//
// It never decides alone. An entry is used only when, for this device:
// the presented issuer is byte-identical to the cached one; the cached
// anchor is still one of the enrollment's anchors and every cached
// intermediate above the issuer is still presented or uploaded (so
// deleting or replacing a CA takes effect at once); and
// now lies inside every cached certificate's validity window. The leaf is
// then verified by crypto/x509 against the issuer, which applies the
// issuer's own validity, path length, name constraints and the leaf's key
// usages and critical extensions. Paths whose certificates above the issuer
// carry name or policy constraints are never cached, since verifying the
// leaf against the issuer alone would not apply them. Any miss or failure
// falls back to full verification, whose answer is final.
//
// Revocation is not its business: the caller checks every certificate of
// the path it returns, cached or not, on every use (ADR 23), so a cached
// path never lets a certificate revoked since through.
type PathCache struct {
	mu      sync.RWMutex
	entries map[[32]byte]*cachedPath
	max     int
	hits    atomic.Int64
}

type cachedPath struct {
	path      []*cx509.Certificate // issuer first, anchor last
	notBefore time.Time
	notAfter  time.Time
}

// NewPathCache holds up to max issuing CAs' paths (it starts over when full).
func NewPathCache(max int) *PathCache {
	return &PathCache{entries: map[[32]byte]*cachedPath{}, max: max}
}

// Verify is the package's Verify with the cache in front.
func (pc *PathCache) Verify(chain []*cx509.Certificate, depth int, extra, anchors []*cx509.Certificate, now time.Time) ([]*cx509.Certificate, error) {
	if pc == nil || depth < 2 || depth > len(chain) {
		return Verify(chain, depth, extra, anchors, now)
	}
	issuer := chain[1]
	key := sha256.Sum256(issuer.Raw)
	pc.mu.RLock()
	e := pc.entries[key]
	pc.mu.RUnlock()
	if e != nil && e.usable(issuer, chain[2:depth], extra, anchors, now) {
		roots := cx509.NewCertPool()
		roots.AddCert(issuer)
		if _, err := chain[0].Verify(cx509.VerifyOptions{Roots: roots, CurrentTime: now,
			KeyUsages: []cx509.ExtKeyUsage{cx509.ExtKeyUsageClientAuth}}); err == nil {
			pc.hits.Add(1)
			return append([]*cx509.Certificate{chain[0]}, e.path...), nil
		}
	}
	path, err := Verify(chain, depth, extra, anchors, now)
	if err != nil {
		return nil, err
	}
	if len(path) >= 3 && bytes.Equal(path[1].Raw, issuer.Raw) && cacheable(path[2:]) {
		c := &cachedPath{path: path[1:], notBefore: path[1].NotBefore, notAfter: path[1].NotAfter}
		for _, p := range path[2:] {
			if p.NotBefore.After(c.notBefore) {
				c.notBefore = p.NotBefore
			}
			if p.NotAfter.Before(c.notAfter) {
				c.notAfter = p.NotAfter
			}
		}
		pc.mu.Lock()
		if len(pc.entries) >= pc.max {
			clear(pc.entries)
		}
		pc.entries[key] = c
		pc.mu.Unlock()
	}
	return path, nil
}

func (e *cachedPath) usable(issuer *cx509.Certificate, presented, extra, anchors []*cx509.Certificate, now time.Time) bool {
	if now.Before(e.notBefore) || now.After(e.notAfter) || !bytes.Equal(e.path[0].Raw, issuer.Raw) {
		return false
	}
	last := len(e.path) - 1
	if !contains(anchors, e.path[last]) { // the anchor must still be one
		return false
	}
	for _, c := range e.path[1:last] { // and each intermediate still at hand
		if !contains(presented, c) && !contains(extra, c) {
			return false
		}
	}
	return true
}

func contains(pool []*cx509.Certificate, c *cx509.Certificate) bool {
	for _, p := range pool {
		if bytes.Equal(p.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// cacheable says whether certificates above the issuer constrain nothing
// that verifying a leaf against the issuer alone would skip.
func cacheable(above []*cx509.Certificate) bool {
	for _, c := range above {
		if len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedIPRanges)+
			len(c.PermittedEmailAddresses)+len(c.ExcludedEmailAddresses)+len(c.PermittedURIDomains)+len(c.ExcludedURIDomains) > 0 ||
			c.PermittedDNSDomainsCritical || len(c.PolicyMappings) > 0 ||
			c.RequireExplicitPolicy > 0 || c.RequireExplicitPolicyZero ||
			c.InhibitPolicyMapping > 0 || c.InhibitPolicyMappingZero ||
			c.InhibitAnyPolicy > 0 || c.InhibitAnyPolicyZero {
			return false
		}
	}
	return true
}
