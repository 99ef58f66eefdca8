package revocation_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/revocation"
)

// Regression tests of the fourth review of ADR 23.

// scopedCRL is a CRL with an issuing distribution point extension:
// onlyCAs (an ARL), or a partition naming dps.
func scopedCRL(t *testing.T, ca *pki.Issued, number int64, onlyCAs bool, dps []string, serials ...*big.Int) []byte {
	t.Helper()
	// IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0]
	// DistributionPointName OPTIONAL, ..., onlyContainsCACerts [2]
	// BOOLEAN DEFAULT FALSE, ... }; DistributionPointName ::= CHOICE {
	// fullName [0] GeneralNames, ... }.
	var body []byte
	if len(dps) > 0 {
		var names []byte
		for _, u := range dps {
			b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)})
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, b...)
		}
		full, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: names})
		dp, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: full})
		body = append(body, dp...)
	}
	if onlyCAs {
		b, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte{0xff}})
		body = append(body, b...)
	}
	val, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: val}}}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// H1: a CRL's serials go to the disabling pass under the IssuerID of the
// CA whose signature verified, which is what registrations record: a CA
// with the same name and another key matches none of them.
func TestDisablingKeyedByVerifiedIssuer(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	rootA, rootB := newCA(t, "Device CA", nil), newCA(t, "Device CA", nil)
	victim := device(t, "victim-1", rootA, nil, nil)
	h := &hook{}
	c := newChecker(t, newStore(t), h)
	if _, err := c.Upload(ctx, "vendor-b", rootB.Cert, signCRL(t, rootB, 1, now, now.Add(time.Hour), victim.Cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	want := registry.CertRef{Issuer: revocation.IssuerID(rootB.Cert), Serial: victim.Cert.SerialNumber.Text(16)}
	h.wait(t, want)
	if ref := revocation.Refs([]*x509.Certificate{victim.Cert, rootA.Cert})[0]; h.has(ref) || ref == want {
		t.Fatalf("vendor B's CRL reached vendor A's device: %+v", ref)
	}
	if err := c.Check(ctx, []*x509.Certificate{victim.Cert, rootA.Cert}, required); err != nil {
		t.Fatalf("vendor A's device: %v", err)
	}
}

// H2: a CRL served at a distribution point that does not cover the
// certificate naming it (an ARL, another partition) is neither a "no
// source" pass under REQUIRED nor stored; a partition that names the
// point is used.
func TestNonCoveringCRLRefused(t *testing.T) {
	ctx := t.Context()
	root := newCA(t, "Acme Root", nil)
	store := newStore(t)
	c := newChecker(t, store, nil)
	arl := serveCRL(t, nil)
	arlDev := device(t, "arl-1", root, []string{arl.URL + "/root.crl"}, nil)
	arl.set(scopedCRL(t, root, 1000, true, nil, arlDev.Cert.SerialNumber))
	if err := c.Check(ctx, []*x509.Certificate{arlDev.Cert, root.Cert}, required); reasonOf(err) != fault.RevocationUnknown {
		t.Fatalf("an ARL at the leaf's point: %v", err)
	}
	part := serveCRL(t, nil)
	partDev := device(t, "part-1", root, []string{part.URL + "/p1.crl"}, nil)
	part.set(scopedCRL(t, root, 7, false, []string{part.URL + "/p2.crl"}))
	if err := c.Check(ctx, []*x509.Certificate{partDev.Cert, root.Cert}, required); reasonOf(err) != fault.RevocationUnknown {
		t.Fatalf("another partition at the leaf's point: %v", err)
	}
	if list, err := store.ListCRLs(ctx); err != nil || len(list) != 0 {
		t.Fatalf("non-covering CRLs stored: %d, %v", len(list), err)
	}
	own := serveCRL(t, nil)
	ownDev := device(t, "own-1", root, []string{own.URL + "/p1.crl"}, nil)
	own.set(scopedCRL(t, root, 7, false, []string{own.URL + "/p1.crl"}, ownDev.Cert.SerialNumber))
	if err := c.Check(ctx, []*x509.Certificate{ownDev.Cert, root.Cert}, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("the leaf's own partition lists it: %v", err)
	}
}

// H2: once a full CRL is held for a point, an ARL served there later
// (even with a higher number) does not replace it on refresh.
func TestRefreshKeepsCoveringCRL(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	clock := now
	root := newCA(t, "Acme Root", nil)
	srv := serveCRL(t, nil)
	bad := device(t, "bad-1", root, []string{srv.URL}, nil)
	srv.set(signCRL(t, root, 5, now, now.Add(2*time.Hour), bad.Cert.SerialNumber))
	c := newChecker(t, newStore(t), nil)
	c.Refresh = time.Minute
	c.Now = func() time.Time { return clock }
	path := []*x509.Certificate{bad.Cert, root.Cert}
	if err := c.Check(ctx, path, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("listed: %v", err)
	}
	srv.set(scopedCRL(t, root, 1000, true, nil))
	clock = clock.Add(2 * time.Minute)
	c.RefreshDue(ctx)
	if err := c.Check(ctx, path, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("after an ARL was served: %v", err)
	}
}

// failingHook fails the disabling pass while fail is set.
type failingHook struct {
	hook
	fail   atomic.Bool
	failed atomic.Int32 // passes refused
}

func (h *failingHook) revoked(ctx context.Context, refs []registry.CertRef) error {
	if h.fail.Load() {
		h.failed.Add(1)
		return errors.New("injected")
	}
	return h.hook.revoked(ctx, refs)
}

// H3: a disabling pass that failed leaves the CRL's mark behind, and any
// replica that holds the CRL runs the pass again (over all its serials)
// and marks it done.
func TestDisablingPassResumed(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	bad := device(t, "bad-1", root, nil, nil)
	store := newStore(t)
	fh := &failingHook{}
	fh.fail.Store(true)
	a := newChecker(t, store, nil)
	a.Revoked = fh.revoked
	if _, err := a.Upload(ctx, "acme-root", root.Cert, signCRL(t, root, 1, now, now.Add(time.Hour), bad.Cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); fh.failed.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the disabling pass never ran")
		}
	}
	a.Close() // the failed pass has returned: nothing more marks the CRL
	st, err := store.GetCRL(ctx, "ca:acme-root")
	if err != nil || st.Disabled != "" {
		t.Fatalf("marked after a failed pass: %q, %v", st.Disabled, err)
	}
	h := &hook{}
	b := newChecker(t, store, h)
	b.Settle, b.Poll = 10*time.Millisecond, 10*time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go b.Run(runCtx)
	h.wait(t, revocation.Refs([]*x509.Certificate{bad.Cert, root.Cert})[0])
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := store.GetCRL(ctx, "ca:acme-root")
		if err == nil && st.Disabled == revocation.Digest(st.DER) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resumed pass did not mark the CRL: %+v, %v", st, err)
		}
	}
}

