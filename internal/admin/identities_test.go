package admin

import (
	"strings"
	"testing"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// events are the kinds of a shard's log entries after a cursor.
func events(t *testing.T, s *Service, shard string, after uint64) string {
	t.Helper()
	evs, err := s.ReadEvents(t.Context(), shard, after, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, string(ev.Kind)+" "+ev.Identity.DeviceID)
	}
	return strings.Join(kinds, ", ")
}

func head(t *testing.T, s *Service, shard string) uint64 {
	t.Helper()
	h, err := s.LogHead(t.Context(), shard)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSetRegistrationEnabled: disabling a registration disables its
// identity; enabling it enables the identity only while its enrollment
// is enabled; and each change is an event on the device's shard.
func TestSetRegistrationEnabled(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	addShard(t, s, "s1", "")
	verifiedCA(t, s, "acme")
	g, err := s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "acme", Allocation: hashedOn()})
	if err != nil {
		t.Fatal(err)
	}
	reg := registerDevice(t, s, "dev-1", "s1", "g")
	cursor := head(t, s, "s1")

	before := snapshot(t, s)
	_, err = s.SetRegistrationEnabled(ctx, "dev-1", "stale", false)
	reason(t, err, fault.EtagMismatch)
	_, err = s.SetRegistrationEnabled(ctx, "nobody", "", false)
	reason(t, err, fault.ResourceNotFound)
	unchanged(t, s, before, "refusals")

	off, err := s.SetRegistrationEnabled(ctx, "dev-1", reg.Etag, false)
	if err != nil || off.Status != registry.Disabled || off.Etag == reg.Etag || identityStatus(t, s, "dev-1") != registry.IdentityDisabled {
		t.Fatalf("disable: %+v %v", off, err)
	}
	if got := events(t, s, "s1", cursor); got != "disabled dev-1" {
		t.Fatalf("events: %s", got)
	}
	// A disabled registration stays disabled when its group is disabled
	// and enabled again.
	for _, disabled := range []bool{true, false} {
		g.Disabled = disabled
		if g, err = s.UpdateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetRegistration(ctx, "dev-1"); got.Status != registry.Disabled || identityStatus(t, s, "dev-1") != registry.IdentityDisabled {
			t.Fatalf("group disabled=%v: registration %s, identity %s", disabled, got.Status, identityStatus(t, s, "dev-1"))
		}
	}
	// Enabled while its group is disabled: the registration is assigned,
	// its identity stays disabled until the group is enabled.
	g.Disabled = true
	if g, err = s.UpdateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	on, err := s.SetRegistrationEnabled(ctx, "dev-1", "", true)
	if err != nil || on.Status != registry.Assigned || identityStatus(t, s, "dev-1") != registry.IdentityDisabled {
		t.Fatalf("enable under a disabled group: %+v %v", on, err)
	}
	cursor = head(t, s, "s1")
	g.Disabled = false
	if _, err = s.UpdateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if identityStatus(t, s, "dev-1") != registry.IdentityEnabled || events(t, s, "s1", cursor) != "enabled dev-1" {
		t.Fatalf("group enabled: identity %s, events %s", identityStatus(t, s, "dev-1"), events(t, s, "s1", cursor))
	}
}

