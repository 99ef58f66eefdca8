package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// enrollmentFixture is the EnrollmentService on the embedded store, called
// in process with an access key in the incoming metadata.
type enrollmentFixture struct {
	t   *testing.T
	svc *enrollmentService
	adm *admin.Service
}

func newEnrollmentFixture(t *testing.T) *enrollmentFixture {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "data.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	adm := &admin.Service{Store: st, Now: time.Now, Rand: rand.Reader, Secrets: sealer, Log: log}
	for _, id := range []string{"s1", "s2"} {
		if _, err := adm.CreateShard(t.Context(), &allocation.Shard{ID: id, Hostname: id + ".example.com", Weight: 1, State: allocation.Active}); err != nil {
			t.Fatal(err)
		}
	}
	return &enrollmentFixture{t: t, svc: &enrollmentService{base: base{admin: adm, log: log}}, adm: adm}
}

// as is a context whose caller holds a new key with perms.
func (f *enrollmentFixture) as(perms ...access.Permission) context.Context {
	f.t.Helper()
	token, k, err := access.Generate(rand.Reader, "test", perms, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.adm.Store.CreateKey(f.t.Context(), k); err != nil {
		f.t.Fatal(err)
	}
	return metadata.NewIncomingContext(f.t.Context(), metadata.Pairs("authorization", "Bearer "+token))
}

// snapshot lists every enrollment with its etag: a refused request must
// leave it as it was.
func (f *enrollmentFixture) snapshot() string {
	f.t.Helper()
	ctx := f.t.Context()
	var b strings.Builder
	groups, _, err := f.adm.Store.ListGroups(ctx, enrollment.Page{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, g := range groups {
		fmt.Fprintf(&b, "group %s %s\n", g.ID, g.Etag)
	}
	es, _, err := f.adm.Store.ListIndividuals(ctx, enrollment.Page{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range es {
		fmt.Fprintf(&b, "enrollment %s %s\n", e.RegistrationID, e.Etag)
	}
	return b.String()
}

// reason is the stable reason of a status error ("" for nil).
func reason(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status error: %v", err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	t.Fatalf("status without ErrorInfo: %v", err)
	return ""
}

// settingsInput is what a case sets on a group and an enrollment alike.
type settingsInput struct {
	reprovision pb.ReprovisionPolicy
	twin        string
	edge        bool
	adopt       []string
	alloc       *pb.Allocation
}

// group is a symmetric-key group (no CA needed) carrying v.
func (v settingsInput) group(id string) *pb.EnrollmentGroup {
	return &pb.EnrollmentGroup{Id: id, AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY, SymmetricKey: &pb.SymmetricKeyAttestation{},
		ReprovisionPolicy: v.reprovision, InitialTwin: v.twin, IotEdge: v.edge, AdoptFrom: v.adopt, Allocation: v.alloc}
}

// enrollment is a symmetric-key individual enrollment carrying v.
func (v settingsInput) enrollment(id string) *pb.Enrollment {
	return &pb.Enrollment{RegistrationId: id, SymmetricKey: &pb.SymmetricKeyAttestation{},
		ReprovisionPolicy: v.reprovision, InitialTwin: v.twin, IotEdge: v.edge, AdoptFrom: v.adopt, Allocation: v.alloc}
}

func webhookAlloc(w *pb.Webhook) *pb.Allocation {
	return &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Webhook: w}
}

// malformedSettings are malformed forms of every device setting and
// allocation field, with the update_mask path that names the field.
func malformedSettings() []struct {
	name, path string
	in         settingsInput
} {
	many := make([]string, enrollment.MaxAdoptFrom+1)
	for i := range many {
		many[i] = fmt.Sprintf("g%d", i)
	}
	hook := "https://hooks.example.com/allocate"
	return []struct {
		name, path string
		in         settingsInput
	}{
		{"reprovision unknown", "reprovision_policy", settingsInput{reprovision: 99}},
		{"reprovision negative", "reprovision_policy", settingsInput{reprovision: -1}},
		{"twin not JSON", "initial_twin", settingsInput{twin: `{"tags":`}},
		{"twin an array", "initial_twin", settingsInput{twin: `[]`}},
		{"twin a string", "initial_twin", settingsInput{twin: `"{}"`}},
		{"twin a number", "initial_twin", settingsInput{twin: `42`}},
		{"twin two values", "initial_twin", settingsInput{twin: `{"tags":{}} {"tags":{}}`}},
		{"twin unknown member", "initial_twin", settingsInput{twin: `{"tags":{},"colour":"red"}`}},
		{"twin reported properties", "initial_twin", settingsInput{twin: `{"properties":{"reported":{"a":1}}}`}},
		{"twin tags not an object", "initial_twin", settingsInput{twin: `{"tags":"x"}`}},
		{"twin desired not an object", "initial_twin", settingsInput{twin: `{"properties":{"desired":[1]}}`}},
		{"twin over 32 KiB", "initial_twin", settingsInput{twin: `{"tags":{"a":"` + strings.Repeat("x", enrollment.MaxInitialTwin) + `"}}`}},
		{"twin invalid UTF-8", "initial_twin", settingsInput{twin: "{\"tags\":{\"a\":\"\xff\"}}"}},
		{"adopt_from bad ID", "adopt_from", settingsInput{adopt: []string{"a/b"}}},
		{"adopt_from empty ID", "adopt_from", settingsInput{adopt: []string{""}}},
		{"adopt_from twice", "adopt_from", settingsInput{adopt: []string{"old", "old"}}},
		{"adopt_from too many", "adopt_from", settingsInput{adopt: many}},
		{"policy unknown", "allocation", settingsInput{alloc: &pb.Allocation{Policy: 99}}},
		{"custom without webhook", "allocation", settingsInput{alloc: webhookAlloc(nil)}},
		{"webhook without custom", "allocation", settingsInput{alloc: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_HASHED, Webhook: &pb.Webhook{Url: hook}}}},
		{"webhook plain http", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{Url: "http://hooks.example.com/allocate"})}},
		{"webhook user info", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{Url: "https://u:p@hooks.example.com/"})}},
		{"webhook no URL", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{})}},
		{"webhook timeout negative", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{Url: hook, TimeoutSeconds: -1})}},
		{"webhook timeout over 30 s", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{Url: hook, TimeoutSeconds: 31})}},
		{"webhook fallback custom", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{Url: hook, FallbackPolicy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM})}},
		{"webhook fallback unknown", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{Url: hook, FallbackPolicy: 99})}},
		{"webhook static fallback without a shard", "allocation", settingsInput{alloc: webhookAlloc(&pb.Webhook{Url: hook, FallbackPolicy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC})}},
		{"linked shard unknown", "allocation", settingsInput{alloc: &pb.Allocation{Shards: []string{"s1", "s9"}}}},
		{"linked shard twice", "allocation", settingsInput{alloc: &pb.Allocation{Shards: []string{"s1", "s1"}}}},
		{"linked shard bad ID", "allocation", settingsInput{alloc: &pb.Allocation{Shards: []string{"s 1"}}}},
		{"static shard not linked", "allocation", settingsInput{alloc: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, Shards: []string{"s1"}, StaticShard: "s2"}}},
	}
}

