package attestation

import (
	"context"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Limits on a stored challenge.
const (
	MaxChallengeIDLength = 128
	MaxChallengeData     = 8 << 10
	// MaxChallengeLife bounds how long any challenge may be valid.
	MaxChallengeLife = 15 * time.Minute
)

// Challenge is short-lived server-side state of a two-step attestation,
// on whichever replica the device reaches. The TPM flows keep their
// challenges sealed or derived (ADR 8) and store only single-use markers
// of answered ones here.
type Challenge struct {
	ID string
	// RegistrationID the challenge was issued to.
	RegistrationID string
	// Data is the mechanism's state (secret, bound key name, …).
	Data    []byte
	Expires time.Time
}

// Validate checks a challenge before it is stored.
func (c *Challenge) Validate(now time.Time) error {
	switch {
	case c.ID == "" || len(c.ID) > MaxChallengeIDLength:
		return fault.Invalidf("challenge ID must be 1-%d bytes", MaxChallengeIDLength)
	case len(c.Data) > MaxChallengeData:
		return fault.Invalidf("challenge data is %d bytes, at most %d allowed", len(c.Data), MaxChallengeData)
	case !c.Expires.After(now) || c.Expires.Sub(now) > MaxChallengeLife:
		return fault.Invalidf("challenge expiry must be within %s from now", MaxChallengeLife)
	}
	return nil
}

// ChallengeStore keeps challenges. Backends expire them, but validity is
// always decided by the stored expiry time against the caller's clock, so
// a challenge whose key lingers past its expiry is never accepted.
type ChallengeStore interface {
	// PutChallenge stores c (after c.Validate); AlreadyExists if the ID is
	// taken.
	PutChallenge(ctx context.Context, c *Challenge) error
	// TakeChallenge removes the challenge and returns it: single use, so of
	// concurrent takes exactly one gets it. Absent or already taken is
	// NotFound; taken after its expiry (at now) is FailedPrecondition with
	// reason CHALLENGE_EXPIRED, and the challenge is gone either way.
	TakeChallenge(ctx context.Context, id string, now time.Time) (*Challenge, error)
}

// CheckTaken applies the expiry rule to a challenge a store just removed.
func CheckTaken(c *Challenge, now time.Time) (*Challenge, error) {
	if !now.Before(c.Expires) {
		return nil, fault.New(fault.FailedPrecondition, fault.ChallengeExpired, "the challenge expired at %s", c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}
