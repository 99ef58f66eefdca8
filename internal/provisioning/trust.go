package provisioning

import (
	"context"
	"errors"
	"sync"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// The CA certificates and enrollment groups that X.509 and TPM group
// matching read, cached under their tables' version (ADR 16): one version
// read per registration instead of a lookup per presented certificate, per
// CA above the chain and per group. A write of either table is seen by the
// next registration on every replica. Individual enrollments are not
// cached (there may be millions): they are read by thumbprint each time.

// maxTrustCache bounds the CAs and groups held; a configuration larger
// than that is read from the store each time.
const maxTrustCache = 50_000

var errTrustTooBig = errors.New("more CA certificates and groups than the cache holds")

// trustSnapshot is the CAs and groups as of one version.
type trustSnapshot struct {
	version   uint64
	byThumb   map[string]*enrollment.CA
	bySubject map[string][]*enrollment.CA
	groupOf   map[string]*enrollment.Group // by CA name
}

type trustCache struct {
	mu   sync.Mutex
	snap *trustSnapshot
	// tooBig: the last load found more than maxTrustCache; the store is
	// read directly until the version changes.
	tooBig uint64
}

// trusted is what matching reads: the cache, current as of one version
// read (the store itself when the configuration is too large to cache).
func (s *Service) trusted(ctx context.Context) (enrollment.Lookup, error) {
	v, err := s.Enrollments.TrustVersion(ctx)
	if err != nil {
		return nil, err
	}
	c := &s.trust
	c.mu.Lock()
	snap, tooBig := c.snap, c.tooBig
	c.mu.Unlock()
	if snap != nil && snap.version == v {
		return cachedLookup{s.Enrollments, snap}, nil
	}
	if tooBig == v && v != 0 {
		return s.Enrollments, nil
	}
	snap, err = s.loadTrust(ctx, v)
	if errors.Is(err, errTrustTooBig) {
		c.mu.Lock()
		c.tooBig = v
		c.mu.Unlock()
		return s.Enrollments, nil
	}
	if err != nil {
		return nil, err
	}
	// Labelled with the version read before loading: a write racing the
	// load makes the next registration load again, never use it stale.
	c.mu.Lock()
	c.snap = snap
	c.mu.Unlock()
	return cachedLookup{s.Enrollments, snap}, nil
}

func (s *Service) loadTrust(ctx context.Context, v uint64) (*trustSnapshot, error) {
	snap := &trustSnapshot{version: v, byThumb: map[string]*enrollment.CA{}, bySubject: map[string][]*enrollment.CA{}, groupOf: map[string]*enrollment.Group{}}
	n := 0
	for token := ""; ; {
		cas, next, err := s.Enrollments.ListCAs(ctx, enrollment.Page{Token: token, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, ca := range cas {
			if n++; n > maxTrustCache {
				return nil, errTrustTooBig
			}
			snap.byThumb[ca.Thumbprint] = ca
			snap.bySubject[ca.SubjectKey] = append(snap.bySubject[ca.SubjectKey], ca)
		}
		if token = next; next == "" {
			break
		}
	}
	for token := ""; ; {
		groups, next, err := s.Enrollments.ListGroups(ctx, enrollment.Page{Token: token, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			if n++; n > maxTrustCache {
				return nil, errTrustTooBig
			}
			if g.CAName != "" {
				snap.groupOf[g.CAName] = g
			}
		}
		if token = next; next == "" {
			break
		}
	}
	return snap, nil
}

// cachedLookup answers CA and group lookups from a snapshot, and
// individual enrollments from the store.
type cachedLookup struct {
	store enrollment.Lookup
	snap  *trustSnapshot
}

func (l cachedLookup) FindIndividualByThumbprint(ctx context.Context, thumbprint string) (*enrollment.Individual, error) {
	return l.store.FindIndividualByThumbprint(ctx, thumbprint)
}

func (l cachedLookup) FindCAByThumbprint(_ context.Context, thumbprint string) (*enrollment.CA, error) {
	if ca := l.snap.byThumb[thumbprint]; ca != nil {
		return ca, nil
	}
	return nil, fault.NotFoundf("no CA certificate with thumbprint %s", thumbprint)
}

func (l cachedLookup) FindCAsBySubject(_ context.Context, subjectKey string) ([]*enrollment.CA, error) {
	return l.snap.bySubject[subjectKey], nil
}

func (l cachedLookup) FindGroupByCA(_ context.Context, caName string) (*enrollment.Group, error) {
	if g := l.snap.groupOf[caName]; g != nil {
		return g, nil
	}
	return nil, fault.NotFoundf("no enrollment group for CA %q", caName)
}

// readAhead has the registry read, in one round trip, what registering
// req's device reads (issue #17): on Redis the trust and shard caches'
// versions, the individual enrollment by the leaf's thumbprint, the
// reservation of the name and the registration, with the count against
// the device's address. Only X.509 evidence names
// both before attestation; other requests read as they go.
func (s *Service) readAhead(ctx context.Context, req *Request) context.Context {
	ra, ok := s.Registry.(registry.ReadAheader)
	if !ok {
		return ctx
	}
	e, ok := req.Evidence.(X509Chain)
	if !ok || len(e.Chain) == 0 || req.check() != nil {
		return ctx // a request check refuses counts nothing against its address
	}
	leaf := e.Chain[0]
	regID, err := x509att.CommonName(leaf)
	if err != nil || enrollment.ValidateRegistrationID(regID) != nil {
		return ctx // refused by attestation, reading nothing
	}
	a := registry.Ahead{RegistrationID: regID, Thumbprint: enrollment.Thumbprint(leaf.Raw)}
	if h, ok := s.Limiter.PeerHit(req.Peer); ok {
		a.Count = h // the address's count, which attest makes first
	}
	return ra.ReadAhead(ctx, a)
}