// TestEnrollmentSettingsRefused: every malformed form of the device
// settings and allocation is refused with FIELD_INVALID on create and on
// update (the field named in update_mask), for groups and individual
// enrollments, and writes nothing.
func TestEnrollmentSettingsRefused(t *testing.T) {
	f := newEnrollmentFixture(t)
	owner := f.as(access.All...)
	g, err := f.svc.CreateEnrollmentGroup(owner, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: settingsInput{}.group("g-1")})
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.svc.CreateEnrollment(owner, &pb.CreateEnrollmentRequest{Enrollment: settingsInput{}.enrollment("e-1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range malformedSettings() {
		t.Run(tc.name, func(t *testing.T) {
			mask := &fieldmaskpb.FieldMask{Paths: []string{tc.path}}
			upd := tc.in.group("g-1")
			upd.Etag, upd.SymmetricKey, upd.AttestationType = g.GetEtag(), nil, 0
			updE := tc.in.enrollment("e-1")
			updE.Etag, updE.SymmetricKey = e.GetEtag(), nil
			calls := map[string]func() error{
				"create group": func() error {
					_, err := f.svc.CreateEnrollmentGroup(owner, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: tc.in.group("g-2")})
					return err
				},
				"create enrollment": func() error {
					_, err := f.svc.CreateEnrollment(owner, &pb.CreateEnrollmentRequest{Enrollment: tc.in.enrollment("e-2")})
					return err
				},
				"update group": func() error {
					_, err := f.svc.UpdateEnrollmentGroup(owner, &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: upd, UpdateMask: mask})
					return err
				},
				"update enrollment": func() error {
					_, err := f.svc.UpdateEnrollment(owner, &pb.UpdateEnrollmentRequest{Enrollment: updE, UpdateMask: mask})
					return err
				},
			}
			for name, call := range calls {
				before := f.snapshot()
				if got := reason(t, call()); got != "FIELD_INVALID" {
					t.Errorf("%s: reason %q, want FIELD_INVALID", name, got)
				}
				if after := f.snapshot(); after != before {
					t.Errorf("%s: a refused request wrote:\nbefore:\n%safter:\n%s", name, before, after)
				}
			}
			// A batch refuses the item alone, with the same reason.
			before := f.snapshot()
			r, err := f.svc.BatchCreateEnrollments(owner, &pb.BatchCreateEnrollmentsRequest{Enrollments: []*pb.Enrollment{tc.in.enrollment("e-3")}})
			if err != nil || r.GetFailed() != 1 || r.GetResults()[0].GetError().GetReason() != "FIELD_INVALID" {
				t.Errorf("batch create: %v %v", r, err)
			}
			if after := f.snapshot(); after != before {
				t.Errorf("batch create: a refused item wrote:\nbefore:\n%safter:\n%s", before, after)
			}
		})
	}
	t.Run("unknown mask path", func(t *testing.T) {
		before := f.snapshot()
		_, err := f.svc.UpdateEnrollmentGroup(owner, &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "g-1", Etag: g.GetEtag()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"initial_twin_json"}}})
		if got := reason(t, err); got != "FIELD_INVALID" || f.snapshot() != before {
			t.Fatalf("reason %q (%v)", got, err)
		}
	})
}

