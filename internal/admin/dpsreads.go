package admin

import (
	"context"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// What the DPS service API (internal/dpsservice) needs besides reads.go:
// its own way to authenticate, and the symmetric keys its
// attestationmechanism call shows, so that it reads and writes nothing but
// through admin.

// AuthenticateSAS resolves a DPS service SAS token (the Authorization
// header) to its access key, for a request to path (its decoded segments)
// of the service named host: access.AuthenticateSAS with admin's store,
// data key and clock.
func (s *Service) AuthenticateSAS(ctx context.Context, header, host string, path []string) (*access.Key, error) {
	k, err := access.AuthenticateSAS(ctx, s.Store, s.Secrets, header, host, path, s.Now())
	if err == nil {
		s.touch(ctx, k)
	}
	return k, err
}

// IndividualKeys opens a symmetric-key individual enrollment's keys, for a
// caller allowed to see them; FailedPrecondition (SAS_DISABLED) without a
// data key.
func (s *Service) IndividualKeys(ctx context.Context, e *enrollment.Individual) (*secrets.SymmetricKeys, error) {
	return s.openKeys(e.SealedKeys, secrets.IndividualAAD(e.RegistrationID))
}

// GroupKeys opens a symmetric-key enrollment group's keys, as
// IndividualKeys does.
func (s *Service) GroupKeys(ctx context.Context, g *enrollment.Group) (*secrets.SymmetricKeys, error) {
	return s.openKeys(g.SealedKeys, secrets.GroupAAD(g.ID))
}

func (s *Service) openKeys(sealed []byte, aad string) (*secrets.SymmetricKeys, error) {
	if s.Secrets == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "symmetric keys are turned off (no data key)")
	}
	return s.Secrets.OpenKeys(sealed, aad)
}
