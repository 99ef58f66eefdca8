package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// The takeovers issue #18 reproduced, each now refused (ADR 17).

// unchanged fails the test if regID's registration or identity differ
// from what they were.
func (e *env) unchanged(regID string, reg *registry.Registration, id *registry.Identity) {
	e.t.Helper()
	r, i := e.current(regID)
	if r.Etag != reg.Etag || r.GroupID != reg.GroupID || r.Individual != reg.Individual || r.CredentialThumbprint != reg.CredentialThumbprint ||
		i.Version != id.Version || i.Credential.X509Thumbprint != id.Credential.X509Thumbprint || i.Credential.TPMEKHash != id.Credential.TPMEKHash ||
		i.Credential.SymmetricKeyHash != id.Credential.SymmetricKeyHash {
		e.t.Fatalf("%s changed: %+v %+v, was %+v %+v", regID, r, i, reg, id)
	}
}

func (e *env) current(regID string) (*registry.Registration, *registry.Identity) {
	e.t.Helper()
	r, err := e.store.GetRegistration(context.Background(), regID)
	if err != nil {
		e.t.Fatal(err)
	}
	i, err := e.store.GetIdentity(context.Background(), r.DeviceID)
	if err != nil {
		e.t.Fatal(err)
	}
	return r, i
}

// dpsX509 registers an X.509 device on the DPS device API and returns the
// HTTP status and the error body's reason ("" on success).
func (e *env) dpsX509(regID string, dev *pki.Issued, chain ...*pki.Issued) (int, string) {
	e.t.Helper()
	code, _, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/"+regID+"/register", "", `{"registrationId":"`+regID+`"}`, dev, chain...)
	if code == 200 || code == 202 {
		return code, ""
	}
	return code, decodeErr(e.t, raw).Info["reason"]
}

// TestTakeoverX509AcrossGroups: a device of another verified CA's group,
// with the CN of a registered device, is refused on every transport, and
// the registration stays the real device's; status lookups show it
// nothing. With the attacker's group adopting from the owner's, the move
// is allowed: an operator's decision.
func TestTakeoverX509AcrossGroups(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	real := f.device(t, "sensor-0001")
	if _, err := e.registerGRPC("sensor-0001", real, f.inter.Cert); err != nil {
		t.Fatal(err)
	}
	reg, id := e.current("sensor-0001")

	beta, err := pki.NewCA("Beta Devices Root", nil, time.Now(), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.uploadCA("beta-root", beta, true)
	e.createGroup("beta", "beta-root")
	attacker, err := pki.NewDevice("sensor-0001", beta, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range transports {
		if _, err := tr.register(e, "sensor-0001", attacker); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
			t.Fatalf("%s: %v, want REGISTRATION_ID_OWNED", tr.name, err)
		}
	}
	if code, reason := e.dpsX509("sensor-0001", attacker); code != http.StatusUnauthorized || reason != "REGISTRATION_ID_OWNED" {
		t.Fatalf("DPS: %d %s", code, reason)
	}
	// DPS's status lookup (POST /registrations/{id}) by the attacker.
	code, _, raw := e.dpsCall("POST", "/"+idScope+"/registrations/sensor-0001", "", `{"registrationId":"sensor-0001"}`, attacker)
	if code != http.StatusUnauthorized || decodeErr(t, raw).Info["reason"] != "REGISTRATION_ID_OWNED" {
		t.Fatalf("status lookup by another group's device: %d %s", code, raw)
	}
	e.unchanged("sensor-0001", reg, id)
	// The real device still registers, idempotently.
	if got, err := e.registerGRPC("sensor-0001", real, f.inter.Cert); err != nil || got.GetEtag() != reg.Etag {
		t.Fatalf("the real device: %v %v", got, err)
	}
	// Renewed by its own CA: an update, not a takeover.
	renewed := f.device(t, "sensor-0001")
	if got, err := e.registerREST("sensor-0001", renewed, f.inter.Cert); err != nil || got.GetEnrollmentGroupId() != "acme" {
		t.Fatalf("renewed certificate: %v %v", got, err)
	}
	if _, i := e.current("sensor-0001"); i.Version <= id.Version || i.Credential.X509Thumbprint == id.Credential.X509Thumbprint {
		t.Fatalf("renewal did not update the identity: %+v", i)
	}

	// The operator lets beta adopt acme's devices (DPS service API,
	// reprovisionPolicy.adoptFromGroups): the move is allowed.
	if _, err := pb.NewEnrollmentServiceClient(e.admin).DeleteEnrollmentGroup(e.owner(), &pb.DeleteEnrollmentGroupRequest{Id: "beta"}); err != nil {
		t.Fatal(err)
	}
	keyID, key := e.newSASKey("svc", access.All...)
	c := e.serviceClient(keyID, key)
	var grp dpsservice.EnrollmentGroup
	c.mustOK(c.call("PUT", "/enrollmentGroups/beta", `{"enrollmentGroupId":"beta","attestation":{"type":"x509","x509":{"caReferences":{"primary":"beta-root"}}},
		"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true,"adoptFromGroups":["acme"]}}`), 200).decode(t, &grp)
	if p := grp.ReprovisionPolicy; p == nil || len(p.AdoptFromGroups) != 1 || p.AdoptFromGroups[0] != "acme" {
		t.Fatalf("group = %+v", grp)
	}
	moved, err := e.registerGRPC("sensor-0001", attacker)
	if err != nil || moved.GetEnrollmentGroupId() != "beta" || moved.GetDeviceId() != "sensor-0001" {
		t.Fatalf("adopted: %v %v", moved, err)
	}
	// And now the device is beta's: acme's device is refused.
	if _, err := e.registerGRPC("sensor-0001", real, f.inter.Cert); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
		t.Fatalf("acme's device after the move: %v", err)
	}
	// adoptFromGroups is checked.
	for _, bad := range []string{`["bad id"]`, `["a","a"]`, `"acme"`, `[` + strings.Repeat(`"g",`, 16) + `"g"]`} {
		a := c.call("PUT", "/enrollmentGroups/beta-2", `{"enrollmentGroupId":"beta-2","attestation":{"type":"symmetricKey"},
			"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true,"adoptFromGroups":`+bad+`}}`)
		if a.code != http.StatusBadRequest {
			t.Fatalf("adoptFromGroups %s: %d %s", bad, a.code, a.body)
		}
	}
}

