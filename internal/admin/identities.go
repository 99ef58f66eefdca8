package admin

import (
	"context"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// An enrollment's state reaches its devices' identities: disabling (or
// deleting) an enrollment disables the identities of the devices it
// registered, and re-enabling it enables them again. Each change is an
// identity write, so it is a disabled or enabled event on the device's
// shard's assignment stream. The enrollment is written first: if the walk
// is cut short, LookupIdentity still reports those devices disabled (it
// checks the enrollment), and saving the enrollment again finishes it.

// DeleteGroup deletes an enrollment group and disables its devices'
// identities.
func (s *Service) DeleteGroup(ctx context.Context, id, etag string) error {
	if err := s.write(ctx, change{action: "DeleteGroup", resource: id, ifMatch: etag}, func() error { return s.Store.DeleteGroup(ctx, id, etag) }); err != nil {
		return err
	}
	return s.syncIdentities(ctx, registry.Filter{GroupID: id}, "", false)
}

// DeleteIndividual deletes an individual enrollment and disables its
// device's identity.
func (s *Service) DeleteIndividual(ctx context.Context, registrationID, etag string) error {
	if err := s.write(ctx, change{action: "DeleteIndividual", resource: registrationID, ifMatch: etag}, func() error { return s.Store.DeleteIndividual(ctx, registrationID, etag) }); err != nil {
		return err
	}
	return s.syncIdentities(ctx, registry.Filter{}, registrationID, false)
}

// syncIdentities sets the identity status of the devices an enrollment
// registered: the group's (filter), or the individual enrollment's
// registration (regID). Registrations that moved to another enrollment
// are left alone.
func (s *Service) syncIdentities(ctx context.Context, f registry.Filter, regID string, enabled bool) error {
	if regID != "" {
		reg, err := s.Store.GetRegistration(ctx, regID)
		if fault.KindOf(err) == fault.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if !reg.Individual {
			return nil
		}
		return s.setIdentityStatus(ctx, reg, enabled)
	}
	token := ""
	for {
		regs, next, err := s.Store.ListRegistrations(ctx, f, token, 200)
		if err != nil {
			return err
		}
		for _, reg := range regs {
			if reg.Individual || reg.GroupID != f.GroupID {
				continue
			}
			if err := s.setIdentityStatus(ctx, reg, enabled); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// setIdentityStatus writes the status into the registration's identity if
// it differs, retrying when the device re-registers at the same time.
func (s *Service) setIdentityStatus(ctx context.Context, reg *registry.Registration, enabled bool) error {
	want := registry.IdentityDisabled
	if enabled {
		want = registry.IdentityEnabled
	}
	for range 5 {
		id, err := s.Store.GetIdentity(ctx, reg.DeviceID)
		if fault.KindOf(err) == fault.NotFound {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if id.Status == want || id.RegistrationID != reg.RegistrationID || enabled && reg.Status == registry.Disabled {
			return nil // a disabled registration stays disabled
		}
		now := s.Now()
		id.Status, id.Version, id.Updated = want, registry.NextVersion(id.Version, now), now
		_, err = mutate(ctx, s, change{action: "UpdateRegistration", resource: reg.RegistrationID}, func() (string, error) { return s.Store.UpdateRegistration(ctx, reg, id) })
		if err == nil && !enabled {
			s.revokeOnDisable(ctx, reg) // its enrollment was disabled or deleted
		}
		switch fault.KindOf(err) {
		case fault.Conflict:
		case fault.NotFound:
			return nil
		default:
			return err
		}
		if reg, err = s.Store.GetRegistration(ctx, reg.RegistrationID); err != nil {
			if fault.KindOf(err) == fault.NotFound {
				return nil
			}
			return err
		}
	}
	return fault.New(fault.Unavailable, fault.StoreUnavailable, "registration %q kept changing; save the enrollment again to finish", reg.RegistrationID)
}

// SetRegistrationEnabled disables or enables one registration (a non-empty
// etag must be current). A disabled registration's identity is disabled;
// an enabled one's is enabled unless its enrollment is disabled or gone.
func (s *Service) SetRegistrationEnabled(ctx context.Context, registrationID, etag string, enabled bool) (*registry.Registration, error) {
	reg, err := s.Store.GetRegistration(ctx, registrationID)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != reg.Etag {
		return nil, fault.EtagMismatchf("registration %q was changed by someone else (etag %q is not current)", registrationID, etag)
	}
	id, err := s.Store.GetIdentity(ctx, reg.DeviceID)
	if err != nil {
		return nil, err
	}
	reg.Status, id.Status = registry.Disabled, registry.IdentityDisabled
	if enabled {
		reg.Status = registry.Assigned
		on, err := s.EnrollmentEnabled(ctx, reg)
		if err != nil {
			return nil, err
		}
		if on {
			id.Status = registry.IdentityEnabled
		}
	}
	now := s.Now()
	reg.Updated, id.Version, id.Updated = now, registry.NextVersion(id.Version, now), now
	if reg.Etag, err = mutate(ctx, s, change{action: "UpdateRegistration", resource: reg.RegistrationID}, func() (string, error) { return s.Store.UpdateRegistration(ctx, reg, id) }); err != nil {
		return nil, err
	}
	if !enabled {
		s.revokeOnDisable(ctx, reg)
	}
	return reg, nil
}

// EnrollmentEnabled reports whether the enrollment that registered the
// device exists and is enabled.
func (s *Service) EnrollmentEnabled(ctx context.Context, reg *registry.Registration) (bool, error) {
	switch {
	case reg.Individual:
		e, err := s.Store.GetIndividual(ctx, reg.RegistrationID)
		if fault.KindOf(err) == fault.NotFound {
			return false, nil
		}
		return err == nil && !e.Disabled, err
	case reg.GroupID != "":
		g, err := s.Store.GetGroup(ctx, reg.GroupID)
		if fault.KindOf(err) == fault.NotFound {
			return false, nil
		}
		return err == nil && !g.Disabled, err
	}
	return true, nil
}
