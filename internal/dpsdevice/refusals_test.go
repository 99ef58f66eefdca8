package dpsdevice

import (
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
)

// TestMalformedDeviceInput sends every device-supplied field in its
// malformed forms: a malformed request is told what is wrong (400), a
// refused credential only its reason (401); each has its stable reason and
// writes nothing.
func TestMalformedDeviceInput(t *testing.T) {
	f := newFixture(t)
	key := f.symmetric("dev-1", nil)
	path := "/" + scope + "/registrations/dev-1/register"
	good := sas(key, "dev-1")
	soon := time.Now().Add(time.Hour)
	cases := []struct {
		name   string
		r      request
		status int
		reason fault.Reason
	}{
		{"body not JSON", request{body: `{"registrationId":`}, 400, fault.FieldInvalid},
		{"body an array", request{body: `[1]`}, 400, fault.FieldInvalid},
		{"registrationId a number", request{body: `{"registrationId":7}`}, 400, fault.FieldInvalid},
		{"body too large", request{body: `{"payload":"` + strings.Repeat("p", maxBody) + `"}`}, 400, fault.FieldInvalid},
		{"registrationId not the path's", request{body: `{"registrationId":"dev-2"}`}, 400, fault.RegistrationIDInvalid},
		{"payload too large", request{body: `{"payload":{"p":"` + strings.Repeat("p", 40<<10) + `"}}`}, 400, fault.FieldInvalid},
		{"tpm keys not base64", request{body: `{"tpm":{"endorsementKey":"%%","storageRootKey":"AA=="}}`}, 400, fault.TPMStructureInvalid},
		{"tpm SRK not base64", request{body: `{"tpm":{"endorsementKey":"AA==","storageRootKey":"!"}}`}, 400, fault.TPMStructureInvalid},
		{"tpm keys not TPM2B_PUBLIC", request{body: `{"tpm":{"endorsementKey":"AAEC","storageRootKey":"AAEC"}}`, auth: "-"}, 400, fault.TPMStructureInvalid},
		{"tpm keys empty", request{body: `{"tpm":{}}`, auth: "-"}, 400, fault.TPMStructureInvalid},
		{"SAS garbage", request{auth: "SharedAccessSignature x"}, 401, fault.SASInvalid},
		{"SAS not a SAS", request{auth: "Bearer abc"}, 401, fault.SASInvalid},
		{"SAS for another device", request{auth: symkey.Sign(key, scope+"/registrations/dev-2", soon, "registration")}, 401, fault.SASInvalid},
		{"SAS for another scope", request{auth: symkey.Sign(key, "0ne00000002/registrations/dev-1", soon, "registration")}, 401, fault.SASInvalid},
		{"SAS with a wrong key", request{auth: symkey.Sign(make([]byte, 32), scope+"/registrations/dev-1", soon, "registration")}, 401, fault.SASInvalid},
		{"SAS expired", request{auth: symkey.Sign(key, scope+"/registrations/dev-1", time.Now().Add(-time.Hour), "registration")}, 401, fault.SASExpired},
		{"no credential", request{auth: "-"}, 401, fault.CertificateMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.method, r.path = "PUT", path
			switch r.auth {
			case "":
				r.auth = good
			case "-":
				r.auth = ""
			}
			eb := refused(t, f.do(r), tc.status, tc.reason)
			if tc.status == 400 && strings.HasPrefix(eb.Message, "registration refused") {
				t.Errorf("a malformed request is not told what is wrong: %q", eb.Message)
			}
			if f.registered("dev-1") {
				t.Fatal("a refused request registered the device")
			}
		})
	}
	// Malformed registration IDs in the path.
	for _, id := range []string{"dev.1.", "a%20b", strings.Repeat("r", 200)} {
		p := "/" + scope + "/registrations/" + id + "/register"
		refused(t, f.do(request{method: "PUT", path: p, auth: sas(key, id)}), 401, fault.RegistrationIDInvalid)
	}
	// The status lookup takes no csr, and a malformed body.
	lookup := "/" + scope + "/registrations/dev-1"
	refused(t, f.do(request{method: "POST", path: lookup, auth: good, body: `{"csr":"x"}`}), 400, fault.FieldInvalid)
	refused(t, f.do(request{method: "POST", path: lookup, auth: good, body: `{`}), 400, fault.FieldInvalid)
	refused(t, f.do(request{method: "POST", path: lookup, auth: "SharedAccessSignature x"}), 401, fault.SASInvalid)
	refused(t, f.do(request{method: "GET", path: lookup + "/operations/x"}), 401, fault.CertificateMissing)
}

