package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func TestRegisterX509Group(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := start(t)
			f := e.newFleet()
			dev := f.device(t, "sensor-0001")
			reg, err := tr.register(e, "sensor-0001", dev, f.inter.Cert)
			if err != nil {
				t.Fatalf("register: %v", err)
			}
			if reg.GetStatus() != pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNED ||
				reg.GetSubstatus() != pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_INITIAL_ASSIGNMENT ||
				reg.GetRegistrationId() != "sensor-0001" || reg.GetDeviceId() != "sensor-0001" ||
				reg.GetEnrollmentGroupId() != "acme" || reg.GetAttestationType() != pb.AttestationType_ATTESTATION_TYPE_X509 ||
				reg.GetEtag() == "" || reg.GetCreateTime() == nil || reg.GetUpdateTime() == nil {
				t.Fatalf("unexpected registration: %v", reg)
			}
			if reg.GetShard() != "shard-a" && reg.GetShard() != "shard-b" || reg.GetAssignedHub() != reg.GetShard()+".hubs.example.com" {
				t.Fatalf("assigned to %q at %q", reg.GetShard(), reg.GetAssignedHub())
			}
			id, err := e.store.GetIdentity(t.Context(), "sensor-0001")
			if err != nil {
				t.Fatalf("identity: %v", err)
			}
			if id.Shard != reg.GetShard() || id.Credential.X509Thumbprint != reg.GetCredentialThumbprint() || id.Credential.CAThumbprint == "" || id.Version != id.Created.UnixMicro() {
				t.Fatalf("identity = %+v", id)
			}

			// Registering again is idempotent: same shard, same record.
			again, err := tr.register(e, "SENSOR-0001", dev, f.inter.Cert)
			if err != nil {
				t.Fatalf("second register: %v", err)
			}
			if again.GetEtag() != reg.GetEtag() || again.GetShard() != reg.GetShard() || !again.GetCreateTime().AsTime().Equal(reg.GetCreateTime().AsTime()) {
				t.Fatalf("re-registration changed the registration: %v then %v", reg, again)
			}
			// The registration ID may be omitted over gRPC: the CN decides.
			if tr.name == "grpc" {
				if _, err := tr.register(e, "", dev, f.inter.Cert); err != nil {
					t.Fatalf("register without ID: %v", err)
				}
			}
		})
	}
}

func TestRegisterRenewedCertificateKeepsShard(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	first, err := e.registerGRPC("dev-renew", f.device(t, "dev-renew"), f.inter.Cert)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.registerGRPC("dev-renew", f.device(t, "dev-renew"), f.inter.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if second.GetShard() != first.GetShard() || second.GetCredentialThumbprint() == first.GetCredentialThumbprint() || second.GetEtag() == first.GetEtag() {
		t.Fatalf("renewal: %v then %v", first, second)
	}
	id, err := e.store.GetIdentity(t.Context(), "dev-renew")
	if err != nil {
		t.Fatal(err)
	}
	if id.Version <= id.Created.UnixMicro() || id.Credential.X509Thumbprint != second.GetCredentialThumbprint() {
		t.Fatalf("identity after renewal: %+v", id)
	}
}

func TestNearestGroupWins(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	e.uploadCA("acme-issuing", f.inter, true)
	e.createGroup("acme-line-2", "acme-issuing")
	reg, err := e.registerGRPC("dev-near", f.device(t, "dev-near"), f.inter.Cert, f.root.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if reg.GetEnrollmentGroupId() != "acme-line-2" {
		t.Fatalf("matched group %q, want the intermediate's group", reg.GetEnrollmentGroupId())
	}
	// Without the intermediate in the chain, a device whose issuer is the
	// uploaded intermediate is still found by issuer name.
	reg, err = e.registerREST("dev-near-2", f.device(t, "dev-near-2"))
	if err != nil {
		t.Fatal(err)
	}
	if reg.GetEnrollmentGroupId() != "acme-line-2" {
		t.Fatalf("matched group %q", reg.GetEnrollmentGroupId())
	}
}

func TestIndividualEnrollment(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := start(t)
			e.createShard("shard-a", 10)
			e.createShard("shard-s", 10)
			// A self-signed device certificate, enrolled by its thumbprint.
			dev := leaf(t, pki.LeafTemplate("gateway-7", time.Now(), time.Hour), nil)
			_, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
				RegistrationId: "gateway-7", DeviceId: "gw-7-prod", CertificatePem: string(pki.CertPEM(dev.Cert)),
				Allocation: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, StaticShard: "shard-s"}}})
			if err != nil {
				t.Fatal(err)
			}
			reg, err := tr.register(e, "gateway-7", dev)
			if err != nil {
				t.Fatalf("register: %v", err)
			}
			if reg.GetDeviceId() != "gw-7-prod" || reg.GetShard() != "shard-s" || !reg.GetIndividualEnrollment() || reg.GetEnrollmentGroupId() != "" {
				t.Fatalf("registration = %v", reg)
			}
			if _, err := e.store.GetIdentity(t.Context(), "gw-7-prod"); err != nil {
				t.Fatalf("identity: %v", err)
			}
		})
	}
}