// M4: a fetched CRL that could not be stored is stored (and its pass run)
// by the next refresh, although the point serves the same bytes.
func TestUnstoredCRLStoredLater(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	clock := now
	root := newCA(t, "Acme Root", nil)
	inner := newStore(t)
	fs := &flakyStore{Store: inner}
	h := &hook{}
	c := newChecker(t, fs, h)
	c.Now = func() time.Time { return clock }
	c.Refresh = time.Minute
	srv := serveCRL(t, signCRL(t, root, 1, now, now.Add(24*time.Hour)))
	victim := device(t, "victim-1", root, []string{srv.URL + "/root.crl"}, nil)
	path := []*x509.Certificate{victim.Cert, root.Cert}
	if err := c.Check(ctx, path, required); err != nil {
		t.Fatal(err)
	}
	srv.set(signCRL(t, root, 2, now, now.Add(24*time.Hour), victim.Cert.SerialNumber))
	fs.fail.Store(true)
	clock = clock.Add(2 * time.Minute)
	c.RefreshDue(ctx)
	if err := c.Check(ctx, path, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("the unstored CRL is used here: %v", err)
	}
	fs.fail.Store(false)
	clock = clock.Add(2 * time.Minute)
	c.RefreshDue(ctx)
	list, err := inner.ListCRLs(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("stored: %d, %v", len(list), err)
	}
	if cur, err := x509.ParseRevocationList(list[0].DER); err != nil || cur.Number.Int64() != 2 {
		t.Fatalf("stored CRL: %v, %v", cur.Number, err)
	}
	h.wait(t, revocation.Refs(path)[0])
}

// flakyStore fails PutCRL while fail is set.
type flakyStore struct {
	revocation.Store
	fail atomic.Bool
}

func (s *flakyStore) PutCRL(ctx context.Context, c *revocation.Stored) (string, error) {
	if s.fail.Load() {
		return "", fault.New(fault.Unavailable, fault.StoreUnavailable, "injected")
	}
	return s.Store.PutCRL(ctx, c)
}

