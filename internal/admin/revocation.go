package admin

import (
	"context"
	"errors"
	"fmt"

	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/revocation"
)

// Revocation of manufacturer certificates (ADR 23): CRLs an operator
// uploads for a CA certificate, and the disabling of registrations whose
// certificates a new CRL revokes.

func (s *Service) revocationOn() error {
	if s.Revocation == nil {
		return fault.New(fault.FailedPrecondition, fault.FieldInvalid, "revocation checking is not available on this server")
	}
	return nil
}

// UploadCRL keeps a CRL (DER or PEM) for the uploaded CA certificate
// name: it must be signed by that CA and newer than the CA's current one.
// Devices whose certificate it lists are refused from now on, on every
// replica within a second; registered ones are disabled in the background.
func (s *Service) UploadCRL(ctx context.Context, name string, data []byte) (*revocation.Info, error) {
	if err := s.revocationOn(); err != nil {
		return nil, err
	}
	ca, err := s.Store.GetCA(ctx, name)
	if err != nil {
		return nil, err
	}
	cert, err := ca.Certificate()
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "parse stored CA %q", name)
	}
	der, err := x509att.DecodeCRL(data)
	if err != nil {
		return nil, err
	}
	return mutate(ctx, s, change{action: "UploadCRL", resource: name}, func() (*revocation.Info, error) {
		return s.Revocation.Upload(ctx, name, cert, der)
	})
}

// GetCRL describes the CRL uploaded for a CA (NotFound if none).
func (s *Service) GetCRL(ctx context.Context, name string) (*revocation.Info, error) {
	if err := s.revocationOn(); err != nil {
		return nil, err
	}
	if _, err := s.Store.GetCA(ctx, name); err != nil {
		return nil, err
	}
	return s.Revocation.Uploaded(ctx, name)
}

// DeleteCRL removes the CRL uploaded for a CA. The registrations it
// disabled stay disabled; devices it revoked are refused again only if a
// CRL at their distribution points lists them.
func (s *Service) DeleteCRL(ctx context.Context, name string) error {
	if err := s.revocationOn(); err != nil {
		return err
	}
	return s.write(ctx, change{action: "DeleteCRL", resource: name}, func() error { return s.Revocation.DeleteUploaded(ctx, name) })
}

// DisableRevoked disables the registrations whose identity's chain holds
// one of the certificates (a new CRL revoked them): the registration's
// status becomes disabled, so that neither a re-enabled enrollment nor a
// new certificate brings it back without an operator, and its identity is
// disabled with the reason CERTIFICATE_REVOKED, which its hub gets as a
// disabled event. Each change is recorded (actor "system"). Registrations
// of a group whose revocation check is off are left alone (that group
// checks nothing). A registration that cannot be disabled does not stop
// the pass: the errors are returned together at the end (the caller runs
// the pass again), and the pass stops only when ctx ends.
func (s *Service) DisableRevoked(ctx context.Context, refs []registry.CertRef) error {
	n, failed := 0, 0
	var errs []error // the first few
	fail := func(err error) {
		if failed++; len(errs) < 5 {
			errs = append(errs, err)
		}
	}
	off := map[string]bool{} // group ID -> revocation check off
	checkOff := func(groupID string) (bool, error) {
		if groupID == "" {
			return false, nil
		}
		if v, ok := off[groupID]; ok {
			return v, nil
		}
		g, err := s.Store.GetGroup(ctx, groupID)
		if fault.KindOf(err) == fault.NotFound {
			return false, nil // an individual enrollment's or a deleted group's: disabled
		}
		if err != nil {
			return false, err
		}
		off[groupID] = g.Revocation.EffectiveCheck() == enrollment.RevocationOff
		return off[groupID], nil
	}
	for _, ref := range refs {
		token := ""
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			regs, next, err := s.Store.ListRegistrations(ctx, registry.Filter{Cert: &ref}, token, 200)
			if err != nil {
				fail(fmt.Errorf("list the registrations of certificate %s/%s: %w", ref.Issuer, ref.Serial, err))
				break
			}
			for _, reg := range regs {
				skip, err := checkOff(reg.GroupID)
				if err == nil && skip {
					continue
				}
				done := false
				if err == nil {
					done, err = s.disableRevoked(ctx, reg, ref)
				}
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					fail(fmt.Errorf("registration %q: %w", reg.RegistrationID, err))
					continue
				}
				if done {
					n++
				}
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	if n > 0 && s.Log != nil {
		s.Log.Info("disabled the registrations of revoked certificates", "registrations", n, "certificates", len(refs))
	}
	if failed == 0 {
		return nil
	}
	return fmt.Errorf("%d registrations or certificates could not be processed: %w", failed, errors.Join(errs...))
}

// disableRevoked disables one registration, retrying when the device
// re-registers at the same time; it reports whether it changed anything.
func (s *Service) disableRevoked(ctx context.Context, reg *registry.Registration, ref registry.CertRef) (bool, error) {
	for range 5 {
		id, err := s.Store.GetIdentity(ctx, reg.DeviceID)
		if fault.KindOf(err) == fault.NotFound {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if id.RegistrationID != reg.RegistrationID || !holds(id, ref) {
			return false, nil // moved on to another certificate meanwhile
		}
		if reg.Status == registry.Disabled && id.Status == registry.IdentityDisabled {
			return false, nil
		}
		now := s.Now()
		reg.Status, reg.Updated = registry.Disabled, now
		id.Status, id.DisabledReason, id.Version, id.Updated = registry.IdentityDisabled, string(fault.CertificateRevoked), registry.NextVersion(id.Version, now), now
		_, err = mutate(ctx, s, change{action: "UpdateRegistration", resource: reg.RegistrationID, ifMatch: reg.Etag,
			summary: fmt.Sprintf("disabled: certificate revoked (issuer %s, serial %s)", ref.Issuer[:min(16, len(ref.Issuer))], ref.Serial)},
			func() (string, error) { return s.Store.UpdateRegistration(ctx, reg, id) })
		if err == nil {
			s.revokeOnDisable(ctx, reg) // as when an operator disables it
			return true, nil
		}
		switch fault.KindOf(err) {
		case fault.Conflict:
		case fault.NotFound:
			return false, nil
		default:
			return false, err
		}
		if reg, err = s.Store.GetRegistration(ctx, reg.RegistrationID); err != nil {
			if fault.KindOf(err) == fault.NotFound {
				return false, nil
			}
			return false, err
		}
	}
	return false, fault.New(fault.Unavailable, fault.StoreUnavailable, "registration %q kept changing while it was being disabled", reg.RegistrationID)
}

func holds(id *registry.Identity, ref registry.CertRef) bool {
	for _, r := range id.Credential.X509Chain {
		if r == ref {
			return true
		}
	}
	return false
}