// TestTakeoverReservedByIndividual: an individual enrollment reserves its
// registration ID against every group device: an X.509 leaf of a group
// with the CN, a symmetric group's derived key over the DPS API (for an
// X.509 and a TPM individual enrollment), before and after the real device
// registered.
func TestTakeoverReservedByIndividual(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	enr := pb.NewEnrollmentServiceClient(e.admin)
	meter := f.device(t, "meter-1")
	if _, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "meter-1", CertificatePem: string(pki.CertPEM(meter.Cert))}}); err != nil {
		t.Fatal(err)
	}
	grp, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
		Id: "sym-group", AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY}})
	if err != nil {
		t.Fatal(err)
	}
	groupKey := grp.GetSymmetricKey().GetPrimaryKey()
	symmetric := func(regID string) (int, string) {
		code, _, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/"+regID+"/register",
			sas(symkey.DeriveDeviceKey(groupKey, regID), regID, time.Now().Add(time.Hour)), `{"registrationId":"`+regID+`"}`, nil)
		if code == 200 {
			return code, ""
		}
		return code, decodeErr(t, raw).Info["reason"]
	}

	// A group leaf with the individual's ID, before the device registered.
	squatter := f.device(t, "meter-1")
	for _, tr := range transports {
		if _, err := tr.register(e, "meter-1", squatter, f.inter.Cert); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
			t.Fatalf("%s: %v", tr.name, err)
		}
	}
	if code, reason := symmetric("meter-1"); code != http.StatusUnauthorized || reason != "REGISTRATION_ID_OWNED" {
		t.Fatalf("symmetric group over an X.509 individual: %d %s", code, reason)
	}
	e.assertNoRegistration("meter-1")
	// The enrolled leaf registers; the squatters are still refused.
	if _, err := e.registerREST("meter-1", meter); err != nil {
		t.Fatal(err)
	}
	reg, id := e.current("meter-1")
	if _, err := e.registerGRPC("meter-1", squatter, f.inter.Cert); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
		t.Fatalf("after registration: %v", err)
	}
	if code, reason := e.dpsX509("meter-1", squatter, f.inter); reason != "REGISTRATION_ID_OWNED" {
		t.Fatalf("DPS after registration: %d %s", code, reason)
	}
	e.unchanged("meter-1", reg, id)

	// A TPM individual enrollment's ID, with a symmetric group's key.
	withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
		e.enrollTPM("tpm-meter", d.EKPublic(), 0)
		if code, reason := symmetric("tpm-meter"); code != http.StatusUnauthorized || reason != "REGISTRATION_ID_OWNED" {
			t.Fatalf("symmetric group over a TPM individual: %d %s", code, reason)
		}
		e.assertNoRegistration("tpm-meter")
		if _, err := e.tpmGRPC(d, "tpm-meter"); err != nil {
			t.Fatalf("the enrolled TPM: %v", err)
		}
		reg, id := e.current("tpm-meter")
		if code, reason := symmetric("tpm-meter"); reason != "REGISTRATION_ID_OWNED" {
			t.Fatalf("after registration: %d %s", code, reason)
		}
		e.unchanged("tpm-meter", reg, id)
	})
	// An individual enrollment's custom device ID is reserved too: a group
	// device, whose device ID is its registration ID, cannot take it before
	// the enrolled device registers (it would hold the hub identity, and
	// the enrolled device would get DEVICE_ID_CONFLICT).
	gauge := f.device(t, "gauge-reg")
	if _, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "gauge-reg", DeviceId: "sensor-0001", CertificatePem: string(pki.CertPEM(gauge.Cert))}}); err != nil {
		t.Fatal(err)
	}
	deviceSquatter := f.device(t, "sensor-0001")
	for _, tr := range transports {
		if _, err := tr.register(e, "sensor-0001", deviceSquatter, f.inter.Cert); reasonOf(t, err) != "REGISTRATION_ID_OWNED" {
			t.Fatalf("%s: a group device under an individual's device ID: %v", tr.name, err)
		}
	}
	if code, reason := symmetric("Sensor-0001"); code != http.StatusUnauthorized || reason != "REGISTRATION_ID_OWNED" {
		t.Fatalf("symmetric group under an individual's device ID: %d %s", code, reason)
	}
	e.assertNoRegistration("sensor-0001")
	if got, err := e.registerREST("gauge-reg", gauge); err != nil || got.GetDeviceId() != "sensor-0001" {
		t.Fatalf("the enrolled device: %v, %v", got, err)
	}
	// Another individual enrollment cannot take the name either.
	other := f.device(t, "other-reg")
	_, err = enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "other-reg", DeviceId: "SENSOR-0001", CertificatePem: string(pki.CertPEM(other.Cert))}})
	if reasonOf(t, err) != "DEVICE_ID_CONFLICT" {
		t.Fatalf("a second individual enrollment with the device ID: %v", err)
	}

	// Group devices with IDs of their own still register.
	if code, reason := symmetric("sym-dev-1"); code != 200 {
		t.Fatalf("symmetric group device: %d %s", code, reason)
	}
}

