package console_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestAPIAdditionsForTheConsole covers what the console needed of the API:
// GetCallerAccessKey (any valid key reads its own effective permissions,
// no secret; the owner key's are all of them), and ListRegistrations by
// device ID (the one registration, by the device-ID index).
func TestAPIAdditionsForTheConsole(t *testing.T) {
	s := startServer(t, nil)
	cc := s.dial(nil)
	defer cc.Close()
	keys := pb.NewAccessKeyServiceClient(cc)

	me, err := keys.GetCallerAccessKey(as(t.Context(), s.ownerKey), &pb.GetCallerAccessKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, p := range access.All {
		all = append(all, string(p))
	}
	if me.GetId() != access.OwnerKeyID || !slices.Equal(me.GetPermissions(), all) {
		t.Errorf("owner: %v", me)
	}
	reader := s.newKey("reader", access.EnrollmentRead)
	me, err = keys.GetCallerAccessKey(as(t.Context(), reader), &pb.GetCallerAccessKeyRequest{})
	if err != nil || me.GetName() != "reader" || !slices.Equal(me.GetPermissions(), []string{"EnrollmentRead"}) {
		t.Errorf("reader: %v %v", me, err)
	}
	if _, err := keys.GetCallerAccessKey(t.Context(), &pb.GetCallerAccessKeyRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no key: %v", err)
	}
	// Over REST, as the console calls it.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots, ServerName: "localhost"}}}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/accessKeys:caller", nil)
	req.Header.Set("Authorization", "Bearer "+reader)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil || res.StatusCode != http.StatusOK || got["name"] != "reader" {
		t.Errorf("REST: %d %s", res.StatusCode, raw)
	}
	for _, secret := range []string{"token", "secret", "secretHash", "sharedAccessKey"} {
		if _, ok := got[secret]; ok {
			t.Errorf("REST answer has %s: %s", secret, raw)
		}
	}

	// A device registers; its registration is found by its device ID.
	now := time.Now()
	root, err := pki.NewCA("Root", nil, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	owner := as(t.Context(), s.ownerKey)
	cas := pb.NewCertificateAuthorityServiceClient(cc)
	if _, err := cas.CreateCaCertificate(owner, &pb.CreateCaCertificateRequest{CaCertificate: &pb.CaCertificate{Name: "root", CertificatePem: string(pki.CertPEM(root.Cert))}}); err != nil {
		t.Fatal(err)
	}
	code, err := cas.GenerateVerificationCode(owner, &pb.GenerateVerificationCodeRequest{Name: "root"})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := pki.NewProof(root, code.GetVerificationCode(), now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cas.VerifyCaCertificate(owner, &pb.VerifyCaCertificateRequest{Name: "root", CertificatePem: string(pki.CertPEM(proof.Cert))}); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewHubServiceClient(cc).CreateShard(owner, &pb.CreateShardRequest{Shard: &pb.Shard{Id: "s1", Hostname: "s1.example.com", Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewEnrollmentServiceClient(cc).CreateEnrollmentGroup(owner, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "g", CaCertificate: "root"}}); err != nil {
		t.Fatal(err)
	}
	dev, err := pki.NewDevice("dev-1", root, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.register("dev-1", dev)
	if err != nil {
		t.Fatal(err)
	}
	regs := pb.NewRegistrationServiceClient(cc)
	for _, c := range []struct {
		req  *pb.ListRegistrationsRequest
		want int
	}{
		{&pb.ListRegistrationsRequest{DeviceId: reg.GetDeviceId()}, 1},
		{&pb.ListRegistrationsRequest{DeviceId: reg.GetDeviceId(), Shard: "s1", EnrollmentGroupId: "g"}, 1},
		{&pb.ListRegistrationsRequest{DeviceId: reg.GetDeviceId(), Shard: "other"}, 0},
		{&pb.ListRegistrationsRequest{DeviceId: reg.GetDeviceId(), EnrollmentGroupId: "other"}, 0},
		{&pb.ListRegistrationsRequest{DeviceId: "nobody"}, 0},
	} {
		res, err := regs.ListRegistrations(owner, c.req)
		if err != nil || len(res.GetRegistrations()) != c.want || c.want == 1 && res.GetRegistrations()[0].GetRegistrationId() != "dev-1" {
			t.Errorf("%v: %v %v, want %d", c.req, res, err, c.want)
		}
	}
	if _, err := regs.ListRegistrations(as(t.Context(), reader), &pb.ListRegistrationsRequest{DeviceId: "dev-1"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a key without RegistrationStatusRead: %v", err)
	}
}
