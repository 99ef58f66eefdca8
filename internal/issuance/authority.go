package issuance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// CRL and OCSP timing.
const (
	// CRLValidity is how long a published CRL is good for (its
	// nextUpdate); CRLRefresh is how often a new one is signed even when
	// nothing changed.
	CRLValidity = 24 * time.Hour
	CRLRefresh  = time.Hour
	// CRLMinInterval bounds how often a changed revocation list is
	// signed again.
	CRLMinInterval = 10 * time.Second
	// RevocationHorizon is how long after a certificate expired its
	// revocation is kept (and listed): longer than any renewal grace, as
	// an operator's revocation of a serial is all that stops a current
	// certificate renewing. A superseded one never renews (its
	// registration holds another): its entry goes a CRL's life after it
	// expired, which keeps a fleet's renewals from growing the CRL.
	RevocationHorizon = MaxGrace + CRLValidity
	// maxOCSPCache bounds the cached OCSP answers of a replica.
	maxOCSPCache = 50_000
	// OCSPValidity is an OCSP response's nextUpdate.
	OCSPValidity = time.Hour
	// MaxOCSPRequest bounds an OCSP request.
	MaxOCSPRequest = 4 << 10
)

// Authority is the issuing side at run time: it reads issuing CAs and
// policies through a cache that one version read keeps current, opens CA
// keys once, signs device certificates, and publishes CRLs and OCSP
// answers. It is safe for concurrent use.
type Authority struct {
	Store  Store
	Sealer *secrets.Sealer
	// BaseURL is where this service's CRLs and OCSP responder are
	// reachable by relying parties (e.g. https://pki.example.com:8443);
	// "" puts no URLs into issued certificates.
	BaseURL string
	Now     func() time.Time
	// Log, if set, reports records left out of the cache.
	Log *slog.Logger

	mu      sync.Mutex
	version uint64
	loaded  bool
	checked time.Time // when the version was last read
	cas     map[string]*loadedCA
	pols    map[string]*Policy
	crls    map[string]*signedCRL
	// crlBuild lets one CRL be built at a time.
	crlBuild sync.Mutex
	// ocspCache holds signed OCSP answers by CA, serial and the CA's
	// revocations version.
	ocspCache sync.Map
	ocspCount atomic.Int64
}

type loadedCA struct {
	ca   *CA
	cert *x509.Certificate
	key  crypto.Signer
}

type signedCRL struct {
	version uint64
	at      time.Time
	der     []byte
	// pending is when the next future revocation takes effect.
	pending time.Time
}

func (a *Authority) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// URLs says where a CA's CRL and OCSP responder are published.
func (a *Authority) URLs(ca string) URLs {
	if a.BaseURL == "" {
		return URLs{}
	}
	return URLs{CRL: a.BaseURL + "/pki/" + ca + "/crl", OCSP: a.BaseURL + "/pki/" + ca + "/ocsp"}
}