// TestDisabled: a disabled enrollment or registration is, as in DPS, a
// completed operation whose status is "disabled".
func TestDisabled(t *testing.T) {
	f := newFixture(t)
	f.symmetric("off-1", func(e *enrollment.Individual) { e.Disabled = true })
	op := decode[OperationStatus](t, f.register("off-1", ""), 200)
	if st := op.RegistrationState; op.Status != "disabled" || op.OperationID != "0.disabled" || st.RegistrationID != "off-1" || st.Status != "disabled" ||
		st.ErrorCode != 401002 || st.ErrorMessage != "the enrollment is disabled" {
		t.Fatalf("disabled enrollment: %+v %+v", op, op.RegistrationState)
	}
	if f.registered("off-1") {
		t.Fatal("a disabled enrollment registered")
	}
	f.symmetric("off-2", nil)
	decode[OperationStatus](t, f.register("off-2", ""), 200)
	if _, err := f.adm.SetRegistrationEnabled(t.Context(), "off-2", "", false); err != nil {
		t.Fatal(err)
	}
	op = decode[OperationStatus](t, f.register("off-2", ""), 200)
	if op.Status != "disabled" || op.RegistrationState.ErrorMessage != "the registration is disabled" {
		t.Fatalf("disabled registration: %+v %+v", op, op.RegistrationState)
	}
}

// TestRetryAfter: rate limits (429) and an unavailable store (503) carry
// Retry-After in whole seconds.
func TestRetryAfter(t *testing.T) {
	f := newFixture(t)
	f.symmetric("rl-1", nil)
	f.prov.Limiter = &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now, PerIP: ratelimit.Rule{Limit: 1, Window: time.Minute}}
	decode[OperationStatus](t, f.register("rl-1", ""), 200)
	rec := f.register("rl-1", "")
	refused(t, rec, 429, fault.RateLimited)
	if s := rec.Header().Get("Retry-After"); s == "" || s == "0" {
		t.Fatalf("Retry-After %q", s)
	}
	f.prov.Limiter = nil

	f.reg.set(fault.New(fault.Unavailable, fault.StoreUnavailable, "down"))
	for _, r := range []request{
		{method: "PUT", path: "/" + scope + "/registrations/rl-1/register"},
		{method: "POST", path: "/" + scope + "/registrations/rl-1"},
	} {
		r.auth = sas(f.keyOf["rl-1"], "rl-1")
		rec := f.do(r)
		refused(t, rec, 503, fault.StoreUnavailable)
		if rec.Header().Get("Retry-After") != "1" {
			t.Fatalf("%s: Retry-After %q", r.method, rec.Header().Get("Retry-After"))
		}
	}
	f.reg.set(nil)
	if rec := f.register("rl-1", ""); rec.Code != 200 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("healthy: %d %v", rec.Code, rec.Header())
	}
}

// TestGeoLocate: the region Locate finds drives the geo policy.
func TestGeoLocate(t *testing.T) {
	f := newFixture(t)
	geo := func(e *enrollment.Individual) { e.Allocation = enrollment.Allocation{Policy: enrollment.PolicyGeo} }
	f.symmetric("geo-eu", geo)
	f.symmetric("geo-us", geo)
	if st := decode[OperationStatus](t, f.register("geo-eu", "", "X-Test-Region", "eu"), 200).RegistrationState; st.AssignedHub != "hub-a.example.com" {
		t.Fatalf("eu device on %s", st.AssignedHub)
	}
	if st := decode[OperationStatus](t, f.register("geo-us", "", "X-Test-Region", "us"), 200).RegistrationState; st.AssignedHub != "hub-b.example.com" {
		t.Fatalf("us device on %s", st.AssignedHub)
	}
}
