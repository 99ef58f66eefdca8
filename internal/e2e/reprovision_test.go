package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// dpsDevices registers symmetric-key devices through the DPS device API
// over one pooled connection (the devices differ by their SAS tokens).
type dpsDevices struct {
	e  *env
	hc *http.Client
}

func (e *env) dpsDevices() *dpsDevices {
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil), MaxIdleConnsPerHost: 4}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &dpsDevices{e: e, hc: &http.Client{Transport: tr}}
}

// register registers regID with key and returns the operation status (or
// fails the test on a transport error); code is the HTTP status.
func (d *dpsDevices) register(regID string, key []byte) (int, dpsdevice.OperationStatus) {
	d.e.t.Helper()
	return d.registerFrom(regID, key, "")
}

func (e *env) setShardState(id string, st pb.ShardState) {
	e.t.Helper()
	cl := pb.NewHubServiceClient(e.admin)
	cur, err := cl.GetShard(e.owner(), &pb.GetShardRequest{Id: id})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := cl.UpdateShard(e.owner(), &pb.UpdateShardRequest{Shard: &pb.Shard{Id: id, Etag: cur.Etag, State: st},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}); err != nil {
		e.t.Fatal(err)
	}
}

// TestReprovisioning checks DPS's re-provisioning semantics on
// re-registration: every policy (never move, move and migrate, move and
// reset) and every substatus, draining and disabled shards, and the
// identity's twin after a migration and after a reset.
func TestReprovisioning(t *testing.T) {
	e := start(t)
	e.createShard("rp-a", 1)
	e.createShard("rp-b", 1)
	id, k := e.newSASKey("rp", access.All...)
	svc := e.serviceClient(id, k)
	devs := e.dpsDevices()
	key := bytes.Repeat([]byte{3}, 32)
	keyB64 := base64.StdEncoding.EncodeToString(key)
	hub := func(s string) string { return s + ".hubs.example.com" }
	policies := map[string]string{
		"never":   `{"updateHubAssignment":false,"migrateDeviceData":true}`,
		"migrate": `{"updateHubAssignment":true,"migrateDeviceData":true}`,
		"reset":   `{"updateHubAssignment":true,"migrateDeviceData":false}`,
	}
	// put writes the device's enrollment: its hubs, policy and twin.
	put := func(regID, policy, twinTag string, hubs ...string) {
		t.Helper()
		var hs []string
		for _, h := range hubs {
			hs = append(hs, `"`+hub(h)+`"`)
		}
		svc.mustOK(svc.call("PUT", "/enrollments/"+regID, `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+keyB64+`","secondaryKey":"`+keyB64+`"}},
			"iotHubs":[`+strings.Join(hs, ",")+`],"reprovisionPolicy":`+policies[policy]+`,"initialTwin":{"tags":{"v":"`+twinTag+`"}}}`), 200)
	}
	expect := func(regID, wantHub, wantSub string) {
		t.Helper()
		code, op := devs.register(regID, key)
		if code != 200 || op.Status != "assigned" || op.RegistrationState.AssignedHub != hub(wantHub) || op.RegistrationState.Substatus != wantSub {
			t.Fatalf("%s: %d %s on %q (%s), want %s (%s): %s", regID, code, op.Status, op.RegistrationState.AssignedHub, op.RegistrationState.Substatus,
				hub(wantHub), wantSub, op.RegistrationState.ErrorMessage)
		}
		ident, err := e.store.GetIdentity(t.Context(), regID)
		if err != nil || ident.Shard != wantHub {
			t.Fatalf("%s: identity on %v (%v), want %s", regID, ident, err, wantHub)
		}
	}
	twinOf := func(regID string) string {
		ident, err := e.store.GetIdentity(t.Context(), regID)
		if err != nil {
			t.Fatal(err)
		}
		return string(ident.InitialTwin)
	}

	for policy, want := range map[string][2]string{
		"never":   {"rp-a", "initialAssignment"},
		"migrate": {"rp-b", "deviceDataMigrated"},
		"reset":   {"rp-b", "deviceDataReset"},
	} {
		t.Run(policy, func(t *testing.T) {
			regID := "rp-" + policy
			put(regID, policy, "one", "rp-a")
			expect(regID, "rp-a", "initialAssignment")
			expect(regID, "rp-a", "initialAssignment") // nothing changed: nothing moves
			put(regID, policy, "two", "rp-b")
			expect(regID, want[0], want[1])
			switch policy {
			case "migrate", "never":
				if !strings.Contains(twinOf(regID), `"one"`) {
					t.Fatalf("%s kept twin %s, want the first", policy, twinOf(regID))
				}
			case "reset":
				if !strings.Contains(twinOf(regID), `"two"`) {
					t.Fatalf("reset left twin %s, want the enrollment's current one", twinOf(regID))
				}
			}
		})
	}
	// Back to where it started: reprovisionedToInitialAssignment.
	put("rp-migrate", "migrate", "three", "rp-a")
	expect("rp-migrate", "rp-a", "reprovisionedToInitialAssignment")

	// A draining shard keeps its devices; a disabled one does not.
	put("rp-drain", "migrate", "one", "rp-a")
	expect("rp-drain", "rp-a", "initialAssignment")
	put("rp-drain", "migrate", "one", "rp-a", "rp-b")
	e.setShardState("rp-a", pb.ShardState_SHARD_STATE_DRAINING)
	expect("rp-drain", "rp-a", "initialAssignment")
	e.setShardState("rp-a", pb.ShardState_SHARD_STATE_DISABLED)
	expect("rp-drain", "rp-b", "deviceDataMigrated")

	// A device whose shard is disabled and that has nowhere to go is
	// refused, and its registration is left as it was.
	e.setShardState("rp-a", pb.ShardState_SHARD_STATE_ACTIVE)
	put("rp-stuck", "migrate", "one", "rp-a")
	expect("rp-stuck", "rp-a", "initialAssignment")
	e.setShardState("rp-a", pb.ShardState_SHARD_STATE_DISABLED)
	before, _ := e.store.GetRegistration(t.Context(), "rp-stuck")
	if code, op := devs.register("rp-stuck", key); code == 200 && op.Status == "assigned" {
		t.Fatalf("a device with no usable shard was assigned: %+v", op.RegistrationState)
	}
	after, _ := e.store.GetRegistration(t.Context(), "rp-stuck")
	if after.Etag != before.Etag || after.Shard != "rp-a" {
		t.Fatalf("the refused re-registration changed the registration: %+v", after)
	}
}

// TestReprovisioningMovesOnlyWhatMust registers devices over ten equal
// shards, adds an eleventh, and has every device register again: about
// 1/11 of them move, all to the new shard, and none of the others move.
func TestReprovisioningMovesOnlyWhatMust(t *testing.T) {
	e := start(t)
	for i := range 10 {
		e.createShard(fmt.Sprintf("mv-%02d", i), 100)
	}
	id, k := e.newSASKey("mv", access.All...)
	svc := e.serviceClient(id, k)
	var g dpsservice.EnrollmentGroup
	svc.mustOK(svc.call("PUT", "/enrollmentGroups/mv-group", `{"attestation":{"type":"symmetricKey"}}`), 200).decode(t, &g)
	groupKey, _ := base64.StdEncoding.DecodeString(g.Attestation.SymmetricKey.PrimaryKey)
	devs := e.dpsDevices()
	const n = 1100
	first := map[string]string{}
	for i := range n {
		regID := fmt.Sprintf("mv-dev-%04d", i)
		code, op := devs.register(regID, symkey.DeriveDeviceKey(groupKey, regID))
		if code != 200 {
			t.Fatalf("%s: %d %s", regID, code, op.RegistrationState.ErrorMessage)
		}
		first[regID] = op.RegistrationState.AssignedHub
	}
	e.createShard("mv-10", 100)
	moved := 0
	for regID, was := range first {
		_, op := devs.register(regID, symkey.DeriveDeviceKey(groupKey, regID))
		now := op.RegistrationState.AssignedHub
		if now == was {
			if op.RegistrationState.Substatus != "initialAssignment" {
				t.Fatalf("%s stayed but its substatus is %s", regID, op.RegistrationState.Substatus)
			}
			continue
		}
		if now != "mv-10.hubs.example.com" || op.RegistrationState.Substatus != "deviceDataMigrated" {
			t.Fatalf("%s moved from %s to %s (%s): only moves to the new shard are allowed", regID, was, now, op.RegistrationState.Substatus)
		}
		moved++
	}
	// Expected n/11 = 100; binomial σ ≈ 9.5, so 4σ is about ±38.
	if exp := float64(n) / 11; math.Abs(float64(moved)-exp) > 4*math.Sqrt(exp*10/11) {
		t.Fatalf("%d of %d devices moved, want about %.0f", moved, n, exp)
	}
	t.Logf("%d of %d devices moved to the new shard (expected %.0f)", moved, n, float64(n)/11)
}