// TestAdoptFromNeedsRegistrationWrite: a key with EnrollmentWrite only
// cannot set adopt_from (it moves registrations), over create or update,
// and writes nothing; with RegistrationStatusWrite as well it can.
func TestAdoptFromNeedsRegistrationWrite(t *testing.T) {
	f := newEnrollmentFixture(t)
	writer := f.as(access.EnrollmentWrite, access.EnrollmentRead)
	both := f.as(access.EnrollmentWrite, access.EnrollmentRead, access.RegistrationWrite)
	g, err := f.svc.CreateEnrollmentGroup(writer, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: settingsInput{}.group("g-1")})
	if err != nil {
		t.Fatal(err)
	}
	adopt := settingsInput{adopt: []string{"old"}}
	before := f.snapshot()
	if _, err := f.svc.CreateEnrollmentGroup(writer, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: adopt.group("g-2")}); reason(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("create with adopt_from: %v", err)
	}
	if _, err := f.svc.CreateEnrollment(writer, &pb.CreateEnrollmentRequest{Enrollment: adopt.enrollment("e-2")}); reason(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("create enrollment with adopt_from: %v", err)
	}
	upd := &pb.EnrollmentGroup{Id: "g-1", Etag: g.GetEtag(), AdoptFrom: []string{"old"}}
	mask := &fieldmaskpb.FieldMask{Paths: []string{"adopt_from"}}
	if _, err := f.svc.UpdateEnrollmentGroup(writer, &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: upd, UpdateMask: mask}); reason(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("update with adopt_from: %v", err)
	}
	if after := f.snapshot(); after != before {
		t.Fatalf("refused adoption wrote:\n%s\n%s", before, after)
	}
	got, err := f.svc.UpdateEnrollmentGroup(both, &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: upd, UpdateMask: mask})
	if err != nil || len(got.GetAdoptFrom()) != 1 || got.GetAdoptFrom()[0] != "old" {
		t.Fatalf("update with both permissions: %v %v", got, err)
	}
}