// refresh reloads the CAs and policies when their version changed.
func (a *Authority) refresh(ctx context.Context) error {
	v, err := a.Store.IssuanceVersion(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	fresh := a.loaded && v == a.version
	if fresh {
		a.checked = a.now()
	}
	a.mu.Unlock()
	if fresh {
		return nil
	}
	cas, err := a.Store.ListIssuingCAs(ctx)
	if err != nil {
		return err
	}
	pols, err := a.Store.ListPolicies(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.cas
	a.mu.Unlock()
	// Build the new view apart and swap it in whole: a record that does
	// not parse is left out (and logged), not the whole view.
	cm, pm := map[string]*loadedCA{}, map[string]*Policy{}
	for _, ca := range cas {
		l := &loadedCA{ca: ca}
		if prev := old[ca.Name]; prev != nil && bytes.Equal(prev.ca.SealedKey, ca.SealedKey) {
			l.key = prev.key // opened already
		}
		if len(ca.CertDER) > 0 {
			c, err := x509.ParseCertificate(ca.CertDER)
			if err != nil {
				if a.Log != nil {
					a.Log.Error("an issuing CA's certificate does not parse; it is left out", "issuing_ca", ca.Name, "err", err)
				}
				continue
			}
			l.cert = c
		}
		cm[ca.Name] = l
	}
	for _, p := range pols {
		pm[p.Name] = p
	}
	a.mu.Lock()
	a.cas, a.pols = cm, pm
	a.version, a.loaded, a.checked = v, true, a.now()
	a.mu.Unlock()
	return nil
}

func (a *Authority) signer(l *loadedCA) (crypto.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l.key == nil {
		k, err := l.ca.Signer(a.Sealer)
		if err != nil {
			return nil, err
		}
		l.key = k
	}
	return l.key, nil
}

// Policy returns a credential policy, CREDENTIAL_POLICY_MISSING when it
// does not exist or its issuing CA cannot sign.
func (a *Authority) Policy(ctx context.Context, name string) (*Policy, error) {
	if name == "" {
		return nil, fault.New(fault.FailedPrecondition, fault.CredentialPolicyMissing, "the device's enrollment names no credential policy, so it cannot be issued a certificate")
	}
	if err := a.refresh(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	p, l := a.pols[name], (*loadedCA)(nil)
	if p != nil {
		l = a.cas[p.IssuingCA]
	}
	a.mu.Unlock()
	switch {
	case p == nil:
		return nil, fault.New(fault.FailedPrecondition, fault.CredentialPolicyMissing, "credential policy %q does not exist", name)
	case l == nil || l.ca.State != CAActive:
		return nil, fault.New(fault.FailedPrecondition, fault.CredentialPolicyMissing, "credential policy %q: issuing CA %q is missing or not active", name, p.IssuingCA)
	}
	return p, nil
}

// Issue signs a certificate for csr under the policy (CheckCSR first).
func (a *Authority) Issue(ctx context.Context, p *Policy, csr *x509.CertificateRequest, regID string) (*Issued, error) {
	a.mu.Lock()
	l := a.cas[p.IssuingCA]
	a.mu.Unlock()
	if l == nil || l.ca.State != CAActive || l.cert == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.CredentialPolicyMissing, "issuing CA %q is missing or not active", p.IssuingCA)
	}
	if !a.now().Before(l.cert.NotAfter) {
		return nil, fault.New(fault.FailedPrecondition, fault.CredentialPolicyMissing, "issuing CA %q expired at %s", p.IssuingCA, l.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := a.signer(l)
	if err != nil {
		return nil, err
	}
	return Issue(l.ca, l.cert, key, csr, regID, p, a.URLs(l.ca.Name), a.now())
}

// IssuerRecheck is how stale IssuerOf lets its view of the issuing CAs
// get: every X.509 registration asks it, so it reads the store's version
// at most this often (a new issuing CA is recognized within it).
const IssuerRecheck = 5 * time.Second

// IssuerOf returns the issuing CA that signed leaf (active or disabled),
// or nil when none did.
func (a *Authority) IssuerOf(ctx context.Context, leaf *x509.Certificate) (*CA, error) {
	a.mu.Lock()
	stale := !a.loaded || a.now().Sub(a.checked) > IssuerRecheck
	a.mu.Unlock()
	if stale {
		if err := a.refresh(ctx); err != nil {
			return nil, err
		}
	}
	if leaf.IsCA {
		return nil, nil // Zerotouch issues devices no CA certificates
	}
	var candidates []*loadedCA
	a.mu.Lock()
	for _, l := range a.cas {
		if l.cert != nil && bytes.Equal(l.cert.RawSubject, leaf.RawIssuer) {
			candidates = append(candidates, l)
		}
	}
	a.mu.Unlock()
	// The signature checks run outside the lock: a forged certificate
	// naming an issuing CA costs its sender one verification, and no one
	// else a wait.
	for _, l := range candidates {
		if leaf.CheckSignatureFrom(l.cert) == nil {
			return l.ca, nil
		}
	}
	return nil, nil
}

// Refresh rereads the issuing CAs and policies if they changed.
func (a *Authority) Refresh(ctx context.Context) error { return a.refresh(ctx) }

// lookupCA returns a loaded issuing CA.
func (a *Authority) lookupCA(ctx context.Context, name string) (*loadedCA, error) {
	if err := a.refresh(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	l := a.cas[name]
	a.mu.Unlock()
	if l == nil || l.cert == nil {
		return nil, fault.NotFoundf("issuing CA %q not found", name)
	}
	return l, nil
}

// CRL returns the CA's current CRL (DER). A new one is signed when a
// revocation changed (at most every CRLMinInterval: relying parties fetch
// it without a key, and every renewal records a revocation), when one
// listed in the future took effect, or when the last one is CRLRefresh
// old; one build at a time, the others wait for it. Revocations are
// dropped once their certificate could no longer be renewed
// (RevocationHorizon after it expired).
func (a *Authority) CRL(ctx context.Context, name string) ([]byte, error) {
	l, err := a.lookupCA(ctx, name)
	if err != nil {
		return nil, err
	}
	v, err := a.Store.RevocationsVersion(ctx, name)
	if err != nil {
		return nil, err
	}
	if der, ok := a.cachedCRL(name, v, a.now()); ok {
		return der, nil
	}
	a.crlBuild.Lock()
	defer a.crlBuild.Unlock()
	now := a.now()
	if der, ok := a.cachedCRL(name, v, now); ok {
		return der, nil // built while this one waited
	}
	revs, err := a.Store.ListRevocations(ctx, name)
	if err != nil {
		return nil, err
	}
	var entries []x509.RevocationListEntry
	var pending time.Time // the next future revocation to take effect
	for _, r := range revs {
		if now.After(r.NotAfter.Add(r.horizon())) {
			_ = a.Store.DropRevocation(ctx, name, r.Serial) // long expired: nothing can present it
			continue
		}
		if r.RevokedAt.After(now) {
			if pending.IsZero() || r.RevokedAt.Before(pending) {
				pending = r.RevokedAt
			}
			continue // a superseded certificate's overlap has not ended
		}
		serial, err := ParseSerial(r.Serial)
		if err != nil {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: r.RevokedAt, ReasonCode: r.Reason})
	}
	key, err := a.signer(l)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixMicro()),
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(CRLValidity),
		RevokedCertificateEntries: entries,
	}, l.cert, key)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "sign the CRL of %q", name)
	}
	a.mu.Lock()
	if a.crls == nil {
		a.crls = map[string]*signedCRL{}
	}
	a.crls[name] = &signedCRL{version: v, at: now, der: der, pending: pending}
	a.mu.Unlock()
	return der, nil
}

