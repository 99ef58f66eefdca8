package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestRegistrationDisable: disabling one registration disables its
// identity (a DISABLED event), refuses the device's registrations with
// REGISTRATION_DISABLED, and survives its group being disabled and enabled
// again; enabling it is an ENABLED event and the device registers again.
func TestRegistrationDisable(t *testing.T) {
	e := start(t)
	f := e.newHubFleet()
	regs := pb.NewRegistrationServiceClient(e.admin)
	var target string
	var shard string
	for i := range 12 { // a device on one of cluster-a's shards, with company there
		id := fmt.Sprintf("rd-%02d", i)
		if sh := f.register(id); sh != "sb1" && target == "" {
			target, shard = id, sh
		}
	}
	head, err := e.store.LogHead(t.Context(), shard)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := watch(t, f.api(f.nodeA), &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: shard, Cursor: head}}})

	// Malformed and refused requests change nothing.
	for name, c := range map[string]struct {
		ctx  context.Context
		req  *pb.DisableRegistrationRequest
		code codes.Code
	}{
		"unknown":    {e.owner(), &pb.DisableRegistrationRequest{RegistrationId: "nobody"}, codes.NotFound},
		"malformed":  {e.owner(), &pb.DisableRegistrationRequest{RegistrationId: "a b"}, codes.InvalidArgument},
		"empty":      {e.owner(), &pb.DisableRegistrationRequest{}, codes.InvalidArgument},
		"too long":   {e.owner(), &pb.DisableRegistrationRequest{RegistrationId: strings.Repeat("r", 129)}, codes.InvalidArgument},
		"stale etag": {e.owner(), &pb.DisableRegistrationRequest{RegistrationId: target, Etag: "stale"}, codes.Aborted},
		"read-only":  {as(t.Context(), e.readerKey), &pb.DisableRegistrationRequest{RegistrationId: target}, codes.PermissionDenied},
		"no key":     {t.Context(), &pb.DisableRegistrationRequest{RegistrationId: target}, codes.Unauthenticated},
	} {
		if _, err := regs.DisableRegistration(c.ctx, c.req); codeOf(err) != c.code {
			t.Errorf("%s: %v, want %v", name, err, c.code)
		}
	}
	quiet(t, ch)

	cur, err := regs.GetRegistration(e.owner(), &pb.GetRegistrationRequest{RegistrationId: target})
	if err != nil {
		t.Fatal(err)
	}
	off, err := regs.DisableRegistration(e.owner(), &pb.DisableRegistrationRequest{RegistrationId: target, Etag: cur.GetEtag()})
	if err != nil || off.GetStatus() != pb.RegistrationStatus_REGISTRATION_STATUS_DISABLED || off.GetEtag() == cur.GetEtag() {
		t.Fatalf("disable: %v %v", off, err)
	}
	if ev := next(t, ch, 1)[0]; ev.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_DISABLED || ev.GetIdentity().GetDeviceId() != target || ev.GetIdentity().GetEnabled() {
		t.Fatalf("disable event: %v", ev)
	}
	code, op := f.devs.register(target, symkey.DeriveDeviceKey(f.groupKey, target))
	if code != 200 || op.Status != "disabled" || op.RegistrationState.ErrorMessage != "the registration is disabled" { // as DPS answers a disabled device
		t.Fatalf("a disabled registration registering: %d %+v", code, op)
	}
	quiet(t, ch) // the refusal wrote nothing

	// The group off and on again: the disabled device stays disabled.
	f.setGroupEnabled(false)
	f.setGroupEnabled(true)
	for {
		select {
		case w := <-ch:
			if w.err != nil {
				t.Fatal(w.err)
			}
			if w.ev.GetIdentity().GetDeviceId() == target {
				t.Fatalf("the group's re-enable touched the disabled device: %v", w.ev)
			}
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
	if id, err := f.api(f.nodeA).LookupIdentity(t.Context(), &pb.LookupIdentityRequest{DeviceId: target}); err != nil || id.GetEnabled() {
		t.Fatalf("lookup after the group's re-enable: %v %v", id, err)
	}

	on, err := regs.EnableRegistration(e.owner(), &pb.EnableRegistrationRequest{RegistrationId: target})
	if err != nil || on.GetStatus() != pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNED {
		t.Fatalf("enable: %v %v", on, err)
	}
	if ev := next(t, ch, 1)[0]; ev.GetKind() != pb.IdentityEventKind_IDENTITY_EVENT_KIND_ENABLED || ev.GetIdentity().GetDeviceId() != target || !ev.GetIdentity().GetEnabled() {
		t.Fatalf("enable event: %v", ev)
	}
	if sh := f.register(target); sh != shard {
		t.Fatalf("re-registered on %s, want %s", sh, shard)
	}
}

// TestSymmetricGroupChangesTakeEffectAtOnce: symmetric-key groups are
// cached between registrations; a disabled, re-enabled, deleted,
// re-created (new keys) or new group is seen by the very next
// registration, never a cached copy.
func TestSymmetricGroupChangesTakeEffectAtOnce(t *testing.T) {
	e := start(t)
	e.createShard("sym-shard", 1)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	devs := e.dpsDevices()
	create := func(id string) []byte {
		t.Helper()
		g, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: id, AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY}})
		if err != nil {
			t.Fatal(err)
		}
		return g.GetSymmetricKey().GetPrimaryKey()
	}
	n := 0
	expect := func(key []byte, want string) {
		t.Helper()
		n++
		regID := fmt.Sprintf("sym-dev-%d", n)
		code, op := devs.register(regID, symkey.DeriveDeviceKey(key, regID))
		got := op.Status
		if code != 200 {
			got = fmt.Sprint(code)
		}
		if got != want {
			t.Fatalf("device %d: %s (%d %s), want %s", n, got, code, op.RegistrationState.ErrorMessage, want)
		}
	}
	setDisabled := func(id string, disabled bool) {
		t.Helper()
		g, err := enr.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		st := pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED
		if disabled {
			st = pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED
		}
		if _, err := enr.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: id, Etag: g.GetEtag(), ProvisioningStatus: st},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}}); err != nil {
			t.Fatal(err)
		}
	}
	k1 := create("sym-a")
	expect(k1, "assigned")
	expect(k1, "assigned") // from the cache
	setDisabled("sym-a", true)
	expect(k1, "disabled")
	setDisabled("sym-a", false)
	expect(k1, "assigned")
	k2 := create("sym-b") // a new group, right after the cache was filled
	expect(k2, "assigned")
	if _, err := enr.DeleteEnrollmentGroup(e.owner(), &pb.DeleteEnrollmentGroupRequest{Id: "sym-a"}); err != nil {
		t.Fatal(err)
	}
	expect(k1, "401")
	k3 := create("sym-a") // the same ID with new keys
	expect(k1, "401")
	expect(k3, "assigned")
	expect(k2, "assigned")
}
