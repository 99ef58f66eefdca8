package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func (e *env) createRegionalShard(id, region string, capacity int32) {
	e.t.Helper()
	if _, err := pb.NewHubServiceClient(e.admin).CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{
		Id: id, Hostname: id + ".hubs.example.com", Weight: 1, Region: region, Capacity: capacity}}); err != nil {
		e.t.Fatalf("CreateShard %s: %v", id, err)
	}
}

// registerFrom registers a symmetric-key device through the DPS API with
// an optional region header (as an edge proxy would set it).
func (d *dpsDevices) registerFrom(regID string, key []byte, region string) (int, dpsdevice.OperationStatus) {
	d.e.t.Helper()
	return d.registerWith(regID, key, region, "null")
}

// registerWith registers a symmetric-key device with a region header (if
// any) and a payload (JSON).
func (d *dpsDevices) registerWith(regID string, key []byte, region, payload string) (int, dpsdevice.OperationStatus) {
	d.e.t.Helper()
	req, _ := http.NewRequest("PUT", "https://"+d.e.httpAddr+"/"+idScope+"/registrations/"+regID+"/register?api-version=2021-06-01",
		strings.NewReader(`{"registrationId":"`+regID+`","payload":`+payload+`}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", symkey.Sign(key, idScope+"/registrations/"+regID, time.Now().Add(time.Hour), "registration"))
	if region != "" {
		req.Header.Set("X-Client-Region", region)
	}
	res, err := d.hc.Do(req)
	if err != nil {
		d.e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var op dpsdevice.OperationStatus
	_ = json.Unmarshal(raw, &op)
	if op.RegistrationState == nil {
		op.RegistrationState = &dpsdevice.RegistrationState{ErrorMessage: string(raw)}
	}
	return res.StatusCode, op
}

// TestGeoAllocation: devices land in their region (from a trusted proxy's
// header, else from their address's network), hashing among the region's
// shards; a failed region hands over to the nearest one; an untrusted
// peer's header is ignored.
func TestGeoAllocation(t *testing.T) {
	const loopback = "127.0.0.0/8"
	e := startWith(t, options{
		geo:     config.Geo{Networks: map[string]string{loopback: "ap-south"}, TrustedProxies: []string{loopback}, ProxyHeader: "X-Client-Region"},
		nearest: map[string][]string{"eu-west": {"us-east"}, "us-east": {"eu-west"}},
	})
	e.createRegionalShard("eu-1", "eu-west", 0)
	e.createRegionalShard("eu-2", "eu-west", 0)
	e.createRegionalShard("us-1", "us-east", 0)
	e.createRegionalShard("ap-1", "ap-south", 0)
	id, k := e.newSASKey("geo", access.All...)
	svc := e.serviceClient(id, k)
	var g dpsservice.EnrollmentGroup
	svc.mustOK(svc.call("PUT", "/enrollmentGroups/geo", `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"geoLatency"}`), 200).decode(t, &g)
	if g.AllocationPolicy != "geoLatency" {
		t.Fatalf("group policy: %s", g.AllocationPolicy)
	}
	groupKey, _ := base64.StdEncoding.DecodeString(g.Attestation.SymmetricKey.PrimaryKey)
	devs := e.dpsDevices()
	place := func(regID, region string) string {
		t.Helper()
		code, op := devs.registerFrom(regID, symkey.DeriveDeviceKey(groupKey, regID), region)
		if code != 200 || op.Status != "assigned" {
			t.Fatalf("%s from %q: %d %+v", regID, region, code, op.RegistrationState)
		}
		return strings.TrimSuffix(op.RegistrationState.AssignedHub, ".hubs.example.com")
	}
	seen := map[string]int{}
	for i := range 60 {
		seen[place(fmt.Sprintf("geo-eu-%d", i), "eu-west")]++
	}
	if seen["eu-1"]+seen["eu-2"] != 60 || seen["eu-1"] < 15 || seen["eu-2"] < 15 {
		t.Fatalf("eu-west devices: %v", seen)
	}
	if got := place("geo-us-0", "us-east"); got != "us-1" {
		t.Fatalf("us-east device on %s", got)
	}
	// No header: the address's network (loopback = ap-south).
	if got := place("geo-ap-0", ""); got != "ap-1" {
		t.Fatalf("located by address: %s", got)
	}
	// A malformed header is ignored too.
	if got := place("geo-ap-1", "EU West!"); got != "ap-1" {
		t.Fatalf("malformed header: %s", got)
	}
	// eu-west fails: its devices go to the nearest region.
	e.setShardState("eu-1", pb.ShardState_SHARD_STATE_DISABLED)
	e.setShardState("eu-2", pb.ShardState_SHARD_STATE_DRAINING)
	if got := place("geo-eu-late", "eu-west"); got != "us-1" {
		t.Fatalf("failed region: device on %s, want us-1", got)
	}

	// A peer outside the trusted proxies cannot choose its region.
	e2 := startWith(t, options{
		geo: config.Geo{Networks: map[string]string{loopback: "ap-south"}, TrustedProxies: []string{"10.0.0.0/8"}, ProxyHeader: "X-Client-Region"},
	})
	e2.createRegionalShard("eu-1", "eu-west", 0)
	e2.createRegionalShard("ap-1", "ap-south", 0)
	id2, k2 := e2.newSASKey("geo", access.All...)
	svc2 := e2.serviceClient(id2, k2)
	svc2.mustOK(svc2.call("PUT", "/enrollmentGroups/geo", `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"geoLatency"}`), 200).decode(t, &g)
	groupKey, _ = base64.StdEncoding.DecodeString(g.Attestation.SymmetricKey.PrimaryKey)
	devs = e2.dpsDevices()
	if got := place("geo-spoof", "eu-west"); got != "ap-1" {
		t.Fatalf("an untrusted peer's header chose %s", got)
	}
}

// TestShardCapacity: a full shard takes no new devices (they go to the
// others), keeps the ones it has (re-registration does not move them), and
// a static enrollment on a full shard is refused with nothing written.
func TestShardCapacity(t *testing.T) {
	e := start(t)
	e.createRegionalShard("cap-small", "", 3)
	e.createRegionalShard("cap-big", "", 0)
	id, k := e.newSASKey("cap", access.All...)
	svc := e.serviceClient(id, k)
	var g dpsservice.EnrollmentGroup
	svc.mustOK(svc.call("PUT", "/enrollmentGroups/cap", `{"attestation":{"type":"symmetricKey"}}`), 200).decode(t, &g)
	groupKey, _ := base64.StdEncoding.DecodeString(g.Attestation.SymmetricKey.PrimaryKey)
	devs := e.dpsDevices()
	on := map[string]string{}
	for i := range 40 {
		regID := fmt.Sprintf("cap-%02d", i)
		code, op := devs.register(regID, symkey.DeriveDeviceKey(groupKey, regID))
		if code != 200 {
			t.Fatalf("%s: %d", regID, code)
		}
		on[regID] = op.RegistrationState.AssignedHub
	}
	small, err := pb.NewHubServiceClient(e.admin).GetShard(e.owner(), &pb.GetShardRequest{Id: "cap-small"})
	if err != nil || small.GetDevices() != 3 {
		t.Fatalf("cap-small holds %d devices (%v), want its capacity 3", small.GetDevices(), err)
	}
	// Re-registration keeps devices where they are, full shard or not.
	for regID, hub := range on {
		if _, op := devs.register(regID, symkey.DeriveDeviceKey(groupKey, regID)); op.RegistrationState.AssignedHub != hub {
			t.Fatalf("%s moved from %s to %s", regID, hub, op.RegistrationState.AssignedHub)
		}
	}
	key := bytes.Repeat([]byte{5}, 32)
	svc.mustOK(svc.call("PUT", "/enrollments/cap-static", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+
		base64.StdEncoding.EncodeToString(key)+`","secondaryKey":"`+base64.StdEncoding.EncodeToString(key)+`"}},"allocationPolicy":"static","iotHubHostName":"cap-small.hubs.example.com"}`), 200)
	code, op := devs.register("cap-static", key)
	if code == 200 && op.Status == "assigned" {
		t.Fatalf("a full static shard took a device: %+v", op.RegistrationState)
	}
	e.assertNoRegistration("cap-static")
}
