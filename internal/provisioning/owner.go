package provisioning

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Who owns a registration ID (ADR 17). An attested device has proved a
// credential and matched one enrollment; that does not yet let it register
// under the registration ID it names. The ID must belong to that
// enrollment:
//
//   - an individual enrollment reserves its registration ID and the
//     device ID it assigns from the start: a device matched by any other
//     enrollment is refused for either name;
//   - an existing registration belongs to the enrollment that created it
//     (the registration's GroupID, or its individual enrollment): a device
//     matched by another enrollment is refused, unless the attesting
//     enrollment names the owning group in its AdoptFrom list;
//   - within one enrollment a new credential for the same ID (a renewed
//     certificate, a new bound key) is an update; only a TPM is pinned to
//     its EK (a different EK is a clone or a swapped part: TPM_EK_MISMATCH).
//
// checkOwner is that rule and the only place it is written; every path
// that registers or reads a registration for an attested device applies it.

// claim is what an attested device claims: the registration ID under the
// enrollment that matched its credential.
type claim struct {
	regID string
	// individual is true when the registration ID's individual enrollment
	// matched; groupID names the group otherwise.
	individual bool
	groupID    string
	// adoptFrom is the matched enrollment's DeviceSettings.AdoptFrom.
	adoptFrom []string
	attType   registry.AttestationType
	// thumbprint identifies the credential (the EK hash for TPMs).
	thumbprint string
}

func (p plan) claim() claim {
	return claim{regID: p.regID, individual: p.individual, groupID: p.groupID, adoptFrom: p.settings.AdoptFrom,
		attType: p.attType, thumbprint: p.thumbprint}
}

// checkOwner decides whether c may register under its registration ID.
// reserved says an individual enrollment exists for the ID; existing is
// the ID's registration, nil when there is none. It reads nothing and
// writes nothing.
func checkOwner(c claim, reserved bool, existing *registry.Registration) error {
	if reserved && !c.individual {
		return fault.New(fault.PermissionDenied, fault.RegistrationOwned,
			"registration ID %q is reserved by an individual enrollment; enrollment group %q cannot register it", c.regID, c.groupID)
	}
	if existing == nil {
		return nil
	}
	switch {
	case existing.Individual && c.individual:
	case !existing.Individual && existing.GroupID != "" && !c.individual && existing.GroupID == c.groupID:
	case !existing.Individual && existing.GroupID != "" && slices.Contains(c.adoptFrom, existing.GroupID):
		// The attesting enrollment adopts the group's devices.
	default:
		return fault.New(fault.PermissionDenied, fault.RegistrationOwned,
			"registration %q belongs to %s; %s cannot take it over (delete the registration, or let the enrollment adopt from the group)",
			c.regID, ownerName(existing.Individual, existing.GroupID), ownerName(c.individual, c.groupID))
	}
	if existing.AttestationType == registry.TPM && c.attType == registry.TPM && existing.CredentialThumbprint != c.thumbprint {
		return fault.New(fault.PermissionDenied, fault.TPMEKMismatch, "registration %q belongs to a different TPM", c.regID)
	}
	return nil
}

func ownerName(individual bool, groupID string) string {
	if individual {
		return "its individual enrollment"
	}
	return "enrollment group " + strconv.Quote(groupID)
}

// reserved reports whether an individual enrollment reserves the claim's
// registration ID: as its own registration ID, or as the device ID it
// assigns (a group device's device ID is its registration ID, so taking
// the name would take that device's hub identity). A device matched by its
// individual enrollment needs no read: the enrollment is the reservation,
// and the store keeps individual enrollments' names apart.
func (s *Service) reserved(ctx context.Context, c claim) (bool, error) {
	if c.individual {
		return true, nil
	}
	return s.Enrollments.ReservedByIndividual(ctx, c.regID)
}

// admit applies checkOwner with the store's state: the reservation, and
// the registration (returned, nil when there is none). A refusal is logged
// as a possible takeover.
func (s *Service) admit(ctx context.Context, c claim) (*registry.Registration, error) {
	reserved, err := s.reserved(ctx, c)
	if err != nil {
		return nil, err
	}
	existing, err := s.Registry.GetRegistration(ctx, c.regID)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		existing = nil
	case err != nil:
		return nil, err
	}
	if err := s.owns(c, reserved, existing); err != nil {
		return nil, err
	}
	return existing, nil
}

// owns is checkOwner with the warning a refusal deserves: it is someone
// else's credential naming this registration ID.
func (s *Service) owns(c claim, reserved bool, existing *registry.Registration) error {
	err := checkOwner(c, reserved, existing)
	if err != nil {
		attrs := []any{"registration_id", c.regID, "reason", string(fault.ReasonOf(err)), "presented", c.thumbprint}
		if existing != nil {
			attrs = append(attrs, "registered", existing.CredentialThumbprint)
		}
		s.log(slog.LevelWarn, "registration refused: the registration ID belongs to another enrollment or device (possible takeover or clone)", attrs...)
	}
	return err
}

// lookup returns the registration an attested device may see: its own,
// under the ownership rule; NotFound when there is none.
func (s *Service) lookup(ctx context.Context, p plan) (*registry.Registration, error) {
	existing, err := s.admit(ctx, p.claim())
	if err != nil {
		return nil, err
	}
	if existing == nil {
		return nil, fault.NotFoundf("registration %q not found", p.regID)
	}
	return existing, nil
}
