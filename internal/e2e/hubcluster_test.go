package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// hubCert is a hub node's client certificate: self-signed, CN = cluster.
func hubCert(t *testing.T, cluster string, notBefore time.Time, validity time.Duration) *pki.Issued {
	t.Helper()
	tmpl := pki.LeafTemplate(cluster, notBefore, validity)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return leaf(t, tmpl, nil)
}

// TestHubClusters manages hub clusters (pinned certificates, etags, the
// refusals), and has hub nodes look devices up over mutual TLS: a cluster
// sees only its own shards' devices; another cluster's, an unpinned or
// expired certificate, or no certificate get nothing.
func TestHubClusters(t *testing.T) {
	e := start(t)
	hubs := pb.NewHubServiceClient(e.admin)
	now := time.Now()
	nodeA := hubCert(t, "cluster-a", now.Add(-time.Minute), time.Hour)
	nodeB := hubCert(t, "cluster-b", now.Add(-time.Minute), time.Hour)
	strangerA := hubCert(t, "cluster-a", now.Add(-time.Minute), time.Hour) // right CN, not pinned
	expiredA := hubCert(t, "cluster-a", now.Add(-2*time.Hour), time.Hour)
	pemOf := func(i *pki.Issued) string { return string(pki.CertPEM(i.Cert)) }

	// Refusals write nothing.
	for name, c := range map[string]*pb.HubCluster{
		"bad id":           {Id: "a b"},
		"CN is not the ID": {Id: "cluster-x", CertificatePems: []string{pemOf(nodeA)}},
		"not PEM":          {Id: "cluster-x", CertificatePems: []string{"nope"}},
		"bad thumbprint":   {Id: "cluster-x", CertificateThumbprints: []string{"abc"}},
		"pinned twice":     {Id: "cluster-x", CertificateThumbprints: []string{strings.Repeat("a", 64), strings.Repeat("A", 64)}},
	} {
		if _, err := hubs.CreateHubCluster(e.owner(), &pb.CreateHubClusterRequest{HubCluster: c}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := hubs.GetHubCluster(e.owner(), &pb.GetHubClusterRequest{Id: "cluster-x"}); codeOf(err) != codes.NotFound {
		t.Fatalf("a refused cluster was written: %v", err)
	}
	a, err := hubs.CreateHubCluster(e.owner(), &pb.CreateHubClusterRequest{HubCluster: &pb.HubCluster{Id: "cluster-a", CertificatePems: []string{pemOf(nodeA), pemOf(expiredA)}}})
	if err != nil || len(a.GetCertificateThumbprints()) != 2 || a.GetCertificateThumbprints()[0] != enrollment.Thumbprint(nodeA.Cert.Raw) {
		t.Fatalf("create cluster-a: %v %v", a, err)
	}
	if _, err := hubs.CreateHubCluster(e.owner(), &pb.CreateHubClusterRequest{HubCluster: &pb.HubCluster{Id: "cluster-b",
		CertificateThumbprints: []string{enrollment.Thumbprint(nodeB.Cert.Raw)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := hubs.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{Id: "ghost", Hostname: "ghost.example.com", Weight: 1, HubCluster: "nobody"}}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("shard of an unknown cluster: %v", err)
	}
	for _, sh := range []struct{ id, cluster string }{{"hc-a", "cluster-a"}, {"hc-b", "cluster-b"}} {
		if _, err := hubs.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{Id: sh.id, Hostname: sh.id + ".hubs.example.com", Weight: 1, HubCluster: sh.cluster}}); err != nil {
			t.Fatal(err)
		}
	}
	// One device on each cluster's shard (static enrollments).
	root, _ := pki.NewCA("Hub Test Root", nil, now, time.Hour)
	e.uploadCA("hub-root", root, true)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	for _, d := range []struct{ id, shard string }{{"dev-on-a", "hc-a"}, {"dev-on-b", "hc-b"}} {
		dev, _ := pki.NewDevice(d.id, root, now, time.Hour)
		if _, err := enr.CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: d.id, CertificatePem: pemOf(dev),
			Allocation: &pb.Allocation{Policy: pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, StaticShard: d.shard}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.registerGRPC(d.id, dev); err != nil {
			t.Fatal(err)
		}
	}

	lookup := func(node *pki.Issued, deviceID string) (*pb.DeviceIdentity, error) {
		conn := e.dial(e.clientTLS(node))
		defer conn.Close()
		return pb.NewHubAssignmentServiceClient(conn).LookupIdentity(t.Context(), &pb.LookupIdentityRequest{DeviceId: deviceID})
	}
	id, err := lookup(nodeA, "dev-on-a")
	if err != nil || id.GetShard() != "hc-a" || !id.GetEnabled() || id.GetX509Thumbprint() == "" || id.GetAttestationType() != pb.AttestationType_ATTESTATION_TYPE_X509 {
		t.Fatalf("cluster-a looking up its device: %v %v", id, err)
	}
	if _, err := lookup(nodeA, "dev-on-b"); codeOf(err) != codes.PermissionDenied {
		t.Fatalf("cluster-a looking up cluster-b's device: %v", err)
	}
	if _, err := lookup(nodeB, "dev-on-b"); err != nil {
		t.Fatalf("cluster-b looking up its device: %v", err)
	}
	// Disabling the device's enrollment disables it for the hub.
	cur, err := enr.GetEnrollment(e.owner(), &pb.GetEnrollmentRequest{RegistrationId: "dev-on-a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enr.UpdateEnrollment(e.owner(), &pb.UpdateEnrollmentRequest{Enrollment: &pb.Enrollment{RegistrationId: "dev-on-a", Etag: cur.GetEtag(),
		ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}}); err != nil {
		t.Fatal(err)
	}
	if id, err := lookup(nodeA, "dev-on-a"); err != nil || id.GetEnabled() {
		t.Fatalf("a disabled enrollment's device: %v %v", id, err)
	}
	if _, err := lookup(nodeA, "nobody"); codeOf(err) != codes.NotFound {
		t.Fatalf("unknown device: %v", err)
	}
	for _, bad := range []string{"", "a b", strings.Repeat("d", 129)} {
		if _, err := lookup(nodeA, bad); codeOf(err) != codes.InvalidArgument {
			t.Errorf("device ID %q: %v", bad, err)
		}
	}
	for name, node := range map[string]*pki.Issued{"no certificate": nil, "unpinned": strangerA, "expired": expiredA} {
		if _, err := lookup(node, "dev-on-a"); codeOf(err) != codes.Unauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An access key is no hub credential.
	if _, err := pb.NewHubAssignmentServiceClient(e.admin).LookupIdentity(e.owner(), &pb.LookupIdentityRequest{DeviceId: "dev-on-a"}); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("owner key as a hub: %v", err)
	}

	// Unpinning a certificate locks its node out; a stale etag is refused.
	curCluster, _ := hubs.GetHubCluster(e.owner(), &pb.GetHubClusterRequest{Id: "cluster-a"})
	if _, err := hubs.UpdateHubCluster(e.owner(), &pb.UpdateHubClusterRequest{HubCluster: &pb.HubCluster{Id: "cluster-a", Etag: curCluster.GetEtag(), CertificatePems: []string{pemOf(strangerA)}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"certificates"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup(nodeA, "dev-on-a"); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("unpinned node: %v", err)
	}
	if _, err := lookup(strangerA, "dev-on-a"); err != nil {
		t.Fatalf("newly pinned node: %v", err)
	}
	if _, err := hubs.UpdateHubCluster(e.owner(), &pb.UpdateHubClusterRequest{HubCluster: &pb.HubCluster{Id: "cluster-a", Etag: curCluster.GetEtag()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"certificates"}}}); codeOf(err) != codes.Aborted && codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("stale etag: %v", err)
	}
	// A node certificate issued by Zerotouch's hub CA from a CSR is pinned
	// on the cluster and works at once; bad requests are refused.
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "whatever-the-node-asked"}}, nodeKey)
	csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	issued, err := hubs.IssueHubCertificate(e.owner(), &pb.IssueHubCertificateRequest{HubCluster: "cluster-b", CsrPem: csrPEM, ValidityDays: 30})
	if err != nil || !strings.Contains(issued.GetCaCertificatePem(), "BEGIN CERTIFICATE") {
		t.Fatalf("issue: %v %v", issued, err)
	}
	block, _ := pem.Decode([]byte(issued.GetCertificatePem()))
	issuedCert, _ := x509.ParseCertificate(block.Bytes)
	caBlock, _ := pem.Decode([]byte(issued.GetCaCertificatePem()))
	hubCA, _ := x509.ParseCertificate(caBlock.Bytes)
	if issuedCert.Subject.CommonName != "cluster-b" || issuedCert.CheckSignatureFrom(hubCA) != nil || issuedCert.NotAfter.Sub(now) > 31*24*time.Hour {
		t.Fatalf("issued certificate: %v", issuedCert.Subject)
	}
	if id, err := lookup(&pki.Issued{Cert: issuedCert, Key: nodeKey}, "dev-on-b"); err != nil || id.GetShard() != "hc-b" {
		t.Fatalf("the issued certificate as a hub credential: %v %v", id, err)
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "w"}}, weak)
	for name, req := range map[string]*pb.IssueHubCertificateRequest{
		"garbage":         {HubCluster: "cluster-b", CsrPem: "nope"},
		"weak key":        {HubCluster: "cluster-b", CsrPem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: weakDER}))},
		"too long":        {HubCluster: "cluster-b", CsrPem: csrPEM, ValidityDays: 398},
		"negative":        {HubCluster: "cluster-b", CsrPem: csrPEM, ValidityDays: -1},
		"a certificate":   {HubCluster: "cluster-b", CsrPem: pemOf(nodeB)},
		"unknown cluster": {HubCluster: "nobody", CsrPem: csrPEM},
	} {
		if _, err := hubs.IssueHubCertificate(e.owner(), req); codeOf(err) != codes.InvalidArgument && codeOf(err) != codes.NotFound {
			t.Errorf("%s: %v", name, err)
		}
	}
	if cb, _ := hubs.GetHubCluster(e.owner(), &pb.GetHubClusterRequest{Id: "cluster-b"}); len(cb.GetCertificateThumbprints()) != 2 {
		t.Fatalf("cluster-b pins %v, want its upload and the one issued", cb.GetCertificateThumbprints())
	}

	// A cluster that owns shards cannot be deleted.
	if _, err := hubs.DeleteHubCluster(e.owner(), &pb.DeleteHubClusterRequest{Id: "cluster-b"}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("delete a cluster owning a shard: %v", err)
	}
	list, err := hubs.ListHubClusters(e.owner(), &pb.ListHubClustersRequest{})
	if err != nil || len(list.GetHubClusters()) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
}
