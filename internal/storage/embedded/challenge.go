package embedded

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// The embedded store keeps challenge records in memory, not in its file:
// one process holds the file and a record lives minutes. Today they are
// the TPM flows' single-use markers (ADR 8: the challenges themselves are
// sealed into their IDs or derived); a restart forgets them, so for the
// rest of its 5 minutes an answered challenge could be answered again by
// the TPM that holds its secret, and only by it.

// challengeGrace is how long past its expiry a challenge may linger before
// housekeeping removes it; it is invalid from its expiry on regardless.
const challengeGrace = time.Minute

// maxChallenges bounds outstanding challenges (a few hundred bytes each).
const maxChallenges = 100_000

type challengeSet struct {
	mu  sync.Mutex
	m   map[string]attestation.Challenge
	max int // maxChallenges unless a test says otherwise
}

// PutChallenge implements attestation.ChallengeStore. When the set is
// full it first drops challenges past their grace; if it is still full the
// caller is told to come back later.
func (s *Store) PutChallenge(_ context.Context, c *attestation.Challenge) error {
	cs := &s.challenges
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]attestation.Challenge{}
	}
	if _, ok := cs.m[c.ID]; ok {
		return fault.Existsf("challenge %q already exists", c.ID)
	}
	limit := cmp.Or(cs.max, maxChallenges)
	if len(cs.m) >= limit {
		stale := time.Now().Add(-challengeGrace)
		for id, old := range cs.m {
			if old.Expires.Before(stale) {
				delete(cs.m, id)
			}
		}
		if len(cs.m) >= limit {
			return fault.New(fault.ResourceExhausted, fault.RateLimited, "%d challenge records are outstanding; try again later", limit)
		}
	}
	cp := *c
	cp.Data = append([]byte(nil), c.Data...)
	cs.m[c.ID] = cp
	return nil
}

// TakeChallenge implements attestation.ChallengeStore.
func (s *Store) TakeChallenge(_ context.Context, id string, now time.Time) (*attestation.Challenge, error) {
	cs := &s.challenges
	cs.mu.Lock()
	c, ok := cs.m[id]
	delete(cs.m, id)
	cs.mu.Unlock()
	if !ok {
		return nil, fault.NotFoundf("challenge %q not found or already used", id)
	}
	return attestation.CheckTaken(&c, now)
}

// ChallengeCount is the number of stored challenges, expired ones not yet
// dropped included.
func (s *Store) ChallengeCount() int {
	s.challenges.mu.Lock()
	defer s.challenges.mu.Unlock()
	return len(s.challenges.m)
}