// M7: the default client reaches no private address, and follows few
// redirects.
func TestFetchClientLimits(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	internal := serveCRL(t, signCRL(t, root, 1, now, now.Add(time.Hour)))
	c := newChecker(t, newStore(t), nil)
	c.Client = revocation.NewClient(time.Second, false)
	d := device(t, "d-1", root, []string{internal.URL + "/root.crl"}, nil)
	if err := c.Check(ctx, []*x509.Certificate{d.Cert, root.Cert}, required); reasonOf(err) != fault.RevocationUnknown || internal.hits.Load() != 0 {
		t.Fatalf("a loopback point: %v, %d hits", err, internal.hits.Load())
	}

	var hops atomic.Int32
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("/hop/", func(w http.ResponseWriter, r *http.Request) {
		hops.Add(1)
		http.Redirect(w, r, srv.URL+r.URL.Path+"x", http.StatusFound)
	})
	mux.HandleFunc("/file/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cl := revocation.NewClient(time.Second, true)
	if _, err := cl.Get(srv.URL + "/hop/"); err == nil || hops.Load() != revocation.MaxRedirects+1 {
		t.Fatalf("endless redirects: %v after %d hops", err, hops.Load())
	}
	if _, err := cl.Get(srv.URL + "/file/"); err == nil {
		t.Fatal("a redirect to file: was followed")
	}
	if resp, err := cl.Get(internal.URL + "/root.crl"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed private network: %v", err)
	} else {
		resp.Body.Close()
	}
}

// L3: a revoked certificate higher in the path is CERTIFICATE_REVOKED
// even when the leaf's status is unknown.
func TestRevokedBeatsUnknown(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	inter := newCA(t, "Acme Issuing", root)
	down := serveCRL(t, nil) // the leaf's point answers 404
	leaf := device(t, "leaf-1", inter, []string{down.URL + "/inter.crl"}, nil)
	c := newChecker(t, newStore(t), nil)
	if _, err := c.Upload(ctx, "acme-root", root.Cert, signCRL(t, root, 1, now, now.Add(time.Hour), inter.Cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, []*x509.Certificate{leaf.Cert, inter.Cert, root.Cert}, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("revoked intermediate, unknown leaf: %v", err)
	}
}

// L4: a distribution point's scheme is case-insensitive.
func TestSchemeCaseInsensitive(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	srv := serveCRL(t, nil)
	d := device(t, "d-1", root, []string{"HTTP://" + srv.Listener.Addr().String() + "/root.crl"}, nil)
	srv.set(signCRL(t, root, 1, now, now.Add(time.Hour), d.Cert.SerialNumber))
	c := newChecker(t, newStore(t), nil)
	if err := c.Check(ctx, []*x509.Certificate{d.Cert, root.Cert}, required); reasonOf(err) != fault.CertificateRevoked {
		t.Fatalf("HTTP:// point: %v", err)
	}
}

// TestSlowPointsDoNotHoldUpReloads (review R5): while distribution points
// hang, the replica still loads a CRL another replica stored. The points
// answer once, then hang until the test ends; a refresh inside the loop
// would keep the revoked device admitted until then.
func TestSlowPointsDoNotHoldUpReloads(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	root := newCA(t, "Acme Root", nil)
	store := newStore(t)
	a := newChecker(t, store, nil)
	a.Client = &http.Client{Timeout: time.Minute}
	a.Poll, a.Refresh = 10*time.Millisecond, 20*time.Millisecond
	b := newChecker(t, store, nil)
	good := signCRL(t, root, 1, now, now.Add(24*time.Hour))
	release := make(chan struct{})
	var answered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answered.Add(1) > 4 {
			select { // hang: the refresh's fetches
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Write(good)
	}))
	defer srv.Close()
	defer close(release)
	for i := range 4 {
		d := device(t, fmt.Sprintf("d-%d", i), root, []string{fmt.Sprintf("%s/p%d.crl", srv.URL, i)}, nil)
		if err := a.Check(ctx, []*x509.Certificate{d.Cert, root.Cert}, required); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); answered.Load() <= 4; time.Sleep(5 * time.Millisecond) { // a refresh is under way, and hangs
		if time.Now().After(deadline) {
			t.Fatal("no refresh reached the distribution points")
		}
	}

	bad := device(t, "bad-1", root, nil, nil)
	if _, err := b.Upload(ctx, "acme-root", root.Cert, signCRL(t, root, 2, now, now.Add(time.Hour), bad.Cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := a.Check(ctx, []*x509.Certificate{bad.Cert, root.Cert}, required)
		if fault.ReasonOf(err) == fault.CertificateRevoked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CRL stored by the other replica was not loaded while distribution points hang: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
