package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
)

func TestShards(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	if _, err := s.CreateCluster(ctx, &allocation.Cluster{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	sh := addShard(t, s, "s1", "c1")
	if sh.Etag == "" || sh.Created.IsZero() {
		t.Fatalf("created: %+v", sh)
	}
	valid := func(f func(*allocation.Shard)) *allocation.Shard {
		sh := &allocation.Shard{ID: "s2", Hostname: "hub2.example.com", Weight: 10, State: allocation.Active}
		f(sh)
		return sh
	}
	cases := []struct {
		name string
		sh   *allocation.Shard
		want fault.Reason
	}{
		{"no id", valid(func(sh *allocation.Shard) { sh.ID = "" }), fault.FieldInvalid},
		{"bad id", valid(func(sh *allocation.Shard) { sh.ID = "s 2" }), fault.FieldInvalid},
		{"no hostname", valid(func(sh *allocation.Shard) { sh.Hostname = "" }), fault.FieldInvalid},
		{"bad hostname", valid(func(sh *allocation.Shard) { sh.Hostname = "-hub.example.com" }), fault.FieldInvalid},
		{"weight 0", valid(func(sh *allocation.Shard) { sh.Weight = 0 }), fault.FieldInvalid},
		{"weight too high", valid(func(sh *allocation.Shard) { sh.Weight = allocation.MaxWeight + 1 }), fault.FieldInvalid},
		{"bad state", valid(func(sh *allocation.Shard) { sh.State = "paused" }), fault.FieldInvalid},
		{"negative capacity", valid(func(sh *allocation.Shard) { sh.Capacity = -1 }), fault.FieldInvalid},
		{"bad region", valid(func(sh *allocation.Shard) { sh.Region = "EU West" }), fault.FieldInvalid},
		{"unknown cluster", valid(func(sh *allocation.Shard) { sh.Cluster = "c9" }), fault.ResourceNotFound},
		{"id taken", valid(func(sh *allocation.Shard) { sh.ID = "s1" }), fault.ResourceExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := s.CreateShard(ctx, tc.sh)
			reason(t, err, tc.want)
			unchanged(t, s, before, tc.name)
		})
	}

	// Updates need the current etag and are validated like creates.
	before := snapshot(t, s)
	for _, tc := range []struct {
		name string
		f    func(*allocation.Shard)
		want fault.Reason
	}{
		{"no etag", func(c *allocation.Shard) { c.Etag = "" }, fault.FieldInvalid},
		{"stale etag", func(c *allocation.Shard) { c.Etag = "stale" }, fault.EtagMismatch},
		{"bad weight", func(c *allocation.Shard) { c.Weight = -3 }, fault.FieldInvalid},
		{"unknown cluster", func(c *allocation.Shard) { c.Cluster = "c9" }, fault.ResourceNotFound},
		{"unknown shard", func(c *allocation.Shard) { c.ID = "s9" }, fault.ResourceNotFound},
	} {
		c := *sh
		tc.f(&c)
		_, err := s.UpdateShard(ctx, &c)
		reason(t, err, tc.want)
		unchanged(t, s, before, tc.name)
	}
	c := *sh
	c.State, c.Weight, c.Cluster, c.Region = allocation.Draining, 5, "", "eu-west"
	got, err := s.UpdateShard(ctx, &c)
	if err != nil || got.Etag == sh.Etag || got.State != allocation.Draining || got.Weight != 5 || got.Cluster != "" || got.Region != "eu-west" {
		t.Fatalf("update: %+v %v", got, err)
	}

	// A shard with devices stays.
	registerDevice(t, s, "dev-1", "s1", "")
	before = snapshot(t, s)
	reason(t, s.DeleteShard(ctx, "s1", ""), fault.ResourceInUse)
	unchanged(t, s, before, "delete in use")
	if err := s.DeleteRegistration(ctx, "dev-1", ""); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, s)
	reason(t, s.DeleteShard(ctx, "s1", "stale"), fault.EtagMismatch)
	unchanged(t, s, before, "delete with a stale etag")
	if err := s.DeleteShard(ctx, "s1", got.Etag); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetShard(ctx, "s1")
	reason(t, err, fault.ResourceNotFound)
}

