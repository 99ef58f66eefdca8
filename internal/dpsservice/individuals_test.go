package dpsservice

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/issuance"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// softwareEK is an endorsement key as TPM2B_PUBLIC, made without a TPM.
func softwareEK(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// TestSymmetricKeyIndividual: created with the caller's keys (shown in
// the write's answer), hidden from GET and query, shown by the
// attestation mechanism call; the keys cannot change.
func TestSymmetricKeyIndividual(t *testing.T) {
	f := newFixture(t)
	primary, secondary := b64(bytes.Repeat([]byte{1}, 32)), b64(bytes.Repeat([]byte{2}, 32))
	var created IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/Sym-1", `{"registrationId":"sym-1","deviceId":"dev-1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+primary+`","secondaryKey":"`+secondary+`"}}}`), 200, &created)
	if k := created.Attestation.SymmetricKey; created.RegistrationID != "sym-1" || created.DeviceID != "dev-1" || k == nil || k.PrimaryKey != primary || k.SecondaryKey != secondary {
		t.Fatalf("created: %+v", created)
	}
	if created.Etag == "" || !strings.HasPrefix(created.Etag, `"`) || created.ProvisioningStatus != "enabled" || created.AllocationPolicy != "hashed" {
		t.Fatalf("created: %+v", created)
	}
	var got IndividualEnrollment
	f.ok(f.call("GET", "/enrollments/sym-1", ""), 200, &got)
	if got.Attestation.Type != "symmetricKey" || *got.Attestation.SymmetricKey != (SymmetricKeyAttestation{}) || got.Etag != created.Etag || got.RegistrationState != nil {
		t.Fatalf("GET shows keys or differs: %+v", got)
	}
	var m AttestationMechanism
	f.ok(f.call("POST", "/enrollments/sym-1/attestationmechanism", ""), 200, &m)
	if m.Type != "symmetricKey" || m.SymmetricKey.PrimaryKey != primary || m.SymmetricKey.SecondaryKey != secondary {
		t.Fatalf("attestation mechanism: %+v", m)
	}
	// Generated keys when none are given: 32 random bytes each.
	var gen IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/sym-2", `{"attestation":{"type":"symmetricKey"}}`), 200, &gen)
	if k, _ := base64.StdEncoding.DecodeString(gen.Attestation.SymmetricKey.PrimaryKey); len(k) != 32 || gen.Attestation.SymmetricKey.PrimaryKey == gen.Attestation.SymmetricKey.SecondaryKey {
		t.Fatalf("generated keys: %+v", gen.Attestation.SymmetricKey)
	}

	// Update: the same keys (or none) keep the enrollment; other keys, or
	// another mechanism, are refused and write nothing.
	var upd IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/sym-1", `{"deviceId":"dev-2","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+primary+`"}}}`), 200, &upd)
	if upd.DeviceID != "dev-2" || upd.Etag == created.Etag || upd.Attestation.SymmetricKey.PrimaryKey != primary {
		t.Fatalf("update: %+v", upd)
	}
	f.ok(f.call("PUT", "/enrollments/sym-1", `{"deviceId":"dev-2","attestation":{"type":"symmetricKey"}}`), 200, &upd)
	before := f.snapshot()
	for name, body := range map[string]string{
		"other primary":   `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + secondary + `"}}}`,
		"other secondary": `{"attestation":{"type":"symmetricKey","symmetricKey":{"secondaryKey":"` + primary + `"}}}`,
		"other mechanism": `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"AAEC"}}}`,
	} {
		eb := refused(t, f.call("PUT", "/enrollments/sym-1", body), 400, "FIELD_INVALID")
		if !strings.Contains(eb.Message, "cannot") {
			t.Errorf("%s: %q", name, eb.Message)
		}
	}
	if f.snapshot() != before {
		t.Fatal("a refused update wrote")
	}

	// Without a data key the keys cannot be shown or created (nor SAS
	// tokens checked: the caller uses its bearer token).
	sealer := f.adm.Secrets
	f.adm.Secrets = nil
	bearer := "Bearer " + f.bearer
	refused(t, f.callAs(bearer, "POST", "/enrollments/sym-1/attestationmechanism", ""), 400, "SAS_DISABLED")
	refused(t, f.callAs(bearer, "PUT", "/enrollments/sym-1", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+primary+`"}}}`), 400, "SAS_DISABLED")
	refused(t, f.callAs(bearer, "PUT", "/enrollments/sym-3", `{"attestation":{"type":"symmetricKey"}}`), 400, "SAS_DISABLED")
	f.ok(f.callAs(bearer, "GET", "/enrollments/sym-1", ""), 200, nil) // GET needs no keys
	refused(t, f.call("GET", "/enrollments/sym-1", ""), 401, "UNAUTHENTICATED")
	f.adm.Secrets = sealer
}

