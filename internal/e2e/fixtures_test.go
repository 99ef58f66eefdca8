package e2e

import (
	"crypto/x509"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

type restErr struct {
	code   codes.Code
	http   int
	reason string
}

func restStatus(t *testing.T, re *cli.RESTError) restErr {
	t.Helper()
	var st spb.Status
	if err := protojson.Unmarshal([]byte(re.Body), &st); err != nil {
		t.Fatalf("REST error body is not a google.rpc.Status: %v: %s", err, re.Body)
	}
	out := restErr{code: codes.Code(st.GetCode()), http: re.StatusCode}
	for _, d := range st.GetDetails() {
		info := &errdetails.ErrorInfo{}
		if d.MessageIs(info) && d.UnmarshalTo(info) == nil {
			out.reason = info.GetReason()
		}
	}
	return out
}

// fleet is a manufacturer's PKI: root -> intermediate, root uploaded and
// verified through the API, one group on the root, two active shards.
type fleet struct {
	root, inter *pki.Issued
}

// uploadCA uploads ca under name and, if verify, proves possession through
// the API.
func (e *env) uploadCA(name string, ca *pki.Issued, verify bool) {
	e.t.Helper()
	cl := pb.NewCertificateAuthorityServiceClient(e.admin)
	if _, err := cl.CreateCaCertificate(e.owner(), &pb.CreateCaCertificateRequest{CaCertificate: &pb.CaCertificate{
		Name: name, CertificatePem: string(pki.CertPEM(ca.Cert))}}); err != nil {
		e.t.Fatalf("CreateCaCertificate %s: %v", name, err)
	}
	if !verify {
		return
	}
	code, err := cl.GenerateVerificationCode(e.owner(), &pb.GenerateVerificationCodeRequest{Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	proof, err := pki.NewProof(ca, code.GetVerificationCode(), time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	got, err := cl.VerifyCaCertificate(e.owner(), &pb.VerifyCaCertificateRequest{Name: name, CertificatePem: string(pki.CertPEM(proof.Cert))})
	if err != nil {
		e.t.Fatalf("VerifyCaCertificate %s: %v", name, err)
	}
	if !got.GetVerified() {
		e.t.Fatalf("CA %s not verified after proof", name)
	}
}

func (e *env) createShard(id string, weight int32) {
	e.t.Helper()
	if _, err := pb.NewHubServiceClient(e.admin).CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{
		Id: id, Hostname: id + ".hubs.example.com", Weight: weight}}); err != nil {
		e.t.Fatalf("CreateShard %s: %v", id, err)
	}
}

func (e *env) createGroup(id, ca string) *pb.EnrollmentGroup {
	e.t.Helper()
	g, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{
		EnrollmentGroup: &pb.EnrollmentGroup{Id: id, CaCertificate: ca}})
	if err != nil {
		e.t.Fatalf("CreateEnrollmentGroup %s: %v", id, err)
	}
	return g
}

func (e *env) newFleet() *fleet {
	e.t.Helper()
	now := time.Now()
	root, err := pki.NewCA("Acme Devices Root", nil, now, 48*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	inter, err := pki.NewCA("Acme Devices Issuing", root, now, 48*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	e.uploadCA("acme-root", root, true)
	e.createShard("shard-a", 100)
	e.createShard("shard-b", 100)
	e.createGroup("acme", "acme-root")
	return &fleet{root: root, inter: inter}
}

// device mints a device certificate issued by the fleet's intermediate.
func (f *fleet) device(t *testing.T, regID string) *pki.Issued {
	t.Helper()
	d, err := pki.NewDevice(regID, f.inter, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// leaf mints a leaf from a template, issued by parent.
func leaf(t *testing.T, tmpl *x509.Certificate, parent *pki.Issued) *pki.Issued {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	d, err := pki.Issue(tmpl, key, parent)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
