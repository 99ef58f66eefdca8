package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var managementFiles = func() []protoreflect.FileDescriptor {
	// Every file of the API's package with a service, so that a new one is
	// covered; the device and hub APIs authenticate otherwise.
	_ = pb.File_zerotouch_v1_ca_proto // registers the package's files
	var out []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("zerotouch.v1", func(fd protoreflect.FileDescriptor) bool {
		if fd.Services().Len() > 0 && fd.Path() != "zerotouch/v1/device.proto" && fd.Path() != "zerotouch/v1/hubapi.proto" {
			out = append(out, fd)
		}
		return true
	})
	return out
}()

// TestManagementRequiresAccessKey calls every management RPC, discovered
// from the descriptors so that new ones are covered, without a key, with a
// wrong key, and with a key that lacks the permission.
func TestManagementRequiresAccessKey(t *testing.T) {
	e := start(t)
	fakeKey := "ztk.0011223344556677.notthesecret"
	n := 0
	for _, fd := range managementFiles {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				method := "/" + string(sd.FullName()) + "/" + string(md.Name())
				n++
				for _, key := range []string{"", fakeKey, e.ownerKey[:len(e.ownerKey)-1] + "x"} {
					ctx := t.Context()
					if key != "" {
						ctx = as(ctx, key)
					}
					err := e.admin.Invoke(ctx, method, dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output()))
					if codeOf(err) != codes.Unauthenticated || reasonOf(t, err) != "UNAUTHENTICATED" {
						t.Errorf("%s with key %q: %v, want Unauthenticated", method, key, err)
					}
				}
				// The reader key holds EnrollmentRead only.
				err := e.admin.Invoke(as(t.Context(), e.readerKey), method, dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output()))
				// (GetWebhookSecret returns a secret: ServiceConfig.)
				// (GetCallerAccessKey: any valid key reads itself.)
				readOnly := sd.Name() == "EnrollmentService" && md.Name() != "GetWebhookSecret" &&
					(strings.HasPrefix(string(md.Name()), "Get") || strings.HasPrefix(string(md.Name()), "List")) ||
					md.Name() == "GetCallerAccessKey"
				if readOnly {
					if codeOf(err) == codes.PermissionDenied || codeOf(err) == codes.Unauthenticated {
						t.Errorf("%s with the reader key: %v", method, err)
					}
				} else if codeOf(err) != codes.PermissionDenied || reasonOf(t, err) != "PERMISSION_DENIED" {
					t.Errorf("%s with the reader key: %v, want PermissionDenied", method, err)
				}
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d management methods found", n)
	}
}

