package admin

import (
	"context"
	"strings"
	"testing"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// failOn fails the registration update of one registration.
type failOn struct {
	Store
	regID string
}

func (s failOn) UpdateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (string, error) {
	if reg.RegistrationID == s.regID {
		return "", fault.New(fault.Unavailable, fault.StoreUnavailable, "injected")
	}
	return s.Store.UpdateRegistration(ctx, reg, id)
}

// withChain records ref in a registration's identity.
func withChain(t *testing.T, s *Service, regID string, ref registry.CertRef) {
	t.Helper()
	ctx := t.Context()
	reg, err := s.Store.GetRegistration(ctx, regID)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Store.GetIdentity(ctx, reg.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	id.Credential.X509Chain = []registry.CertRef{ref}
	if _, err := s.Store.UpdateRegistration(ctx, reg, id); err != nil {
		t.Fatal(err)
	}
}

// TestDisableRevokedGoesOn: the disabling pass goes on past a
// registration it cannot disable (and reports it), and leaves the
// registrations of a group whose revocation check is off alone.
func TestDisableRevokedGoesOn(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	addShard(t, s, "s1", "")
	verifiedCA(t, s, "acme")
	verifiedCA(t, s, "other")
	if _, err := s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "acme", Allocation: hashedOn()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, &enrollment.Group{ID: "off", CAName: "other", Allocation: hashedOn(),
		Revocation: enrollment.RevocationPolicy{Check: enrollment.RevocationOff}}); err != nil {
		t.Fatal(err)
	}
	refs := []registry.CertRef{{Issuer: "aa", Serial: "1"}, {Issuer: "aa", Serial: "2"}, {Issuer: "aa", Serial: "3"}}
	for i, g := range []string{"g", "g", "off"} {
		regID := []string{"dev-1", "dev-2", "dev-3"}[i]
		registerDevice(t, s, regID, "s1", g)
		withChain(t, s, regID, refs[i])
	}
	s.Store = failOn{Store: s.Store, regID: "dev-1"}
	err := s.DisableRevoked(ctx, refs)
	if err == nil || !strings.Contains(err.Error(), "dev-1") {
		t.Fatalf("the failure is not reported: %v", err)
	}
	if identityStatus(t, s, "dev-1") != registry.IdentityEnabled {
		t.Fatal("dev-1 disabled despite the failure")
	}
	if identityStatus(t, s, "dev-2") != registry.IdentityDisabled {
		t.Fatal("the pass stopped at dev-1: dev-2 not disabled")
	}
	if identityStatus(t, s, "dev-3") != registry.IdentityEnabled {
		t.Fatal("a device of a group whose check is off was disabled")
	}
}