// TestX509Individual: from PEM, base64 DER or a thumbprint; shown as the
// thumbprint; the certificate cannot change.
func TestX509Individual(t *testing.T) {
	f := newFixture(t)
	ca := f.verifiedCA("acme")
	dev1, _ := pki.NewDevice("x-1", ca, time.Now(), time.Hour)
	dev2, _ := pki.NewDevice("x-2", ca, time.Now(), time.Hour)
	other, _ := pki.NewDevice("x-1", ca, time.Now(), time.Hour)
	thumb := func(c *pki.Issued) string { s := sha256.Sum256(c.Cert.Raw); return hex.EncodeToString(s[:]) }
	cert := func(text string) string {
		return `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + mustJSON(text) + `}}}}}`
	}
	byThumb := func(tp string) string {
		return `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"info":{"sha256Thumbprint":"` + tp + `"}}}}}}`
	}
	var e IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/x-1", cert(string(pki.CertPEM(dev1.Cert)))), 200, &e)
	if p := e.Attestation.X509.ClientCertificates.Primary; p.Certificate != "" || p.Info.SHA256Thumbprint != strings.ToUpper(thumb(dev1)) {
		t.Fatalf("x509 answer: %+v", p)
	}
	f.ok(f.call("PUT", "/enrollments/x-2", cert(b64(dev2.Cert.Raw))), 200, &e)
	f.ok(f.call("PUT", "/enrollments/x-3", byThumb(strings.ToUpper(strings.Repeat("ab", 32)))), 200, &e)
	if got, _ := f.store.Store.GetIndividual(t.Context(), "x-3"); got.Thumbprint != strings.Repeat("ab", 32) {
		t.Fatalf("thumbprint stored as %q", got.Thumbprint)
	}
	// Unchanged: the same certificate, or its thumbprint in any case.
	f.ok(f.call("PUT", "/enrollments/x-1", cert(string(pki.CertPEM(dev1.Cert)))), 200, nil)
	f.ok(f.call("PUT", "/enrollments/x-1", byThumb(thumb(dev1))), 200, nil)
	f.ok(f.call("PUT", "/enrollments/x-1", `{"attestation":{"type":"x509"}}`), 200, nil)
	before := f.snapshot()
	refused(t, f.call("PUT", "/enrollments/x-1", cert(string(pki.CertPEM(other.Cert)))), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollments/x-1", byThumb(strings.Repeat("cd", 32))), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollments/x-1", cert("%%%")), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollments/x-1", cert(b64([]byte("not a certificate")))), 400, "FIELD_INVALID")
	// The certificate names another device.
	refused(t, f.call("PUT", "/enrollments/x-4", cert(string(pki.CertPEM(dev1.Cert)))), 400, "FIELD_INVALID")
	if f.snapshot() != before {
		t.Fatal("a refused write wrote")
	}
}

// TestTPMIndividual: the EK as base64 TPM2B_PUBLIC, shown as sent; it
// cannot change.
func TestTPMIndividual(t *testing.T) {
	f := newFixture(t)
	ek, ek2 := softwareEK(t), softwareEK(t)
	var e IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/tpm-1", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"`+b64(ek)+`"}}}`), 200, &e)
	if e.Attestation.Type != "tpm" || e.Attestation.TPM.EndorsementKey != b64(ek) {
		t.Fatalf("tpm answer: %+v", e.Attestation)
	}
	var m AttestationMechanism
	f.ok(f.call("POST", "/enrollments/tpm-1/attestationmechanism", ""), 200, &m)
	if m.TPM == nil || m.TPM.EndorsementKey != b64(ek) || m.SymmetricKey != nil {
		t.Fatalf("mechanism: %+v", m)
	}
	f.ok(f.call("PUT", "/enrollments/tpm-1", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"`+b64(ek)+`"}},"provisioningStatus":"disabled"}`), 200, &e)
	if e.ProvisioningStatus != "disabled" {
		t.Fatalf("disabled: %+v", e)
	}
	before := f.snapshot()
	refused(t, f.call("PUT", "/enrollments/tpm-1", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"`+b64(ek2)+`"}}}`), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollments/tpm-1", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"%%"}}}`), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollments/tpm-1", `{"attestation":{"type":"symmetricKey"}}`), 400, "FIELD_INVALID")
	if f.snapshot() != before {
		t.Fatal("a refused update wrote")
	}
}