// TestRESTRequiresAccessKey walks every path of the served OpenAPI
// document without a key.
func TestRESTRequiresAccessKey(t *testing.T) {
	e := start(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.clientTLS(nil)}}
	res, err := client.Get("https://" + e.httpAddr + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Info struct {
			Title, Version string
		} `json:"info"`
		SecurityDefinitions map[string]struct {
			Type, Name, In string
		} `json:"securityDefinitions"`
		Paths map[string]map[string]struct {
			Security *[]any `json:"security"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if doc.Info.Title != "Zerotouch API" || doc.Info.Version != "v1" || doc.SecurityDefinitions["AccessKey"].Name != "Authorization" {
		t.Fatalf("OpenAPI header: %+v %+v", doc.Info, doc.SecurityDefinitions)
	}
	n, devices := 0, 0
	for path, methods := range doc.Paths {
		for method, op := range methods {
			if op.Security != nil && len(*op.Security) == 0 {
				// The document says the device endpoints need no key: they
				// take the device's credential instead.
				if !strings.HasPrefix(path, "/v1/registrations/{registrationId}:") {
					t.Errorf("%s %s is documented as needing no access key", method, path)
				}
				devices++
				continue
			}
			url := "https://" + e.httpAddr + fillPath(path)
			req, _ := http.NewRequest(strings.ToUpper(method), url, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			n++
			if res.StatusCode != http.StatusUnauthorized || !bytes.Contains(body, []byte("UNAUTHENTICATED")) {
				t.Errorf("%s %s: %d %s, want 401 UNAUTHENTICATED", method, path, res.StatusCode, body)
			}
		}
	}
	if n < 20 || devices != 3 {
		t.Fatalf("%d REST operations need a key and %d do not; want at least 20 and 3", n, devices)
	}
}

// fillPath replaces {params} in an OpenAPI path with a plain value.
func fillPath(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return b.String() + p
		}
		j := strings.IndexByte(p[i:], '}')
		b.WriteString(p[:i] + "x")
		p = p[i+j+1:]
	}
}

func TestRESTStatusMapping(t *testing.T) {
	e := start(t)
	e.createShard("s1", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.clientTLS(nil)}}
	do := func(method, path, key, body string) (int, string) {
		req, _ := http.NewRequest(method, "https://"+e.httpAddr+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	cases := []struct {
		method, path, key, body string
		status                  int
		reason                  string
	}{
		{"GET", "/v1/shards/s1", e.ownerKey, "", 200, ""},
		{"GET", "/v1/shards/nope", e.ownerKey, "", 404, "RESOURCE_NOT_FOUND"},
		{"POST", "/v1/shards", e.ownerKey, `{"id":"s1","hostname":"h.example.com","weight":1}`, 409, "RESOURCE_ALREADY_EXISTS"},
		{"POST", "/v1/shards", e.ownerKey, `{"id":"s2","hostname":"h.example.com","weight":0}`, 400, "FIELD_INVALID"},
		{"POST", "/v1/shards", e.ownerKey, `{"id":"s2",`, 400, ""},
		{"PATCH", "/v1/shards/s1", e.ownerKey, `{"etag":"stale","weight":5}`, 409, "ETAG_MISMATCH"},
		{"GET", "/v1/shards", "", "", 401, "UNAUTHENTICATED"},
		{"POST", "/v1/shards", e.readerKey, `{"id":"s3","hostname":"h.example.com","weight":1}`, 403, "PERMISSION_DENIED"},
		{"GET", "/v1/caCertificates?pageSize=-1", e.ownerKey, "", 400, "FIELD_INVALID"},
		{"GET", "/healthz", "", "", 200, ""},
		{"GET", "/readyz", "", "", 200, ""},
	}
	for _, c := range cases {
		status, body := do(c.method, c.path, c.key, c.body)
		if status != c.status || !strings.Contains(body, c.reason) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, status, body, c.status, c.reason)
		}
	}
	if _, err := e.store.GetShard(t.Context(), "s2"); err == nil {
		t.Error("a refused shard was created")
	}
	if _, err := e.store.GetShard(t.Context(), "s3"); err == nil {
		t.Error("a shard was created without permission")
	}
}

// TestMalformedOperatorInput: every operator-supplied field's malformed
// forms get a clear error with a stable reason, and nothing is written.
func TestMalformedOperatorInput(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	now := time.Now()
	cas := pb.NewCertificateAuthorityServiceClient(e.admin)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	hubs := pb.NewHubServiceClient(e.admin)
	regs := pb.NewRegistrationServiceClient(e.admin)
	ctx := e.owner()

	otherCA, _ := pki.NewCA("Other", nil, now, time.Hour)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakCA, _ := pki.Issue(pki.CATemplate("Weak", now, time.Hour), rsaKey, nil)
	expiredTmpl := pki.CATemplate("Old", now, time.Hour)
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	expiredCA := leaf(t, expiredTmpl, nil)
	devCert := f.device(t, "dev-1")
	pemOf := func(i *pki.Issued) string { return string(pki.CertPEM(i.Cert)) }
	big := strings.Repeat("A", 17<<10)

	createCA := func(name, p string) error {
		_, err := cas.CreateCaCertificate(ctx, &pb.CreateCaCertificateRequest{CaCertificate: &pb.CaCertificate{Name: name, CertificatePem: p}})
		return err
	}
	createGroup := func(g *pb.EnrollmentGroup) error {
		_, err := enr.CreateEnrollmentGroup(ctx, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: g})
		return err
	}
	createEnrollment := func(en *pb.Enrollment) error {
		_, err := enr.CreateEnrollment(ctx, &pb.CreateEnrollmentRequest{Enrollment: en})
		return err
	}
	createShard := func(s *pb.Shard) error {
		_, err := hubs.CreateShard(ctx, &pb.CreateShardRequest{Shard: s})
		return err
	}
	grp, err := enr.GetEnrollmentGroup(ctx, &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	updateGroup := func(g *pb.EnrollmentGroup, paths ...string) error {
		_, err := enr.UpdateEnrollmentGroup(ctx, &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: g, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
		return err
	}

	cases := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"CA/EmptyName", func() error { return createCA("", pemOf(otherCA)) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/NameWithSpace", func() error { return createCA("bad name", pemOf(otherCA)) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/NameTooLong", func() error { return createCA(strings.Repeat("n", 129), pemOf(otherCA)) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/EmptyPEM", func() error { return createCA("c1", "") }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/NotPEM", func() error { return createCA("c1", "hello") }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/WrongBlockType", func() error { return createCA("c1", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/GarbageDER", func() error { return createCA("c1", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/TwoCertificates", func() error { return createCA("c1", pemOf(otherCA)+pemOf(otherCA)) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/TooLarge", func() error { return createCA("c1", big) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/NotACA", func() error { return createCA("c1", pemOf(devCert)) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/WeakKey", func() error { return createCA("c1", pemOf(weakCA)) }, codes.InvalidArgument, "KEY_TOO_WEAK"},
		{"CA/Expired", func() error { return createCA("c1", pemOf(expiredCA)) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"CA/DuplicateName", func() error { return createCA("acme-root", pemOf(otherCA)) }, codes.AlreadyExists, "RESOURCE_ALREADY_EXISTS"},
		{"CA/DuplicateCertificate", func() error { return createCA("c1", pemOf(f.root)) }, codes.AlreadyExists, "RESOURCE_ALREADY_EXISTS"},
		{"CA/GetMissing", func() error {
			_, err := cas.GetCaCertificate(ctx, &pb.GetCaCertificateRequest{Name: "c1"})
			return err
		}, codes.NotFound, "RESOURCE_NOT_FOUND"},
		{"CA/DeleteInUse", func() error {
			_, err := cas.DeleteCaCertificate(ctx, &pb.DeleteCaCertificateRequest{Name: "acme-root"})
			return err
		}, codes.FailedPrecondition, "RESOURCE_IN_USE"},
		{"CA/BadPageToken", func() error {
			_, err := cas.ListCaCertificates(ctx, &pb.ListCaCertificatesRequest{PageToken: "!!"})
			return err
		}, codes.InvalidArgument, "FIELD_INVALID"},

		{"Group/BadID", func() error { return createGroup(&pb.EnrollmentGroup{Id: "a/b", CaCertificate: "acme-root"}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/NoCA", func() error { return createGroup(&pb.EnrollmentGroup{Id: "g1"}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UnknownCA", func() error { return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "nope"}) }, codes.FailedPrecondition, "RESOURCE_NOT_FOUND"},
		{"Group/SecondOnCA", func() error { return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root"}) }, codes.AlreadyExists, "RESOURCE_ALREADY_EXISTS"},
		{"Group/UnknownShard", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", Allocation: &pb.Allocation{Shards: []string{"nope"}}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/DuplicateShard", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", Allocation: &pb.Allocation{Shards: []string{"shard-a", "shard-a"}}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/StaticWithoutShard", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", Allocation: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/StaticShardNotListed", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", Allocation: &pb.Allocation{
				Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, Shards: []string{"shard-a"}, StaticShard: "shard-b"}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/StaticShardWithHashed", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", Allocation: &pb.Allocation{StaticShard: "shard-a"}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UnknownPolicy", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", Allocation: &pb.Allocation{Policy: 99}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UnknownStatus", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", ProvisioningStatus: 99})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UpdateWithoutEtag", func() error { return updateGroup(&pb.EnrollmentGroup{Id: "acme"}, "provisioning_status") }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UpdateStaleEtag", func() error { return updateGroup(&pb.EnrollmentGroup{Id: "acme", Etag: "0"}, "provisioning_status") }, codes.Aborted, "ETAG_MISMATCH"},
		{"Group/UpdateBadMask", func() error {
			return updateGroup(&pb.EnrollmentGroup{Id: "acme", Etag: grp.GetEtag()}, "ca_certificate")
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UpdateCA", func() error {
			return updateGroup(&pb.EnrollmentGroup{Id: "acme", Etag: grp.GetEtag(), CaCertificate: "other"}, "provisioning_status")
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UpdateMissing", func() error { return updateGroup(&pb.EnrollmentGroup{Id: "nope", Etag: "1"}) }, codes.NotFound, "RESOURCE_NOT_FOUND"},

		{"Enrollment/BadRegistrationID", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "bad id", Sha256Thumbprint: strings.Repeat("a", 64)})
		}, codes.InvalidArgument, "REGISTRATION_ID_INVALID"},
		{"Enrollment/RegistrationIDEndsInDot", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "dev.", Sha256Thumbprint: strings.Repeat("a", 64)})
		}, codes.InvalidArgument, "REGISTRATION_ID_INVALID"},
		{"Enrollment/NoCredential", func() error { return createEnrollment(&pb.Enrollment{RegistrationId: "dev-1"}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/ShortThumbprint", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "dev-1", Sha256Thumbprint: "abcd"})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/NonHexThumbprint", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "dev-1", Sha256Thumbprint: strings.Repeat("z", 64)})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/CNMismatch", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "dev-2", CertificatePem: pemOf(devCert)})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/ThumbprintMismatch", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "dev-1", CertificatePem: pemOf(devCert), Sha256Thumbprint: strings.Repeat("a", 64)})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/BadDeviceID", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "dev-1", DeviceId: "x y", Sha256Thumbprint: strings.Repeat("a", 64)})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/UpdateCertificate", func() error {
			_, err := enr.UpdateEnrollment(ctx, &pb.UpdateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "dev-1", CertificatePem: pemOf(devCert)}})
			return err
		}, codes.NotFound, "RESOURCE_NOT_FOUND"},

		{"Enrollment/TPMGarbageEK", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "tpm-1", Tpm: &pb.TpmAttestation{EndorsementKey: []byte{0, 3, 1, 2, 3}}})
		}, codes.InvalidArgument, "TPM_STRUCTURE_INVALID"},
		{"Enrollment/TPMNoEK", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "tpm-1", Tpm: &pb.TpmAttestation{}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/TPMBadPEM", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "tpm-1", Tpm: &pb.TpmAttestation{EndorsementKeyPem: "not pem"}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Enrollment/TPMWithCertificate", func() error {
			return createEnrollment(&pb.Enrollment{RegistrationId: "tpm-1", CertificatePem: pemOf(devCert), Tpm: &pb.TpmAttestation{EndorsementKeyPem: "x"}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/AllowListOnX509", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", TpmEkAllowList: []string{strings.Repeat("a", 64)}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/BadAllowListEntry", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", AttestationType: pb.AttestationType_ATTESTATION_TYPE_TPM, TpmEkAllowList: []string{"xyz"}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/DuplicateAllowListEntry", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", AttestationType: pb.AttestationType_ATTESTATION_TYPE_TPM,
				TpmEkAllowList: []string{strings.Repeat("a", 64), strings.Repeat("A", 64)}})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/SymmetricKeyType", func() error {
			return createGroup(&pb.EnrollmentGroup{Id: "g1", CaCertificate: "acme-root", AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Group/UpdateAttestationType", func() error {
			return updateGroup(&pb.EnrollmentGroup{Id: "acme", Etag: grp.GetEtag(), AttestationType: pb.AttestationType_ATTESTATION_TYPE_TPM}, "provisioning_status")
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/BadID", func() error { return createShard(&pb.Shard{Id: "", Hostname: "h.example.com", Weight: 1}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/WeightZero", func() error { return createShard(&pb.Shard{Id: "s9", Hostname: "h.example.com", Weight: 0}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/WeightTooBig", func() error { return createShard(&pb.Shard{Id: "s9", Hostname: "h.example.com", Weight: 1001}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/NoHostname", func() error { return createShard(&pb.Shard{Id: "s9", Weight: 1}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/HostnameUnderscore", func() error { return createShard(&pb.Shard{Id: "s9", Hostname: "a_b.example.com", Weight: 1}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/HostnameLeadingHyphen", func() error { return createShard(&pb.Shard{Id: "s9", Hostname: "-a.example.com", Weight: 1}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/HostnameEmptyLabel", func() error { return createShard(&pb.Shard{Id: "s9", Hostname: "a..example.com", Weight: 1}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/HostnameLongLabel", func() error {
			return createShard(&pb.Shard{Id: "s9", Hostname: strings.Repeat("a", 64) + ".com", Weight: 1})
		}, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/UnknownState", func() error { return createShard(&pb.Shard{Id: "s9", Hostname: "h.example.com", Weight: 1, State: 42}) }, codes.InvalidArgument, "FIELD_INVALID"},
		{"Shard/Duplicate", func() error { return createShard(&pb.Shard{Id: "shard-a", Hostname: "h.example.com", Weight: 1}) }, codes.AlreadyExists, "RESOURCE_ALREADY_EXISTS"},

		{"Registration/GetMissing", func() error {
			_, err := regs.GetRegistration(ctx, &pb.GetRegistrationRequest{RegistrationId: "nope"})
			return err
		}, codes.NotFound, "RESOURCE_NOT_FOUND"},
		{"Registration/NegativePageSize", func() error {
			_, err := regs.ListRegistrations(ctx, &pb.ListRegistrationsRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "FIELD_INVALID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if codeOf(err) != c.code || reasonOf(t, err) != c.reason {
				t.Fatalf("got %v, want %s %s", err, c.code, c.reason)
			}
		})
	}

	// Nothing of the refused creates was written.
	if _, err := e.store.GetCA(t.Context(), "c1"); err == nil {
		t.Error("a refused CA was stored")
	}
	if _, err := e.store.GetGroup(t.Context(), "g1"); err == nil {
		t.Error("a refused group was stored")
	}
	for _, id := range []string{"dev-1", "tpm-1"} {
		if _, err := e.store.GetIndividual(t.Context(), id); err == nil {
			t.Errorf("a refused enrollment %s was stored", id)
		}
	}
	if _, err := e.store.GetShard(t.Context(), "s9"); err == nil {
		t.Error("a refused shard was stored")
	}
	if g, _ := e.store.GetGroup(t.Context(), "acme"); g.Etag != grp.GetEtag() {
		t.Error("a refused update changed the group")
	}
}

// TestProofOfPossession covers the CA verification flow's refusals.
func TestProofOfPossession(t *testing.T) {
	e := start(t)
	now := time.Now()
	cas := pb.NewCertificateAuthorityServiceClient(e.admin)
	ctx := e.owner()
	ca, _ := pki.NewCA("PoP Root", nil, now, time.Hour)
	impostor, _ := pki.NewCA("PoP Root", nil, now, time.Hour)
	e.uploadCA("pop", ca, false)
	verify := func(proof *pki.Issued, etag string) error {
		_, err := cas.VerifyCaCertificate(ctx, &pb.VerifyCaCertificateRequest{Name: "pop", CertificatePem: string(pki.CertPEM(proof.Cert)), Etag: etag})
		return err
	}
	mustProof := func(signer *pki.Issued, code string) *pki.Issued {
		p, err := pki.NewProof(signer, code, now)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	if err := verify(mustProof(ca, "anything"), ""); reasonOf(t, err) != "VERIFICATION_CODE_INVALID" {
		t.Fatalf("verify before any code: %v", err)
	}
	first, err := cas.GenerateVerificationCode(ctx, &pb.GenerateVerificationCodeRequest{Name: "pop"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := cas.GenerateVerificationCode(ctx, &pb.GenerateVerificationCodeRequest{Name: "pop"})
	if err != nil {
		t.Fatal(err)
	}
	if first.GetVerificationCode() == second.GetVerificationCode() || second.GetExpireTime().AsTime().Before(now) {
		t.Fatalf("codes: %v then %v", first, second)
	}
	for name, tc := range map[string]struct {
		proof  *pki.Issued
		etag   string
		reason string
	}{
		"SupersededCode":  {mustProof(ca, first.GetVerificationCode()), "", "PROOF_OF_POSSESSION_INVALID"},
		"WrongCN":         {mustProof(ca, "not-the-code"), "", "PROOF_OF_POSSESSION_INVALID"},
		"SignedByOtherCA": {mustProof(impostor, second.GetVerificationCode()), "", "PROOF_OF_POSSESSION_INVALID"},
		"StaleEtag":       {mustProof(ca, second.GetVerificationCode()), first.GetCaCertificate().GetEtag(), "ETAG_MISMATCH"},
	} {
		if err := verify(tc.proof, tc.etag); reasonOf(t, err) != tc.reason {
			t.Errorf("%s: %v, want %s", name, err, tc.reason)
		}
	}
	got, _ := cas.GetCaCertificate(ctx, &pb.GetCaCertificateRequest{Name: "pop"})
	if got.GetVerified() {
		t.Fatal("a refused proof verified the CA")
	}
	good := mustProof(ca, second.GetVerificationCode())
	if err := verify(good, ""); err != nil {
		t.Fatalf("genuine proof: %v", err)
	}
	// The code is single-use.
	if err := verify(good, ""); reasonOf(t, err) != "VERIFICATION_CODE_INVALID" {
		t.Fatalf("replayed proof: %v", err)
	}
	got, _ = cas.GetCaCertificate(ctx, &pb.GetCaCertificateRequest{Name: "pop"})
	if !got.GetVerified() || got.GetSha256Thumbprint() == "" || got.GetNotAfter() == nil || !strings.Contains(got.GetSubject(), "PoP Root") {
		t.Fatalf("CA after verification: %v", got)
	}
}

// TestAccessKeyManagement creates, lists and deletes access keys; every
// malformed request is refused with nothing written.
func TestAccessKeyManagement(t *testing.T) {
	e := start(t)
	cl := pb.NewAccessKeyServiceClient(e.admin)
	before, _ := e.store.CountKeys(t.Context())
	for name, req := range map[string]*pb.CreateAccessKeyRequest{
		"no name":            {Permissions: []string{"EnrollmentRead"}},
		"bad name":           {Name: "a b", Permissions: []string{"EnrollmentRead"}},
		"long name":          {Name: strings.Repeat("n", 129), Permissions: []string{"EnrollmentRead"}},
		"no permissions":     {Name: "k"},
		"unknown permission": {Name: "k", Permissions: []string{"EnrollmentReader"}},
		"twice":              {Name: "k", Permissions: []string{"EnrollmentRead", "enrollmentread"}},
	} {
		if _, err := cl.CreateAccessKey(e.owner(), req); codeOf(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if n, _ := e.store.CountKeys(t.Context()); n != before {
		t.Fatalf("refused creates wrote keys: %d, want %d", n, before)
	}
	res, err := cl.CreateAccessKey(e.owner(), &pb.CreateAccessKeyRequest{Name: "ops", Permissions: []string{"ServiceConfig"}})
	if err != nil || len(res.GetSharedAccessKey()) != 32 || !strings.HasPrefix(res.GetToken(), "ztk."+res.GetAccessKey().GetId()+".") || !res.GetAccessKey().GetHasSharedAccessKey() {
		t.Fatalf("create: %v %v", res, err)
	}
	plain, err := cl.CreateAccessKey(e.owner(), &pb.CreateAccessKeyRequest{Name: "plain", Permissions: []string{"EnrollmentRead"}, NoSharedAccessKey: true})
	if err != nil || plain.GetSharedAccessKey() != nil || plain.GetAccessKey().GetHasSharedAccessKey() {
		t.Fatalf("create without a shared access key: %v %v", plain, err)
	}
	list, err := cl.ListAccessKeys(as(t.Context(), res.GetToken()), &pb.ListAccessKeysRequest{})
	if err != nil || len(list.GetAccessKeys()) != before+2 {
		t.Fatalf("list: %v %v", list, err)
	}
	for _, k := range list.GetAccessKeys() {
		if strings.Contains(k.String(), "ztk.") {
			t.Fatal("a listed key shows its secret")
		}
	}
	// The new key manages keys; it cannot delete itself.
	ops := as(t.Context(), res.GetToken())
	if _, err := cl.DeleteAccessKey(ops, &pb.DeleteAccessKeyRequest{Id: res.GetAccessKey().GetId()}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("self-delete: %v", err)
	}
	if _, err := cl.DeleteAccessKey(ops, &pb.DeleteAccessKeyRequest{Id: "nobody"}); codeOf(err) != codes.NotFound {
		t.Fatalf("delete unknown: %v", err)
	}
	if _, err := cl.DeleteAccessKey(ops, &pb.DeleteAccessKeyRequest{Id: plain.GetAccessKey().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewEnrollmentServiceClient(e.admin).ListEnrollments(as(t.Context(), plain.GetToken()), &pb.ListEnrollmentsRequest{}); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("deleted key: %v", err)
	}
}

// TestShardRegionCapacityInput refuses malformed regions and capacities,
// on create and update, writing nothing.
func TestShardRegionCapacityInput(t *testing.T) {
	e := start(t)
	cl := pb.NewHubServiceClient(e.admin)
	for name, sh := range map[string]*pb.Shard{
		"upper-case region": {Id: "r1", Hostname: "r1.example.com", Weight: 1, Region: "EU"},
		"region with space": {Id: "r1", Hostname: "r1.example.com", Weight: 1, Region: "eu west"},
		"long region":       {Id: "r1", Hostname: "r1.example.com", Weight: 1, Region: strings.Repeat("r", 65)},
		"negative capacity": {Id: "r1", Hostname: "r1.example.com", Weight: 1, Capacity: -1},
	} {
		if _, err := cl.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: sh}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := cl.GetShard(e.owner(), &pb.GetShardRequest{Id: "r1"}); codeOf(err) != codes.NotFound {
		t.Fatalf("a refused shard was written: %v", err)
	}
	e.createShard("r2", 1)
	cur, _ := cl.GetShard(e.owner(), &pb.GetShardRequest{Id: "r2"})
	if _, err := cl.UpdateShard(e.owner(), &pb.UpdateShardRequest{Shard: &pb.Shard{Id: "r2", Etag: cur.Etag, Capacity: -5},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"capacity"}}}); codeOf(err) != codes.InvalidArgument {
		t.Fatalf("negative capacity update: %v", err)
	}
	if after, _ := cl.GetShard(e.owner(), &pb.GetShardRequest{Id: "r2"}); after.Etag != cur.Etag {
		t.Fatal("a refused update changed the shard")
	}
}

// TestAccessKeyEscalation: a key grants no more than it holds (issue #18):
// a ServiceConfig key cannot mint a key with permissions it lacks, delete
// or rotate the owner key, or rotate a key that holds more than it; the
// owner rotates its own secret, and the old one stops working at once.
func TestAccessKeyEscalation(t *testing.T) {
	e := start(t)
	cl := pb.NewAccessKeyServiceClient(e.admin)
	res, err := cl.CreateAccessKey(e.owner(), &pb.CreateAccessKeyRequest{Name: "ops", Permissions: []string{"ServiceConfig"}})
	if err != nil {
		t.Fatal(err)
	}
	ops := as(t.Context(), res.GetToken())
	before, _ := e.store.CountKeys(t.Context())
	for _, perms := range [][]string{{"ServiceConfig", "RegistrationStatusWrite"}, {"EnrollmentWrite"}, {"HubConnect"}} {
		_, err := cl.CreateAccessKey(ops, &pb.CreateAccessKeyRequest{Name: "escalate", Permissions: perms})
		if codeOf(err) != codes.PermissionDenied || reasonOf(t, err) != "PERMISSION_DENIED" {
			t.Fatalf("create %v: %v", perms, err)
		}
	}
	if n, _ := e.store.CountKeys(t.Context()); n != before {
		t.Fatalf("a refused create wrote a key")
	}
	// A subset of its own is fine.
	sub, err := cl.CreateAccessKey(ops, &pb.CreateAccessKeyRequest{Name: "ops-2", Permissions: []string{"ServiceConfig"}})
	if err != nil {
		t.Fatal(err)
	}
	// The owner key stays.
	if _, err := cl.DeleteAccessKey(ops, &pb.DeleteAccessKeyRequest{Id: access.OwnerKeyID}); reasonOf(t, err) != "ACCESS_KEY_PROTECTED" || codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("delete the owner: %v", err)
	}
	if _, err := cl.RotateAccessKey(ops, &pb.RotateAccessKeyRequest{Id: access.OwnerKeyID}); reasonOf(t, err) != "ACCESS_KEY_PROTECTED" {
		t.Fatalf("rotate the owner: %v", err)
	}
	// Rotating a key hands over its secret: only a key that holds all of
	// its permissions may (REST too).
	if _, err := cl.RotateAccessKey(ops, &pb.RotateAccessKeyRequest{Id: "reader"}); err == nil {
		t.Fatal("rotate an unknown key ID succeeded")
	}
	list, _ := cl.ListAccessKeys(e.owner(), &pb.ListAccessKeysRequest{})
	var readerID string
	for _, k := range list.GetAccessKeys() {
		if k.GetName() == "reader" {
			readerID = k.GetId()
		}
	}
	if _, err := cl.RotateAccessKey(ops, &pb.RotateAccessKeyRequest{Id: readerID}); reasonOf(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("rotate a key with more permissions: %v", err)
	}
	if _, err := pb.NewEnrollmentServiceClient(e.admin).ListEnrollments(as(t.Context(), e.readerKey), &pb.ListEnrollmentsRequest{}); err != nil {
		t.Fatalf("the reader key stopped working: %v", err)
	}
	// ops rotates its sibling: the old token stops, the new one works.
	rot, err := cl.RotateAccessKey(ops, &pb.RotateAccessKeyRequest{Id: sub.GetAccessKey().GetId()})
	if err != nil || rot.GetToken() == sub.GetToken() || len(rot.GetSharedAccessKey()) != 32 || !strings.HasPrefix(rot.GetToken(), "ztk."+sub.GetAccessKey().GetId()+".") {
		t.Fatalf("rotate: %v %v", rot, err)
	}
	if _, err := cl.ListAccessKeys(as(t.Context(), sub.GetToken()), &pb.ListAccessKeysRequest{}); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("old token after rotation: %v", err)
	}
	if _, err := cl.ListAccessKeys(as(t.Context(), rot.GetToken()), &pb.ListAccessKeysRequest{}); err != nil {
		t.Fatalf("new token: %v", err)
	}
	// The owner rotates itself, over REST.
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	a := e.restCall(t, &http.Client{Transport: tr}, "POST", "/v1/accessKeys/"+access.OwnerKeyID+":rotate", "application/json", []byte(`{}`))
	var out struct {
		Token string `json:"token"`
	}
	if a.http != 200 || json.Unmarshal([]byte(a.body), &out) != nil || !strings.HasPrefix(out.Token, "ztk.owner.") {
		t.Fatalf("owner rotation: %d %s", a.http, a.body)
	}
	if _, err := cl.ListAccessKeys(e.owner(), &pb.ListAccessKeysRequest{}); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("the old owner token after rotation: %v", err)
	}
	if _, err := cl.ListAccessKeys(as(t.Context(), out.Token), &pb.ListAccessKeysRequest{}); err != nil {
		t.Fatalf("the new owner token: %v", err)
	}
}
