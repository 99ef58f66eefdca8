package e2e

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
)

// TestDPSImport copies enrollments from one DPS service API to another with
// `zerotouch dps-import`. The source is a Zerotouch server (it speaks the
// same service API as Azure DPS, and answers GETs the same way: symmetric
// keys only through the attestation mechanism call, X.509 certificates as
// thumbprints). Devices then register on the target with their old
// credentials; an item the target cannot take is reported and the others
// go through; a second run changes nothing.
func TestDPSImport(t *testing.T) {
	src, dst := start(t), start(t)
	for _, e := range []*env{src, dst} {
		e.createShard("imp-hub", 1)
	}
	now := time.Now()
	root, _ := pki.NewCA("Import Root", nil, now, 24*time.Hour)
	other, _ := pki.NewCA("Import Other Root", nil, now, 24*time.Hour)
	src.uploadCA("imp-root", root, true)
	src.uploadCA("imp-other", other, true)
	dst.uploadCA("imp-root", root, true) // imp-other is not on the target

	srcID, srcKey := src.newSASKey("export", access.All...)
	dstID, dstKey := dst.newSASKey("import", access.All...)
	s := src.serviceClient(srcID, srcKey)
	symKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	self := leaf(t, pki.LeafTemplate("imp-x509", now, time.Hour), nil)
	var ek []byte
	withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) { ek = d.EKPublic() })
	for path, body := range map[string]string{
		"/enrollments/imp-sym": `{"deviceId":"imp-sym-dev","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + symKey + `"}},
			"initialTwin":{"tags":{"a":"b"}},"iotHubs":["imp-hub.hubs.example.com"],"provisioningStatus":"enabled"}`,
		"/enrollments/imp-x509":             `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + mustJSON(string(pki.CertPEM(self.Cert))) + `}}}}}`,
		"/enrollments/imp-tpm":              `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"` + base64.StdEncoding.EncodeToString(ek) + `"}}}`,
		"/enrollmentGroups/imp-group":       `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"imp-root"}}}}`,
		"/enrollmentGroups/imp-other-group": `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"imp-other"}}}}`,
		"/enrollmentGroups/imp-sym-group":   `{"attestation":{"type":"symmetricKey"},"provisioningStatus":"disabled"}`,
	} {
		s.mustOK(s.call("PUT", path, body), 200)
	}

	caFile := filepath.Join(t.TempDir(), "cas.pem")
	os.WriteFile(caFile, append(pki.CertPEM(src.serverCA.Cert), pki.CertPEM(dst.serverCA.Cert)...), 0o600)
	hostPort := func(e *env) string { return "localhost:" + e.httpAddr[strings.LastIndexByte(e.httpAddr, ':')+1:] }
	run := func() string {
		var out bytes.Buffer
		code := cli.Main(t.Context(), []string{"dps-import", "--ca-file", caFile,
			"--from", access.ConnectionString(hostPort(src), srcID, srcKey), "--to", access.ConnectionString(hostPort(dst), dstID, dstKey)},
			cli.Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }})
		if code != 1 {
			t.Fatalf("dps-import exit %d, want 1 (one refused item):\n%s", code, out.String())
		}
		return out.String()
	}
	out := run()
	for _, want := range []string{"imported enrollment group imp-group", "imported enrollment group imp-sym-group", "imported enrollment imp-sym",
		"imported enrollment imp-x509", "imported enrollment imp-tpm", "REFUSED enrollment group imp-other-group", "5 imported, 1 refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out2 := run(); !strings.Contains(out2, "5 imported, 1 refused") {
		t.Fatalf("second run:\n%s", out2)
	}

	// Devices register on the target with their old credentials.
	code, _, raw := dst.dpsCall("PUT", "/"+idScope+"/registrations/imp-sym/register", sas(bytes.Repeat([]byte{7}, 32), "imp-sym", time.Now().Add(time.Hour)), `{}`, nil)
	if op := decodeOp(t, raw); code != 200 || op.Status != "assigned" || op.RegistrationState.DeviceID != "imp-sym-dev" {
		t.Fatalf("symmetric-key device on the target: %d %s", code, raw)
	}
	code, _, raw = dst.dpsCall("PUT", "/"+idScope+"/registrations/imp-x509/register", "", `{}`, self)
	if code != 200 || decodeOp(t, raw).Status != "assigned" {
		t.Fatalf("X.509 device on the target: %d %s", code, raw)
	}
	groupDev, _ := pki.NewDevice("imp-group-dev", root, now, time.Hour)
	if code, _, raw = dst.dpsCall("PUT", "/"+idScope+"/registrations/imp-group-dev/register", "", `{}`, groupDev); code != 200 {
		t.Fatalf("group device on the target: %d %s", code, raw)
	}
	e, err := dst.store.GetIndividual(t.Context(), "imp-tpm")
	if err != nil || !bytes.Equal(e.EKPublic, ek) {
		t.Fatalf("TPM enrollment on the target: %v", err)
	}
	sym, err := dst.store.GetIndividual(t.Context(), "imp-sym")
	if err != nil || !strings.Contains(string(sym.InitialTwin), `"a":"b"`) || len(sym.Allocation.Shards) != 1 {
		t.Fatalf("imported settings: %+v %v", sym, err)
	}
	if g, err := dst.store.GetGroup(t.Context(), "imp-sym-group"); err != nil || !g.Disabled {
		t.Fatalf("imported group status: %+v %v", g, err)
	}
	// The generated group keys came over too (read with the attestation
	// mechanism call on both sides).
	d := dst.serviceClient(dstID, dstKey)
	var a, b dpsservice.AttestationMechanism
	s.mustOK(s.call("POST", "/enrollmentGroups/imp-sym-group/attestationmechanism", ""), 200).decode(t, &a)
	d.mustOK(d.call("POST", "/enrollmentGroups/imp-sym-group/attestationmechanism", ""), 200).decode(t, &b)
	if a.SymmetricKey == nil || a.SymmetricKey.PrimaryKey == "" || *a.SymmetricKey != *b.SymmetricKey {
		t.Fatalf("group keys: source %+v, target %+v", a.SymmetricKey, b.SymmetricKey)
	}
	if _, err := dst.store.GetGroup(t.Context(), "imp-other-group"); err == nil {
		t.Fatal("the refused group exists on the target")
	}
}