func TestDeleteRegistrationAllowsFreshProvisioning(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	dev := f.device(t, "dev-del")
	first, err := e.registerGRPC("dev-del", dev, f.inter.Cert)
	if err != nil {
		t.Fatal(err)
	}
	regs := pb.NewRegistrationServiceClient(e.admin)
	if _, err := regs.DeleteRegistration(e.owner(), &pb.DeleteRegistrationRequest{RegistrationId: "dev-del", Etag: "stale"}); reasonOf(t, err) != "ETAG_MISMATCH" {
		t.Fatalf("delete with stale etag: %v", err)
	}
	if _, err := regs.DeleteRegistration(e.owner(), &pb.DeleteRegistrationRequest{RegistrationId: "dev-del", Etag: first.GetEtag()}); err != nil {
		t.Fatal(err)
	}
	e.assertNoRegistration("dev-del")
	second, err := e.registerGRPC("dev-del", dev, f.inter.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if second.GetEtag() == first.GetEtag() {
		t.Fatal("re-provisioned registration kept the old etag")
	}
}

// TestConcurrentDuplicateRegistrations: 50 goroutines register the same
// device at once, each on its own TLS connection, and get one identity.
func TestConcurrentDuplicateRegistrations(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	dev := f.device(t, "dev-race")
	const n = 50
	results := make([]*pb.Registration, n)
	errs := make([]error, n)
	concurrently(n, func(i int) {
		if i%2 == 0 {
			results[i], errs[i] = e.registerGRPC("dev-race", dev, f.inter.Cert)
		} else {
			results[i], errs[i] = e.registerREST("dev-race", dev, f.inter.Cert)
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
		if results[i].GetEtag() != results[0].GetEtag() || results[i].GetShard() != results[0].GetShard() || results[i].GetDeviceId() != "dev-race" {
			t.Fatalf("registration %d = %v, registration 0 = %v", i, results[i], results[0])
		}
	}
	list, err := pb.NewRegistrationServiceClient(e.admin).ListRegistrations(e.owner(), &pb.ListRegistrationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetRegistrations()) != 1 {
		t.Fatalf("%d registrations after the race, want 1", len(list.GetRegistrations()))
	}
	id, err := e.store.GetIdentity(t.Context(), "dev-race")
	if err != nil || id.Version != id.Created.UnixMicro() {
		t.Fatalf("identity = %+v, %v", id, err)
	}
}

// TestRefusals covers every refusal of X.509 registration: each has a
// stable reason and writes nothing, over gRPC and over REST.
func TestRefusals(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	now := time.Now()

	// An enabled group on a second, verified root whose group is disabled.
	otherRoot, _ := pki.NewCA("Other Root", nil, now, time.Hour)
	e.uploadCA("other-root", otherRoot, true)
	g := e.createGroup("other", "other-root")
	if _, err := pb.NewEnrollmentServiceClient(e.admin).UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{
		EnrollmentGroup: &pb.EnrollmentGroup{Id: "other", Etag: g.GetEtag(), ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}}); err != nil {
		t.Fatal(err)
	}
	// A root uploaded but never verified, with a group.
	unverified, _ := pki.NewCA("Unverified Root", nil, now, time.Hour)
	e.uploadCA("unverified-root", unverified, false)
	e.createGroup("unverified", "unverified-root")
	// A root nobody uploaded.
	stranger, _ := pki.NewCA("Stranger Root", nil, now, time.Hour)
	// A forger's CA with exactly the subject of the real root.
	forgerTmpl := pki.CATemplate("Acme Devices Root", now, time.Hour)
	forgerTmpl.Subject = f.root.Cert.Subject
	forger := leaf(t, forgerTmpl, nil)
	// A device enrolled individually, disabled, whose chain leads into the enabled acme group.
	disabledInd := f.device(t, "dev-ind-off")
	if _, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: "dev-ind-off", CertificatePem: string(pki.CertPEM(disabledInd.Cert)),
		ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED}}); err != nil {
		t.Fatal(err)
	}
	// A chain of six: leaf + five intermediates under the acme root.
	long := []*pki.Issued{f.root}
	for i := range 5 {
		ca, err := pki.NewCA("Deep "+string(rune('A'+i)), long[len(long)-1], now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		long = append(long, ca)
	}
	deep := f.deviceFrom(t, "dev-deep", long[len(long)-1])
	var deepChain []*x509.Certificate
	for i := len(long) - 1; i >= 1; i-- {
		deepChain = append(deepChain, long[i].Cert)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := pki.Issue(pki.LeafTemplate("dev-weak", now, time.Hour), rsaKey, f.inter)
	if err != nil {
		t.Fatal(err)
	}
	expiredTmpl := pki.LeafTemplate("dev-expired", now, time.Hour)
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	futureTmpl := pki.LeafTemplate("dev-future", now, time.Hour)
	futureTmpl.NotBefore, futureTmpl.NotAfter = now.Add(time.Hour), now.Add(48*time.Hour)
	serverOnly := pki.LeafTemplate("dev-eku", now, time.Hour)
	serverOnly.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	noEKU := pki.LeafTemplate("dev-no-eku", now, time.Hour)
	noEKU.ExtKeyUsage = nil
	twoCN := pki.LeafTemplate("dev-two-cn", now, time.Hour)
	twoCN.Subject = pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 3}, Value: "a"}, {Type: []int{2, 5, 4, 3}, Value: "b"}}}
	caLeaf := pki.CATemplate("dev-is-ca", now, time.Hour)

	cases := []struct {
		name   string
		regID  string // what the device asks for, and what must not be written
		dev    *pki.Issued
		chain  []*x509.Certificate
		reason string
	}{
		{"NoChain", "dev-none", nil, nil, "CERTIFICATE_MISSING"},
		{"UnknownCA", "dev-stranger", f.deviceFrom(t, "dev-stranger", stranger), []*x509.Certificate{stranger.Cert}, "CERTIFICATE_UNTRUSTED"},
		{"CANotVerified", "dev-unverified", f.deviceFrom(t, "dev-unverified", unverified), nil, "CA_NOT_VERIFIED"},
		{"ExpiredLeaf", "dev-expired", leaf(t, expiredTmpl, f.inter), []*x509.Certificate{f.inter.Cert}, "CERTIFICATE_EXPIRED"},
		{"NotYetValidLeaf", "dev-future", leaf(t, futureTmpl, f.inter), []*x509.Certificate{f.inter.Cert}, "CERTIFICATE_NOT_YET_VALID"},
		{"WrongEKU", "dev-eku", leaf(t, serverOnly, f.inter), []*x509.Certificate{f.inter.Cert}, "CERTIFICATE_USAGE_INVALID"},
		{"NoEKU", "dev-no-eku", leaf(t, noEKU, f.inter), []*x509.Certificate{f.inter.Cert}, "CERTIFICATE_USAGE_INVALID"},
		{"LeafIsCA", "dev-is-ca", leaf(t, caLeaf, f.inter), []*x509.Certificate{f.inter.Cert}, "CERTIFICATE_USAGE_INVALID"},
		{"RSA1024Key", "dev-weak", weak, []*x509.Certificate{f.inter.Cert}, "KEY_TOO_WEAK"},
		{"ChainTooLong", "dev-deep", deep, deepChain, "CHAIN_TOO_LONG"},
		{"MissingIntermediate", "dev-lonely", f.device(t, "dev-lonely"), nil, "CERTIFICATE_UNTRUSTED"},
		{"DisabledGroup", "dev-other", f.deviceFrom(t, "dev-other", otherRoot), nil, "ENROLLMENT_DISABLED"},
		{"DisabledIndividualInEnabledGroup", "dev-ind-off", disabledInd, []*x509.Certificate{f.inter.Cert}, "ENROLLMENT_DISABLED"},
		{"CNNotARegistrationID", "bad", f.device(t, "bad id!"), []*x509.Certificate{f.inter.Cert}, "REGISTRATION_ID_INVALID"},
		{"TwoCNs", "dev-two-cn", leaf(t, twoCN, f.inter), []*x509.Certificate{f.inter.Cert}, "REGISTRATION_ID_INVALID"},
		{"RegistrationIDNotTheCN", "someone-else", f.device(t, "dev-honest"), []*x509.Certificate{f.inter.Cert}, "REGISTRATION_ID_INVALID"},
		{"ForgedSignatureUnderGroupCA", "dev-forged", f.deviceFrom(t, "dev-forged", forger), nil, "CERTIFICATE_UNTRUSTED"},
		{"ForgedCAPresented", "dev-forged-2", f.deviceFrom(t, "dev-forged-2", forger), []*x509.Certificate{forger.Cert}, "CERTIFICATE_UNTRUSTED"},
		{"GenuineRootWithForgedLeaf", "dev-forged-3", f.deviceFrom(t, "dev-forged-3", forger), []*x509.Certificate{f.root.Cert}, "CERTIFICATE_UNTRUSTED"},
	}
	for _, tc := range cases {
		for _, tr := range transports {
			t.Run(tc.name+"/"+tr.name, func(t *testing.T) {
				_, err := tr.register(e, tc.regID, tc.dev, tc.chain...)
				if err == nil {
					t.Fatal("registration succeeded, want a refusal")
				}
				if got := reasonOf(t, err); got != tc.reason {
					t.Fatalf("reason %s (%v), want %s", got, err, tc.reason)
				}
				e.assertNoRegistration(tc.regID)
				if tc.dev != nil {
					e.assertNoRegistration(tc.dev.Cert.Subject.CommonName)
				}
			})
		}
	}
}

// deviceFrom mints a device certificate issued by ca.
func (f *fleet) deviceFrom(t *testing.T, regID string, ca *pki.Issued) *pki.Issued {
	t.Helper()
	d, err := pki.NewDevice(regID, ca, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestUploadedIntermediateCompletesChain: a device that presents only its
// leaf registers when the operator uploaded the intermediate (without a
// group) under the group's root.
func TestUploadedIntermediateCompletesChain(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	e.uploadCA("acme-issuing", f.inter, false)
	reg, err := e.registerGRPC("dev-leaf-only", f.device(t, "dev-leaf-only"))
	if err != nil {
		t.Fatalf("leaf only, intermediate uploaded: %v", err)
	}
	if reg.GetEnrollmentGroupId() != "acme" {
		t.Fatalf("group %q", reg.GetEnrollmentGroupId())
	}
}
