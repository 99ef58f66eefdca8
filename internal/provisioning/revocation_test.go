package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/revocation"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
)

// seenPaths records the paths the registration hands to the checker.
type seenPaths struct {
	RevocationChecker
	mu    sync.Mutex
	paths [][]*x509.Certificate
}

func (s *seenPaths) Check(ctx context.Context, path []*x509.Certificate, p enrollment.RevocationPolicy) error {
	s.mu.Lock()
	s.paths = append(s.paths, path)
	s.mu.Unlock()
	return s.RevocationChecker.Check(ctx, path, p)
}

// TestRevocationThroughThePathCache: revocation is checked on the whole
// path every time, when the path cache answers too (ADR 9, 23): a device
// whose issuing CA's path is cached is refused once a CRL revokes that
// issuing CA, and nothing is written; the registration records its chain
// as CRLs name it.
func TestRevocationThroughThePathCache(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	checker := &revocation.Checker{Store: docs.Revocations{D: f.store}}
	t.Cleanup(checker.Close)
	seen := &seenPaths{RevocationChecker: checker}
	f.s.Revocation = seen
	first := f.device("first-1")
	if _, err := f.s.Register(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Register(ctx, f.device("second-1")); err != nil { // the cached path
		t.Fatal(err)
	}
	for i, p := range seen.paths {
		if len(p) != 3 || !p[1].Equal(f.inter.Cert) || !p[2].Equal(f.root.Cert) {
			t.Fatalf("registration %d checked a path of %d certificates", i, len(p))
		}
	}
	id, err := f.store.GetIdentity(ctx, "first-1")
	if err != nil {
		t.Fatal(err)
	}
	leaf := first.Evidence.(X509Chain).Chain[0]
	if want := revocation.Refs([]*x509.Certificate{leaf, f.inter.Cert, f.root.Cert}); len(id.Credential.X509Chain) != 2 ||
		id.Credential.X509Chain[0] != want[0] || id.Credential.X509Chain[1] != want[1] {
		t.Fatalf("recorded chain %v, want %v", id.Credential.X509Chain, want)
	}

	now := time.Now()
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: f.inter.Cert.SerialNumber, RevocationTime: now}}}, f.root.Cert, f.root.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checker.Upload(ctx, "acme-root", f.root.Cert, crl); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Register(ctx, f.device("third-1"))
	wantReason(t, err, fault.CertificateRevoked)
	f.nothingWritten("third-1")
	// The group switched off checks admits it.
	g, err := f.store.GetGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	g.Revocation = enrollment.RevocationPolicy{Check: enrollment.RevocationOff}
	if _, err := f.store.UpdateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Register(ctx, f.device("third-1")); err != nil {
		t.Fatalf("revocation off: %v", err)
	}
}