// TestEnrollmentStateReachesIdentities: disabling, enabling and deleting
// an enrollment disables or enables the identities of the devices it
// registered, and no others.
func TestEnrollmentStateReachesIdentities(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	addShard(t, s, "s1", "")
	verifiedCA(t, s, "acme")
	verifiedCA(t, s, "other")
	g, err := s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "acme", Allocation: hashedOn()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, &enrollment.Group{ID: "h", CAName: "other", Allocation: hashedOn()}); err != nil {
		t.Fatal(err)
	}
	e, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "solo", Thumbprint: strings.Repeat("d", 64), Allocation: hashedOn()}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g-1", "g-2"} {
		registerDevice(t, s, id, "s1", "g")
	}
	registerDevice(t, s, "h-1", "s1", "h")
	registerDevice(t, s, "solo", "s1", "")
	statuses := func() string {
		var out []string
		for _, id := range []string{"g-1", "g-2", "h-1", "solo"} {
			out = append(out, string(identityStatus(t, s, id)))
		}
		return strings.Join(out, " ")
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"disable group", func() error { g.Disabled = true; _, err := s.UpdateGroup(ctx, g); return err }, "disabled disabled enabled enabled"},
		{"enable group", func() error { g.Disabled = false; _, err := s.UpdateGroup(ctx, g); return err }, "enabled enabled enabled enabled"},
		{"disable enrollment", func() error { e.Disabled = true; var err error; e, err = s.UpdateIndividual(ctx, e); return err }, "enabled enabled enabled disabled"},
		{"enable enrollment", func() error { e.Disabled = false; var err error; e, err = s.UpdateIndividual(ctx, e); return err }, "enabled enabled enabled enabled"},
		{"delete enrollment", func() error { return s.DeleteIndividual(ctx, "solo", "") }, "enabled enabled enabled disabled"},
		{"delete group", func() error { return s.DeleteGroup(ctx, "g", "") }, "disabled disabled enabled disabled"},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := statuses(); got != step.want {
			t.Fatalf("%s: identities %s, want %s", step.name, got, step.want)
		}
	}
	// The enrollments are gone, so enabling a registration leaves its
	// identity disabled.
	if _, err := s.SetRegistrationEnabled(ctx, "g-1", "", true); err != nil || identityStatus(t, s, "g-1") != registry.IdentityDisabled {
		t.Fatalf("enable without an enrollment: %v, %s", err, identityStatus(t, s, "g-1"))
	}
}

func TestEnrollmentEnabled(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	verifiedCA(t, s, "acme")
	if _, err := s.CreateGroup(ctx, &enrollment.Group{ID: "off", CAName: "acme", Disabled: true, Allocation: hashedOn()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "on", Thumbprint: strings.Repeat("e", 64), Allocation: hashedOn()}, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reg  registry.Registration
		want bool
	}{
		{registry.Registration{RegistrationID: "on", Individual: true}, true},
		{registry.Registration{RegistrationID: "gone", Individual: true}, false},
		{registry.Registration{RegistrationID: "x", GroupID: "off"}, false},
		{registry.Registration{RegistrationID: "x", GroupID: "gone"}, false},
		{registry.Registration{RegistrationID: "x"}, true},
	} {
		if got, err := s.EnrollmentEnabled(ctx, &tc.reg); err != nil || got != tc.want {
			t.Errorf("%+v: %v %v, want %v", tc.reg, got, err, tc.want)
		}
	}
}

// TestDeleteRegistration: the registration and its identity go together
// (a deleted event), so the device provisions afresh.
func TestDeleteRegistration(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	addShard(t, s, "s1", "")
	reg := registerDevice(t, s, "Dev-1", "s1", "")
	cursor := head(t, s, "s1")
	before := snapshot(t, s)
	reason(t, s.DeleteRegistration(ctx, "dev-1", "stale"), fault.EtagMismatch)
	reason(t, s.DeleteRegistration(ctx, "nobody", ""), fault.ResourceNotFound)
	unchanged(t, s, before, "refusals")
	if err := s.DeleteRegistration(ctx, "DEV-1", reg.Etag); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetRegistration(ctx, "dev-1")
	reason(t, err, fault.ResourceNotFound)
	_, err = s.GetIdentity(ctx, "Dev-1")
	reason(t, err, fault.ResourceNotFound)
	if got := events(t, s, "s1", cursor); got != "deleted Dev-1" {
		t.Fatalf("events: %s", got)
	}
	reason(t, s.DeleteRegistration(ctx, "dev-1", ""), fault.ResourceNotFound)
}
