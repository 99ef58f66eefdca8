package x509_test

import (
	cx509 "crypto/x509"
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
