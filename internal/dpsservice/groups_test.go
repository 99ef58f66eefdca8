package dpsservice

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// TestX509Group: a group names a verified CA by caReferences, or by its
// certificate or thumbprint in signingCertificates; it is shown as the CA
// reference, and cannot move to another CA.
func TestX509Group(t *testing.T) {
	f := newFixture(t)
	// One group per CA.
	f.verifiedCA("acme")
	byCert := f.verifiedCA("by-cert-ca")
	other := f.verifiedCA("other")
	byThumb := f.verifiedCA("by-thumb-ca")
	thumb := func(c *pki.Issued) string { s := sha256.Sum256(c.Cert.Raw); return hex.EncodeToString(s[:]) }
	var g EnrollmentGroup
	f.ok(f.call("PUT", "/enrollmentGroups/by-ref", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"acme"}}}}`), 200, &g)
	if g.EnrollmentGroupID != "by-ref" || g.Attestation.X509.CAReferences.Primary != "acme" || g.Attestation.SymmetricKey != nil {
		t.Fatalf("group: %+v", g)
	}
	f.ok(f.call("PUT", "/enrollmentGroups/by-cert", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":`+mustJSON(string(pki.CertPEM(byCert.Cert)))+`}}}}}`), 200, &g)
	f.ok(f.call("PUT", "/enrollmentGroups/by-der", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"`+b64(other.Cert.Raw)+`"}}}}}`), 200, &g)
	if g.Attestation.X509.CAReferences.Primary != "other" {
		t.Fatalf("by DER: %+v", g.Attestation.X509)
	}
	f.ok(f.call("PUT", "/enrollmentGroups/by-thumb", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"info":{"sha256Thumbprint":"`+strings.ToUpper(thumb(byThumb))+`"}}}}}}`), 200, &g)
	if got, _ := f.store.Store.GetGroup(t.Context(), "by-thumb"); got.CAName != "by-thumb-ca" || got.Mechanism != enrollment.MechanismX509 {
		t.Fatalf("stored: %+v", got)
	}
	var m AttestationMechanism
	f.ok(f.call("POST", "/enrollmentGroups/by-thumb/attestationmechanism", ""), 200, &m)
	if m.Type != "x509" || m.X509.CAReferences.Primary != "by-thumb-ca" {
		t.Fatalf("mechanism: %+v", m)
	}
	// Settings change; the CA stays (named again, or not at all).
	f.ok(f.call("PUT", "/enrollmentGroups/by-ref", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"acme"}}},"provisioningStatus":"disabled"}`), 200, &g)
	f.ok(f.call("PUT", "/enrollmentGroups/by-ref", `{"attestation":{"type":"x509"},"capabilities":{"iotEdge":true}}`), 200, &g)
	if g.ProvisioningStatus != "enabled" || g.Capabilities == nil || !g.Capabilities.IoTEdge {
		t.Fatalf("settings: %+v", g)
	}

	// An unverified CA, or none, is refused, as are the shapes DPS allows
	// and Zerotouch does not; nothing is written.
	unverified, _ := pki.NewCA("Unverified", nil, time.Now(), time.Hour)
	if _, err := f.adm.CreateCA(t.Context(), "unverified", string(pki.CertPEM(unverified.Cert))); err != nil {
		t.Fatal(err)
	}
	stranger, _ := pki.NewCA("Stranger", nil, time.Now(), time.Hour)
	before := f.snapshot()
	for _, tc := range []struct{ name, path, body, reason string }{
		{"unknown reference", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"nobody"}}}}`, "RESOURCE_NOT_FOUND"},
		{"unknown signing certificate", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":` + mustJSON(string(pki.CertPEM(stranger.Cert))) + `}}}}}`, "CA_NOT_VERIFIED"},
		{"unknown signing thumbprint", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"info":{"sha256Thumbprint":"` + strings.Repeat("0", 64) + `"}}}}}}`, "CA_NOT_VERIFIED"},
		{"bad signing thumbprint", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"info":{"sha256Thumbprint":"00"}}}}}}`, "FIELD_INVALID"},
		{"signing certificate garbage", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"%%%"}}}}}`, "FIELD_INVALID"},
		{"signing certificate not X.509", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"AAEC"}}}}}`, "FIELD_INVALID"},
		{"secondary signing certificate", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"AA=="},"secondary":{"certificate":"AA=="}}}}}`, "FIELD_INVALID"},
		{"empty signing certificates", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"signingCertificates":{}}}}`, "FIELD_INVALID"},
		{"two CA references", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"acme","secondary":"other"}}}}`, "FIELD_INVALID"},
		{"reference and certificate", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"acme"},"signingCertificates":{"primary":{"certificate":"AA=="}}}}}`, "FIELD_INVALID"},
		{"empty reference", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"caReferences":{}}}}`, "FIELD_INVALID"},
		{"client certificates", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"AA=="}}}}}`, "FIELD_INVALID"},
		{"no x509", "/enrollmentGroups/g-new", `{"attestation":{"type":"x509"}}`, "FIELD_INVALID"},
		{"tpm group", "/enrollmentGroups/g-new", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"AA=="}}}`, "FIELD_INVALID"},
		{"unknown type", "/enrollmentGroups/g-new", `{"attestation":{"type":"none"}}`, "FIELD_INVALID"},
		{"no attestation", "/enrollmentGroups/g-new", `{}`, "FIELD_INVALID"},
		{"group ID not the path's", "/enrollmentGroups/g-new", `{"enrollmentGroupId":"other","attestation":{"type":"symmetricKey"}}`, "FIELD_INVALID"},
		{"group ID case", "/enrollmentGroups/g-new", `{"enrollmentGroupId":"G-NEW","attestation":{"type":"symmetricKey"}}`, "FIELD_INVALID"},
		{"bad group ID", "/enrollmentGroups/g.new%20x", `{"attestation":{"type":"symmetricKey"}}`, "FIELD_INVALID"},
		{"bad setting", "/enrollmentGroups/g-new", `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"random"}`, "FIELD_INVALID"},
		{"move to another CA", "/enrollmentGroups/by-ref", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"other"}}}}`, "FIELD_INVALID"},
		{"move by certificate", "/enrollmentGroups/by-cert", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"` + b64(other.Cert.Raw) + `"}}}}}`, "FIELD_INVALID"},
		{"become symmetric", "/enrollmentGroups/by-ref", `{"attestation":{"type":"symmetricKey"}}`, "FIELD_INVALID"},
		{"update naming a stranger", "/enrollmentGroups/by-ref", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"` + b64(stranger.Cert.Raw) + `"}}}}}`, "CA_NOT_VERIFIED"},
	} {
		refused(t, f.call("PUT", tc.path, tc.body), 400, tc.reason)
	}
	if f.snapshot() != before {
		t.Fatalf("a refused write wrote:\n%s\n%s", before, f.snapshot())
	}
	// A group may name an uploaded CA not yet verified (by reference, or
	// by its certificate): its devices are refused CA_NOT_VERIFIED when
	// they register, until the proof of possession.
	f.ok(f.call("PUT", "/enrollmentGroups/on-unverified", `{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":"`+b64(unverified.Cert.Raw)+`"}}}}}`), 200, &g)
	if g.Attestation.X509.CAReferences.Primary != "unverified" {
		t.Fatalf("group on an unverified CA: %+v", g.Attestation.X509)
	}
}

