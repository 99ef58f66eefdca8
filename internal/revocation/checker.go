package revocation

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Defaults of the Checker's timing.
const (
	// DefaultRefresh is how often a fetched CRL is fetched again, at
	// most (sooner when its nextUpdate comes first).
	DefaultRefresh = time.Hour
	// DefaultFetchTimeout bounds one fetch of a CRL or OCSP answer.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultPoll is how often the store's version is read.
	DefaultPoll = time.Second
	// DefaultSettle is how long after a new CRL the disabling pass runs
	// a second time, for registrations that were in flight on other
	// replicas when they loaded it.
	DefaultSettle = 2 * time.Minute
	// failBackoff is how long a failed fetch (CRL or OCSP) is not tried
	// again by registrations; the refresher retries at its own pace.
	failBackoff = 30 * time.Second
	// unknownRetry is the RetryAfter of a REVOCATION_UNKNOWN refusal.
	unknownRetry = time.Minute
	// maxOCSPCache bounds the cached OCSP answers (it starts over when
	// full).
	maxOCSPCache = 10_000
)

// Checker checks certificates' revocation at registration and keeps the
// CRLs current. The zero value is not usable: set Store; Run refreshes in
// the background until its context ends, Close waits for the passes it
// started. It is safe for concurrent use.
type Checker struct {
	Store Store
	// Client fetches CRLs and asks OCSP responders; its Timeout bounds
	// each call (NewClient(DefaultFetchTimeout, false) when nil: no
	// private addresses, few redirects).
	Client *http.Client
	// Refresh is how often a fetched CRL is fetched again at most
	// (DefaultRefresh when 0).
	Refresh time.Duration
	// Poll is how often Run reads the store's version (DefaultPoll).
	Poll time.Duration
	// Settle is how long after a new CRL its disabling pass runs again
	// (DefaultSettle).
	Settle time.Duration
	Now    func() time.Time
	Log    *slog.Logger
	// Revoked, if set, receives the certificates that a CRL newly
	// revokes (those the CRL it replaced did not list, or all of a new
	// source's), from a background goroutine: it disables the
	// registrations that hold them.
	Revoked func(ctx context.Context, refs []registry.CertRef) error

	once sync.Once
	bg   context.Context
	// refreshing: a RefreshDue started by Run is in flight.
	refreshing atomic.Bool
	stop       context.CancelFunc
	passes     sync.WaitGroup
	closed     bool // under mu: no pass starts once Close began
	// passing holds the CRLs (passKey) whose disabling pass runs on this
	// replica; retryAt when one whose pass failed is tried again.
	passing map[string]bool
	retryAt map[string]time.Time

	mu       sync.Mutex
	version  uint64
	loaded   bool
	crls     map[string]*entry   // by Stored.ID
	byIssuer map[string][]*entry // uploaded CRLs by issuer ID
	failed   map[string]time.Time
	flights  map[string]*flight
	ocsp     map[string]*x509att.OCSPAnswer
}

// entry is a stored CRL checked and parsed.
type entry struct {
	stored   *Stored
	issuer   *x509.Certificate
	issuerID string
	crl      *x509att.CRL
	// checked is when this replica last fetched it (fetched CRLs).
	checked time.Time
	// unstored marks a fetched CRL that could not be stored: in use on
	// this replica, stored (and its disabling pass run) by the next fetch.
	unstored bool
}