// TestTakeoverTPMGroupSquat: a TPM from a vendor group asking for any
// registration ID but its EK-derived one (an individually enrolled TPM's,
// another device's, a sibling TPM's) is refused at the first step, and the
// enrolled TPM registers afterwards.
func TestTakeoverTPMGroupSquat(t *testing.T) {
	e := start(t)
	e.createShard("shard-a", 1)
	now := time.Now()
	vendor, _ := pki.NewCA("TPM Vendor Root", nil, now, 48*time.Hour)
	e.uploadCA("tpm-vendor", vendor, false)
	if _, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
		Id: "tpm-fleet", CaCertificate: "tpm-vendor", AttestationType: pb.AttestationType_ATTESTATION_TYPE_TPM}}); err != nil {
		t.Fatal(err)
	}
	var victimEK []byte
	withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) { victimEK = d.EKPublic() })
	victimSeed := tpmSeed.Load()
	e.enrollTPM("gateway-7", victimEK, 0)

	var squatEK []byte
	withTPM(t, tpmdevice.RSA, tpmdevice.Options{}, func(d *tpmdevice.Device) { squatEK = d.EKPublic() })
	tpmSeed.Add(-1)
	withTPM(t, tpmdevice.RSA, tpmdevice.Options{EKCertificates: [][]byte{ekCertificate(t, squatEK, vendor, now.Add(time.Hour))}}, func(d *tpmdevice.Device) {
		// A group TPM registers only under its EK's name: not under an
		// individual's, nor an unreserved name another device will use, nor
		// a sibling TPM's (EKs are public).
		for name, register := range map[string]func(cli.TPMDevice, string) (*pb.Registration, error){"grpc": e.tpmGRPC, "rest": e.tpmREST} {
			for _, id := range []string{"gateway-7", "sensor-0001", tpm.RegistrationID(victimEK)} {
				if _, err := register(d, id); reasonOf(t, err) != "REGISTRATION_ID_INVALID" {
					t.Fatalf("%s under %s: %v, want REGISTRATION_ID_INVALID", name, id, err)
				}
				e.assertNoRegistration(id)
			}
		}
		// Under its own ID the group TPM registers.
		if reg, err := e.tpmGRPC(d, ""); err != nil || reg.GetRegistrationId() != tpm.RegistrationID(squatEK) {
			t.Fatalf("group TPM under its own ID: %v %v", reg, err)
		}
	})
	next := tpmSeed.Load()
	tpmSeed.Store(victimSeed - 1) // the victim's simulated TPM again
	defer tpmSeed.Store(next)
	withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
		if string(d.EKPublic()) != string(victimEK) {
			t.Fatal("not the enrolled TPM")
		}
		if reg, err := e.tpmREST(d, "gateway-7"); err != nil || !reg.GetIndividualEnrollment() {
			t.Fatalf("the enrolled TPM: %v %v", reg, err)
		}
	})
}