// TestEnrollmentSettingsRoundTrip: the settings are stored as given (the
// twin compacted, UNSPECIFIED read back as MIGRATE), and an update
// changes only the paths its mask names.
func TestEnrollmentSettingsRoundTrip(t *testing.T) {
	f := newEnrollmentFixture(t)
	owner := f.as(access.All...)
	in := settingsInput{reprovision: pb.ReprovisionPolicy_REPROVISION_POLICY_RESET, twin: "{ \"tags\": {\"site\": \"berlin\"},\n \"properties\": {\"desired\": {\"interval\": 30}} }",
		edge: true, adopt: []string{"old-a", "old-b"},
		alloc: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Shards: []string{"s1", "s2"}, StaticShard: "s2",
			Webhook: &pb.Webhook{Url: "https://hooks.example.com/allocate", TimeoutSeconds: 7, FallbackPolicy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC}}}
	const twin = `{"tags":{"site":"berlin"},"properties":{"desired":{"interval":30}}}`
	check := func(what string, m interface {
		settingsFields
		GetAllocation() *pb.Allocation
	}, reprovision pb.ReprovisionPolicy, twin string, edge bool) {
		t.Helper()
		if m.GetReprovisionPolicy() != reprovision || m.GetInitialTwin() != twin || m.GetIotEdge() != edge ||
			strings.Join(m.GetAdoptFrom(), ",") != "old-a,old-b" || !proto.Equal(m.GetAllocation(), in.alloc) {
			t.Fatalf("%s: %v", what, m)
		}
	}
	g, err := f.svc.CreateEnrollmentGroup(owner, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: in.group("g-1")})
	if err != nil {
		t.Fatal(err)
	}
	check("created group", g, in.reprovision, twin, true)
	got, err := f.svc.GetEnrollmentGroup(owner, &pb.GetEnrollmentGroupRequest{Id: "g-1"})
	if err != nil {
		t.Fatal(err)
	}
	check("read group", got, in.reprovision, twin, true)
	got, err = f.svc.UpdateEnrollmentGroup(owner, &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "g-1", Etag: got.GetEtag()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"reprovision_policy", "iot_edge"}}})
	if err != nil {
		t.Fatal(err)
	}
	check("updated group", got, pb.ReprovisionPolicy_REPROVISION_POLICY_MIGRATE, twin, false)

	e, err := f.svc.CreateEnrollment(owner, &pb.CreateEnrollmentRequest{Enrollment: in.enrollment("e-1")})
	if err != nil {
		t.Fatal(err)
	}
	check("created enrollment", e, in.reprovision, twin, true)
	ge, err := f.svc.UpdateEnrollment(owner, &pb.UpdateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "e-1", Etag: e.GetEtag(), InitialTwin: "null"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"initial_twin"}}})
	if err != nil {
		t.Fatal(err)
	}
	check("updated enrollment", ge, in.reprovision, "", true)
	if ge, err = f.svc.GetEnrollment(owner, &pb.GetEnrollmentRequest{RegistrationId: "e-1"}); err != nil {
		t.Fatal(err)
	}
	check("read enrollment", ge, in.reprovision, "", true)
}
