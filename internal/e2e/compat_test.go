package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
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
	// A custom allocation webhook slower than the sync budget: the SDK
	// gets 202 "assigning" and polls the operation.
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second) // the webhook's slowness (> the 200 ms budget, < its 10 s timeout), not a wait for a condition
		w.Write([]byte(`{"iotHubHostName":"node-shard.hubs.example.com","payload":{"decidedBy":"webhook"}}`))
	}))
	defer hook.Close()
	e := startWith(t, options{webhooks: hook.Client(), webhookBudget: 200 * time.Millisecond})
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
	slowGroup, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "node-slow",
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
		Allocation:      &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM, Webhook: &pb.Webhook{Url: hook.URL, TimeoutSeconds: 10}}}})
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
		"slowGroup":      compatDevice{ID: "node-slow", PrimaryKey: b64(slowGroup.GetSymmetricKey().GetPrimaryKey())},
		"symDisabled":    compatDevice{RegistrationID: "node-sym-off", PrimaryKey: b64(symOff.GetSymmetricKey().GetPrimaryKey())},
		"x509Group":      x509Device(t, groupDev, inter),
		"x509GroupId":    "node-x509",
		"x509Individual": individual,
		"x509Stranger":   x509Device(t, strangerDev, stranger),
	}
	runNode(t, dir, e, "dps_device.test.js", fixture)
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
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:2323"); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("swtpm did not listen on 2323 within 30 s")
		}
		time.Sleep(50 * time.Millisecond) // between connection attempts
	}

	e := start(t)
	e.createShard("node-shard", 1)
	var otherEK []byte // another TPM's EK, for the wrong-TPM refusal
	withTPM(t, tpmdevice.RSA, tpmdevice.Options{}, func(d *tpmdevice.Device) { otherEK = d.EKPublic() })
	keyID, key := e.newSASKey("node-tpm", access.All...)
	runNode(t, dir, e, "dps_tpm.test.js", map[string]any{"host": "localhost", "port": portOf(t, e.httpAddr), "idScope": idScope,
		"hub": "node-shard.hubs.example.com", "connectionString": access.ConnectionString("localhost", keyID, key),
		"otherEk": base64.StdEncoding.EncodeToString(otherEK)})
}

// runNode runs one node test file with a fixture and the server's CA
// trusted through NODE_EXTRA_CA_CERTS, and fails unless every test passed.
func runNode(t *testing.T, dir string, e *env, file string, fixture map[string]any) {
	t.Helper()
	work := t.TempDir()
	raw, _ := json.Marshal(fixture)
	fixturePath, caPath := filepath.Join(work, "fixture.json"), filepath.Join(work, "ca.pem")
	if err := os.WriteFile(fixturePath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caPath, pki.CertPEM(e.serverCA.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	// A hung SDK call must fail the test, not stall the suite.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", file)
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ZT_FIXTURE="+fixturePath, "NODE_EXTRA_CA_CERTS="+caPath)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test %s:\n%s", file, out)
	if err != nil || !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("the Azure IoT SDK suite %s failed: %v", file, err)
	}
}

// TestAzureServiceSDK runs the real azure-iot-provisioning-service client
// against Zerotouch's DPS service API: it creates symmetric-key and X.509
// enrollments (individual and group), which the device SDK then registers
// against; etags and 412; query paging; bulk with per-item errors;
// registration states; a wrong key and a read-only policy.
func TestAzureServiceSDK(t *testing.T) {
	dir := requireCompat(t)
	e := start(t)
	e.createShard("node-shard", 1)
	now := time.Now()
	root, _ := pki.NewCA("Node Service Root", nil, now, 24*time.Hour)
	inter, _ := pki.NewCA("Node Service Issuing", root, now, 24*time.Hour)
	e.uploadCA("node-svc-root", root, true)
	groupDev, _ := pki.NewDevice("node-svc-x509-device", inter, now, time.Hour)
	self := leaf(t, pki.LeafTemplate("node-svc-x509-individual", now, time.Hour), nil)
	ownerID, ownerKey := e.newSASKey("node-svc-owner", access.All...)
	readerID, readerKey := e.newSASKey("node-svc-reader", access.EnrollmentRead)
	runNode(t, dir, e, "dps_service.test.js", map[string]any{
		"host": "localhost", "port": portOf(t, e.httpAddr), "idScope": idScope, "hub": "node-shard.hubs.example.com",
		"connectionString":       access.ConnectionString("localhost", ownerID, ownerKey),
		"readerConnectionString": access.ConnectionString("localhost", readerID, readerKey),
		"caName":                 "node-svc-root",
		"x509Group":              x509Device(t, groupDev, inter),
		"x509Individual":         x509Device(t, self),
	})
	// What the service client created is what the native API sees.
	if g, err := pb.NewEnrollmentServiceClient(e.admin).GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "svc-node-x509"}); err != nil || g.GetCaCertificate() != "node-svc-root" {
		t.Fatalf("native view of the SDK-created group: %v %v", g, err)
	}
	e.assertNoEnrollment("svc-node-denied")
	e.assertNoRegistration("svc-node-sym")
}
