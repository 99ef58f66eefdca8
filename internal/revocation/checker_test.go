package revocation_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/revocation"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// A real store (embedded, on t.TempDir), real certificates and CRLs, and
// HTTP servers the test runs for distribution points and OCSP.

func newStore(t *testing.T) revocation.Store {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "zt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return docs.Revocations{D: s}
}

// hook records what the checker asks to disable.
type hook struct {
	mu   sync.Mutex
	refs []registry.CertRef
}

func (h *hook) revoked(_ context.Context, refs []registry.CertRef) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refs = append(h.refs, refs...)
	return nil
}

func (h *hook) has(ref registry.CertRef) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.refs, ref)
}

func (h *hook) wait(t *testing.T, ref registry.CertRef) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if h.has(ref) {
			return
		}
	}
	t.Fatalf("the disabling hook never got %+v", ref)
}

func newChecker(t *testing.T, store revocation.Store, h *hook) *revocation.Checker {
	c := &revocation.Checker{Store: store, Client: &http.Client{Timeout: 300 * time.Millisecond}, Settle: time.Hour}
	if h != nil {
		c.Revoked = h.revoked
	}
	t.Cleanup(c.Close)
	return c
}

func signCRL(t *testing.T, ca *pki.Issued, number int64, this, next time.Time, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// device mints a leaf under parent naming the distribution points and
// OCSP responders given.
func device(t *testing.T, cn string, parent *pki.Issued, cdp, ocspURLs []string) *pki.Issued {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := pki.LeafTemplate(cn, time.Now(), time.Hour)
	tmpl.CRLDistributionPoints, tmpl.OCSPServer = cdp, ocspURLs
	d, err := pki.Issue(tmpl, key, parent)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newCA(t *testing.T, cn string, parent *pki.Issued) *pki.Issued {
	t.Helper()
	ca, err := pki.NewCA(cn, parent, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// crlServer serves one CRL body that the test changes.
type crlServer struct {
	*httptest.Server
	mu    sync.Mutex
	body  []byte
	delay time.Duration
	hits  atomic.Int32
}

func serveCRL(t *testing.T, body []byte) *crlServer {
	s := &crlServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, delay := s.body, s.delay
		s.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		if body == nil {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *crlServer) set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func reasonOf(err error) fault.Reason { return fault.ReasonOf(err) }

var (
	required   = enrollment.RevocationPolicy{}
	bestEffort = enrollment.RevocationPolicy{Check: enrollment.RevocationBestEffort}
)

func TestUploadedCRL(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	inter := newCA(t, "Acme Issuing", root)
	h := &hook{}
	c := newChecker(t, newStore(t), h)
	good, bad := device(t, "good-1", inter, nil, nil), device(t, "bad-1", inter, nil, nil)
	path := func(d *pki.Issued) []*x509.Certificate { return []*x509.Certificate{d.Cert, inter.Cert, root.Cert} }

	// Nothing uploaded, no distribution point: nothing to check.
	if err := c.Check(ctx, path(bad), required); err != nil {
		t.Fatalf("no source: %v", err)
	}
	// The intermediate's CRL, uploaded (its CA is "acme-issuing").
	info, err := c.Upload(ctx, "acme-issuing", inter.Cert, signCRL(t, inter, 2, now, now.Add(time.Hour), bad.Cert.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	if info.Revoked != 1 || info.Added != 1 || info.Number.Int64() != 2 || info.CA != "acme-issuing" {
		t.Fatalf("upload info %+v", info)
	}
	if err := c.Check(ctx, path(bad), required); reasonOf(err) != fault.CertificateRevoked || fault.KindOf(err) != fault.Unauthenticated {
		t.Fatalf("revoked leaf: %v", err)
	}
	if err := c.Check(ctx, path(bad), bestEffort); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("best effort still refuses a listed certificate: %v", err)
	}
	if err := c.Check(ctx, path(bad), enrollment.RevocationPolicy{Check: enrollment.RevocationOff}); err != nil {
		t.Fatalf("off: %v", err)
	}
	if err := c.Check(ctx, path(good), required); err != nil {
		t.Fatalf("good leaf: %v", err)
	}
	h.wait(t, revocation.Refs(path(bad))[0])

	// Refusals: another CA's CRL, an older one, garbage. The same one
	// again is a no-op.
	if _, err := c.Upload(ctx, "acme-issuing", inter.Cert, signCRL(t, root, 3, now, now.Add(time.Hour))); fault.KindOf(err) != fault.InvalidArgument {
		t.Fatalf("a CRL of another CA: %v", err)
	}
	if _, err := c.Upload(ctx, "acme-issuing", inter.Cert, signCRL(t, inter, 1, now, now.Add(time.Hour))); fault.KindOf(err) != fault.FailedPrecondition {
		t.Fatalf("an older CRL (replay): %v", err)
	}
	// A newer CRL that no longer lists it (certificateHold lifted) takes
	// over: the device is no longer refused.
	if _, err := c.Upload(ctx, "acme-issuing", inter.Cert, signCRL(t, inter, 3, now, now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, path(bad), required); err != nil {
		t.Fatalf("after a newer CRL without it: %v", err)
	}

	// The root's CRL revokes the intermediate: every device under it is
	// refused.
	if _, err := c.Upload(ctx, "acme-root", root.Cert, signCRL(t, root, 1, now, now.Add(time.Hour), inter.Cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, path(good), required); reasonOf(err) != fault.CertificateRevoked || !strings.Contains(err.Error(), "Acme Issuing") {
		t.Fatalf("revoked intermediate: %v", err)
	}
	h.wait(t, revocation.Refs(path(good))[1])

	// A stale uploaded CRL: unknown, unless best effort.
	if err := c.DeleteUploaded(ctx, "acme-root"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, "acme-issuing", inter.Cert, signCRL(t, inter, 4, now.Add(-2*time.Hour), now.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, path(good), required); reasonOf(err) != fault.RevocationUnknown || fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("stale CRL, required: %v", err)
	}
	if err := c.Check(ctx, path(good), bestEffort); err != nil {
		t.Fatalf("stale CRL, best effort: %v", err)
	}
}

// TestReplicasShareUploads: a CRL uploaded through one replica is used by
// another once it reloads (Run does every Poll).
func TestReplicasShareUploads(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	bad := device(t, "bad-1", root, nil, nil)
	store := newStore(t)
	a, b := newChecker(t, store, nil), newChecker(t, store, nil)
	b.Poll = 10 * time.Millisecond
	path := []*x509.Certificate{bad.Cert, root.Cert}
	if err := b.Check(ctx, path, required); err != nil { // b has loaded: nothing
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go b.Run(runCtx)
	if _, err := a.Upload(ctx, "acme-root", root.Cert, signCRL(t, root, 1, now, now.Add(time.Hour), bad.Cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := b.Check(ctx, path, required)
		if reasonOf(err) == fault.CertificateRevoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other replica still answers %v", err)
		}
	}
	if info, err := b.Uploaded(ctx, "acme-root"); err != nil || info.Revoked != 1 {
		t.Fatalf("Uploaded: %+v %v", info, err)
	}
}

func TestDistributionPoints(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	revokedDev := device(t, "revoked-1", root, nil, nil)
	srv := serveCRL(t, signCRL(t, root, 1, now, now.Add(time.Hour), revokedDev.Cert.SerialNumber))
	h := &hook{}
	store := newStore(t)
	c := newChecker(t, store, h)
	path := func(d *pki.Issued) []*x509.Certificate { return []*x509.Certificate{d.Cert, root.Cert} }

	listed := device(t, "listed-1", root, []string{"ldap://ignored.example/cn=crl", srv.URL + "/root.crl"}, nil)
	srv.set(signCRL(t, root, 2, now, now.Add(time.Hour), revokedDev.Cert.SerialNumber, listed.Cert.SerialNumber))
	if err := c.Check(ctx, path(listed), required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("listed at its distribution point: %v", err)
	}
	fine := device(t, "fine-1", root, []string{srv.URL + "/root.crl"}, nil)
	if err := c.Check(ctx, path(fine), required); err != nil {
		t.Fatalf("not listed: %v", err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("the distribution point was fetched %d times, want once (then cached)", n)
	}
	// A new source: all it lists goes to the disabling hook.
	h.wait(t, revocation.Refs(path(listed))[0])
	// It is stored: another replica uses it without fetching.
	other := newChecker(t, store, nil)
	if err := other.Check(ctx, path(listed), required); reasonOf(err) != fault.CertificateRevoked || srv.hits.Load() != 1 {
		t.Fatalf("another replica: %v after %d fetches", err, srv.hits.Load())
	}

	// PEM is accepted too.
	pemSrv := serveCRL(t, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: signCRL(t, root, 1, now, now.Add(time.Hour), revokedDev.Cert.SerialNumber)}))
	pemDev := device(t, "pem-1", root, []string{pemSrv.URL}, nil)
	if err := c.Check(ctx, path(pemDev), required); err != nil {
		t.Fatalf("PEM CRL: %v", err)
	}

	// Unreachable, too slow, too large, wrong signer, stale: unknown.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	slow := serveCRL(t, signCRL(t, root, 1, now, now.Add(time.Hour)))
	slow.delay = time.Second
	huge := serveCRL(t, make([]byte, x509att.MaxCRLBytes+10))
	mallory := newCA(t, "Acme Root", nil) // same name, another key
	forged := serveCRL(t, signCRL(t, mallory, 9, now, now.Add(time.Hour)))
	stale := serveCRL(t, signCRL(t, root, 1, now.Add(-2*time.Hour), now.Add(-time.Hour)))
	for name, url := range map[string]string{"unreachable": deadURL, "slow": slow.URL, "huge": huge.URL, "forged": forged.URL, "stale": stale.URL} {
		d := device(t, name+"-1", root, []string{url}, nil)
		err := c.Check(ctx, path(d), required)
		if reasonOf(err) != fault.RevocationUnknown {
			t.Errorf("%s, required: %v", name, err)
		}
		if err := c.Check(ctx, path(d), bestEffort); err != nil {
			t.Errorf("%s, best effort: %v", name, err)
		}
	}
	// A failed fetch is not retried by every registration.
	before := slow.hits.Load()
	for range 5 {
		_ = c.Check(ctx, path(device(t, "slow-2", root, []string{slow.URL}, nil)), required)
	}
	if slow.hits.Load() != before {
		t.Errorf("a failing distribution point was fetched %d more times within its back-off", slow.hits.Load()-before)
	}
}

// TestRefresh: a distribution point's new CRL is fetched when due, stored,
// used, and what it newly revokes goes to the disabling hook; the CRL it
// replaced stays in use while the point is unreachable, until it is stale.
func TestRefresh(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	clock := now
	var mu sync.Mutex
	root := newCA(t, "Acme Root", nil)
	srv := serveCRL(t, signCRL(t, root, 1, now, now.Add(2*time.Hour)))
	dev := device(t, "dev-1", root, []string{srv.URL}, nil)
	path := []*x509.Certificate{dev.Cert, root.Cert}
	h := &hook{}
	c := newChecker(t, newStore(t), h)
	c.Refresh = time.Hour
	c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	if err := c.Check(ctx, path, required); err != nil {
		t.Fatal(err)
	}
	srv.set(signCRL(t, root, 2, now.Add(time.Minute), now.Add(3*time.Hour), dev.Cert.SerialNumber))
	c.RefreshDue(ctx) // not due yet
	if err := c.Check(ctx, path, required); err != nil || srv.hits.Load() != 1 {
		t.Fatalf("refreshed too early: %v, %d fetches", err, srv.hits.Load())
	}
	advance(61 * time.Minute)
	c.RefreshDue(ctx)
	if err := c.Check(ctx, path, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("after the refresh: %v", err)
	}
	h.wait(t, revocation.Refs(path)[0])

	// Unreachable: the held CRL is used until its nextUpdate.
	other := device(t, "dev-2", root, []string{srv.URL}, nil)
	srv.set(nil)
	advance(61 * time.Minute)
	c.RefreshDue(ctx)
	if err := c.Check(ctx, []*x509.Certificate{other.Cert, root.Cert}, required); err != nil {
		t.Fatalf("held CRL while the point is down: %v", err)
	}
	advance(2 * time.Hour) // past its nextUpdate
	if err := c.Check(ctx, []*x509.Certificate{other.Cert, root.Cert}, required); reasonOf(err) != fault.RevocationUnknown {
		t.Fatalf("stale held CRL, point down: %v", err)
	}
	if err := c.Check(ctx, path, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("a stale CRL that lists the certificate still revokes it: %v", err)
	}
}

func TestOCSP(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	var status atomic.Int32 // an ocsp status; -1: answer 500
	status.Store(ocsp.Good)
	var hits atomic.Int32
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		st := int(status.Load())
		if st < 0 {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		resp, err := ocsp.CreateResponse(root.Cert, root.Cert, ocsp.Response{Status: st, SerialNumber: req.SerialNumber, ThisUpdate: now, NextUpdate: now.Add(time.Hour), RevokedAt: now}, root.Key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(resp)
	}))
	defer responder.Close()
	c := newChecker(t, newStore(t), nil)
	withOCSP := enrollment.RevocationPolicy{OCSP: true}
	d := device(t, "dev-1", root, nil, []string{responder.URL})
	path := []*x509.Certificate{d.Cert, root.Cert}
	if err := c.Check(ctx, path, withOCSP); err != nil {
		t.Fatalf("good: %v", err)
	}
	if err := c.Check(ctx, path, required); err != nil || hits.Load() != 1 {
		t.Fatalf("without OCSP the responder is not asked: %v, %d", err, hits.Load())
	}
	status.Store(ocsp.Revoked)
	r := device(t, "dev-2", root, nil, []string{responder.URL})
	if err := c.Check(ctx, []*x509.Certificate{r.Cert, root.Cert}, withOCSP); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("revoked: %v", err)
	}
	status.Store(ocsp.Unknown)
	u := device(t, "dev-3", root, nil, []string{responder.URL})
	if err := c.Check(ctx, []*x509.Certificate{u.Cert, root.Cert}, withOCSP); reasonOf(err) != fault.RevocationUnknown {
		t.Fatalf("unknown answer, required: %v", err)
	}
	if err := c.Check(ctx, []*x509.Certificate{u.Cert, root.Cert}, enrollment.RevocationPolicy{Check: enrollment.RevocationBestEffort, OCSP: true}); err != nil {
		t.Fatalf("unknown answer, best effort: %v", err)
	}
	// The responder down, but a current CRL at the distribution point:
	// known.
	status.Store(-1)
	srv := serveCRL(t, signCRL(t, root, 1, now, now.Add(time.Hour)))
	both := device(t, "dev-4", root, []string{srv.URL}, []string{responder.URL})
	if err := c.Check(ctx, []*x509.Certificate{both.Cert, root.Cert}, withOCSP); err != nil {
		t.Fatalf("CRL current, responder down: %v", err)
	}
	only := device(t, "dev-5", root, nil, []string{responder.URL})
	if err := c.Check(ctx, []*x509.Certificate{only.Cert, root.Cert}, withOCSP); reasonOf(err) != fault.RevocationUnknown {
		t.Fatalf("responder down, no CRL: %v", err)
	}
}

func TestRefs(t *testing.T) {
	root := newCA(t, "Acme Root", nil)
	inter := newCA(t, "Acme Issuing", root)
	d := device(t, "dev-1", inter, nil, nil)
	refs := revocation.Refs([]*x509.Certificate{d.Cert, inter.Cert, root.Cert})
	want := []registry.CertRef{
		{Issuer: revocation.IssuerID(inter.Cert), Serial: d.Cert.SerialNumber.Text(16)},
		{Issuer: revocation.IssuerID(root.Cert), Serial: inter.Cert.SerialNumber.Text(16)},
	}
	if !slices.Equal(refs, want) {
		t.Fatalf("Refs = %v, want %v", refs, want)
	}
	if revocation.Refs([]*x509.Certificate{root.Cert}) != nil {
		t.Fatal("a lone anchor has no refs")
	}
}
