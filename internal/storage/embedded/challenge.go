package embedded

import (
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

var challenges = table[record.Challenge, *attestation.Challenge]{bChallenge, "challenge", (*record.Challenge).Domain, func(*record.Challenge) string { return "" }}

// challengeGrace is how long past its expiry a challenge may linger before
// housekeeping removes it; it is invalid from its expiry on regardless.
const challengeGrace = time.Minute

func expiryKey(expires int64, id string) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(expires))
	return append(k, id...)
}

// PutChallenge implements attestation.ChallengeStore. Each put also
// removes a few long-expired challenges that nobody took.
func (s *Store) PutChallenge(ctx context.Context, c *attestation.Challenge) error {
	rec := record.FromChallenge(c)
	return s.update(ctx, func(tx *bolt.Tx) error {
		pruneChallenges(tx, time.Now().Add(-challengeGrace), 64)
		if challenges.exists(tx, c.ID) {
			return fault.Existsf("challenge %q already exists", c.ID)
		}
		if err := challenges.put(tx, c.ID, rec); err != nil {
			return err
		}
		return tx.Bucket(bChallengeExp).Put(expiryKey(rec.Expires, c.ID), nil)
	})
}

func pruneChallenges(tx *bolt.Tx, before time.Time, limit int) {
	c := tx.Bucket(bChallengeExp).Cursor()
	for k, _ := c.First(); k != nil && limit > 0; k, _ = c.First() {
		if int64(binary.BigEndian.Uint64(k[:8])) >= before.UnixNano() {
			return
		}
		_ = tx.Bucket(bChallenge).Delete(k[8:])
		_ = c.Delete()
		limit--
	}
}

// TakeChallenge implements attestation.ChallengeStore.
func (s *Store) TakeChallenge(ctx context.Context, id string, now time.Time) (*attestation.Challenge, error) {
	var out *attestation.Challenge
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rec, err := challenges.loadForDelete(tx, id, "")
		if err != nil {
			return err
		}
		out = rec.Domain()
		return tx.Bucket(bChallengeExp).Delete(expiryKey(rec.Expires, id))
	})
	if err != nil {
		return nil, err
	}
	return attestation.CheckTaken(out, now)
}
