package x509_test

import (
	cx509 "crypto/x509"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
)

func mustIssue(t testing.TB, tmpl *cx509.Certificate, parent *pki.Issued) *pki.Issued {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	out, err := pki.Issue(tmpl, key, parent)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPathCache: a cached path answers only when full verification would
// have; every change that full verification notices, the cache notices.
func TestPathCache(t *testing.T) {
	now := time.Now()
	root := mustIssue(t, pki.CATemplate("Root", now, 24*time.Hour), nil)
	upper := mustIssue(t, pki.CATemplate("Upper", now, 24*time.Hour), root)
	inter := mustIssue(t, pki.CATemplate("Issuing", now, 30*time.Minute), upper) // expires before its leaves
	device := func(cn string) []*cx509.Certificate {
		d := mustIssue(t, pki.LeafTemplate(cn, now, time.Hour), inter)
		return []*cx509.Certificate{d.Cert, inter.Cert}
	}
	anchors := []*cx509.Certificate{root.Cert}
	uploaded := []*cx509.Certificate{upper.Cert} // the device presents only its issuer

	pc := x509att.NewPathCache(100)
	for i, cn := range []string{"dev-1", "dev-2", "dev-3"} {
		path, err := pc.Verify(device(cn), 2, uploaded, anchors, now)
		if err != nil {
			t.Fatalf("%s: %v", cn, err)
		}
		if len(path) != 4 || path[1] != inter.Cert && !path[1].Equal(inter.Cert) || !path[3].Equal(root.Cert) {
			t.Fatalf("%s: path %v", cn, path)
		}
		if got := pc.Hits(); got != int64(i) {
			t.Fatalf("after %s: %d hits, want %d", cn, got, i)
		}
	}

	refused := func(name string, chain []*cx509.Certificate, extra, anchors []*cx509.Certificate, at time.Time, want fault.Reason) {
		t.Helper()
		hits := pc.Hits()
		if _, err := pc.Verify(chain, len(chain), extra, anchors, at); fault.ReasonOf(err) != want {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
		if pc.Hits() != hits {
			t.Errorf("%s: the cache answered", name)
		}
	}
	other := mustIssue(t, pki.CATemplate("Other root", now, 24*time.Hour), nil)
	refused("anchor removed", device("dev-4"), uploaded, []*cx509.Certificate{other.Cert}, now, fault.CertificateUntrusted)
	refused("uploaded intermediate removed", device("dev-5"), nil, anchors, now, fault.CertificateUntrusted)
	refused("issuing CA expired", device("dev-6"), uploaded, anchors, now.Add(45*time.Minute), fault.CertificateExpired)

	// A leaf that names the cached issuer but was signed by another key.
	impostor := mustIssue(t, &cx509.Certificate{Subject: inter.Cert.Subject, IsCA: true, BasicConstraintsValid: true,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: cx509.KeyUsageCertSign}, nil)
	forged := mustIssue(t, pki.LeafTemplate("dev-7", now, time.Hour), impostor)
	refused("leaf not signed by the issuer", []*cx509.Certificate{forged.Cert, inter.Cert}, uploaded, anchors, now, fault.CertificateUntrusted)

	// Key usages still apply to the leaf.
	serverOnly := pki.LeafTemplate("dev-8", now, time.Hour)
	serverOnly.ExtKeyUsage = []cx509.ExtKeyUsage{cx509.ExtKeyUsageServerAuth}
	leaf := mustIssue(t, serverOnly, inter)
	refused("leaf not for client auth", []*cx509.Certificate{leaf.Cert, inter.Cert}, uploaded, anchors, now, fault.CertificateUsage)

	// The cache still answers for good devices after all that.
	if _, err := pc.Verify(device("dev-9"), 2, uploaded, anchors, now); err != nil {
		t.Fatal(err)
	}
	if pc.Hits() != 3 {
		t.Errorf("%d hits, want 3", pc.Hits())
	}
}

// TestPathCacheSkipsConstrainedAncestors: a name constraint above the
// issuer is not re-applied by a leaf-to-issuer check, so such paths are
// never cached.
func TestPathCacheSkipsConstrainedAncestors(t *testing.T) {
	now := time.Now()
	rt := pki.CATemplate("Constrained root", now, 24*time.Hour)
	rt.PermittedDNSDomains = []string{"devices.example.com"}
	root := mustIssue(t, rt, nil)
	inter := mustIssue(t, pki.CATemplate("Issuing", now, 24*time.Hour), root)
	leaf := func(cn, dns string) []*cx509.Certificate {
		tmpl := pki.LeafTemplate(cn, now, time.Hour)
		tmpl.DNSNames = []string{dns}
		return []*cx509.Certificate{mustIssue(t, tmpl, inter).Cert, inter.Cert}
	}
	pc := x509att.NewPathCache(100)
	if _, err := pc.Verify(leaf("ok", "a.devices.example.com"), 2, nil, []*cx509.Certificate{root.Cert}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Verify(leaf("outside", "evil.example.net"), 2, nil, []*cx509.Certificate{root.Cert}, now); err == nil {
		t.Fatal("a leaf outside the root's name constraints verified")
	}
	if pc.Hits() != 0 {
		t.Errorf("%d hits on a constrained path", pc.Hits())
	}
}

func BenchmarkVerifyChainCached(b *testing.B) {
	now := time.Now()
	root, _ := pki.NewCA("Root", nil, now, time.Hour)
	inter, _ := pki.NewCA("Inter", root, now, time.Hour)
	dev, _ := pki.NewDevice("dev", inter, now, time.Hour)
	chain := []*cx509.Certificate{dev.Cert, inter.Cert}
	anchors := []*cx509.Certificate{root.Cert}
	pc := x509att.NewPathCache(100)
	for b.Loop() {
		if _, err := pc.Verify(chain, 2, nil, anchors, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPathCacheNeverWidens drives the cache with random devices, anchor
// sets, uploaded intermediates and clocks, and checks each answer against
// full verification: the cache may only ever agree.
func TestPathCacheNeverWidens(t *testing.T) {
	now := time.Now()
	rootA := mustIssue(t, pki.CATemplate("Root A", now, 48*time.Hour), nil)
	rootB := mustIssue(t, pki.CATemplate("Root B", now, 48*time.Hour), nil)
	ct := pki.CATemplate("Root C (constrained)", now, 48*time.Hour)
	ct.PermittedDNSDomains = []string{"ok.example.com"}
	rootC := mustIssue(t, ct, nil)
	upper := mustIssue(t, pki.CATemplate("Upper", now, 48*time.Hour), rootA)
	short := pki.CATemplate("Short-lived issuing", now, 3*time.Hour)
	pathLen0 := pki.CATemplate("Issuing, path length 0", now, 48*time.Hour)
	pathLen0.MaxPathLen, pathLen0.MaxPathLenZero = 0, true
	issuers := []*pki.Issued{
		mustIssue(t, pki.CATemplate("Issuing A", now, 48*time.Hour), rootA),
		mustIssue(t, short, rootA),
		mustIssue(t, pki.CATemplate("Issuing under Upper", now, 48*time.Hour), upper),
		mustIssue(t, pki.CATemplate("Issuing B", now, 48*time.Hour), rootB),
		mustIssue(t, pki.CATemplate("Issuing C", now, 48*time.Hour), rootC),
		mustIssue(t, pathLen0, rootA),
	}
	roots := []*cx509.Certificate{rootA.Cert, rootB.Cert, rootC.Cert}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(all []*cx509.Certificate) []*cx509.Certificate {
		var out []*cx509.Certificate
		for _, c := range all {
			if rng.IntN(3) > 0 {
				out = append(out, c)
			}
		}
		return out
	}
	pc := x509att.NewPathCache(4) // small, so it also starts over
	agreedOK := 0
	for i := range 400 {
		iss := issuers[rng.IntN(len(issuers))]
		tmpl := pki.LeafTemplate(fmt.Sprint("dev-", i), now, 2*time.Hour)
		switch rng.IntN(4) {
		case 0:
			tmpl.DNSNames = []string{"a.ok.example.com"}
		case 1:
			tmpl.DNSNames = []string{"a.elsewhere.example.net"}
		case 2:
			tmpl.ExtKeyUsage = []cx509.ExtKeyUsage{cx509.ExtKeyUsageServerAuth}
		}
		leaf := mustIssue(t, tmpl, iss)
		chain := []*cx509.Certificate{leaf.Cert, iss.Cert}
		if rng.IntN(4) == 0 {
			chain = append(chain, upper.Cert) // presented, not uploaded
		}
		extra := pick([]*cx509.Certificate{upper.Cert})
		anchors := pick(roots)
		if len(anchors) == 0 {
			anchors = roots[:1]
		}
		at := now.Add(time.Duration(rng.IntN(5)) * time.Hour) // past some certificates' expiry
		_, full := x509att.Verify(chain, len(chain), extra, anchors, at)
		_, cached := pc.Verify(chain, len(chain), extra, anchors, at)
		if (full == nil) != (cached == nil) {
			t.Fatalf("call %d (%s, %d anchors, %d uploaded, +%s): full verification %v, cached %v",
				i, iss.Cert.Subject.CommonName, len(anchors), len(extra), at.Sub(now), full, cached)
		}
		if full == nil {
			agreedOK++
		}
	}
	if agreedOK == 0 || pc.Hits() == 0 {
		t.Fatalf("%d accepted, %d cache hits: the test exercised nothing", agreedOK, pc.Hits())
	}
	t.Logf("%d of 400 accepted, %d answered by the cache", agreedOK, pc.Hits())
}
