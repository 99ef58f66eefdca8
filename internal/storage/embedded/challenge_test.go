package embedded_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// TestChallengesStayOffDisk: a challenge's secret never reaches the store
// file, and a restart forgets outstanding challenges.
func TestChallengesStayOffDisk(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "zerotouch.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("challenge-secret-7f3a9c1e5b")
	if err := s.PutChallenge(ctx, &attestation.Challenge{ID: "ch-1", RegistrationID: "dev-1", Data: secret, Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	secret[0] = 'X' // the store keeps its own copy
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("hallenge-secret-7f3a9c1e5b")) || bytes.Contains(raw, []byte("ch-1")) {
		t.Fatal("the challenge reached the store file")
	}
	s, err = embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.TakeChallenge(ctx, "ch-1", time.Now()); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("take after restart: %v, want NotFound", err)
	}
}

// TestChallengeBound: outstanding challenges are bounded; expired ones
// make room, live ones do not.
func TestChallengeBound(t *testing.T) {
	ctx := context.Background()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	embedded.SetMaxChallenges(s, 3)
	put := func(id string, expires time.Time) error {
		return s.PutChallenge(ctx, &attestation.Challenge{ID: id, RegistrationID: "dev", Data: []byte{1}, Expires: expires})
	}
	long := time.Now().Add(-2 * time.Minute) // past expiry and grace
	for i := range 2 {
		if err := put(fmt.Sprint("old-", i), long); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // the two stale ones are dropped to make room
		if err := put(fmt.Sprint("live-", i), time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("live-%d: %v", i, err)
		}
	}
	err = put("one-too-many", time.Now().Add(time.Minute))
	if fault.KindOf(err) != fault.ResourceExhausted || fault.ReasonOf(err) != fault.RateLimited {
		t.Fatalf("over the bound: %v, want RESOURCE_EXHAUSTED / RATE_LIMITED", err)
	}
	if _, err := s.TakeChallenge(ctx, "live-0", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := put("now-fits", time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("after a take: %v", err)
	}
}

// TestLegacyChallengeBucketsRemoved: files of earlier builds lose their
// challenge buckets (and the secrets in them) on open.
func TestLegacyChallengeBucketsRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zerotouch.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("challenge"))
		if err != nil {
			return err
		}
		return b.Put([]byte("old"), []byte("old secret"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err = embedded.Open(path); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("challenge")) != nil {
			t.Error("the legacy challenge bucket survived")
		}
		return nil
	})
}
