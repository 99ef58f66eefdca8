package dpsdevice

import (
	"crypto/x509"
	"encoding/base64"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// TestRoutes: the three operations answer; every other path or method is
// 404 with DPS's error body (JSON, as the Node SDK needs), before any
// authentication.
func TestRoutes(t *testing.T) {
	f := newFixture(t)
	f.symmetric("r-1", nil)
	op := decode[OperationStatus](t, f.register("r-1", `{"registrationId":"r-1"}`), 200)
	base := "/" + scope + "/registrations/r-1"
	auth := sas(f.keyOf["r-1"], "r-1")
	for _, r := range []request{
		{method: "PUT", path: base + "/register"},
		{method: "GET", path: base + "/operations/" + op.OperationID},
		{method: "POST", path: base},
		{method: "POST", path: base + "/"},
	} {
		r.auth = auth
		if rec := f.do(r); rec.Code != 200 {
			t.Errorf("%s %s: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
	for _, r := range []request{
		{method: "GET", path: "/"},
		{method: "PUT", path: "/0ne00000002/registrations/r-1/register"},
		{method: "PUT", path: "/" + scope + "/registration/r-1/register"},
		{method: "POST", path: "/" + scope + "/registrations"},
		{method: "GET", path: base + "/register"},
		{method: "POST", path: base + "/register"},
		{method: "PUT", path: base},
		{method: "GET", path: base},
		{method: "DELETE", path: base},
		{method: "GET", path: base + "/operations"},
		{method: "PUT", path: base + "/operations/x"},
		{method: "GET", path: base + "/operations/x/y"},
		{method: "PUT", path: base + "/register/x"},
		{method: "PUT", path: strings.ToUpper(base) + "/register"},
	} {
		refused(t, f.do(r), 404, fault.ResourceNotFound)
	}
	rec := httptest.NewRecorder()
	f.h.NotFound(rec, httptest.NewRequest("GET", "/elsewhere", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"reason":"RESOURCE_NOT_FOUND"`) {
		t.Fatalf("NotFound: %d %s", rec.Code, rec.Body)
	}
}

// TestSymmetricKeyDevice registers, polls and looks up a symmetric-key
// device: DPS's shapes, a stable operation ID, the etag as DPS encodes it.
func TestSymmetricKeyDevice(t *testing.T) {
	f := newFixture(t)
	f.symmetric("sym-1", func(e *enrollment.Individual) { e.DeviceID = "dev-1" })
	op := decode[OperationStatus](t, f.register("sym-1", `{"registrationId":"SYM-1","payload":{"a":1}}`), 200)
	st := op.RegistrationState
	if op.Status != "assigned" || !strings.HasPrefix(op.OperationID, "0.") || st == nil || st.Status != "assigned" || st.DeviceID != "dev-1" ||
		st.RegistrationID != "sym-1" || st.SymmetricKey == nil || st.SymmetricKey.EnrollmentGroupID != "" || st.X509 != nil || st.TPM != nil {
		t.Fatalf("register: %+v %+v", op, st)
	}
	reg, err := f.st.GetRegistration(t.Context(), "sym-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.AssignedHub != reg.AssignedHub || st.Substatus != "initialAssignment" || st.Etag != base64.StdEncoding.EncodeToString([]byte(strconv.Quote(reg.Etag))) ||
		st.CreatedDateTimeUTC != reg.Created.UTC().Format("2006-01-02T15:04:05.0000000Z") || st.LastUpdatedDateTimeUTC == "" {
		t.Fatalf("state %+v, registration %+v", st, reg)
	}
	// Polling the operation finds it; the ID is the registration's for
	// its life (registering again answers the same).
	path := "/" + scope + "/registrations/sym-1"
	auth := sas(f.keyOf["sym-1"], "sym-1")
	polled := decode[OperationStatus](t, f.do(request{method: "GET", path: path + "/operations/" + op.OperationID, auth: auth}), 200)
	if polled.OperationID != op.OperationID || polled.Status != "assigned" || polled.RegistrationState.AssignedHub != st.AssignedHub {
		t.Fatalf("poll: %+v", polled)
	}
	if again := decode[OperationStatus](t, f.register("sym-1", ""), 200); again.OperationID != op.OperationID {
		t.Fatalf("operation ID changed: %s then %s", op.OperationID, again.OperationID)
	}
	refused(t, f.do(request{method: "GET", path: path + "/operations/0.other", auth: auth}), 404, fault.ResourceNotFound)
	// The status lookup answers the registration state.
	for _, body := range []string{"", `{"registrationId":"sym-1"}`, `{"payload":{}}`} {
		got := decode[RegistrationState](t, f.do(request{method: "POST", path: path, auth: auth, body: body}), 200)
		if got.Status != "assigned" || got.DeviceID != "dev-1" || got.Etag != st.Etag {
			t.Fatalf("lookup: %+v", got)
		}
	}
	// A device that never registered: 404 for both, nothing written.
	f.symmetric("sym-2", nil)
	auth2 := sas(f.keyOf["sym-2"], "sym-2")
	refused(t, f.do(request{method: "POST", path: "/" + scope + "/registrations/sym-2", auth: auth2}), 404, fault.ResourceNotFound)
	refused(t, f.do(request{method: "GET", path: "/" + scope + "/registrations/sym-2/operations/" + op.OperationID, auth: auth2}), 404, fault.ResourceNotFound)
	if f.registered("sym-2") {
		t.Fatal("a lookup wrote a registration")
	}
}

// TestGroupDevices: X.509 devices by TLS client certificate and
// symmetric-key devices by derived key, each named with its group.
func TestGroupDevices(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	root, _ := pki.NewCA("Acme Root", nil, time.Now(), 24*time.Hour)
	inter, _ := pki.NewCA("Acme Issuing", root, time.Now(), 24*time.Hour)
	if _, err := f.adm.CreateCA(ctx, "acme", string(pki.CertPEM(root.Cert))); err != nil {
		t.Fatal(err)
	}
	_, code, _ := f.adm.GenerateVerificationCode(ctx, "acme", "")
	proof, _ := pki.NewProof(root, code, time.Now())
	if _, err := f.adm.VerifyCA(ctx, "acme", "", string(pki.CertPEM(proof.Cert))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.adm.CreateGroup(ctx, &enrollment.Group{ID: "acme-group", CAName: "acme", Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}}); err != nil {
		t.Fatal(err)
	}
	dev, _ := pki.NewDevice("x-1", inter, time.Now(), time.Hour)
	op := decode[OperationStatus](t, f.do(request{method: "PUT", path: "/" + scope + "/registrations/x-1/register", body: `{"registrationId":"x-1"}`,
		certs: []*x509.Certificate{dev.Cert, inter.Cert}}), 200)
	if st := op.RegistrationState; st.X509 == nil || st.X509.EnrollmentGroupID != "acme-group" || st.SymmetricKey != nil {
		t.Fatalf("x509 device: %+v", st)
	}
	// A certificate for another registration ID, or from an unknown CA.
	stranger, _ := pki.NewCA("Stranger", nil, time.Now(), time.Hour)
	other, _ := pki.NewDevice("x-2", stranger, time.Now(), time.Hour)
	refused(t, f.do(request{method: "PUT", path: "/" + scope + "/registrations/x-3/register", certs: []*x509.Certificate{dev.Cert, inter.Cert}}), 401, fault.RegistrationIDInvalid)
	refused(t, f.do(request{method: "PUT", path: "/" + scope + "/registrations/x-2/register", certs: []*x509.Certificate{other.Cert}}), 401, fault.CertificateUntrusted)
	if f.registered("x-2") || f.registered("x-3") {
		t.Fatal("a refused device was registered")
	}

	g, keys, err := f.adm.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "sym-group", Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.keyOf["sg-1"] = symkey.DeriveDeviceKey(keys.Primary, "sg-1")
	op = decode[OperationStatus](t, f.register("sg-1", `{}`), 200)
	if st := op.RegistrationState; st.SymmetricKey == nil || st.SymmetricKey.EnrollmentGroupID != g.ID {
		t.Fatalf("group symmetric-key device: %+v", st)
	}
}
