package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// requireCompat finds node and the SDK packages installed in compat/ (by
// scripts/test.sh: npm ci --ignore-scripts), or skips (fails under CI).
func requireCompat(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs("../../compat")
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "azure-iot-provisioning-device"))
	if nodeErr != nil || modErr != nil {
		msg := "the Azure IoT SDK compatibility suite needs node and compat/node_modules (cd compat && npm ci --ignore-scripts)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

type compatDevice struct {
	RegistrationID string `json:"registrationId"`
	DeviceID       string `json:"deviceId,omitempty"`
	CertChainPEM   string `json:"certChainPem,omitempty"`
	KeyPEM         string `json:"keyPem,omitempty"`
	PrimaryKey     string `json:"primaryKey,omitempty"`
	SecondaryKey   string `json:"secondaryKey,omitempty"`
	ID             string `json:"id,omitempty"`
}

func x509Device(t *testing.T, d *pki.Issued, chain ...*pki.Issued) compatDevice {
	keyPEM, err := pki.KeyPEM(d.Key)
	if err != nil {
		t.Fatal(err)
	}
	certs := []byte(pki.CertPEM(d.Cert))
	for _, c := range chain {
		certs = append(certs, pki.CertPEM(c.Cert)...)
	}
	return compatDevice{RegistrationID: d.Cert.Subject.CommonName, CertChainPEM: string(certs), KeyPEM: string(keyPEM)}
}

// TestAzureDeviceSDK runs the real npm packages azure-iot-provisioning-device
// (+ -http, azure-iot-security-x509, azure-iot-security-symmetric-key)
// against a Zerotouch server on loopback: symmetric keys and X.509,
// individual and group, and the refusals.
func TestAzureDeviceSDK(t *testing.T) {
	dir := requireCompat(t)
	e := start(t)
	e.createShard("node-shard", 1)
	now := time.Now()
	root, _ := pki.NewCA("Node Root", nil, now, 24*time.Hour)
	inter, _ := pki.NewCA("Node Issuing", root, now, 24*time.Hour)
	e.uploadCA("node-root", root, true)
	e.createGroup("node-x509", "node-root")
	enr := pb.NewEnrollmentServiceClient(e.admin)

	b64 := base64.StdEncoding.EncodeToString
	symInd, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "node-sym-device", SymmetricKey: &pb.SymmetricKeyAttestation{}}})
	if err != nil {
		t.Fatal(err)
	}
	symGroup, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "node-sym-group", AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY}})
	if err != nil {
		t.Fatal(err)
	}
	symOff, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "node-sym-off", SymmetricKey: &pb.SymmetricKeyAttestation{},
		ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED}})
	if err != nil {
		t.Fatal(err)
	}
	groupDev, _ := pki.NewDevice("node-x509-device", inter, now, time.Hour)
	selfSigned := leaf(t, pki.LeafTemplate("node-x509-individual", now, time.Hour), nil)
	if _, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "node-x509-individual",
		DeviceId: "node-x509-individual-dev", CertificatePem: string(pki.CertPEM(selfSigned.Cert))}}); err != nil {
		t.Fatal(err)
	}
	stranger, _ := pki.NewCA("Stranger", nil, now, time.Hour)
	strangerDev, _ := pki.NewDevice("node-x509-stranger", stranger, now, time.Hour)

	individual := x509Device(t, selfSigned)
	individual.DeviceID = "node-x509-individual-dev"
	fixture := map[string]any{
		"host": "localhost", "port": portOf(t, e.httpAddr), "idScope": idScope, "hub": "node-shard.hubs.example.com",
		"symIndividual":  compatDevice{RegistrationID: "node-sym-device", PrimaryKey: b64(symInd.GetSymmetricKey().GetPrimaryKey()), SecondaryKey: b64(symInd.GetSymmetricKey().GetSecondaryKey())},
		"symGroup":       compatDevice{ID: "node-sym-group", PrimaryKey: b64(symGroup.GetSymmetricKey().GetPrimaryKey())},
		"symDisabled":    compatDevice{RegistrationID: "node-sym-off", PrimaryKey: b64(symOff.GetSymmetricKey().GetPrimaryKey())},
		"x509Group":      x509Device(t, groupDev, inter),
		"x509GroupId":    "node-x509",
		"x509Individual": individual,
		"x509Stranger":   x509Device(t, strangerDev, stranger),
	}
	work := t.TempDir()
	raw, _ := json.Marshal(fixture)
	fixturePath, caPath := filepath.Join(work, "fixture.json"), filepath.Join(work, "ca.pem")
	if err := os.WriteFile(fixturePath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caPath, pki.CertPEM(e.serverCA.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", "--test", "dps_device.test.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ZT_FIXTURE="+fixturePath, "NODE_EXTRA_CA_CERTS="+caPath)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil || !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("the Azure IoT device SDK suite failed: %v", err)
	}
	for _, id := range []string{"node-sym-off", "nobody-enrolled", "node-x509-stranger"} {
		e.assertNoRegistration(id)
	}
	if _, err := e.store.GetIdentity(t.Context(), "node-x509-individual-dev"); err != nil {
		t.Errorf("the individual X.509 device's identity: %v", err)
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	var p int
	for _, c := range addr[i+1:] {
		p = p*10 + int(c-'0')
	}
	return p
}

// TestAzureTPMSDK runs azure-iot-security-tpm (tss.js) against swtpm on
// TCP 2323 and Zerotouch's DPS-compatible API: DPS's TPM flow, unchanged.
func TestAzureTPMSDK(t *testing.T) {
	dir := requireCompat(t)
	swtpm, err := exec.LookPath("swtpm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("swtpm is required in CI (apt-get install -y swtpm)")
		}
		t.Skip("swtpm is not installed (apt-get install -y swtpm)")
	}
	if _, err := os.Stat("/dev/tpmrm0"); err == nil {
		t.Skip("a TPM device exists here; tss.js would use it instead of swtpm")
	}
	state := t.TempDir()
	sw := exec.Command(swtpm, "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--server", "type=tcp,port=2323,bindaddr=127.0.0.1", "--ctrl", "type=tcp,port=2324,bindaddr=127.0.0.1",
		"--flags", "not-need-init,startup-clear")
	if err := sw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sw.Process.Kill(); sw.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:2323"); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("swtpm did not listen on 2323")
		}
		time.Sleep(50 * time.Millisecond)
	}

	e := start(t)
	e.createShard("node-shard", 1)
	fixture := map[string]any{"host": "localhost", "port": portOf(t, e.httpAddr), "idScope": idScope,
		"hub": "node-shard.hubs.example.com", "ownerKey": e.ownerKey}
	work := t.TempDir()
	raw, _ := json.Marshal(fixture)
	fixturePath, caPath := filepath.Join(work, "fixture.json"), filepath.Join(work, "ca.pem")
	os.WriteFile(fixturePath, raw, 0o600)
	os.WriteFile(caPath, pki.CertPEM(e.serverCA.Cert), 0o600)
	cmd := exec.CommandContext(t.Context(), "node", "--test", "dps_tpm.test.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ZT_FIXTURE="+fixturePath, "NODE_EXTRA_CA_CERTS="+caPath)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil || !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("the Azure IoT TPM SDK suite failed: %v", err)
	}
}