// TestTPMChallengeBounds: first steps store nothing (the challenge is
// sealed into its ID), so hundreds of them for one (public) EK neither
// evict nor use up the device's open challenge, nor fill the store; one
// address opens a bounded number; a forged challenge ID is refused; an
// answer is single use; and another TPM registers meanwhile.
func TestTPMChallengeBounds(t *testing.T) {
	limiter := &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now,
		PerIPChallenges: ratelimit.Rule{Limit: 400, Window: time.Hour}}
	e := startWith(t, options{limiter: limiter})
	e.createShard("shard-a", 1)
	cc := e.dial(nil)
	defer cc.Close()
	dev := pb.NewDeviceRegistrationServiceClient(cc)
	withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
		e.enrollTPM("", d.EKPublic(), 0)
		begin := func() (*pb.BeginTpmAttestationResponse, error) {
			return dev.BeginTpmAttestation(t.Context(), &pb.BeginTpmAttestationRequest{EndorsementKey: d.EKPublic(), BoundKey: d.BoundKeyPublic()})
		}
		first, err := begin()
		if err != nil {
			t.Fatal(err)
		}
		var last *pb.BeginTpmAttestationResponse
		for range 399 {
			if last, err = begin(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := begin(); reasonOf(t, err) != "RATE_LIMITED" {
			t.Fatalf("first step 401 from one address: %v", err)
		}
		if n := challengeCount(t, e); n != 0 {
			t.Fatalf("400 first steps of one TPM stored %d challenges, want none (they are sealed into the challenge ID)", n)
		}
		// Anyone may begin for a public EK: the device's own first
		// challenge is untouched and still answers.
		secret, err := d.Activate(first.GetCredentialBlob(), first.GetEncryptedSecret())
		if err != nil {
			t.Fatal(err)
		}
		// Malformed and forged challenge IDs.
		forged := []byte(first.GetChallengeId())
		forged[10] ^= 1
		for _, id := range []string{"", "zz", strings.Repeat("g", 96), first.GetChallengeId()[:95], first.GetChallengeId() + "0", string(forged), strings.Repeat("A", 5000)} {
			if _, err := dev.CompleteTpmAttestation(t.Context(), &pb.CompleteTpmAttestationRequest{RegistrationId: first.GetRegistrationId(),
				ChallengeId: id, Secret: secret}); reasonOf(t, err) != "TPM_CHALLENGE_FAILED" {
				t.Fatalf("challenge ID %.40q: %v", id, err)
			}
		}
		complete := func(ch *pb.BeginTpmAttestationResponse, secret []byte) error {
			_, err := dev.CompleteTpmAttestation(t.Context(), &pb.CompleteTpmAttestationRequest{RegistrationId: ch.GetRegistrationId(),
				ChallengeId: ch.GetChallengeId(), Secret: secret})
			return err
		}
		if err := complete(first, secret); err != nil {
			t.Fatalf("the device's first challenge, after 399 more first steps: %v", err)
		}
		if err := complete(first, secret); reasonOf(t, err) != "TPM_CHALLENGE_FAILED" {
			t.Fatalf("the same answer again: %v", err)
		}
		// The latest open challenge of the same TPM answers too.
		secret, err = d.Activate(last.GetCredentialBlob(), last.GetEncryptedSecret())
		if err != nil {
			t.Fatal(err)
		}
		if err := complete(last, secret); err != nil {
			t.Fatalf("the latest challenge: %v", err)
		}
	})
	// Another TPM (the address's budget lifted: its bound is shown above).
	limiter.PerIPChallenges.Limit = 0
	withTPM(t, tpmdevice.RSA, tpmdevice.Options{}, func(d *tpmdevice.Device) {
		e.enrollTPM("", d.EKPublic(), 0)
		if _, err := e.tpmGRPC(d, ""); err != nil {
			t.Fatalf("another TPM: %v", err)
		}
	})
	if n := challengeCount(t, e); n != 3 {
		t.Fatalf("%d single-use markers after three answered challenges, want 3", n)
	}
}

