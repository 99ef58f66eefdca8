package e2e

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/access"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestDisableDeviceSAS: an enrollment group's SAS tokens can be switched
// off (DPS service API disableDeviceSAS, native disable_device_sas) while
// it keeps its keys; a device is refused with ENROLLMENT_SAS_DISABLED and
// registers again once it is switched back on.
func TestDisableDeviceSAS(t *testing.T) {
	e := start(t)
	e.createShard("s1", 1)
	keyID, key := e.newSASKey("svc", access.EnrollmentWrite, access.EnrollmentRead)
	svc := e.serviceClient(keyID, key)
	a := svc.call("PUT", "/enrollmentGroups/sym-off", `{"enrollmentGroupId":"sym-off","attestation":{"type":"symmetricKey"},"disableDeviceSAS":true}`)
	if a.code != 200 || !strings.Contains(string(a.body), `"disableDeviceSAS":true`) {
		t.Fatalf("create: %d %s", a.code, a.body)
	}
	var g struct {
		Attestation struct {
			SymmetricKey struct {
				PrimaryKey string `json:"primaryKey"`
			} `json:"symmetricKey"`
		} `json:"attestation"`
	}
	a.decode(t, &g)
	groupKey, err := base64.StdEncoding.DecodeString(g.Attestation.SymmetricKey.PrimaryKey)
	if err != nil || len(groupKey) == 0 {
		t.Fatalf("group key: %v", err)
	}
	register := func(regID string) (int, string) {
		code, _, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/"+regID+"/register",
			sas(symkey.DeriveDeviceKey(groupKey, regID), regID, time.Now().Add(time.Hour)), `{"registrationId":"`+regID+`"}`, nil)
		if code == 200 {
			return code, ""
		}
		return code, decodeErr(t, raw).Info["reason"]
	}
	if code, reason := register("sym-dev-1"); reason != "ENROLLMENT_SAS_DISABLED" {
		t.Fatalf("switched off: %d %s", code, reason)
	}
	e.assertNoRegistration("sym-dev-1")
	// Native API: switch it back on.
	grp, err := pb.NewEnrollmentServiceClient(e.admin).GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "sym-off"})
	if err != nil || !grp.GetDisableDeviceSas() {
		t.Fatalf("native view: %v %v", grp, err)
	}
	grp.DisableDeviceSas = false
	if _, err := pb.NewEnrollmentServiceClient(e.admin).UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: grp,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"disable_device_sas"}}}); err != nil {
		t.Fatal(err)
	}
	if code, reason := register("sym-dev-1"); code != 200 {
		t.Fatalf("switched on: %d %s", code, reason)
	}
}
