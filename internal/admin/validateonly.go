package admin

import (
	"context"
	"errors"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// A validate-only create (a dry run: `enrollment import --dry-run`, the
// API's validate_only) runs every check a create makes, then, instead of
// the write, reads whether the store would refuse it: the registration
// ID, the credential and the reserved names. It writes nothing, not even
// an audit record. Two items of one dry run are not checked against each
// other, and a concurrent write may still take a name between the dry run
// and the real one.

type validateOnlyKey struct{}

// ValidateOnly marks the creates made with ctx as checks: they validate
// and write nothing. Only individual enrollments honour it.
func ValidateOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, validateOnlyKey{}, true)
}

// IsValidateOnly reports whether ctx was marked by ValidateOnly.
func IsValidateOnly(ctx context.Context) bool {
	v, _ := ctx.Value(validateOnlyKey{}).(bool)
	return v
}

// checkIndividualFree answers as the store's CreateIndividual would,
// reading only: the registration ID, the thumbprint, and both reserved
// names must be free.
func (s *Service) checkIndividualFree(ctx context.Context, e *enrollment.Individual) error {
	if _, err := s.Store.GetIndividual(ctx, e.RegistrationID); err == nil {
		return fault.Existsf("enrollment %q already exists", e.RegistrationID)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	if other, err := s.Store.FindIndividualByThumbprint(ctx, e.Thumbprint); err == nil {
		return fault.Existsf("this certificate is already enrolled as %q", other.RegistrationID)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	for _, name := range []string{e.RegistrationID, e.EffectiveDeviceID()} {
		taken, err := s.Store.ReservedByIndividual(ctx, name)
		if err != nil {
			return err
		}
		if taken {
			return fault.New(fault.AlreadyExists, fault.DeviceIDConflict,
				"%q is already the registration ID or device ID of another individual enrollment", name)
		}
	}
	return nil
}
