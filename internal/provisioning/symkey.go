package provisioning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// SASToken is symmetric-key evidence: a SAS token signed with the
// device's individual enrollment key or with a key derived from a
// symmetric-key group's key. Resource is what the token must be for:
// "{idScope}/registrations/{registrationId}" on the DPS API.
type SASToken struct {
	// Token is the Authorization header's value.
	Token    string
	Resource string
}

func (SASToken) attestation() registry.AttestationType { return registry.SymmetricKey }

func (SASToken) logAttrs() []any { return nil }

// attest verifies the token and finds the enrollment whose key signed it.
func (e SASToken) attest(ctx context.Context, s *Service, req *Request) (*plan, error) {
	if s.SymmetricKeysDisabled || s.Secrets == nil {
		return nil, fault.New(fault.PermissionDenied, fault.SASDisabled, "symmetric-key attestation is turned off service-wide (symmetric_keys.enabled)")
	}
	if err := enrollment.ValidateRegistrationID(req.RegistrationID); err != nil {
		return nil, fault.Wrap(fault.Unauthenticated, fault.RegistrationIDInvalid, err, "registration ID")
	}
	tok, err := symkey.Parse(e.Token)
	if err != nil {
		return nil, err
	}
	if err := tok.CheckResource(e.Resource); err != nil {
		return nil, err
	}
	if err := tok.CheckExpiry(s.Now()); err != nil {
		return nil, err
	}
	p := plan{regID: req.RegistrationID, attType: registry.SymmetricKey}
	signedBy := func(keys *secrets.SymmetricKeys, derive bool) []byte {
		for _, k := range [][]byte{keys.Primary, keys.Secondary} {
			if len(k) == 0 {
				continue
			}
			if derive {
				k = symkey.DeriveDeviceKey(k, req.RegistrationID)
			}
			if tok.Verify(k) {
				return k
			}
		}
		return nil
	}
	var key []byte
	ind, err := s.Enrollments.GetIndividual(ctx, req.RegistrationID)
	switch {
	case err == nil && ind.Mechanism == enrollment.MechanismSymmetricKey:
		keys, err := s.Secrets.OpenKeys(ind.SealedKeys, secrets.IndividualAAD(ind.RegistrationID))
		if err != nil {
			return nil, err
		}
		if key = signedBy(keys, false); key == nil {
			return nil, fault.New(fault.Unauthenticated, fault.SASInvalid, "the SAS token is not signed by the enrollment's key")
		}
		if ind.Disabled {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "the device's individual enrollment is disabled")
		}
		if ind.DeviceSettings.DisableSAS {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentSASDisabled, "SAS tokens are switched off for the device's individual enrollment (disableDeviceSAS)")
		}
		p.deviceID, p.alloc, p.settings, p.individual = ind.EffectiveDeviceID(), ind.Allocation, ind.DeviceSettings, true
	case err == nil || errors.Is(err, fault.ErrNotFound):
		g, k, err := s.symmetricGroup(ctx, signedBy)
		if err != nil {
			return nil, err
		}
		if g.Disabled {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentDisabled, "enrollment group %q is disabled", g.ID)
		}
		if g.DeviceSettings.DisableSAS {
			return nil, fault.New(fault.PermissionDenied, fault.EnrollmentSASDisabled, "SAS tokens are switched off for enrollment group %q (disableDeviceSAS)", g.ID)
		}
		key, p.deviceID, p.alloc, p.settings, p.groupID = k, req.RegistrationID, g.Allocation, g.DeviceSettings, g.ID
	default:
		return nil, err
	}
	sum := sha256.Sum256(key)
	p.thumbprint = hex.EncodeToString(sum[:])
	p.cred = registry.Credential{Type: registry.SymmetricKey, SymmetricKeyHash: p.thumbprint}
	return &p, nil
}

// maxSymmetricGroups bounds how many groups a token is tried against.
const maxSymmetricGroups = 1000

// A symmetric-key device does not say which group it belongs to, so a
// registration tries the token against every symmetric group's derived
// key. Listing the groups and opening their keys on every registration
// costs more than the rest of the registration once there are a few
// groups, so the groups and their opened keys are cached, and reloaded
// whenever the store's groups version has moved: every group write moves
// it, so a disabled, deleted, re-keyed or new group takes effect at once,
// for one cheap read per registration.
type symGroup struct {
	g    *enrollment.Group
	keys *secrets.SymmetricKeys
}

type symGroupCache struct {
	mu      sync.Mutex
	loaded  bool
	version uint64
	groups  []symGroup
}

// get returns the symmetric groups as of the store's current version.
func (c *symGroupCache) get(ctx context.Context, s *Service) ([]symGroup, error) {
	v, err := s.Enrollments.GroupsVersion(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded && c.version == v {
		return c.groups, nil
	}
	groups, err := s.loadSymmetricGroups(ctx)
	if err != nil {
		return nil, err
	}
	// A write between reading v and listing makes this copy newer than v:
	// it is reloaded on the next registration, never used stale.
	c.loaded, c.version, c.groups = true, v, groups
	return groups, nil
}

// loadSymmetricGroups lists the symmetric-key groups and opens their keys.
func (s *Service) loadSymmetricGroups(ctx context.Context) ([]symGroup, error) {
	var out []symGroup
	for token := ""; ; {
		groups, next, err := s.Enrollments.ListGroups(ctx, enrollment.Page{Token: token, Limit: 200})
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			if g.EffectiveMechanism() != enrollment.MechanismSymmetricKey {
				continue
			}
			if len(out) == maxSymmetricGroups {
				return nil, fault.New(fault.Internal, fault.InternalError, "more than %d symmetric-key groups", maxSymmetricGroups)
			}
			keys, err := s.Secrets.OpenKeys(g.SealedKeys, secrets.GroupAAD(g.ID))
			if err != nil {
				return nil, err
			}
			out = append(out, symGroup{g: g, keys: keys})
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// symmetricGroup finds the symmetric-key group whose derived key signed the
// token (DPS devices do not say which group they belong to).
func (s *Service) symmetricGroup(ctx context.Context, signedBy func(*secrets.SymmetricKeys, bool) []byte) (*enrollment.Group, []byte, error) {
	groups, err := s.symGroups.get(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	for _, sg := range groups {
		if k := signedBy(sg.keys, true); k != nil {
			return sg.g, k, nil
		}
	}
	return nil, nil, fault.New(fault.Unauthenticated, fault.SASInvalid, "the SAS token is not signed by an enrolled key")
}
