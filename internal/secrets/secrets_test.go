package secrets_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/zerotouch/zerotouch/internal/secrets"
)

func TestSealOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.key")
	s, err := secrets.LoadOrCreate(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("data key mode %v", st.Mode().Perm())
	}
	sealed, err := s.Seal([]byte("group key"), "grp:a")
	if err != nil {
		t.Fatal(err)
	}
	again, err := secrets.LoadOrCreate(path, true) // the same key, read back
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := again.Open(sealed, "grp:a"); err != nil || string(plain) != "group key" {
		t.Fatalf("Open = %q, %v", plain, err)
	}
	if _, err := again.Open(sealed, "grp:b"); err == nil {
		t.Fatal("opened under another record's identity")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := again.Open(sealed, "grp:a"); err == nil {
		t.Fatal("opened a tampered value")
	}
	other, _ := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "other.key"), true)
	good, _ := s.Seal([]byte("x"), "a")
	if _, err := other.Open(good, "a"); err == nil {
		t.Fatal("opened with another data key")
	}
	if _, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "missing.key"), false); err == nil {
		t.Fatal("a missing key file was accepted without create")
	}
}

func TestDerive(t *testing.T) {
	k1, _ := secrets.New(bytes.Repeat([]byte{1}, 32))
	k1again, _ := secrets.New(bytes.Repeat([]byte{1}, 32))
	k2, _ := secrets.New(bytes.Repeat([]byte{2}, 32))
	a, b := k1.Derive("webhook:https://a"), k1.Derive("webhook:https://b")
	if len(a) != 32 || bytes.Equal(a, b) || !bytes.Equal(a, k1again.Derive("webhook:https://a")) || bytes.Equal(a, k2.Derive("webhook:https://a")) {
		t.Fatal("derived keys must be per purpose, stable per data key, and differ across data keys")
	}
}
