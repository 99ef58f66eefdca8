package e2e

import (
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/revocation"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Regression tests of the fourth review of ADR 23.

// waitCRLProcessed waits until the stored CRL id is marked as having had
// its disabling pass completed.
func (e *env) waitCRLProcessed(pick func(*revocation.Stored) bool) {
	e.t.Helper()
	store := docs.Revocations{D: e.store}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		list, err := store.ListCRLs(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, st := range list {
			if pick(st) && st.Disabled == revocation.Digest(st.DER) {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the CRL's disabling pass never completed")
		}
	}
}

// arlOf is ca's authority revocation list: a CRL whose issuing
// distribution point limits it to CA certificates.
func arlOf(t *testing.T, ca *pki.Issued, number int64, now time.Time) []byte {
	t.Helper()
	idp, err := asn1.Marshal(struct {
		OnlyCA bool `asn1:"optional,tag:2"`
	}{true})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(7 * 24 * time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: idp}}}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func assertNotDisabled(t *testing.T, e *env, regID string) {
	t.Helper()
	reg, err := e.store.GetRegistration(context.Background(), regID)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.store.GetIdentity(context.Background(), reg.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Status == registry.Disabled || id.Status == registry.IdentityDisabled {
		t.Fatalf("%s was disabled (%s, %s %q)", regID, reg.Status, id.Status, id.DisabledReason)
	}
}

// H1: a CRL signed by one manufacturer's CA does not disable the devices
// of another manufacturer whose CA has the same name.
func TestCRLOfSameNamedCADisablesNotOthers(t *testing.T) {
	e := startWith(t, options{revocationRefresh: 300 * time.Millisecond})
	e.createShard("shard-a", 1)
	now := time.Now()
	rootA, err := pki.NewCA("Device CA", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rootB, err := pki.NewCA("Device CA", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.uploadCA("vendor-a", rootA, true)
	e.uploadCA("vendor-b", rootB, true)
	e.createGroup("vendor-a", "vendor-a")
	e.createGroup("vendor-b", "vendor-b")
	victim := deviceWith(t, "victim-1", rootA, nil, nil)
	if _, err := e.registerGRPC("victim-1", victim); err != nil {
		t.Fatalf("victim: %v", err)
	}
	cdp := serveCDP(t)
	url := cdp.URL + "/b.crl"
	cdp.set(crlOf(t, rootB, 1, now, now.Add(time.Hour)))
	own := deviceWith(t, "b-1", rootB, []string{url}, nil)
	if _, err := e.registerGRPC("b-1", own); err != nil {
		t.Fatalf("b-1: %v", err)
	}
	// Vendor B's next CRL lists its own device and vendor A's serial.
	cdp.set(crlOf(t, rootB, 2, now, now.Add(time.Hour), victim.Cert.SerialNumber, own.Cert.SerialNumber))
	e.waitRevoked("b-1")
	e.waitCRLProcessed(func(st *revocation.Stored) bool { return st.URL == url })
	assertNotDisabled(t, e, "victim-1")
}

// M8: a group whose revocation check is off keeps its registered devices
// when a CRL lists them.
func TestCRLDisablesNotInGroupWithCheckOff(t *testing.T) {
	e := start(t)
	e.createShard("shard-a", 1)
	now := time.Now()
	root, err := pki.NewCA("Off Root", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.uploadCA("off-root", root, true)
	e.createGroupWith("off", "off-root", &pb.RevocationPolicy{Check: pb.RevocationCheck_REVOCATION_CHECK_OFF})
	d := deviceWith(t, "off-1", root, nil, nil)
	if _, err := e.registerGRPC("off-1", d); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewCertificateAuthorityServiceClient(e.admin).UploadCrl(e.owner(), &pb.UploadCrlRequest{Name: "off-root",
		CrlDer: crlOf(t, root, 1, now, now.Add(time.Hour), d.Cert.SerialNumber)}); err != nil {
		t.Fatal(err)
	}
	e.waitCRLProcessed(func(st *revocation.Stored) bool { return st.CA == "off-root" })
	assertNotDisabled(t, e, "off-1")
}

// H2: a distribution point serving a CRL that does not cover the leaf
// (the CA's ARL) leaves it unknown under REQUIRED, not admitted.
func TestCRLNotCoveringLeafRefused(t *testing.T) {
	e := start(t)
	e.createShard("shard-a", 1)
	now := time.Now()
	root, err := pki.NewCA("ARL Root", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.uploadCA("arl-root", root, true)
	e.createGroup("strict", "arl-root") // REQUIRED by default
	cdp := serveCDP(t)
	dev := deviceWith(t, "revoked-1", root, []string{cdp.URL + "/root.crl"}, nil)
	cdp.set(arlOf(t, root, 1000, now))
	if _, err := e.registerGRPC("revoked-1", dev); reasonOf(t, err) != "REVOCATION_UNKNOWN" {
		t.Fatalf("an ARL at the leaf's only point: %v", err)
	}
	if list, err := (docs.Revocations{D: e.store}).ListCRLs(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("the ARL was stored: %d, %v", len(list), err)
	}
}

// M1: renewing a certificate Zerotouch issued is refused once a CRL
// lists the device's birth certificate, even if its registration is
// enabled (re-enabled, or its disabling pass lost).
func TestRenewalRefusedAfterBirthRevoked(t *testing.T) {
	e := start(t)
	is := e.newIssuing(&pb.CredentialPolicy{Validity: durationpb.New(48 * time.Hour)})
	birth := is.fleet.device(t, "sensor-1")
	chain := []*x509.Certificate{is.fleet.inter.Cert}
	k1 := newECKey(t, elliptic.P256())
	reg, err := e.registerCSR("sensor-1", birth, chain, makeCSR(t, "sensor-1", k1))
	if err != nil {
		t.Fatal(err)
	}
	c1, c1chain := issuedDevice(t, reg, k1)
	e.uploadCA("acme-issuing", is.fleet.inter, false)
	now := time.Now()
	if _, err := pb.NewCertificateAuthorityServiceClient(e.admin).UploadCrl(e.owner(), &pb.UploadCrlRequest{Name: "acme-issuing",
		CrlDer: crlOf(t, is.fleet.inter, 1, now, now.Add(time.Hour), birth.Cert.SerialNumber)}); err != nil {
		t.Fatal(err)
	}
	e.waitRevoked("sensor-1")
	// Re-enable it behind the pass's back.
	ctx := t.Context()
	r, err := e.store.GetRegistration(ctx, "sensor-1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.store.GetIdentity(ctx, r.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	r.Status, id.Status, id.DisabledReason = registry.Assigned, registry.IdentityEnabled, ""
	if _, err := e.store.UpdateRegistration(ctx, r, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerCSR("sensor-1", c1, c1chain, makeCSR(t, "sensor-1", newECKey(t, elliptic.P256()))); reasonOf(t, err) != "CERTIFICATE_REVOKED" {
		t.Fatalf("renewal on a revoked birth certificate: %v", err)
	}
}

// M2: re-registering with the same certificate records the chain of a
// registration made before chains were recorded.
func TestReRegistrationRecordsChain(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	d := f.device(t, "old-1")
	if _, err := e.registerGRPC("old-1", d, f.inter.Cert); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r, err := e.store.GetRegistration(ctx, "old-1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.store.GetIdentity(ctx, r.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	want := id.Credential.X509Chain
	if len(want) == 0 || want[0].Issuer != revocation.IssuerID(f.inter.Cert) {
		t.Fatalf("recorded chain %v", want)
	}
	id.Credential.X509Chain = nil
	if _, err := e.store.UpdateRegistration(ctx, r, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("old-1", d, f.inter.Cert); err != nil {
		t.Fatal(err)
	}
	if id, err = e.store.GetIdentity(ctx, r.DeviceID); err != nil || !slices.Equal(id.Credential.X509Chain, want) {
		t.Fatalf("chain after re-registration: %v, %v", id.Credential.X509Chain, err)
	}
	ref := want[0]
	regs, _, err := e.store.ListRegistrations(ctx, registry.Filter{Cert: &ref}, "", 10)
	if err != nil || len(regs) != 1 || regs[0].RegistrationID != "old-1" {
		t.Fatalf("the certificate index: %v, %v", regs, err)
	}
}
