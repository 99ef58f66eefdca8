package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// certPEM is a certificate as an operator uploads it.
func certPEM(c *x509.Certificate) string { return string(pki.CertPEM(c)) }

// mintCA makes a self-signed CA valid for a day.
func mintCA(t *testing.T, cn string) *pki.Issued {
	t.Helper()
	ca, err := pki.NewCA(cn, nil, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// mintDevice makes a device certificate under ca.
func mintDevice(t *testing.T, regID string, ca *pki.Issued) *pki.Issued {
	t.Helper()
	d, err := pki.NewDevice(regID, ca, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// verifiedCA uploads a CA under name and proves possession of its key.
func verifiedCA(t *testing.T, s *Service, name string) *pki.Issued {
	t.Helper()
	ctx := t.Context()
	issued := mintCA(t, name+" CA")
	if _, err := s.CreateCA(ctx, name, certPEM(issued.Cert)); err != nil {
		t.Fatal(err)
	}
	_, code, err := s.GenerateVerificationCode(ctx, name, "")
	if err != nil {
		t.Fatal(err)
	}
	proof, err := pki.NewProof(issued, code, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ca, err := s.VerifyCA(ctx, name, "", certPEM(proof.Cert)); err != nil || !ca.Verified {
		t.Fatalf("verify %s: %+v %v", name, ca, err)
	}
	return issued
}

// addShard creates an active shard owned by cluster ("" for none).
func addShard(t *testing.T, s *Service, id, cluster string) *allocation.Shard {
	t.Helper()
	sh, err := s.CreateShard(t.Context(), &allocation.Shard{ID: id, Hostname: id + ".example.com", Weight: 1, State: allocation.Active, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// ekPEM is a P-256 endorsement key as a PEM public key, made without a TPM.
func ekPEM(t *testing.T) string {
	t.Helper()
	return publicKeyPEM(t, elliptic.P256())
}

func publicKeyPEM(t *testing.T, curve elliptic.Curve) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// registerDevice writes a registration and its enabled identity, as
// provisioning does when a device of the enrollment registers.
func registerDevice(t *testing.T, s *Service, regID, shard, groupID string) *registry.Registration {
	t.Helper()
	now := time.Now()
	reg := &registry.Registration{RegistrationID: regID, DeviceID: regID, Shard: shard, AssignedHub: shard + ".example.com",
		Status: registry.Assigned, AttestationType: registry.X509, GroupID: groupID, Individual: groupID == "", Created: now, Updated: now}
	id := &registry.Identity{DeviceID: regID, RegistrationID: regID, Shard: shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.X509, X509Thumbprint: strings.Repeat("ab", 32)}, Version: registry.NextVersion(0, now), Created: now, Updated: now}
	etag, err := s.Store.CreateRegistration(t.Context(), reg, id)
	if err != nil {
		t.Fatal(err)
	}
	reg.Etag = etag
	return reg
}

// identityStatus is the status of a device's identity.
func identityStatus(t *testing.T, s *Service, deviceID string) registry.IdentityStatus {
	t.Helper()
	id, err := s.Store.GetIdentity(t.Context(), deviceID)
	if err != nil {
		t.Fatal(err)
	}
	return id.Status
}

// snapshot lists every stored record with its etag (and what else a
// refused write could change), to show that a refusal wrote nothing.
func snapshot(t *testing.T, s *Service) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	all := enrollment.Page{Limit: 1000}
	cas, next, err := s.Store.ListCAs(ctx, all)
	must(t, next, err)
	for _, c := range cas {
		fmt.Fprintf(&b, "ca %s %s %v %q\n", c.Name, c.Etag, c.Verified, c.VerificationCode)
	}
	groups, next, err := s.Store.ListGroups(ctx, all)
	must(t, next, err)
	for _, g := range groups {
		fmt.Fprintf(&b, "group %s %s\n", g.ID, g.Etag)
	}
	es, next, err := s.Store.ListIndividuals(ctx, all)
	must(t, next, err)
	for _, e := range es {
		fmt.Fprintf(&b, "enrollment %s %s\n", e.RegistrationID, e.Etag)
	}
	shards, next, err := s.Store.ListShards(ctx, "", 1000)
	must(t, next, err)
	for _, sh := range shards {
		fmt.Fprintf(&b, "shard %s %s\n", sh.ID, sh.Etag)
	}
	clusters, next, err := s.Store.ListClusters(ctx, "", 1000)
	must(t, next, err)
	for _, c := range clusters {
		fmt.Fprintf(&b, "cluster %s %s\n", c.ID, c.Etag)
	}
	regs, next, err := s.Store.ListRegistrations(ctx, registry.Filter{}, "", 1000)
	must(t, next, err)
	for _, r := range regs {
		id, err := s.Store.GetIdentity(ctx, r.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "registration %s %s %s %s %d\n", r.RegistrationID, r.Etag, r.Status, id.Status, id.Version)
	}
	keys, next, err := s.Store.ListKeys(ctx, "", 1000)
	must(t, next, err)
	for _, k := range keys {
		fmt.Fprintf(&b, "key %s %x\n", k.ID, k.SecretHash)
	}
	return b.String()
}

func must(t *testing.T, next string, err error) {
	t.Helper()
	if err != nil || next != "" {
		t.Fatalf("list: next %q, %v", next, err)
	}
}

// unchanged fails unless the store still holds exactly before.
func unchanged(t *testing.T, s *Service, before, what string) {
	t.Helper()
	if after := snapshot(t, s); after != before {
		t.Fatalf("%s: a refused request wrote:\nbefore:\n%safter:\n%s", what, before, after)
	}
}
