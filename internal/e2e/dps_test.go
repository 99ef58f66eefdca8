package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// dpsCall makes one DPS device API request over a fresh TLS connection.
func (e *env) dpsCall(method, path, auth, body string, dev *pki.Issued, chain ...*pki.Issued) (int, http.Header, []byte) {
	e.t.Helper()
	var certs []*pki.Issued
	certs = append(certs, chain...)
	cfg := e.clientTLS(dev)
	if dev != nil {
		for _, c := range certs {
			cfg.Certificates[0].Certificate = append(cfg.Certificates[0].Certificate, c.Cert.Raw)
		}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(method, "https://"+e.httpAddr+path+"?api-version=2021-06-01", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
		e.t.Fatalf("%s %s answered Content-Type %q (Node needs application/json): %s", method, path, ct, raw)
	}
	return res.StatusCode, res.Header, raw
}

func sas(key []byte, regID string, expiry time.Time) string {
	return symkey.Sign(key, idScope+"/registrations/"+regID, expiry, "registration")
}

func decodeOp(t *testing.T, raw []byte) dpsdevice.OperationStatus {
	t.Helper()
	var op dpsdevice.OperationStatus
	if err := json.Unmarshal(raw, &op); err != nil {
		t.Fatalf("not an operation status: %s", raw)
	}
	return op
}

func decodeErr(t *testing.T, raw []byte) apierr.DPSErrorBody {
	t.Helper()
	var eb apierr.DPSErrorBody
	if err := json.Unmarshal(raw, &eb); err != nil || eb.ErrorCode == 0 || eb.TimestampUTC == "" {
		t.Fatalf("not a DPS error body: %s", raw)
	}
	return eb
}

// TestDPSDeviceAPI registers symmetric-key and X.509 devices through the
// DPS-compatible API, checks the DPS shapes, and every refusal.
func TestDPSDeviceAPI(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	enr := pb.NewEnrollmentServiceClient(e.admin)
	ind, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "sym-device", SymmetricKey: &pb.SymmetricKeyAttestation{}}})
	if err != nil {
		t.Fatal(err)
	}
	keys := ind.GetSymmetricKey()
	if len(keys.GetPrimaryKey()) != 32 || len(keys.GetSecondaryKey()) != 32 || ind.GetAttestationType() != pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY {
		t.Fatalf("enrollment = %v", ind)
	}
	if got, _ := enr.GetEnrollment(e.owner(), &pb.GetEnrollmentRequest{RegistrationId: "sym-device"}); got.GetSymmetricKey() != nil {
		t.Fatal("GetEnrollment returned the keys")
	}
	grp, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
		Id: "sym-group", AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY}})
	if err != nil {
		t.Fatal(err)
	}
	groupKey := grp.GetSymmetricKey().GetPrimaryKey()
	soon := time.Now().Add(time.Hour)
	path := func(regID string) string { return "/" + idScope + "/registrations/" + regID + "/register" }

	t.Run("SymmetricIndividual", func(t *testing.T) {
		status, hdr, raw := e.dpsCall("PUT", path("sym-device"), sas(keys.GetPrimaryKey(), "sym-device", soon), `{"registrationId":"sym-device"}`, nil)
		op := decodeOp(t, raw)
		st := op.RegistrationState
		if status != 200 || op.Status != "assigned" || op.OperationID == "" || st == nil || st.Status != "assigned" || st.Substatus != "initialAssignment" ||
			st.DeviceID != "sym-device" || st.AssignedHub == "" || st.CreatedDateTimeUTC == "" || st.Etag == "" || st.SymmetricKey == nil {
			t.Fatalf("%d %s", status, raw)
		}
		_ = hdr
		// The secondary key works too, and an sr URL-encoded (as the Node TPM
		// and Python clients send it) verifies over the encoded form.
		enc := url.QueryEscape(idScope + "/registrations/sym-device")
		status, _, raw = e.dpsCall("PUT", path("sym-device"), symkey.Sign(keys.GetSecondaryKey(), enc, soon, "registration"), `{}`, nil)
		if status != 200 || decodeOp(t, raw).Status != "assigned" {
			t.Fatalf("secondary key, encoded sr: %d %s", status, raw)
		}
		// Operation status and status lookup.
		status, _, raw = e.dpsCall("GET", "/"+idScope+"/registrations/sym-device/operations/"+op.OperationID, sas(keys.GetPrimaryKey(), "sym-device", soon), `{}`, nil)
		if status != 200 || decodeOp(t, raw).Status != "assigned" {
			t.Fatalf("operation status: %d %s", status, raw)
		}
		status, _, raw = e.dpsCall("POST", "/"+idScope+"/registrations/sym-device", sas(keys.GetPrimaryKey(), "sym-device", soon), `{"registrationId":"sym-device"}`, nil)
		var state dpsdevice.RegistrationState
		if json.Unmarshal(raw, &state); status != 200 || state.Status != "assigned" || state.DeviceID != "sym-device" {
			t.Fatalf("status lookup: %d %s", status, raw)
		}
	})
	t.Run("SymmetricGroup", func(t *testing.T) {
		derived := symkey.DeriveDeviceKey(groupKey, "sym-group-dev-1")
		status, _, raw := e.dpsCall("PUT", path("sym-group-dev-1"), sas(derived, "sym-group-dev-1", soon), `{"registrationId":"sym-group-dev-1","payload":{"a":1}}`, nil)
		op := decodeOp(t, raw)
		if status != 200 || op.Status != "assigned" || op.RegistrationState.SymmetricKey.EnrollmentGroupID != "sym-group" {
			t.Fatalf("%d %s", status, raw)
		}
	})
	t.Run("X509", func(t *testing.T) {
		dev := f.device(t, "dps-x509-dev")
		status, _, raw := e.dpsCall("PUT", path("dps-x509-dev"), "", `{"registrationId":"dps-x509-dev"}`, dev, f.inter)
		op := decodeOp(t, raw)
		if status != 200 || op.Status != "assigned" || op.RegistrationState.X509 == nil || op.RegistrationState.X509.EnrollmentGroupID != "acme" {
			t.Fatalf("%d %s", status, raw)
		}
	})
	t.Run("Native", func(t *testing.T) {
		// The native API takes SAS too, for sr "registrations/{id}".
		cc := e.dial(nil)
		defer cc.Close()
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization",
			symkey.Sign(symkey.DeriveDeviceKey(groupKey, "sym-native"), "registrations/sym-native", soon, "registration"))
		resp, err := pb.NewDeviceRegistrationServiceClient(cc).Register(ctx, &pb.RegisterRequest{RegistrationId: "sym-native"})
		if err != nil || resp.GetRegistration().GetAttestationType() != pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY {
			t.Fatalf("native SAS: %v %v", resp, err)
		}
	})

	_, err = enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "sym-off", SymmetricKey: &pb.SymmetricKeyAttestation{PrimaryKey: keys.GetPrimaryKey(), SecondaryKey: keys.GetSecondaryKey()},
		ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED}})
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := make([]byte, 32)
	for _, tc := range []struct {
		name, regID, auth, body string
		x509                    bool
		status, code            int
		reason                  string
	}{
		{"BadSAS", "sym-device", sas(wrongKey, "sym-device", soon), `{}`, false, 401, 401002, "SAS_INVALID"},
		{"ExpiredSAS", "sym-device", sas(keys.GetPrimaryKey(), "sym-device", time.Now().Add(-time.Hour)), `{}`, false, 401, 401002, "SAS_EXPIRED"},
		{"SASForAnotherDevice", "sym-device", sas(keys.GetPrimaryKey(), "someone-else", soon), `{}`, false, 401, 401002, "SAS_INVALID"},
		{"GroupKeyNotDerived", "sym-group-dev-2", sas(groupKey, "sym-group-dev-2", soon), `{}`, false, 401, 401002, "SAS_INVALID"},
		{"UnknownDevice", "nobody", sas(wrongKey, "nobody", soon), `{}`, false, 401, 401002, "SAS_INVALID"},
		{"MalformedSAS", "sym-device", "SharedAccessSignature sr=x", `{}`, false, 401, 401002, "SAS_INVALID"},
		{"NoCredential", "sym-device", "", `{}`, false, 401, 401002, "CERTIFICATE_MISSING"},
		{"BodyForAnotherDevice", "sym-device", sas(keys.GetPrimaryKey(), "sym-device", soon), `{"registrationId":"other"}`, false, 400, 400001, "REGISTRATION_ID_INVALID"},
		{"MalformedBody", "sym-device", sas(keys.GetPrimaryKey(), "sym-device", soon), `{"registrationId":`, false, 400, 400004, "FIELD_INVALID"},
		{"TPMMalformedEK", "tpm-device", "", `{"registrationId":"tpm-device","tpm":{"endorsementKey":"AAA=","storageRootKey":"AAA="}}`, false, 400, 400004, "TPM_STRUCTURE_INVALID"},
		{"TPMNotBase64", "tpm-device", "", `{"registrationId":"tpm-device","tpm":{"endorsementKey":"%%%","storageRootKey":"AAA="}}`, false, 400, 400004, "TPM_STRUCTURE_INVALID"},
		{"WrongChain", "dps-stranger", "", `{}`, true, 401, 401002, "CERTIFICATE_UNTRUSTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dev *pki.Issued
			if tc.x509 {
				stranger, _ := pki.NewCA("Stranger", nil, time.Now(), time.Hour)
				dev, _ = pki.NewDevice(tc.regID, stranger, time.Now(), time.Hour)
			}
			status, _, raw := e.dpsCall("PUT", path(tc.regID), tc.auth, tc.body, dev)
			eb := decodeErr(t, raw)
			if status != tc.status || eb.ErrorCode != tc.code || eb.Info["reason"] != tc.reason || eb.TrackingID == "" {
				t.Fatalf("%d %s, want %d %d %s", status, raw, tc.status, tc.code, tc.reason)
			}
			if tc.regID != "sym-device" {
				e.assertNoRegistration(tc.regID)
			}
		})
	}
	t.Run("DisabledEnrollment", func(t *testing.T) {
		status, _, raw := e.dpsCall("PUT", path("sym-off"), sas(keys.GetPrimaryKey(), "sym-off", soon), `{}`, nil)
		if op := decodeOp(t, raw); status != 200 || op.Status != "disabled" {
			t.Fatalf("%d %s", status, raw)
		}
		e.assertNoRegistration("sym-off")
	})
	t.Run("UnknownScope", func(t *testing.T) {
		status, _, raw := e.dpsCall("PUT", "/0neOTHER/registrations/x/register", "", `{}`, nil)
		if status != 404 || decodeErr(t, raw).ErrorCode != 404201 {
			t.Fatalf("%d %s", status, raw)
		}
	})
}

// TestSymmetricKeysSwitchedOff: the service-wide switch refuses every SAS.
func TestSymmetricKeysSwitchedOff(t *testing.T) {
	e := startWith(t, options{noSymmetricKeys: true})
	e.createShard("shard-a", 1)
	ind, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "sym-device", SymmetricKey: &pb.SymmetricKeyAttestation{}}})
	if err != nil {
		t.Fatal(err)
	}
	status, _, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/sym-device/register", sas(ind.GetSymmetricKey().GetPrimaryKey(), "sym-device", time.Now().Add(time.Hour)), `{}`, nil)
	if eb := decodeErr(t, raw); status != 401 || eb.Info["reason"] != "SAS_DISABLED" {
		t.Fatalf("%d %s", status, raw)
	}
	e.assertNoRegistration("sym-device")
}
