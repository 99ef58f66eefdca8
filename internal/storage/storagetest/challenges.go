package storagetest

import (
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/internal/fault"
)

func newChallenge(id string) *attestation.Challenge {
	return &attestation.Challenge{ID: id, RegistrationID: "dev-1", Data: []byte{0, 1, 2, 0xff}, Expires: time.Now().Add(5 * time.Minute)}
}

func testChallengeSingleUse(t *testing.T, s Store) {
	ctx := t.Context()
	c := newChallenge("ch-1")
	must(t, s.PutChallenge(ctx, c), "PutChallenge")
	wantKind(t, s.PutChallenge(ctx, newChallenge("ch-1")), fault.AlreadyExists, "PutChallenge(same id)")
	got, err := s.TakeChallenge(ctx, "ch-1", time.Now())
	must(t, err, "TakeChallenge")
	if got.RegistrationID != "dev-1" || string(got.Data) != string(c.Data) || !got.Expires.Equal(c.Expires) {
		t.Fatalf("TakeChallenge = %+v, want %+v", got, c)
	}
	_, err = s.TakeChallenge(ctx, "ch-1", time.Now())
	wantKind(t, err, fault.NotFound, "TakeChallenge again")
	_, err = s.TakeChallenge(ctx, "never", time.Now())
	wantKind(t, err, fault.NotFound, "TakeChallenge(unknown)")

	// Of many concurrent takes, exactly one gets the challenge.
	must(t, s.PutChallenge(ctx, newChallenge("ch-race")), "PutChallenge")
	var mu sync.Mutex
	won := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.TakeChallenge(ctx, "ch-race", time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case fault.KindOf(err) != fault.NotFound:
				t.Errorf("TakeChallenge: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d concurrent takes succeeded, want 1", won)
	}
}

func testChallengeExpiry(t *testing.T, s Store) {
	ctx := t.Context()
	c := newChallenge("ch-old")
	must(t, s.PutChallenge(ctx, c), "PutChallenge")
	// The backend still holds it (its own expiry is later), but the stored
	// expiry decides: a take at or after it is refused, and spends it.
	_, err := s.TakeChallenge(ctx, "ch-old", c.Expires)
	wantKind(t, err, fault.FailedPrecondition, "TakeChallenge(at expiry)")
	if fault.ReasonOf(err) != fault.ChallengeExpired {
		t.Fatalf("reason = %s", fault.ReasonOf(err))
	}
	_, err = s.TakeChallenge(ctx, "ch-old", time.Now())
	wantKind(t, err, fault.NotFound, "TakeChallenge after an expired take")
	c2 := newChallenge("ch-fresh")
	must(t, s.PutChallenge(ctx, c2), "PutChallenge")
	if _, err := s.TakeChallenge(ctx, "ch-fresh", c2.Expires.Add(-time.Nanosecond)); err != nil {
		t.Fatalf("TakeChallenge just before expiry: %v", err)
	}
}