// cachedCRL is the CA's last CRL if it is still good to serve.
func (a *Authority) cachedCRL(name string, v uint64, now time.Time) ([]byte, bool) {
	a.mu.Lock()
	c := a.crls[name]
	a.mu.Unlock()
	switch {
	case c == nil || now.Sub(c.at) >= CRLRefresh || !c.pending.IsZero() && !now.Before(c.pending):
		return nil, false
	case c.version != v && now.Sub(c.at) >= CRLMinInterval:
		return nil, false
	}
	return c.der, true
}

// Status reports whether an issued certificate is revoked now (nil when
// it is not).
func (a *Authority) Status(ctx context.Context, ca, serial string) (*Revocation, error) {
	r, err := a.Store.GetRevocation(ctx, ca, serial)
	switch {
	case fault.KindOf(err) == fault.NotFound:
		return nil, nil
	case err != nil:
		return nil, err
	case r.RevokedAt.After(a.now()):
		return nil, nil
	}
	return r, nil
}

// OCSP answers an OCSP request (DER) for the named CA, signed by the CA
// itself. A request about another issuer is answered "unauthorized", a
// malformed one "malformedRequest", as RFC 6960 says.
func (a *Authority) OCSP(ctx context.Context, name string, req []byte) ([]byte, error) {
	if len(req) > MaxOCSPRequest {
		return ocsp.MalformedRequestErrorResponse, nil
	}
	r, err := ocsp.ParseRequest(req)
	if err != nil {
		return ocsp.MalformedRequestErrorResponse, nil
	}
	l, err := a.lookupCA(ctx, name)
	if fault.KindOf(err) == fault.NotFound {
		return ocsp.UnauthorizedErrorResponse, nil
	}
	if err != nil {
		return nil, err
	}
	if !issuerMatches(r, l.cert) {
		return ocsp.UnauthorizedErrorResponse, nil
	}
	v, err := a.Store.RevocationsVersion(ctx, name)
	if err != nil {
		return nil, err
	}
	now := a.now()
	key := ocspKey{ca: name, serial: SerialHex(r.SerialNumber), hash: r.HashAlgorithm}
	if c, ok := a.ocspCache.Load(key); ok {
		if c := c.(*ocspAnswer); c.version == v && now.Before(c.fresh) {
			return c.der, nil
		}
	}
	// The answer's CertID uses the request's hash, or clients cannot
	// match it (openssl ocsp -sha256).
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: r.SerialNumber, IssuerHash: r.HashAlgorithm,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(OCSPValidity)}
	rev, err := a.Store.GetRevocation(ctx, name, key.serial)
	switch {
	case fault.KindOf(err) == fault.NotFound:
	case err != nil:
		return nil, err
	case !rev.RevokedAt.After(now):
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, rev.RevokedAt, rev.Reason
	}
	signer, err := a.signer(l)
	if err != nil {
		return nil, err
	}
	out, err := ocsp.CreateResponse(l.cert, l.cert, tmpl, signer)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "sign the OCSP response")
	}
	fresh := now.Add(OCSPValidity / 4)
	if rev != nil && rev.RevokedAt.After(now) && rev.RevokedAt.Before(fresh) {
		fresh = rev.RevokedAt // good until a pending revocation takes effect
	}
	if a.ocspCount.Add(1) > maxOCSPCache {
		a.ocspCache.Clear()
		a.ocspCount.Store(1)
	}
	a.ocspCache.Store(key, &ocspAnswer{version: v, fresh: fresh, der: out})
	return out, nil
}

type ocspKey struct {
	ca, serial string
	hash       crypto.Hash
}

// ocspAnswer is a signed OCSP answer, served again while the CA's
// revocations are unchanged and it is fresh.
type ocspAnswer struct {
	version uint64
	fresh   time.Time
	der     []byte
}

// issuerMatches checks the request's issuer name and key hashes against
// the CA's.
func issuerMatches(r *ocsp.Request, ca *x509.Certificate) bool {
	h := r.HashAlgorithm
	if h == 0 || !h.Available() {
		h = crypto.SHA1
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(ca.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	nh, kh := h.New(), h.New()
	if h == crypto.SHA1 {
		nh, kh = sha1.New(), sha1.New()
	}
	nh.Write(ca.RawSubject)
	kh.Write(spki.PublicKey.RightAlign())
	return bytes.Equal(nh.Sum(nil), r.IssuerNameHash) && bytes.Equal(kh.Sum(nil), r.IssuerKeyHash)
}