// challengeCount counts the open challenges of the embedded store.
func challengeCount(t *testing.T, e *env) int {
	t.Helper()
	c, ok := e.store.(interface{ ChallengeCount() int })
	if !ok {
		t.Fatalf("%T cannot count challenges", e.store)
	}
	return c.ChallengeCount()
}

// TestDPSServiceSASIsBound: a service SAS grants what its sr names, on the
// configured host name only: a token for one resource cannot read
// another, and naming another host (with a matching Host header) does not
// help.
func TestDPSServiceSASIsBound(t *testing.T) {
	e := start(t)
	keyID, key := e.newSASKey("svc", access.All...)
	c := e.serviceClient(keyID, key)
	c.mustOK(c.call("PUT", "/enrollmentGroups/acme", `{"enrollmentGroupId":"acme","attestation":{"type":"symmetricKey"}}`), 200)
	c.mustOK(c.call("PUT", "/enrollmentGroups/acme2", `{"enrollmentGroupId":"acme2","attestation":{"type":"symmetricKey"}}`), 200)
	for sr, want := range map[string]map[string]int{
		"localhost/registrations/x":       {"/enrollmentGroups/acme": 401, "/registrations/x": 404},
		"localhost/enrollmentGroups/acme": {"/enrollmentGroups/acme": 200, "/enrollmentgroups/acme": 200, "/enrollmentGroups/ACME": 401, "/enrollmentGroups/acme2": 401, "/enrollments/acme": 401},
		"localhost/enrollmentGroups":      {"/enrollmentGroups/acme": 200, "/enrollmentGroups/acme2": 200, "/enrollments/x": 401},
		"localhost/":                      {"/enrollmentGroups/acme": 401},
		"127.0.0.1":                       {"/enrollmentGroups/acme": 401},
	} {
		token := symkey.Sign(key, sr, time.Now().Add(time.Hour), keyID)
		c.auth = func() string { return token }
		for path, code := range want {
			if a := c.call("GET", path, ""); a.code != code {
				t.Errorf("sr %q, GET %s: %d, want %d: %s", sr, path, a.code, code, a.body)
			}
		}
	}
	// A token for another host, sent to that host name.
	token := symkey.Sign(key, "evil.example.com", time.Now().Add(time.Hour), keyID)
	req, _ := http.NewRequest("GET", "https://"+e.httpAddr+"/enrollmentGroups/acme?api-version=2021-10-01", nil)
	req.Host = "evil.example.com"
	req.Header.Set("Authorization", token)
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a token for the Host header's name: %d", res.StatusCode)
	}
}
