package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

// challengeGrace is how long past its expiry Redis keeps a challenge; it
// is invalid from its stored expiry on regardless.
const challengeGrace = time.Minute

func (s *Store) challengeKey(id string) string { return "{" + s.prefix + ":ch:" + id + "}" }

// PutChallenge implements attestation.ChallengeStore: SET NX with an
// expiry a little after the challenge's own.
func (s *Store) PutChallenge(ctx context.Context, c *attestation.Challenge) error {
	raw, err := encode(record.FromChallenge(c))
	if err != nil {
		return err
	}
	ok, err := s.c.SetArgs(ctx, s.challengeKey(c.ID), raw, goredis.SetArgs{Mode: "NX", ExpireAt: c.Expires.Add(challengeGrace)}).Result()
	if errors.Is(err, goredis.Nil) || err == nil && ok != "OK" {
		return fault.Existsf("challenge %q already exists", c.ID)
	}
	return s.fail(ctx, err)
}

// TakeChallenge implements attestation.ChallengeStore with GETDEL, which
// gives the challenge to exactly one caller.
func (s *Store) TakeChallenge(ctx context.Context, id string, now time.Time) (*attestation.Challenge, error) {
	raw, err := s.c.GetDel(ctx, s.challengeKey(id)).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, fault.NotFoundf("challenge %q not found or already used", id)
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var rec record.Challenge
	if err := decodeString(raw, &rec); err != nil {
		return nil, err
	}
	return attestation.CheckTaken(rec.Domain(), now)
}