func TestClusters(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	a, b := strings.Repeat("A", 64), strings.Repeat("b", 64)
	c, err := s.CreateCluster(ctx, &allocation.Cluster{ID: "c1", Certificates: []string{a, b}})
	if err != nil || c.Etag == "" || c.Certificates[0] != strings.ToLower(a) || !c.Pins(b) {
		t.Fatalf("create: %+v %v", c, err)
	}
	tooMany := make([]string, allocation.MaxClusterCertificates+1)
	for i := range tooMany {
		tooMany[i] = enrollment.Thumbprint([]byte{byte(i)})
	}
	for _, tc := range []struct {
		name string
		c    allocation.Cluster
		want fault.Reason
	}{
		{"no id", allocation.Cluster{}, fault.FieldInvalid},
		{"bad id", allocation.Cluster{ID: "c/2"}, fault.FieldInvalid},
		{"bad thumbprint", allocation.Cluster{ID: "c2", Certificates: []string{"abc"}}, fault.FieldInvalid},
		{"thumbprint twice", allocation.Cluster{ID: "c2", Certificates: []string{a, strings.ToLower(a)}}, fault.FieldInvalid},
		{"too many", allocation.Cluster{ID: "c2", Certificates: tooMany}, fault.FieldInvalid},
		{"id taken", allocation.Cluster{ID: "c1"}, fault.ResourceExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := s.CreateCluster(ctx, &tc.c)
			reason(t, err, tc.want)
			unchanged(t, s, before, tc.name)
		})
	}
	before := snapshot(t, s)
	_, err = s.UpdateCluster(ctx, &allocation.Cluster{ID: "c1"})
	reason(t, err, fault.FieldInvalid)
	_, err = s.UpdateCluster(ctx, &allocation.Cluster{ID: "c1", Etag: "stale"})
	reason(t, err, fault.EtagMismatch)
	_, err = s.UpdateCluster(ctx, &allocation.Cluster{ID: "c1", Etag: c.Etag, Certificates: []string{"xyz"}})
	reason(t, err, fault.FieldInvalid)
	unchanged(t, s, before, "update")
	got, err := s.UpdateCluster(ctx, &allocation.Cluster{ID: "c1", Etag: c.Etag, Certificates: []string{b}})
	if err != nil || got.Pins(strings.ToLower(a)) || !got.Pins(b) || got.Etag == c.Etag {
		t.Fatalf("update: %+v %v", got, err)
	}

	// A cluster that owns shards stays.
	addShard(t, s, "s1", "c1")
	before = snapshot(t, s)
	reason(t, s.DeleteCluster(ctx, "c1", ""), fault.ResourceInUse)
	unchanged(t, s, before, "delete")
	if err := s.DeleteShard(ctx, "s1", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCluster(ctx, "c1", ""); err != nil {
		t.Fatal(err)
	}
	reason(t, s.DeleteCluster(ctx, "c1", ""), fault.ResourceNotFound)
}

func csrPEM(t *testing.T, curve elliptic.Curve, cn string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestIssueHubCertificate(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	if _, err := s.CreateCluster(ctx, &allocation.Cluster{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	// The CSR's subject is ignored: the certificate names the cluster.
	cert, err := s.IssueHubCertificate(ctx, "c1", csrPEM(t, elliptic.P256(), "admin"), 0)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := s.HubCA()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if cert.Subject.CommonName != "c1" || cert.NotAfter.Sub(time.Now()) < DefaultHubCertValidity-time.Hour {
		t.Fatalf("certificate: CN %q, until %s", cert.Subject.CommonName, cert.NotAfter)
	}
	if c, err := s.GetCluster(ctx, "c1"); err != nil || !c.Pins(enrollment.Thumbprint(cert.Raw)) {
		t.Fatalf("not pinned: %+v %v", c, err)
	}
	// Every replica derives the same CA key from the data key.
	again := &Service{Store: s.Store, Now: s.Now, Rand: s.Rand, Secrets: s.Secrets}
	ca2, err := again.HubCA()
	if err != nil || !ca2.Cert.PublicKey.(*ecdsa.PublicKey).Equal(ca.Cert.PublicKey) {
		t.Fatalf("another replica's hub CA: %v", err)
	}

	good := csrPEM(t, elliptic.P256(), "node")
	csr, _ := pem.Decode([]byte(good))
	csr.Bytes[len(csr.Bytes)-1] ^= 1
	noKey := &Service{Store: s.Store, Now: s.Now, Rand: s.Rand}
	for _, tc := range []struct {
		name     string
		s        *Service
		cluster  string
		csr      string
		validity time.Duration
		want     fault.Reason
	}{
		{"too short", s, "c1", good, 30 * time.Minute, fault.FieldInvalid},
		{"too long", s, "c1", good, MaxHubCertValidity + time.Hour, fault.FieldInvalid},
		{"not PEM", s, "c1", "csr", 0, fault.FieldInvalid},
		{"a certificate", s, "c1", certPEM(mintCA(t, "x").Cert), 0, fault.FieldInvalid},
		{"too large", s, "c1", strings.Repeat("A", 17<<10), 0, fault.FieldInvalid},
		{"bad signature", s, "c1", string(pem.EncodeToMemory(csr)), 0, fault.FieldInvalid},
		{"P-224", s, "c1", csrPEM(t, elliptic.P224(), "node"), 0, fault.KeyUnsupported},
		{"unknown cluster", s, "c9", good, 0, fault.ResourceNotFound},
		{"no data key", noKey, "c1", good, 0, fault.SASDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := tc.s.IssueHubCertificate(ctx, tc.cluster, tc.csr, tc.validity)
			reason(t, err, tc.want)
			unchanged(t, s, before, tc.name)
		})
	}
}