// TestMalformedIndividual sends every operator-supplied field of an
// individual enrollment in its malformed forms: each is a 400 with its
// stable reason, and writes nothing.
func TestMalformedIndividual(t *testing.T) {
	f := newFixture(t)
	sym := `"attestation":{"type":"symmetricKey"}`
	cases := []struct{ name, body, reason string }{
		{"empty", ``, "FIELD_INVALID"},
		{"not JSON", `{"attestation":`, "FIELD_INVALID"},
		{"an array", `[]`, "FIELD_INVALID"},
		{"two objects", `{` + sym + `}{}`, "FIELD_INVALID"},
		{"trailing brace", `{` + sym + `}}`, "FIELD_INVALID"},
		{"unknown field", `{` + sym + `,"provisioningstatuz":"disabled"}`, "FIELD_INVALID"},
		{"wrong type", `{` + sym + `,"deviceId":7}`, "FIELD_INVALID"},
		{"no attestation", `{"registrationId":"mal-1"}`, "FIELD_INVALID"},
		{"unknown attestation", `{"attestation":{"type":"none"}}`, "FIELD_INVALID"},
		{"id not the path's", `{"registrationId":"other",` + sym + `}`, "FIELD_INVALID"},
		{"bad device ID", `{"deviceId":"a/b",` + sym + `}`, "FIELD_INVALID"},
		{"provisioning status", `{` + sym + `,"provisioningStatus":"paused"}`, "FIELD_INVALID"},
		{"unknown credential policy", `{` + sym + `,"credentialPolicyName":"p"}`, "CREDENTIAL_POLICY_MISSING"},
		{"bad credential policy name", `{` + sym + `,"credentialPolicyName":"a/b"}`, "FIELD_INVALID"},
		{"optional device information", `{` + sym + `,"optionalDeviceInformation":{"a":1}}`, "FIELD_INVALID"},
		{"twin as a string", `{` + sym + `,"initialTwin":"{ }}"}`, "FIELD_INVALID"},
		{"twin with reported", `{` + sym + `,"initialTwin":{"properties":{"reported":{"a":1}}}}`, "FIELD_INVALID"},
		{"twin tags not an object", `{` + sym + `,"initialTwin":{"tags":"x"}}`, "FIELD_INVALID"},
		{"twin not UTF-8", `{` + sym + `,"initialTwin":{"tags":{"a":"` + "\xff" + `"}}}`, "FIELD_INVALID"},
		{"twin too large", `{` + sym + `,"initialTwin":{"tags":{"a":"` + strings.Repeat("x", 33<<10) + `"}}}`, "FIELD_INVALID"},
		{"body too large", `{` + sym + `,"deviceId":"` + strings.Repeat("d", 70<<10) + `"}`, "FIELD_INVALID"},
		{"partial reprovision policy", `{` + sym + `,"reprovisionPolicy":{"updateHubAssignment":true}}`, "FIELD_INVALID"},
		{"adopt from a bad ID", `{` + sym + `,"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true,"adoptFromGroups":["a/b"]}}`, "FIELD_INVALID"},
		{"adopt from twice", `{` + sym + `,"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true,"adoptFromGroups":["g","g"]}}`, "FIELD_INVALID"},
		{"unknown policy", `{` + sym + `,"allocationPolicy":"random"}`, "FIELD_INVALID"},
		{"unknown hub", `{` + sym + `,"iotHubs":["nowhere.example.com"]}`, "FIELD_INVALID"},
		{"unknown static hub", `{` + sym + `,"iotHubHostName":"nowhere.example.com"}`, "FIELD_INVALID"},
		{"too many hubs", `{` + sym + `,"iotHubs":[` + strings.TrimSuffix(strings.Repeat(`"hub-a.example.com",`, enrollment.MaxShardsPerPolicy+1), ",") + `]}`, "FIELD_INVALID"},
		{"static without hub", `{` + sym + `,"allocationPolicy":"static"}`, "FIELD_INVALID"},
		{"static with two hubs", `{` + sym + `,"allocationPolicy":"static","iotHubs":["hub-a.example.com","hub-b.example.com"]}`, "FIELD_INVALID"},
		{"static hub not in hubs", `{` + sym + `,"allocationPolicy":"static","iotHubs":["hub-a.example.com"],"iotHubHostName":"hub-b.example.com"}`, "FIELD_INVALID"},
		{"hashed with a static hub", `{` + sym + `,"allocationPolicy":"hashed","iotHubHostName":"hub-a.example.com"}`, "FIELD_INVALID"},
		{"geo with a static hub", `{` + sym + `,"allocationPolicy":"geoLatency","iotHubHostName":"hub-a.example.com"}`, "FIELD_INVALID"},
		{"custom without definition", `{` + sym + `,"allocationPolicy":"custom"}`, "FIELD_INVALID"},
		{"custom definition unknown field", `{` + sym + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"https://x.example.com/a","x":1}}`, "FIELD_INVALID"},
		{"custom over http", `{` + sym + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"http://x.example.com/a","apiVersion":"2019-03-31"}}`, "FIELD_INVALID"},
		{"custom with user info", `{` + sym + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"https://u:p@x.example.com/a"}}`, "FIELD_INVALID"},
		{"definition without custom", `{` + sym + `,"customAllocationDefinition":{"webhookUrl":"https://x.example.com/a"}}`, "FIELD_INVALID"},
		{"short symmetric key", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"AAAA"}}}`, "FIELD_INVALID"},
		{"primary key not base64", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"!!"}}}`, "FIELD_INVALID"},
		{"secondary key not base64", `{"attestation":{"type":"symmetricKey","symmetricKey":{"secondaryKey":"!!"}}}`, "FIELD_INVALID"},
		{"x509 without certificates", `{"attestation":{"type":"x509","x509":{}}}`, "FIELD_INVALID"},
		{"x509 without x509", `{"attestation":{"type":"x509"}}`, "FIELD_INVALID"},
		{"x509 empty primary", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{}}}}}`, "FIELD_INVALID"},
		{"x509 thumbprint not hex", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"info":{"sha256Thumbprint":"xyz"}}}}}}`, "FIELD_INVALID"},
		{"x509 certificate garbage", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"bm90IGEgY2VydA=="}}}}}`, "FIELD_INVALID"},
		{"x509 certificate not base64", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"%%%"}}}}}`, "FIELD_INVALID"},
		{"x509 certificate too large", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"` + b64(make([]byte, enrollment.MaxCertificatePEM+1)) + `"}}}}}`, "FIELD_INVALID"},
		{"x509 secondary", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"AA=="},"secondary":{"certificate":"AA=="}}}}}`, "FIELD_INVALID"},
		{"x509 with CA references", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"ca"}}}}`, "FIELD_INVALID"},
		{"x509 with signing certificates", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"AA=="}},"signingCertificates":{"primary":{"certificate":"AA=="}}}}}`, "FIELD_INVALID"},
		{"tpm without EK", `{"attestation":{"type":"tpm","tpm":{}}}`, "FIELD_INVALID"},
		{"tpm without tpm", `{"attestation":{"type":"tpm"}}`, "FIELD_INVALID"},
		{"tpm EK not base64", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"%%"}}}`, "FIELD_INVALID"},
		{"tpm EK not TPM2B_PUBLIC", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"AAEC"}}}`, "TPM_STRUCTURE_INVALID"},
	}
	before := f.snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eb := refused(t, f.call("PUT", "/enrollments/mal-1", tc.body), 400, tc.reason)
			if eb.ErrorCode != 400004 && eb.ErrorCode != 400001 {
				t.Errorf("errorCode %d", eb.ErrorCode)
			}
		})
	}
	// A bad registration ID in the path or the body.
	refused(t, f.call("PUT", "/enrollments/mal-1.", `{`+sym+`}`), 400, "REGISTRATION_ID_INVALID")
	refused(t, f.call("PUT", "/enrollments/"+strings.Repeat("r", 200), `{`+sym+`}`), 400, "REGISTRATION_ID_INVALID")
	if f.snapshot() != before {
		t.Fatalf("a refused write wrote:\n%s", f.snapshot())
	}
}

// TestIfMatch: PUT and DELETE honour If-Match: a stale etag is 412
// ETAG_MISMATCH, "*" or none is unconditional, and an etag for an absent
// enrollment is 412 too.
func TestIfMatch(t *testing.T) {
	f := newFixture(t)
	sym := `{"attestation":{"type":"symmetricKey"}}`
	refused(t, f.call("PUT", "/enrollments/m-1", sym, "If-Match", `"3"`), 412, "ETAG_MISMATCH")
	var e IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/m-1", sym, "If-Match", "*"), 200, &e)
	stale := e.Etag
	f.ok(f.call("PUT", "/enrollments/m-1", `{"deviceId":"d1","attestation":{"type":"symmetricKey"}}`, "If-Match", stale), 200, &e)
	f.ok(f.call("PUT", "/enrollments/m-1", `{"deviceId":"d2","attestation":{"type":"symmetricKey"}}`, "If-Match", "W/"+e.Etag), 200, &e)
	before := f.snapshot()
	refused(t, f.call("PUT", "/enrollments/m-1", sym, "If-Match", stale), 412, "ETAG_MISMATCH")
	refused(t, f.call("DELETE", "/enrollments/m-1", "", "If-Match", stale), 412, "ETAG_MISMATCH")
	if f.snapshot() != before {
		t.Fatal("a refused write wrote")
	}
	f.ok(f.call("DELETE", "/enrollments/m-1", "", "If-Match", e.Etag), 204, nil)
	refused(t, f.call("GET", "/enrollments/m-1", ""), 404, "RESOURCE_NOT_FOUND")
	refused(t, f.call("DELETE", "/enrollments/m-1", ""), 404, "RESOURCE_NOT_FOUND")
	f.ok(f.call("PUT", "/enrollments/m-1", sym), 200, nil)
	f.ok(f.call("DELETE", "/enrollments/m-1", "", "If-Match", "*"), 204, nil)

	// Groups alike.
	var g EnrollmentGroup
	f.ok(f.call("PUT", "/enrollmentGroups/mg", sym), 200, &g)
	refused(t, f.call("PUT", "/enrollmentGroups/mg", sym, "If-Match", `"999"`), 412, "ETAG_MISMATCH")
	refused(t, f.call("DELETE", "/enrollmentGroups/mg", "", "If-Match", `"999"`), 412, "ETAG_MISMATCH")
	f.ok(f.call("DELETE", "/enrollmentGroups/mg", "", "If-Match", g.Etag), 204, nil)
}

// TestConcurrentReplace: an unconditional replace that loses a race reads
// again (at most maxWriteAttempts times, then 503); a conditional one
// reports the 412.
func TestConcurrentReplace(t *testing.T) {
	f := newFixture(t)
	var e IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/c-1", `{"attestation":{"type":"symmetricKey"}}`), 200, &e)
	f.store.set("UpdateIndividual", fault.EtagMismatchf("changed"))
	before := f.snapshot()
	rec := f.call("PUT", "/enrollments/c-1", `{"deviceId":"d","attestation":{"type":"symmetricKey"}}`)
	refused(t, rec, 503, "STORE_UNAVAILABLE")
	if rec.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	refused(t, f.call("PUT", "/enrollments/c-1", `{"deviceId":"d","attestation":{"type":"symmetricKey"}}`, "If-Match", e.Etag), 412, "ETAG_MISMATCH")
	if f.snapshot() != before {
		t.Fatal("a failed replace wrote")
	}
	// A store that fails the create writes nothing and answers 503.
	f.store.set("CreateIndividual", fault.New(fault.Unavailable, fault.StoreUnavailable, "down"))
	refused(t, f.call("PUT", "/enrollments/c-2", `{"attestation":{"type":"symmetricKey"}}`), 503, "STORE_UNAVAILABLE")
	f.store.set("AllShards", fault.New(fault.Unavailable, fault.StoreUnavailable, "down"))
	refused(t, f.call("PUT", "/enrollments/c-2", `{"attestation":{"type":"symmetricKey"},"iotHubs":["hub-a.example.com"]}`), 503, "STORE_UNAVAILABLE")
	if f.snapshot() != before {
		t.Fatal("a failed create wrote")
	}
	// The race resolved: the replace reads again and succeeds.
	f.store.set("", nil)
	f.ok(f.call("PUT", "/enrollments/c-1", `{"deviceId":"d","attestation":{"type":"symmetricKey"}}`), 200, &e)
	if e.DeviceID != "d" {
		t.Fatalf("%+v", e)
	}
}

// TestRegistrationStateInGet: GET of an individual enrollment carries its
// device's registration state, when the device registered by it.
func TestRegistrationStateInGet(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/rs-1", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	f.ok(f.call("PUT", "/enrollments/rs-2", `{"attestation":{"type":"symmetricKey"}}`), 200, nil)
	reg := f.register("rs-1", "")
	f.register("rs-2", "some-group") // registered by a group: not this enrollment's state
	var e IndividualEnrollment
	f.ok(f.call("GET", "/enrollments/rs-1", ""), 200, &e)
	if st := e.RegistrationState; st == nil || st.RegistrationID != "rs-1" || st.Status != "assigned" || st.AssignedHub != "hub-a.example.com" ||
		st.Etag != `"`+reg.Etag+`"` || string(st.Payload) != `{"site":"s1"}` || !strings.HasSuffix(st.CreatedDateTimeUTC, "Z") {
		t.Fatalf("registration state: %+v", e.RegistrationState)
	}
	var e2 IndividualEnrollment
	f.ok(f.call("GET", "/enrollments/rs-2", ""), 200, &e2)
	if e2.RegistrationState != nil {
		t.Fatalf("group registration shown: %+v", e2.RegistrationState)
	}
	f.store.set("GetRegistration", fault.New(fault.Unavailable, fault.StoreUnavailable, "down"))
	refused(t, f.call("GET", "/enrollments/rs-1", ""), 503, "STORE_UNAVAILABLE")
}

// TestCredentialPolicyName: DPS's credentialPolicyName names a credential
// policy (ADR 22); it is stored and returned.
func TestCredentialPolicyName(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.adm.CreateIssuingCA(ctx, admin.NewIssuingCA{Name: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.adm.CreatePolicy(ctx, &issuance.Policy{Name: "devices", IssuingCA: "ops"}); err != nil {
		t.Fatal(err)
	}
	var created IndividualEnrollment
	f.ok(f.call("PUT", "/enrollments/cp-1", `{"attestation":{"type":"symmetricKey"},"credentialPolicyName":"devices"}`), 200, &created)
	var got IndividualEnrollment
	f.ok(f.call("GET", "/enrollments/cp-1", ""), 200, &got)
	if created.CredentialPolicyName != "devices" || got.CredentialPolicyName != "devices" {
		t.Fatalf("credentialPolicyName: created %q, read %q", created.CredentialPolicyName, got.CredentialPolicyName)
	}
	if e, err := f.adm.GetIndividual(ctx, "cp-1"); err != nil || e.CredentialPolicy != "devices" {
		t.Fatalf("stored: %+v, %v", e, err)
	}
}