// TestSymmetricKeyGroup: keys are shown by the write and the attestation
// mechanism call only, and cannot change.
func TestSymmetricKeyGroup(t *testing.T) {
	f := newFixture(t)
	primary := b64([]byte(strings.Repeat("p", 32)))
	var g EnrollmentGroup
	f.ok(f.call("PUT", "/enrollmentGroups/sg", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+primary+`"}},"iotHubs":["hub-a.example.com","hub-b.example.com"]}`), 200, &g)
	if g.Attestation.SymmetricKey.PrimaryKey != primary || g.Attestation.SymmetricKey.SecondaryKey == "" || len(g.IoTHubs) != 2 {
		t.Fatalf("group: %+v", g)
	}
	secondary := g.Attestation.SymmetricKey.SecondaryKey
	var got EnrollmentGroup
	f.ok(f.call("GET", "/enrollmentGroups/sg", ""), 200, &got)
	if *got.Attestation.SymmetricKey != (SymmetricKeyAttestation{}) || got.Etag != g.Etag {
		t.Fatalf("GET: %+v", got)
	}
	var m AttestationMechanism
	f.ok(f.call("POST", "/enrollmentGroups/sg/attestationmechanism", ""), 200, &m)
	if m.SymmetricKey.PrimaryKey != primary || m.SymmetricKey.SecondaryKey != secondary {
		t.Fatalf("mechanism: %+v", m)
	}
	var upd EnrollmentGroup
	f.ok(f.call("PUT", "/enrollmentGroups/sg", `{"attestation":{"type":"symmetricKey","symmetricKey":{"secondaryKey":"`+secondary+`"}}}`), 200, &upd)
	if upd.IoTHubs != nil || upd.Attestation.SymmetricKey.PrimaryKey != primary {
		t.Fatalf("update: %+v", upd)
	}
	before := f.snapshot()
	refused(t, f.call("PUT", "/enrollmentGroups/sg", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+secondary+`"}}}`), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollmentGroups/sg", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"acme"}}}}`), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollmentGroups/sg2", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"AAAA"}}}`), 400, "FIELD_INVALID")
	refused(t, f.call("PUT", "/enrollmentGroups/sg2", `{"attestation":{"type":"symmetricKey","symmetricKey":{"secondaryKey":"!"}}}`), 400, "FIELD_INVALID")
	if f.snapshot() != before {
		t.Fatal("a refused write wrote")
	}
	// Deleted, it is gone; the attestation mechanism of nothing is 404.
	f.ok(f.call("DELETE", "/enrollmentGroups/sg", ""), 204, nil)
	refused(t, f.call("GET", "/enrollmentGroups/sg", ""), 404, "RESOURCE_NOT_FOUND")
	refused(t, f.call("POST", "/enrollmentGroups/sg/attestationmechanism", ""), 404, "RESOURCE_NOT_FOUND")
	refused(t, f.call("POST", "/enrollments/nobody/attestationmechanism", ""), 404, "RESOURCE_NOT_FOUND")
}

// TestNativeTPMGroup: a TPM group made through the native API (keyed on
// its EK vendor CA) shows as a CA reference; here only its settings
// change.
func TestNativeTPMGroup(t *testing.T) {
	f := newFixture(t)
	vendor, _ := pki.NewCA("TPM Vendor", nil, time.Now(), time.Hour)
	if _, err := f.adm.CreateCA(t.Context(), "vendor", string(pki.CertPEM(vendor.Cert))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.adm.CreateGroup(t.Context(), &enrollment.Group{ID: "tpm-fleet", CAName: "vendor", Mechanism: enrollment.MechanismTPM,
		Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}}); err != nil {
		t.Fatal(err)
	}
	var g EnrollmentGroup
	f.ok(f.call("GET", "/enrollmentGroups/tpm-fleet", ""), 200, &g)
	if g.Attestation.Type != "tpm" || g.Attestation.X509.CAReferences.Primary != "vendor" {
		t.Fatalf("TPM group: %+v", g.Attestation)
	}
	f.ok(f.call("PUT", "/enrollmentGroups/tpm-fleet", `{"attestation":{"type":"tpm"},"provisioningStatus":"disabled"}`), 200, &g)
	if g.ProvisioningStatus != "disabled" {
		t.Fatalf("settings: %+v", g)
	}
	refused(t, f.call("PUT", "/enrollmentGroups/tpm-fleet", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"vendor"}}}}`), 400, "FIELD_INVALID")
}
