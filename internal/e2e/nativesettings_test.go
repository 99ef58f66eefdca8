package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestNativeDeviceSettings sets, through the native API, what only the DPS
// service API could set before: the re-provisioning policy (never, reset,
// migrate), the initial twin, IoT Edge, adopt_from, and a custom
// allocation webhook with its timeout, fallback and linked shards. Each is
// set over gRPC and read back over REST, and devices registering through
// the enrollment get them: their registry identity holds the twin and the
// IoT Edge flag, the webhook places them, the policy decides whether a
// re-registration moves or resets them, and adopt_from lets an individual
// enrollment take over a group's registration.
func TestNativeDeviceSettings(t *testing.T) {
	var hookCalls atomic.Int32
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			LinkedHubs []string `json:"linkedHubs"`
		}
		if json.NewDecoder(r.Body).Decode(&req) != nil || !slices.Contains(req.LinkedHubs, "ns-b.hubs.example.com") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		hookCalls.Add(1)
		w.Write([]byte(`{"iotHubHostName":"ns-b.hubs.example.com"}`))
	}))
	defer hook.Close()
	e := startWith(t, options{webhooks: hook.Client()})
	e.createShard("ns-a", 1)
	e.createShard("ns-b", 1)
	e.createShard("ns-c", 1)
	root, err := pki.NewCA("Native Settings Root", nil, time.Now(), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.uploadCA("ns-root", root, true)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	rest := &http.Client{Transport: tr}
	// read GETs a resource over REST into m.
	read := func(path string, m proto.Message) {
		t.Helper()
		a := e.restCall(t, rest, "GET", path, "", nil)
		if a.http != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, a.http, a.body)
		}
		if err := protojson.Unmarshal([]byte(a.body), m); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, a.body)
		}
	}
	readGroup := func() *pb.EnrollmentGroup {
		t.Helper()
		g := &pb.EnrollmentGroup{}
		read("/v1/enrollmentGroups/ns-fleet", g)
		return g
	}
	device := func(regID string) *pki.Issued {
		t.Helper()
		d, err := pki.NewDevice(regID, root, time.Now(), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// registered checks where a registration landed and what its registry
	// identity holds.
	registered := func(reg *pb.Registration, err error, shard string, sub pb.RegistrationSubstatus, twin string, edge bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		if reg.GetShard() != shard || reg.GetSubstatus() != sub {
			t.Fatalf("registration on %s (%s), want %s (%s)", reg.GetShard(), reg.GetSubstatus(), shard, sub)
		}
		id, err := e.store.GetIdentity(t.Context(), reg.GetDeviceId())
		if err != nil || id.Shard != shard || string(id.InitialTwin) != twin || id.IoTEdge != edge || id.Status != registry.IdentityEnabled {
			t.Fatalf("identity %+v (%v), want on %s with twin %s and IoT Edge %t", id, err, shard, twin, edge)
		}
	}

	// A group with every setting, over gRPC.
	const twinA = `{"tags":{"site":"berlin"},"properties":{"desired":{"interval":30}}}`
	custom := &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Shards: []string{"ns-a", "ns-b"},
		Webhook: &pb.Webhook{Url: hook.URL + "/allocate", TimeoutSeconds: 5, FallbackPolicy: pb.AllocationPolicy_ALLOCATION_POLICY_HASHED}}
	g, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
		Id: "ns-fleet", CaCertificate: "ns-root", Allocation: custom,
		ReprovisionPolicy: pb.ReprovisionPolicy_REPROVISION_POLICY_NEVER, InitialTwin: "{ \"tags\": {\"site\": \"berlin\"},\n  \"properties\": {\"desired\": {\"interval\": 30}} }",
		IotEdge: true, AdoptFrom: []string{"ns-legacy"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := readGroup()
	if got.GetReprovisionPolicy() != pb.ReprovisionPolicy_REPROVISION_POLICY_NEVER || got.GetInitialTwin() != twinA || !got.GetIotEdge() ||
		!slices.Equal(got.GetAdoptFrom(), []string{"ns-legacy"}) || !proto.Equal(got.GetAllocation(), custom) || got.GetEtag() != g.GetEtag() {
		t.Fatalf("group over REST: %v", got)
	}

	// A device lands where the webhook says, with the group's twin and
	// IoT Edge flag.
	dev1 := device("ns-dev-1")
	reg, err := e.registerGRPC("ns-dev-1", dev1)
	registered(reg, err, "ns-b", pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_INITIAL_ASSIGNMENT, twinA, true)
	if hookCalls.Load() != 1 {
		t.Fatalf("the webhook was called %d times", hookCalls.Load())
	}

	// Static on ns-a now; under NEVER the registered device stays.
	static := &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, Shards: []string{"ns-a", "ns-b"}, StaticShard: "ns-a"}
	if g, err = enr.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "ns-fleet", Etag: g.GetEtag(), Allocation: static},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"allocation"}}}); err != nil {
		t.Fatal(err)
	}
	reg, err = e.registerREST("ns-dev-1", dev1)
	registered(reg, err, "ns-b", pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_INITIAL_ASSIGNMENT, twinA, true)

	// Malformed settings over REST are refused and write nothing.
	for name, body := range map[string]string{
		"iotEdge not a bool":      `{"etag":"` + g.GetEtag() + `","iotEdge":"yes"}`,
		"twin not JSON":           `{"etag":"` + g.GetEtag() + `","initialTwin":"{\"tags\":"}`,
		"twin an object":          `{"etag":"` + g.GetEtag() + `","initialTwin":{"tags":{}}}`,
		"policy unknown":          `{"etag":"` + g.GetEtag() + `","reprovisionPolicy":"REPROVISION_POLICY_SOMETIMES"}`,
		"adopt_from a bad ID":     `{"etag":"` + g.GetEtag() + `","adoptFrom":["a/b"]}`,
		"webhook timeout too big": `{"etag":"` + g.GetEtag() + `","allocation":{"policy":"ALLOCATION_POLICY_CUSTOM","webhook":{"url":"https://h.example.com/","timeoutSeconds":31}}}`,
	} {
		a := e.restCall(t, rest, "PATCH", "/v1/enrollmentGroups/ns-fleet", "application/json", []byte(body))
		if a.http != http.StatusBadRequest || a.reason != "FIELD_INVALID" {
			t.Errorf("%s: %d %s %s", name, a.http, a.reason, a.body)
		}
	}
	if got := readGroup(); got.GetEtag() != g.GetEtag() {
		t.Fatalf("a refused PATCH changed the group: %v", got)
	}

	// RESET, a new twin and no IoT Edge, over gRPC; read back over REST.
	const twinB = `{"tags":{"site":"hamburg"}}`
	if g, err = enr.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "ns-fleet", Etag: g.GetEtag(),
		ReprovisionPolicy: pb.ReprovisionPolicy_REPROVISION_POLICY_RESET, InitialTwin: twinB, IotEdge: false},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"reprovision_policy", "initial_twin", "iot_edge"}}}); err != nil {
		t.Fatal(err)
	}
	got = readGroup()
	if got.GetReprovisionPolicy() != pb.ReprovisionPolicy_REPROVISION_POLICY_RESET || got.GetInitialTwin() != twinB || got.GetIotEdge() ||
		!slices.Equal(got.GetAdoptFrom(), []string{"ns-legacy"}) || !proto.Equal(got.GetAllocation(), static) {
		t.Fatalf("updated group over REST: %v", got)
	}
	// The device moves to the static shard and is reset to the new twin.
	reg, err = e.registerGRPC("ns-dev-1", dev1)
	registered(reg, err, "ns-a", pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_DEVICE_DATA_RESET, twinB, false)

	// An individual enrollment for a device the group registered: without
	// adopt_from its device is refused; with it, it takes the
	// registration over.
	dev2 := device("ns-dev-2")
	reg, err = e.registerGRPC("ns-dev-2", dev2)
	registered(reg, err, "ns-a", pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_INITIAL_ASSIGNMENT, twinB, false)
	const twinC = `{"tags":{"role":"gateway"},"properties":{"desired":{"mode":"edge"}}}`
	onB := &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, Shards: []string{"ns-b"}, StaticShard: "ns-b"}
	ind, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "ns-dev-2",
		CertificatePem: string(pki.CertPEM(dev2.Cert)), Allocation: onB,
		ReprovisionPolicy: pb.ReprovisionPolicy_REPROVISION_POLICY_RESET, InitialTwin: twinC, IotEdge: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("ns-dev-2", dev2); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
		t.Fatalf("an individual enrollment without adopt_from took a group's registration: %v", err)
	}
	if ind, err = enr.UpdateEnrollment(e.owner(), &pb.UpdateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "ns-dev-2", Etag: ind.GetEtag(),
		AdoptFrom: []string{"ns-fleet"}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"adopt_from"}}}); err != nil {
		t.Fatal(err)
	}
	gotE := &pb.Enrollment{}
	read("/v1/enrollments/ns-dev-2", gotE)
	if gotE.GetReprovisionPolicy() != pb.ReprovisionPolicy_REPROVISION_POLICY_RESET || gotE.GetInitialTwin() != twinC || !gotE.GetIotEdge() ||
		!slices.Equal(gotE.GetAdoptFrom(), []string{"ns-fleet"}) || !proto.Equal(gotE.GetAllocation(), onB) || gotE.GetEtag() != ind.GetEtag() {
		t.Fatalf("enrollment over REST: %v", gotE)
	}
	reg, err = e.registerGRPC("ns-dev-2", dev2)
	registered(reg, err, "ns-b", pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_DEVICE_DATA_RESET, twinC, true)
	if !reg.GetIndividualEnrollment() || reg.GetEnrollmentGroupId() != "" {
		t.Fatalf("the adopted registration: %v", reg)
	}

	// MIGRATE: the device moves and keeps its twin and IoT Edge flag.
	if ind, err = enr.UpdateEnrollment(e.owner(), &pb.UpdateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "ns-dev-2", Etag: ind.GetEtag(),
		ReprovisionPolicy: pb.ReprovisionPolicy_REPROVISION_POLICY_MIGRATE, InitialTwin: `{"tags":{"role":"sensor"}}`, IotEdge: false,
		Allocation: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, StaticShard: "ns-c"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"reprovision_policy", "initial_twin", "iot_edge", "allocation"}}}); err != nil {
		t.Fatal(err)
	}
	read("/v1/enrollments/ns-dev-2", gotE)
	if gotE.GetReprovisionPolicy() != pb.ReprovisionPolicy_REPROVISION_POLICY_MIGRATE || gotE.GetInitialTwin() != `{"tags":{"role":"sensor"}}` || gotE.GetIotEdge() {
		t.Fatalf("enrollment over REST: %v", gotE)
	}
	reg, err = e.registerREST("ns-dev-2", dev2)
	registered(reg, err, "ns-c", pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_DEVICE_DATA_MIGRATED, twinC, true)
}
