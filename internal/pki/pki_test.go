package pki

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestEnsureDevPresentsItsChain: the development server certificate file
// holds the leaf and the CA (clients pin the CA by fingerprint), also when
// an older file held only the leaf.
func TestEnsureDevPresentsItsChain(t *testing.T) {
	dir, now := t.TempDir(), time.Now()
	d, err := EnsureDev(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := LoadCertificates(d.CertFile)
	if err != nil || len(chain) != 2 || chain[1].Subject.CommonName != "Zerotouch development CA" || chain[0].CheckSignatureFrom(chain[1]) != nil {
		t.Fatalf("server.pem: %d certificates, %v", len(chain), err)
	}
	// An older layout: the leaf alone. Reuse adds the CA and keeps both.
	if err := os.WriteFile(d.CertFile, CertPEM(chain[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDev(dir, now); err != nil {
		t.Fatal(err)
	}
	again, err := LoadCertificates(filepath.Join(dir, "server.pem"))
	if err != nil || len(again) != 2 || !again[0].Equal(chain[0]) || !again[1].Equal(chain[1]) {
		t.Fatalf("after reuse: %d certificates, %v", len(again), err)
	}
}
