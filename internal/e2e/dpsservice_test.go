package e2e

import (
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
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// svcClient calls the DPS service API as the SDKs do: a SAS token signed
// for the host name, re-signed for every request.
type svcClient struct {
	e     *env
	keyID string
	key   []byte
	auth  func() string // overrides the SAS token when set
	http  *http.Client
}

func (e *env) serviceClient(keyID string, key []byte) *svcClient {
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &svcClient{e: e, keyID: keyID, key: key, http: &http.Client{Transport: tr}}
}

type svcAnswer struct {
	code int
	hdr  http.Header
	body []byte
}

func (a svcAnswer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not the expected JSON: %v\n%s", a.code, err, a.body)
	}
}

// reason is info.reason of a DPS error body.
func (a svcAnswer) reason(t *testing.T) string {
	t.Helper()
	return decodeErr(t, a.body).Info["reason"]
}

func (c *svcClient) call(method, path, body string, hdr ...string) svcAnswer {
	c.e.t.Helper()
	req, _ := http.NewRequest(method, "https://localhost"+c.e.httpAddr[strings.LastIndexByte(c.e.httpAddr, ':'):]+path+"?api-version=2021-10-01", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	auth := symkey.Sign(c.key, "localhost", time.Now().Add(time.Hour), c.keyID)
	if c.auth != nil {
		auth = c.auth()
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return svcAnswer{res.StatusCode, res.Header, raw}
}

func (c *svcClient) mustOK(a svcAnswer, want int) svcAnswer {
	c.e.t.Helper()
	if a.code != want {
		c.e.t.Fatalf("status %d, want %d: %s", a.code, want, a.body)
	}
	return a
}

// TestDPSServiceAPI drives enrollments, groups and registration states
// through the DPS service API: create/update with If-Match and 412, get,
// delete, attestation mechanism, query paging, bulk with per-item errors,
// case-insensitive paths, and one domain with the native API.
func TestDPSServiceAPI(t *testing.T) {
	e := start(t)
	e.createShard("svc-a", 1)
	e.createShard("svc-b", 1)
	keyID, key := e.newSASKey("dps-owner", access.All...)
	c := e.serviceClient(keyID, key)

	// A symmetric-key individual enrollment: keys generated and returned.
	var ind dpsservice.IndividualEnrollment
	c.mustOK(c.call("PUT", "/enrollments/svc-sym-1", `{"registrationId":"svc-sym-1","attestation":{"type":"symmetricKey"},
		"initialTwin":{"tags":{"site":"berlin"},"properties":{"desired":{"interval":30}}},"capabilities":{"iotEdge":true},
		"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":false},"allocationPolicy":"static","iotHubHostName":"svc-b.hubs.example.com"}`), 200).decode(t, &ind)
	if ind.Attestation.SymmetricKey == nil || ind.Attestation.SymmetricKey.PrimaryKey == "" || !strings.HasPrefix(ind.Etag, `"`) ||
		ind.IoTHubHostName != "svc-b.hubs.example.com" || ind.AllocationPolicy != "static" || ind.Capabilities == nil || !ind.Capabilities.IoTEdge ||
		!strings.Contains(string(ind.InitialTwin), `"site":"berlin"`) || *ind.ReprovisionPolicy.MigrateDeviceData || ind.ProvisioningStatus != "enabled" {
		t.Fatalf("created enrollment: %+v", ind)
	}
	// GET never returns the keys; the attestation mechanism does.
	var got dpsservice.IndividualEnrollment
	c.mustOK(c.call("GET", "/enrollments/svc-sym-1", ""), 200).decode(t, &got)
	if got.Attestation.SymmetricKey == nil || got.Attestation.SymmetricKey.PrimaryKey != "" || got.Etag != ind.Etag || got.RegistrationState != nil {
		t.Fatalf("GET: %+v", got)
	}
	var mech dpsservice.AttestationMechanism
	c.mustOK(c.call("POST", "/enrollments/svc-sym-1/attestationmechanism", ""), 200).decode(t, &mech)
	if mech.SymmetricKey.PrimaryKey != ind.Attestation.SymmetricKey.PrimaryKey || mech.SymmetricKey.SecondaryKey != ind.Attestation.SymmetricKey.SecondaryKey {
		t.Fatalf("attestation mechanism keys differ from the created ones")
	}
	// The device registers with that key through the DPS device API and
	// lands on the static shard.
	devKey, _ := base64.StdEncoding.DecodeString(mech.SymmetricKey.PrimaryKey)
	code, _, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/svc-sym-1/register", sas(devKey, "svc-sym-1", time.Now().Add(time.Hour)), `{"registrationId":"svc-sym-1"}`, nil)
	if op := decodeOp(t, raw); code != 200 || op.Status != "assigned" || op.RegistrationState.AssignedHub != "svc-b.hubs.example.com" {
		t.Fatalf("device registration: %d %s", code, raw)
	}
	c.mustOK(c.call("GET", "/enrollments/svc-sym-1", ""), 200).decode(t, &got)
	if got.RegistrationState == nil || got.RegistrationState.Status != "assigned" || got.RegistrationState.DeviceID != "svc-sym-1" {
		t.Fatalf("registration state in GET: %+v", got.RegistrationState)
	}

	// Update with If-Match: the etag as returned (quotes included).
	upd := `{"registrationId":"svc-sym-1","attestation":{"type":"symmetricKey"},"provisioningStatus":"disabled","etag":` + mustJSON(ind.Etag) + `}`
	var updated dpsservice.IndividualEnrollment
	c.mustOK(c.call("PUT", "/enrollments/svc-sym-1", upd, "If-Match", ind.Etag), 200).decode(t, &updated)
	if updated.ProvisioningStatus != "disabled" || updated.Etag == ind.Etag || updated.AllocationPolicy != "hashed" || len(updated.InitialTwin) != 0 {
		t.Fatalf("updated: %+v", updated)
	}
	// The old etag now fails with 412 and changes nothing.
	a := c.call("PUT", "/enrollments/svc-sym-1", strings.Replace(upd, "disabled", "enabled", 1), "If-Match", ind.Etag)
	if a.code != 412 || a.reason(t) != "ETAG_MISMATCH" {
		t.Fatalf("stale If-Match: %d %s", a.code, a.body)
	}
	c.mustOK(c.call("GET", "/enrollments/svc-sym-1", ""), 200).decode(t, &got)
	if got.ProvisioningStatus != "disabled" || got.Etag != updated.Etag {
		t.Fatalf("after the refused update: %+v", got)
	}
	// Changing the keys is refused; so is an If-Match on a missing one.
	a = c.call("PUT", "/enrollments/svc-sym-1", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+base64.StdEncoding.EncodeToString(make([]byte, 32))+`"}}}`)
	if a.code != 400 {
		t.Fatalf("key change: %d %s", a.code, a.body)
	}
	if a = c.call("PUT", "/enrollments/svc-nobody", `{"attestation":{"type":"symmetricKey"}}`, "If-Match", `"12"`); a.code != 412 {
		t.Fatalf("If-Match on a missing enrollment: %d %s", a.code, a.body)
	}
	e.assertNoEnrollment("svc-nobody")
	// The disabled enrollment turns the device away.
	code, _, raw = e.dpsCall("PUT", "/"+idScope+"/registrations/svc-sym-1/register", sas(devKey, "svc-sym-1", time.Now().Add(time.Hour)), `{"registrationId":"svc-sym-1"}`, nil)
	if op := decodeOp(t, raw); code != 200 || op.Status != "disabled" {
		t.Fatalf("disabled device: %d %s", code, raw)
	}

	// X.509: an individual enrollment with a base64 DER certificate, and a
	// group on a CA uploaded and verified through the native API.
	now := time.Now()
	root, _ := pki.NewCA("Svc Root", nil, now, 24*time.Hour)
	e.uploadCA("svc-root", root, true)
	self := leaf(t, pki.LeafTemplate("svc-x509-1", now, time.Hour), nil)
	c.mustOK(c.call("PUT", "/enrollments/svc-x509-1", `{"registrationId":"svc-x509-1","deviceId":"svc-x509-dev","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"`+
		base64.StdEncoding.EncodeToString(self.Cert.Raw)+`"}}}},"iotHubs":["svc-a.hubs.example.com"]}`), 200).decode(t, &ind)
	if ind.Attestation.X509.ClientCertificates.Primary.Info.SHA256Thumbprint == "" || len(ind.IoTHubs) != 1 {
		t.Fatalf("x509 individual: %s", mustJSON(ind))
	}
	code, _, raw = e.dpsCall("PUT", "/"+idScope+"/registrations/svc-x509-1/register", "", `{"registrationId":"svc-x509-1"}`, self)
	if op := decodeOp(t, raw); code != 200 || op.Status != "assigned" || op.RegistrationState.DeviceID != "svc-x509-dev" || op.RegistrationState.AssignedHub != "svc-a.hubs.example.com" {
		t.Fatalf("x509 individual device: %d %s", code, raw)
	}
	var grp dpsservice.EnrollmentGroup
	c.mustOK(c.call("PUT", "/enrollmentGroups/svc-group", `{"enrollmentGroupId":"svc-group","attestation":{"type":"x509","x509":{"caReferences":{"primary":"svc-root"}}}}`), 200).decode(t, &grp)
	if grp.Attestation.X509.CAReferences.Primary != "svc-root" {
		t.Fatalf("group: %s", mustJSON(grp))
	}
	// One domain: the native API sees the group the DPS API created.
	if g, err := pb.NewEnrollmentServiceClient(e.admin).GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "svc-group"}); err != nil || g.GetCaCertificate() != "svc-root" {
		t.Fatalf("native view of the group: %v %v", g, err)
	}
	// The Node SDK's lower-case path, and any other case, route the same.
	c.mustOK(c.call("POST", "/enrollmentgroups/svc-group/attestationmechanism", ""), 200)
	c.mustOK(c.call("GET", "/EnrollmentGroups/svc-group", ""), 200)
	for i := range 3 {
		dev, _ := pki.NewDevice(fmt.Sprintf("svc-group-dev-%d", i), root, now, time.Hour)
		code, _, raw = e.dpsCall("PUT", "/"+idScope+"/registrations/"+dev.Cert.Subject.CommonName+"/register", "", "{}", dev)
		if code != 200 {
			t.Fatalf("group device: %d %s", code, raw)
		}
	}
	// A signing certificate that is no verified CA is refused.
	stranger, _ := pki.NewCA("Svc Stranger", nil, now, time.Hour)
	a = c.call("PUT", "/enrollmentGroups/svc-stranger", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":`+mustJSON(string(pki.CertPEM(stranger.Cert)))+`}}}}}`)
	if a.code != 400 || a.reason(t) != "CA_NOT_VERIFIED" {
		t.Fatalf("unverified signing certificate: %d %s", a.code, a.body)
	}
	if _, err := e.store.GetGroup(t.Context(), "svc-stranger"); err == nil {
		t.Fatal("the refused group was stored")
	}
	// The same CA by its certificate resolves to the uploaded CA; it has a
	// group already, so that is a conflict.
	a = c.call("PUT", "/enrollmentGroups/svc-group-2", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":`+mustJSON(string(pki.CertPEM(root.Cert)))+`}}}}}`)
	if a.code != 409 {
		t.Fatalf("second group on one CA: %d %s", a.code, a.body)
	}

	// Registration states of the group, paged.
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		hdr := []string{"x-ms-max-item-count", "2"}
		if token != "" {
			hdr = append(hdr, "x-ms-continuation", token)
		}
		var states []dpsservice.DeviceRegistrationState
		a := c.mustOK(c.call("POST", "/registrations/svc-group/query", `{"query":"SELECT * FROM c"}`, hdr...), 200)
		a.decode(t, &states)
		if a.hdr.Get("x-ms-item-type") != "DeviceRegistration" || len(states) > 2 || pages > 5 {
			t.Fatalf("page %d: %v %s", pages, a.hdr, a.body)
		}
		for _, s := range states {
			if seen[s.RegistrationID] || s.Status != "assigned" {
				t.Fatalf("registration state %+v twice or not assigned", s)
			}
			seen[s.RegistrationID] = true
		}
		if token = a.hdr.Get("x-ms-continuation"); token == "" {
			break
		}
	}
	if len(seen) != 3 {
		t.Fatalf("group registrations seen: %v", seen)
	}
	// Get and delete one registration state, with If-Match.
	var st dpsservice.DeviceRegistrationState
	c.mustOK(c.call("GET", "/registrations/svc-group-dev-0", ""), 200).decode(t, &st)
	if a = c.call("DELETE", "/registrations/svc-group-dev-0", "", "If-Match", `"nope"`); a.code != 412 {
		t.Fatalf("delete registration with a stale etag: %d %s", a.code, a.body)
	}
	c.mustOK(c.call("DELETE", "/registrations/svc-group-dev-0", "", "If-Match", st.Etag), 204)
	e.assertNoRegistration("svc-group-dev-0")

	// Bulk create: per-item errors, and only the good items written.
	a = c.mustOK(c.call("POST", "/enrollments", `{"mode":"create","enrollments":[
		{"registrationId":"svc-bulk-1","attestation":{"type":"symmetricKey"}},
		{"registrationId":"svc-sym-1","attestation":{"type":"symmetricKey"}},
		{"registrationId":"svc-bulk-bad","attestation":{"type":"quantum"}},
		{"registrationId":"svc-bulk-2","attestation":{"type":"symmetricKey"},"bogus":1}]}`), 200)
	var br dpsservice.BulkResult
	a.decode(t, &br)
	if br.IsSuccessful || len(br.Errors) != 3 || br.Errors[0].RegistrationID != "svc-sym-1" || br.Errors[0].ErrorCode != 409000 ||
		br.Errors[1].RegistrationID != "svc-bulk-bad" || br.Errors[1].ErrorCode/1000 != 400 {
		t.Fatalf("bulk result: %s", a.body)
	}
	if _, err := e.store.GetIndividual(t.Context(), "svc-bulk-1"); err != nil {
		t.Fatalf("the good bulk item: %v", err)
	}
	e.assertNoEnrollment("svc-bulk-bad")
	e.assertNoEnrollment("svc-bulk-2")

	// Query individual enrollments, paged, each seen once.
	seen = map[string]bool{}
	token = ""
	for {
		hdr := []string{"x-ms-max-item-count", "1"}
		if token != "" {
			hdr = append(hdr, "x-ms-continuation", token)
		}
		var page []dpsservice.IndividualEnrollment
		a := c.mustOK(c.call("POST", "/enrollments/query", `{"query":"SELECT * FROM enrollments"}`, hdr...), 200)
		a.decode(t, &page)
		for _, en := range page {
			if seen[en.RegistrationID] || en.Attestation.SymmetricKey != nil && en.Attestation.SymmetricKey.PrimaryKey != "" {
				t.Fatalf("query item %s twice or with keys", en.RegistrationID)
			}
			seen[en.RegistrationID] = true
		}
		if token = a.hdr.Get("x-ms-continuation"); token == "" {
			break
		}
	}
	if len(seen) != 3 || !seen["svc-bulk-1"] || !seen["svc-x509-1"] || !seen["svc-sym-1"] {
		t.Fatalf("query saw %v", seen)
	}

	// Bulk delete, then delete with If-Match.
	c.mustOK(c.call("POST", "/enrollments", `{"mode":"delete","enrollments":[{"registrationId":"svc-bulk-1","attestation":{"type":"symmetricKey"}}]}`), 200).decode(t, &br)
	if !br.IsSuccessful {
		t.Fatalf("bulk delete: %+v", br)
	}
	e.assertNoEnrollment("svc-bulk-1")
	c.mustOK(c.call("GET", "/enrollments/svc-x509-1", ""), 200).decode(t, &got)
	if a = c.call("DELETE", "/enrollments/svc-x509-1", "", "If-Match", `"0"`); a.code != 412 {
		t.Fatalf("delete with a stale etag: %d %s", a.code, a.body)
	}
	c.mustOK(c.call("DELETE", "/enrollments/svc-x509-1", "", "If-Match", got.Etag), 204)
	if a = c.call("GET", "/enrollments/svc-x509-1", ""); a.code != 404 || a.reason(t) != "RESOURCE_NOT_FOUND" {
		t.Fatalf("GET after delete: %d %s", a.code, a.body)
	}
	c.mustOK(c.call("DELETE", "/enrollmentGroups/svc-group", ""), 204)
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// assertNoEnrollment checks that no individual enrollment was written.
func (e *env) assertNoEnrollment(regID string) {
	e.t.Helper()
	if _, err := e.store.GetIndividual(e.t.Context(), regID); err == nil {
		e.t.Errorf("enrollment %q exists, want none", regID)
	}
}

// TestDPSServiceAuth checks SAS authentication and the permission map:
// every bad token is 401 with nothing written; a read-only policy reads
// and cannot write or see keys.
func TestDPSServiceAuth(t *testing.T) {
	e := start(t)
	ownerID, ownerKey := e.newSASKey("svc-owner", access.All...)
	readerID, readerKey := e.newSASKey("svc-reader", access.EnrollmentRead, access.RegistrationRead)
	c := e.serviceClient(ownerID, ownerKey)
	c.mustOK(c.call("PUT", "/enrollments/auth-1", `{"attestation":{"type":"symmetricKey"}}`), 200)
	create := `{"attestation":{"type":"symmetricKey"}}`

	wrongKey := make([]byte, 32)
	_, plain, _ := access.Generate(strings.NewReader(strings.Repeat("k", 64)), "plain", access.All, time.Now())
	if err := e.store.CreateKey(t.Context(), plain); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		auth   func() string
		reason string
	}{
		"none":           {func() string { return "" }, "UNAUTHENTICATED"},
		"garbage":        {func() string { return "SharedAccessSignature nonsense" }, "UNAUTHENTICATED"},
		"wrong key":      {func() string { return symkey.Sign(wrongKey, "localhost", time.Now().Add(time.Hour), ownerID) }, "UNAUTHENTICATED"},
		"unknown policy": {func() string { return symkey.Sign(ownerKey, "localhost", time.Now().Add(time.Hour), "nobody") }, "UNAUTHENTICATED"},
		"no policy name": {func() string { return symkey.Sign(ownerKey, "localhost", time.Now().Add(time.Hour), "") }, "UNAUTHENTICATED"},
		"other host":     {func() string { return symkey.Sign(ownerKey, "dps.example.com", time.Now().Add(time.Hour), ownerID) }, "UNAUTHENTICATED"},
		"expired":        {func() string { return symkey.Sign(ownerKey, "localhost", time.Now().Add(-time.Hour), ownerID) }, "SAS_EXPIRED"},
		"bad bearer":     {func() string { return "Bearer ztk.owner.nope" }, "UNAUTHENTICATED"},
		// An access key without a shared access key cannot sign SAS
		// tokens, even with an all-zero key.
		"key without SAS": {func() string { return symkey.Sign(make([]byte, 32), "localhost", time.Now().Add(time.Hour), plain.ID) }, "UNAUTHENTICATED"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			bad := e.serviceClient(ownerID, ownerKey)
			bad.auth = tc.auth
			for _, call := range []struct{ method, path, body string }{
				{"PUT", "/enrollments/auth-new", create}, {"GET", "/enrollments/auth-1", ""}, {"POST", "/enrollments/query", "{}"},
			} {
				a := bad.call(call.method, call.path, call.body)
				if a.code != 401 || a.reason(t) != tc.reason {
					t.Errorf("%s %s: %d %s", call.method, call.path, a.code, a.body)
				}
			}
			e.assertNoEnrollment("auth-new")
		})
	}

	// The bearer token of an access key works too.
	bearer := e.serviceClient("", nil)
	bearer.auth = func() string { return "Bearer " + e.ownerKey }
	bearer.mustOK(bearer.call("GET", "/enrollments/auth-1", ""), 200)

	// A read-only policy reads, and is denied writes and keys.
	r := e.serviceClient(readerID, readerKey)
	r.mustOK(r.call("GET", "/enrollments/auth-1", ""), 200)
	r.mustOK(r.call("POST", "/enrollments/query", `{"query":"select * from enrollments"}`), 200)
	for _, call := range []struct{ method, path, body string }{
		{"PUT", "/enrollments/auth-new", create},
		{"DELETE", "/enrollments/auth-1", ""},
		{"POST", "/enrollments/auth-1/attestationmechanism", ""},
		{"POST", "/enrollments", `{"mode":"create","enrollments":[{"registrationId":"auth-new","attestation":{"type":"symmetricKey"}}]}`},
		{"DELETE", "/registrations/auth-1", ""},
	} {
		a := r.call(call.method, call.path, call.body)
		if a.code != 401 || a.reason(t) != "PERMISSION_DENIED" {
			t.Errorf("reader %s %s: %d %s", call.method, call.path, a.code, a.body)
		}
	}
	e.assertNoEnrollment("auth-new")
	if _, err := e.store.GetIndividual(t.Context(), "auth-1"); err != nil {
		t.Fatalf("the reader deleted an enrollment: %v", err)
	}
}