func (c *Checker) init() {
	c.once.Do(func() {
		c.bg, c.stop = context.WithCancel(context.Background())
		c.crls, c.byIssuer, c.failed, c.flights, c.ocsp = map[string]*entry{}, map[string][]*entry{}, map[string]time.Time{}, map[string]*flight{}, map[string]*x509att.OCSPAnswer{}
		c.passing, c.retryAt = map[string]bool{}, map[string]time.Time{}
		if c.Client == nil {
			c.Client = NewClient(DefaultFetchTimeout, false)
		}
		if c.Log == nil {
			c.Log = slog.New(slog.DiscardHandler)
		}
	})
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close stops the disabling passes still waiting to run again and waits
// for the running ones to end.
func (c *Checker) Close() {
	c.init()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.passes.Wait()
}

// IssuerID identifies a CA certificate by subject and key, so that a CA
// certificate issued again with the same name and key is the same issuer.
func IssuerID(ca *x509.Certificate) string {
	h := sha256.New()
	h.Write(ca.RawSubject)
	h.Write(ca.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(h.Sum(nil))
}

// cdpID is the Stored.ID of the CRL at url for certificates of issuer.
func cdpID(url, issuerID string) string {
	sum := sha256.Sum256([]byte(url + "\x00" + issuerID))
	return "cdp:" + hex.EncodeToString(sum[:16])
}

// uploadID is the Stored.ID of a CA's uploaded CRL.
func uploadID(ca string) string { return "ca:" + ca }

// Refs names the certificates of a verified path (leaf first, anchor
// last) below its anchor: each by the IssuerID of the certificate above
// it in the path (its verified issuer: subject and key, not the name
// alone) and its serial. It is what a registration records
// (registry.Credential.X509Chain), and what a CRL's newly listed serials
// are matched against, keyed by the IssuerID of the CRL's verified
// signer: a CRL signed by another CA with the same name matches nothing.
func Refs(path []*x509.Certificate) []registry.CertRef {
	if len(path) < 2 {
		return nil
	}
	out := make([]registry.CertRef, 0, len(path)-1)
	for i, c := range path[:len(path)-1] {
		out = append(out, registry.CertRef{Issuer: IssuerID(path[i+1]), Serial: x509att.SerialHex(c.SerialNumber)})
	}
	return out
}

// Check checks every certificate of a verified path (leaf first, anchor
// last) but the anchor, under an X.509 group's policy: each against the
// CRL uploaded for its issuer, the CRLs at its distribution points
// (fetched now if not held or stale), and with OCSP its responder. A
// certificate any of them lists as revoked is CERTIFICATE_REVOKED. One
// with sources but no current answer from any is REVOCATION_UNKNOWN under
// required checking (best effort logs it and admits the device); one
// with no source at all passes.
func (c *Checker) Check(ctx context.Context, path []*x509.Certificate, p enrollment.RevocationPolicy) error {
	check := p.EffectiveCheck()
	if check == enrollment.RevocationOff || len(path) < 2 {
		return nil
	}
	c.init()
	if err := c.ensureLoaded(ctx); err != nil {
		return err
	}
	// Every certificate is checked before an unknown one refuses the
	// path: a revoked certificate anywhere in it is CERTIFICATE_REVOKED.
	var unknownErr error
	for i := 0; i < len(path)-1; i++ {
		cert, issuer := path[i], path[i+1]
		st, why := c.status(ctx, cert, issuer, p.OCSP)
		switch {
		case st == revoked:
			return fault.New(fault.Unauthenticated, fault.CertificateRevoked, "certificate %q (serial %s) is revoked: %s", cert.Subject.String(), x509att.SerialHex(cert.SerialNumber), why)
		case st == unknown && check == enrollment.RevocationRequired:
			if unknownErr == nil {
				err := fault.New(fault.Unavailable, fault.RevocationUnknown, "the revocation status of certificate %q (serial %s) is unknown: %s", cert.Subject.String(), x509att.SerialHex(cert.SerialNumber), why)
				err.RetryAfter = unknownRetry
				unknownErr = err
			}
		case st == unknown:
			c.Log.Warn("revocation status unknown; admitted (the group's revocation check is best_effort)", "subject", cert.Subject.String(),
				"serial", x509att.SerialHex(cert.SerialNumber), "why", why)
		}
	}
	return unknownErr
}

// RevokedRefs reports whether a CRL held in memory lists one of the
// certificates a registration recorded (registry.Credential.X509Chain,
// as Refs names them), matching the CRL's verified signer (IssuerID) and
// the serial, and which. It fetches nothing: renewal with a certificate
// Zerotouch issued uses it to recheck the device's birth chain.
func (c *Checker) RevokedRefs(ctx context.Context, refs []registry.CertRef) (registry.CertRef, bool, error) {
	if len(refs) == 0 {
		return registry.CertRef{}, false, nil
	}
	c.init()
	if err := c.ensureLoaded(ctx); err != nil {
		return registry.CertRef{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range refs {
		for _, e := range c.crls {
			if e.issuerID == r.Issuer && e.crl.Has(r.Serial) {
				return r, true, nil
			}
		}
	}
	return registry.CertRef{}, false, nil
}

type state int

const (
	good state = iota
	revoked
	unknown
)

// status is one certificate's revocation state, and why.
func (c *Checker) status(ctx context.Context, cert, issuer *x509.Certificate, withOCSP bool) (state, string) {
	now := c.now()
	issuerID := IssuerID(issuer)
	sources, known := 0, false
	var why []string
	consult := func(e *entry, what string) (listed bool) {
		if !e.crl.Covers(cert) {
			return false
		}
		sources++
		if en, ok := e.crl.Lookup(cert.SerialNumber); ok {
			why = append(why, what+" lists it (revoked "+en.At.UTC().Format(time.RFC3339)+")")
			return true
		}
		if e.crl.Fresh(now) {
			known = true
		} else {
			why = append(why, what+" is stale (nextUpdate "+e.crl.NextUpdate.UTC().Format(time.RFC3339)+")")
		}
		return false
	}
	c.mu.Lock()
	uploaded := c.byIssuer[issuerID]
	c.mu.Unlock()
	for _, e := range uploaded {
		if consult(e, "the CRL uploaded for CA "+e.stored.CA) {
			return revoked, strings.Join(why, "; ")
		}
	}
	for _, u := range cert.CRLDistributionPoints {
		if !fetchable(u) {
			continue
		}
		e, err := c.fetched(ctx, u, cert, issuer, issuerID)
		if e == nil {
			sources++
			why = append(why, "the CRL at "+u+" is unavailable: "+err.Error())
			continue
		}
		if !e.crl.CoversPoint(cert, u) {
			// The CRL held for the point speaks for other certificates:
			// a source without an answer, not the absence of one.
			sources++
			why = append(why, "the CRL at "+u+" does not cover it")
			continue
		}
		if consult(e, "the CRL at "+u) {
			return revoked, strings.Join(why, "; ")
		}
	}
	if withOCSP {
		for _, u := range cert.OCSPServer {
			if !fetchable(u) {
				continue
			}
			sources++
			a, err := c.askOCSP(ctx, u, cert, issuer, issuerID)
			switch {
			case err != nil:
				why = append(why, "the OCSP responder "+u+" did not answer: "+err.Error())
			case a.Revoked:
				return revoked, "the OCSP responder " + u + " says it is revoked"
			default:
				known = true
			}
			break // the first responder only
		}
	}
	if sources == 0 || known {
		return good, ""
	}
	return unknown, strings.Join(why, "; ")
}

// fetchable reports whether a URL is one this package fetches.
func fetchable(u string) bool {
	scheme, _, ok := strings.Cut(u, "://")
	return ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"))
}