// TestDPSServiceMalformed sends every operator-supplied field in its
// malformed forms: each is a 400 with a DPS error body and writes nothing.
func TestDPSServiceMalformed(t *testing.T) {
	e := start(t)
	e.createShard("mal-a", 1)
	id, key := e.newSASKey("svc-owner", access.All...)
	c := e.serviceClient(id, key)
	sym := `"attestation":{"type":"symmetricKey"}`
	bodies := map[string]string{
		"not JSON":                     `{"attestation":`,
		"two objects":                  `{` + sym + `}{}`,
		"trailing brace":               `{` + sym + `}}`,
		"twin as a string":             `{` + sym + `,"initialTwin":"{ }}"}`,
		"unknown field":                `{` + sym + `,"provisioningstatuz":"disabled"}`,
		"no attestation":               `{"registrationId":"mal-1"}`,
		"unknown attestation":          `{"attestation":{"type":"none"}}`,
		"id not the path's":            `{"registrationId":"other",` + sym + `}`,
		"bad registration ID":          `{"registrationId":"mal-1.",` + sym + `}`,
		"provisioning status":          `{` + sym + `,"provisioningStatus":"paused"}`,
		"geo policy with a static hub": `{` + sym + `,"allocationPolicy":"geoLatency","iotHubHostName":"mal-a.hubs.example.com"}`,
		"custom without definition":    `{` + sym + `,"allocationPolicy":"custom"}`,
		"custom over http":             `{` + sym + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"http://x.example.com/a","apiVersion":"2019-03-31"}}`,
		"custom with user info":        `{` + sym + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"https://u:p@x.example.com/a","apiVersion":"2019-03-31"}}`,
		"definition without custom":    `{` + sym + `,"customAllocationDefinition":{"webhookUrl":"https://x.example.com/a","apiVersion":"2019-03-31"}}`,
		"unknown policy":               `{` + sym + `,"allocationPolicy":"random"}`,
		"unknown hub":                  `{` + sym + `,"iotHubs":["nowhere.example.com"]}`,
		"static without hub":           `{` + sym + `,"allocationPolicy":"static"}`,
		"static hub not in hubs":       `{` + sym + `,"allocationPolicy":"static","iotHubs":["mal-a.hubs.example.com"],"iotHubHostName":"nowhere.example.com"}`,
		"partial reprovision policy":   `{` + sym + `,"reprovisionPolicy":{"updateHubAssignment":true}}`,
		"twin with reported":           `{` + sym + `,"initialTwin":{"properties":{"reported":{"a":1}}}}`,
		"twin tags not an object":      `{` + sym + `,"initialTwin":{"tags":"x"}}`,
		"twin too large":               `{` + sym + `,"initialTwin":{"tags":{"a":"` + strings.Repeat("x", 33<<10) + `"}}}`,
		"optional device information":  `{` + sym + `,"optionalDeviceInformation":{"a":1}}`,
		"unknown credential policy":    `{` + sym + `,"credentialPolicyName":"p"}`,
		"short symmetric key":          `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"AAAA"}}}`,
		"symmetric key not base64":     `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"!!"}}}`,
		"x509 without certificate":     `{"attestation":{"type":"x509","x509":{}}}`,
		"x509 empty primary":           `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{}}}}}`,
		"x509 thumbprint not hex":      `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"info":{"sha256Thumbprint":"xyz"}}}}}}`,
		"x509 certificate garbage":     `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"bm90IGEgY2VydA=="}}}}}`,
		"x509 certificate not base64":  `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"%%%"}}}}}`,
		"x509 secondary":               `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"AA=="},"secondary":{"certificate":"AA=="}}}}}`,
		"x509 individual with CA refs": `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"ca"}}}}`,
		"tpm without EK":               `{"attestation":{"type":"tpm","tpm":{}}}`,
		"tpm EK not base64":            `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"%%"}}}`,
		"tpm EK not TPM2B_PUBLIC":      `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"AAEC"}}}`,
		"body too large":               `{` + sym + `,"deviceId":"` + strings.Repeat("d", 70<<10) + `"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			a := c.call("PUT", "/enrollments/mal-1", body)
			if a.code != 400 {
				t.Fatalf("%d %s", a.code, a.body)
			}
			if eb := decodeErr(t, a.body); eb.ErrorCode/1000 != 400 || eb.Message == "" || eb.Info["reason"] == "" {
				t.Fatalf("error body: %s", a.body)
			}
			e.assertNoEnrollment("mal-1")
		})
	}
	groups := map[string]string{
		"tpm group":              `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"AA=="}}}`,
		"x509 client certs":      `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"AA=="}}}}}`,
		"two CA references":      `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"a","secondary":"b"}}}}`,
		"unknown CA reference":   `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"nobody"}}}}`,
		"signing thumbprint bad": `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"info":{"sha256Thumbprint":"00"}}}}}}`,
		"group ID not the path":  `{"enrollmentGroupId":"other","attestation":{"type":"symmetricKey"}}`,
		"bad group ID":           `{"enrollmentGroupId":"mal/g","attestation":{"type":"symmetricKey"}}`,
	}
	for name, body := range groups {
		t.Run("group "+name, func(t *testing.T) {
			a := c.call("PUT", "/enrollmentGroups/mal-g", body)
			if a.code != 400 {
				t.Fatalf("%d %s", a.code, a.body)
			}
			if _, err := e.store.GetGroup(t.Context(), "mal-g"); err == nil {
				t.Fatal("the refused group was stored")
			}
		})
	}
	for name, call := range map[string][]string{
		"page size 0":         {"POST", "/enrollments/query", `{}`, "x-ms-max-item-count", "0"},
		"page size too large": {"POST", "/enrollments/query", `{}`, "x-ms-max-item-count", "5000"},
		"page size not int":   {"POST", "/enrollments/query", `{}`, "x-ms-max-item-count", "ten"},
		"query with WHERE":    {"POST", "/enrollments/query", `{"query":"SELECT * FROM enrollments WHERE x = 1"}`},
		"query unknown field": {"POST", "/enrollmentGroups/query", `{"query":"SELECT * FROM c","top":1}`},
		"bulk mode":           {"POST", "/enrollments", `{"mode":"upsert","enrollments":[{}]}`},
		"bulk empty":          {"POST", "/enrollments", `{"mode":"create","enrollments":[]}`},
		"bulk not JSON":       {"POST", "/enrollmentGroups", `[`},
	} {
		t.Run(name, func(t *testing.T) {
			if a := c.call(call[0], call[1], call[2], call[3:]...); a.code != 400 {
				t.Fatalf("%d %s", a.code, a.body)
			}
		})
	}
	for _, call := range [][]string{{"PATCH", "/enrollments/x"}, {"GET", "/enrollments/x/y/z"}, {"GET", "/registrations"}, {"PUT", "/registrations/x"}} {
		if a := c.call(call[0], call[1], ""); a.code != 404 {
			t.Errorf("%s %s: %d %s", call[0], call[1], a.code, a.body)
		}
	}
	// Too many bulk items.
	items := strings.Repeat(`{"registrationId":"b","attestation":{"type":"symmetricKey"}},`, dpsservice.MaxBulk+1)
	if a := c.call("POST", "/enrollments", `{"mode":"create","enrollments":[`+strings.TrimSuffix(items, ",")+`]}`); a.code != 400 {
		t.Fatalf("oversized bulk: %d %s", a.code, a.body)
	}
	e.assertNoEnrollment("b")
}
