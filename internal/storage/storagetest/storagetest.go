// Package storagetest is the conformance suite every store backend must
// pass: not-found, already-exists, uniqueness of indexes, compare-and-swap
// under concurrent writers, paging, atomic registration writes, context
// cancellation and idempotent Close. A backend's test calls Run with a
// function that returns a fresh, empty store.
package storagetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Store is everything a backend implements.
type Store interface {
	attestation.ChallengeStore
	enrollment.Store
	allocation.Store
	allocation.ClusterStore
	registry.Store
	access.Store
	// GroupsVersion changes on every group write (provisioning's cache).
	GroupsVersion(ctx context.Context) (uint64, error)
	Close() error
}

// NewFunc returns a fresh, empty store; the suite closes it.
type NewFunc func(t *testing.T) Store

// Run runs the whole suite.
func Run(t *testing.T, newStore NewFunc) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"CACreateGet", testCACreateGet},
		{"CAUniqueness", testCAUniqueness},
		{"CAUpdateCAS", testCAUpdateCAS},
		{"CADeleteInUse", testCADeleteInUse},
		{"CAList", testCAList},
		{"GroupCreateRules", testGroupCreateRules},
		{"GroupUpdateDelete", testGroupUpdateDelete},
		{"IndividualCRUD", testIndividualCRUD},
		{"ShardCRUD", testShardCRUD},
		{"RegistrationCreate", testRegistrationCreate},
		{"RegistrationConcurrentCreate", testRegistrationConcurrentCreate},
		{"RegistrationUpdateDelete", testRegistrationUpdateDelete},
		{"RegistrationList", testRegistrationList},
		{"AccessKeys", testAccessKeys},
		{"ShardDeviceCounts", testShardDeviceCounts},
		{"Clusters", testClusters},
		{"GroupsVersion", testGroupsVersion},
		{"AllShardsFollowWrites", testAllShardsFollowWrites},
		{"EventLog", testEventLog},
		{"EventRetention", testEventRetention},
		{"EventAcks", testEventAcks},
		{"ListIdentities", testListIdentities},
		{"ChallengeSingleUse", testChallengeSingleUse},
		{"ChallengeExpiry", testChallengeExpiry},
		{"Cancelled", testCancelled},
		{"CloseTwice", testCloseTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func wantKind(t *testing.T, err error, kind fault.Kind, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want %v", what, kind)
	}
	if got := fault.KindOf(err); got != kind {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, kind)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// newCA mints a self-signed CA certificate named cn.
func newCA(t *testing.T, name, cn string) *enrollment.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err, "key")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err, "certificate")
	cert, err := x509.ParseCertificate(der)
	must(t, err, "parse")
	return enrollment.NewCA(name, cert, t0)
}

func hashed(shards ...string) enrollment.Allocation {
	return enrollment.Allocation{Policy: enrollment.PolicyHashed, Shards: shards}
}

func testCACreateGet(t *testing.T, s Store) {
	ctx := t.Context()
	ca := newCA(t, "root-1", "Root One")
	etag, err := s.CreateCA(ctx, ca)
	must(t, err, "CreateCA")
	if etag == "" {
		t.Fatal("CreateCA returned an empty etag")
	}
	got, err := s.GetCA(ctx, "root-1")
	must(t, err, "GetCA")
	if got.Thumbprint != ca.Thumbprint || got.SubjectKey != ca.SubjectKey || string(got.DER) != string(ca.DER) || got.Etag != etag || !got.Created.Equal(t0) {
		t.Fatalf("GetCA = %+v, want the created CA with etag %q", got, etag)
	}
	if _, err := got.Certificate(); err != nil {
		t.Fatalf("stored DER does not parse: %v", err)
	}
	byThumb, err := s.FindCAByThumbprint(ctx, ca.Thumbprint)
	must(t, err, "FindCAByThumbprint")
	if byThumb.Name != "root-1" {
		t.Fatalf("FindCAByThumbprint = %q", byThumb.Name)
	}
	bySubj, err := s.FindCAsBySubject(ctx, ca.SubjectKey)
	must(t, err, "FindCAsBySubject")
	if len(bySubj) != 1 || bySubj[0].Name != "root-1" {
		t.Fatalf("FindCAsBySubject = %v", bySubj)
	}
	none, err := s.FindCAsBySubject(ctx, enrollment.SubjectKey([]byte("nobody")))
	must(t, err, "FindCAsBySubject(unknown)")
	if len(none) != 0 {
		t.Fatalf("FindCAsBySubject(unknown) = %v", none)
	}
	_, err = s.GetCA(ctx, "missing")
	wantKind(t, err, fault.NotFound, "GetCA(missing)")
	_, err = s.FindCAByThumbprint(ctx, enrollment.Thumbprint([]byte("x")))
	wantKind(t, err, fault.NotFound, "FindCAByThumbprint(missing)")
}

func testCAUniqueness(t *testing.T, s Store) {
	ctx := t.Context()
	ca := newCA(t, "root-1", "Root")
	_, err := s.CreateCA(ctx, ca)
	must(t, err, "CreateCA")
	_, err = s.CreateCA(ctx, newCA(t, "root-1", "Other"))
	wantKind(t, err, fault.AlreadyExists, "same name")
	dup := *ca
	dup.Name = "root-2"
	_, err = s.CreateCA(ctx, &dup)
	wantKind(t, err, fault.AlreadyExists, "same certificate under another name")
	if _, err := s.GetCA(ctx, "root-2"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("refused create left a record behind: %v", err)
	}
	// Two CAs may share a subject (a renewed root).
	twin := newCA(t, "root-3", "Root")
	_, err = s.CreateCA(ctx, twin)
	must(t, err, "CreateCA(same subject)")
	cas, err := s.FindCAsBySubject(ctx, ca.SubjectKey)
	must(t, err, "FindCAsBySubject")
	if len(cas) != 2 {
		t.Fatalf("FindCAsBySubject found %d CAs, want 2", len(cas))
	}
}

func testCAUpdateCAS(t *testing.T, s Store) {
	ctx := t.Context()
	ca := newCA(t, "root", "Root")
	etag, err := s.CreateCA(ctx, ca)
	must(t, err, "CreateCA")

	// Many writers race with the same etag: exactly one wins.
	const writers = 16
	var wins, conflicts int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := *ca
			c.Etag = etag
			c.VerificationCode = fmt.Sprintf("CODE%d", i)
			c.CodeExpires = t0.Add(time.Hour)
			_, err := s.UpdateCA(ctx, &c)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case fault.KindOf(err) == fault.Conflict:
				conflicts++
			default:
				t.Errorf("UpdateCA: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("%d wins and %d conflicts, want 1 and %d", wins, conflicts, writers-1)
	}
	got, err := s.GetCA(ctx, "root")
	must(t, err, "GetCA")
	if got.Etag == etag || got.VerificationCode == "" || !got.CodeExpires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after update: %+v", got)
	}
	got.Verified = true
	newEtag, err := s.UpdateCA(ctx, got)
	must(t, err, "UpdateCA(current etag)")
	if newEtag == got.Etag {
		t.Fatal("etag did not change on update")
	}
	missing := newCA(t, "nope", "Nope")
	missing.Etag = "x"
	_, err = s.UpdateCA(ctx, missing)
	wantKind(t, err, fault.NotFound, "UpdateCA(missing)")
}

func testCADeleteInUse(t *testing.T, s Store) {
	ctx := t.Context()
	ca := newCA(t, "root", "Root")
	etag, err := s.CreateCA(ctx, ca)
	must(t, err, "CreateCA")
	g := &enrollment.Group{ID: "g1", CAName: "root", Allocation: hashed(), Meta: enrollment.Meta{Created: t0, Updated: t0}}
	_, err = s.CreateGroup(ctx, g)
	must(t, err, "CreateGroup")
	err = s.DeleteCA(ctx, "root", "")
	wantKind(t, err, fault.FailedPrecondition, "DeleteCA(in use)")
	if fault.ReasonOf(err) != fault.ResourceInUse {
		t.Fatalf("DeleteCA(in use) reason = %s", fault.ReasonOf(err))
	}
	must(t, s.DeleteGroup(ctx, "g1", ""), "DeleteGroup")
	wantKind(t, s.DeleteCA(ctx, "root", "stale"), fault.Conflict, "DeleteCA(stale etag)")
	must(t, s.DeleteCA(ctx, "root", etag), "DeleteCA")
	wantKind(t, s.DeleteCA(ctx, "root", ""), fault.NotFound, "DeleteCA again")
	if _, err := s.FindCAByThumbprint(ctx, ca.Thumbprint); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("thumbprint index survived the delete: %v", err)
	}
	if cas, _ := s.FindCAsBySubject(ctx, ca.SubjectKey); len(cas) != 0 {
		t.Fatalf("subject index survived the delete: %v", cas)
	}
	// The same certificate can be uploaded again.
	_, err = s.CreateCA(ctx, ca)
	must(t, err, "CreateCA after delete")
}

func testCAList(t *testing.T, s Store) {
	ctx := t.Context()
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("ca-%02d", i)
		want = append(want, name)
		_, err := s.CreateCA(ctx, newCA(t, name, name))
		must(t, err, "CreateCA")
	}
	var got []string
	token := ""
	pages := 0
	for {
		cas, next, err := s.ListCAs(ctx, enrollment.Page{Token: token, Limit: 3})
		must(t, err, "ListCAs")
		pages++
		if len(cas) > 3 {
			t.Fatalf("page of %d, limit 3", len(cas))
		}
		for _, c := range cas {
			got = append(got, c.Name)
		}
		if next == "" {
			break
		}
		token = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Fatalf("paged list = %v in %d pages, want %v in 3", got, pages, want)
	}
	_, _, err := s.ListCAs(ctx, enrollment.Page{Token: "%%%garbage", Limit: 3})
	wantKind(t, err, fault.InvalidArgument, "ListCAs(bad token)")
}

func testGroupCreateRules(t *testing.T, s Store) {
	ctx := t.Context()
	g := &enrollment.Group{ID: "g1", CAName: "root", Allocation: hashed("s1"), Meta: enrollment.Meta{Created: t0, Updated: t0}}
	_, err := s.CreateGroup(ctx, g)
	wantKind(t, err, fault.FailedPrecondition, "CreateGroup(no CA)")
	_, err = s.CreateCA(ctx, newCA(t, "root", "Root"))
	must(t, err, "CreateCA")
	etag, err := s.CreateGroup(ctx, g)
	must(t, err, "CreateGroup")
	got, err := s.GetGroup(ctx, "g1")
	must(t, err, "GetGroup")
	if got.CAName != "root" || got.Etag != etag || got.Disabled || fmt.Sprint(got.Shards) != "[s1]" || got.Policy != enrollment.PolicyHashed ||
		got.Mechanism != enrollment.MechanismX509 {
		t.Fatalf("GetGroup = %+v", got)
	}
	byCA, err := s.FindGroupByCA(ctx, "root")
	must(t, err, "FindGroupByCA")
	if byCA.ID != "g1" {
		t.Fatalf("FindGroupByCA = %q", byCA.ID)
	}
	_, err = s.CreateGroup(ctx, g)
	wantKind(t, err, fault.AlreadyExists, "CreateGroup(same id)")
	g2 := *g
	g2.ID = "g2"
	_, err = s.CreateGroup(ctx, &g2)
	wantKind(t, err, fault.AlreadyExists, "CreateGroup(second group on one CA)")
	_, err = s.GetGroup(ctx, "g2")
	wantKind(t, err, fault.NotFound, "refused group left behind")
	_, err = s.FindGroupByCA(ctx, "other")
	wantKind(t, err, fault.NotFound, "FindGroupByCA(other)")
}

func testGroupUpdateDelete(t *testing.T, s Store) {
	ctx := t.Context()
	_, err := s.CreateCA(ctx, newCA(t, "root", "Root"))
	must(t, err, "CreateCA")
	g := &enrollment.Group{ID: "g1", CAName: "root", Allocation: hashed(), Meta: enrollment.Meta{Created: t0, Updated: t0}}
	etag, err := s.CreateGroup(ctx, g)
	must(t, err, "CreateGroup")
	upd := *g
	upd.Etag = etag
	upd.Disabled = true
	upd.EKAllowList = []string{enrollment.Thumbprint([]byte("ek"))}
	upd.Allocation = enrollment.Allocation{Policy: enrollment.PolicyStatic, StaticShard: "s9"}
	upd.Updated = t0.Add(time.Minute)
	etag2, err := s.UpdateGroup(ctx, &upd)
	must(t, err, "UpdateGroup")
	got, err := s.GetGroup(ctx, "g1")
	must(t, err, "GetGroup")
	if !got.Disabled || got.Policy != enrollment.PolicyStatic || got.StaticShard != "s9" || got.Etag != etag2 || !got.Updated.Equal(upd.Updated) ||
		!got.Created.Equal(t0) || fmt.Sprint(got.EKAllowList) != fmt.Sprint(upd.EKAllowList) {
		t.Fatalf("after update: %+v", got)
	}
	// A TPM group keeps its mechanism.
	_, err = s.CreateCA(ctx, newCA(t, "vendor", "TPM Vendor Root"))
	must(t, err, "CreateCA(vendor)")
	_, err = s.CreateGroup(ctx, &enrollment.Group{ID: "tpm-g", CAName: "vendor", Mechanism: enrollment.MechanismTPM, Allocation: hashed()})
	must(t, err, "CreateGroup(TPM)")
	if tg, err := s.FindGroupByCA(ctx, "vendor"); err != nil || tg.Mechanism != enrollment.MechanismTPM {
		t.Fatalf("TPM group = %+v, %v", tg, err)
	}
	// Symmetric-key groups have no CA, and several may coexist.
	for _, id := range []string{"sym-1", "sym-2"} {
		_, err = s.CreateGroup(ctx, &enrollment.Group{ID: id, Mechanism: enrollment.MechanismSymmetricKey, SealedKeys: []byte{1, 2, 3}, Allocation: hashed()})
		must(t, err, "CreateGroup(symmetric)")
	}
	sg, err := s.GetGroup(ctx, "sym-2")
	if err != nil || sg.Mechanism != enrollment.MechanismSymmetricKey || string(sg.SealedKeys) != "\x01\x02\x03" || sg.CAName != "" {
		t.Fatalf("symmetric group = %+v, %v", sg, err)
	}
	must(t, s.DeleteGroup(ctx, "sym-1", ""), "DeleteGroup(symmetric)")
	_, err = s.UpdateGroup(ctx, &upd) // stale etag
	wantKind(t, err, fault.Conflict, "UpdateGroup(stale)")
	wantKind(t, s.DeleteGroup(ctx, "g1", etag), fault.Conflict, "DeleteGroup(stale)")
	must(t, s.DeleteGroup(ctx, "g1", etag2), "DeleteGroup")
	_, err = s.FindGroupByCA(ctx, "root")
	wantKind(t, err, fault.NotFound, "CA index after delete")
	wantKind(t, s.DeleteGroup(ctx, "g1", ""), fault.NotFound, "DeleteGroup again")
}

func testIndividualCRUD(t *testing.T, s Store) {
	ctx := t.Context()
	thumb := enrollment.Thumbprint([]byte("leaf-1"))
	e := &enrollment.Individual{RegistrationID: "Device-1", Mechanism: enrollment.MechanismX509, Thumbprint: thumb, Allocation: hashed(), Meta: enrollment.Meta{Created: t0, Updated: t0}}
	etag, err := s.CreateIndividual(ctx, e)
	must(t, err, "CreateIndividual")
	got, err := s.GetIndividual(ctx, "DEVICE-1")
	must(t, err, "GetIndividual(other case)")
	if got.RegistrationID != "Device-1" || got.Thumbprint != thumb || got.Etag != etag || got.Mechanism != enrollment.MechanismX509 {
		t.Fatalf("GetIndividual = %+v", got)
	}
	tpmE := &enrollment.Individual{RegistrationID: "tpm-1", Mechanism: enrollment.MechanismTPM, EKPublic: []byte{0, 2, 9, 9},
		Thumbprint: enrollment.Thumbprint([]byte{0, 2, 9, 9}), Allocation: hashed()}
	_, err = s.CreateIndividual(ctx, tpmE)
	must(t, err, "CreateIndividual(TPM)")
	gotTPM, err := s.FindIndividualByThumbprint(ctx, tpmE.Thumbprint)
	must(t, err, "FindIndividualByThumbprint(TPM)")
	if gotTPM.Mechanism != enrollment.MechanismTPM || string(gotTPM.EKPublic) != string(tpmE.EKPublic) {
		t.Fatalf("TPM enrollment = %+v", gotTPM)
	}
	must(t, s.DeleteIndividual(ctx, "tpm-1", ""), "DeleteIndividual(TPM)")
	byThumb, err := s.FindIndividualByThumbprint(ctx, thumb)
	must(t, err, "FindIndividualByThumbprint")
	if byThumb.RegistrationID != "Device-1" {
		t.Fatalf("FindIndividualByThumbprint = %+v", byThumb)
	}
	dupID := *e
	dupID.RegistrationID = "device-1"
	dupID.Thumbprint = enrollment.Thumbprint([]byte("leaf-2"))
	_, err = s.CreateIndividual(ctx, &dupID)
	wantKind(t, err, fault.AlreadyExists, "same registration ID, other case")
	dupThumb := *e
	dupThumb.RegistrationID = "device-2"
	_, err = s.CreateIndividual(ctx, &dupThumb)
	wantKind(t, err, fault.AlreadyExists, "same thumbprint")
	_, err = s.GetIndividual(ctx, "device-2")
	wantKind(t, err, fault.NotFound, "refused create left behind")

	upd := *got
	upd.Disabled = true
	upd.DeviceID = "dev-one"
	etag2, err := s.UpdateIndividual(ctx, &upd)
	must(t, err, "UpdateIndividual")
	got, err = s.GetIndividual(ctx, "device-1")
	must(t, err, "GetIndividual")
	if !got.Disabled || got.DeviceID != "dev-one" || got.EffectiveDeviceID() != "dev-one" || got.Etag != etag2 {
		t.Fatalf("after update: %+v", got)
	}
	_, err = s.UpdateIndividual(ctx, &upd)
	wantKind(t, err, fault.Conflict, "UpdateIndividual(stale)")

	for i := range 4 {
		_, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: fmt.Sprintf("d-%d", i),
			Thumbprint: enrollment.Thumbprint(fmt.Appendf(nil, "l%d", i)), Allocation: hashed()})
		must(t, err, "CreateIndividual")
	}
	all, next, err := s.ListIndividuals(ctx, enrollment.Page{Limit: 10})
	must(t, err, "ListIndividuals")
	if len(all) != 5 || next != "" {
		t.Fatalf("ListIndividuals = %d items, next %q", len(all), next)
	}
	must(t, s.DeleteIndividual(ctx, "DEVICE-1", etag2), "DeleteIndividual")
	_, err = s.FindIndividualByThumbprint(ctx, thumb)
	wantKind(t, err, fault.NotFound, "thumbprint index after delete")
}

func testShardCRUD(t *testing.T, s Store) {
	ctx := t.Context()
	sh := &allocation.Shard{ID: "s1", Hostname: "hub1.example.com", Weight: 10, State: allocation.Active, Created: t0, Updated: t0}
	etag, err := s.CreateShard(ctx, sh)
	must(t, err, "CreateShard")
	_, err = s.CreateShard(ctx, sh)
	wantKind(t, err, fault.AlreadyExists, "CreateShard again")
	got, err := s.GetShard(ctx, "s1")
	must(t, err, "GetShard")
	if got.Hostname != sh.Hostname || got.Weight != 10 || got.State != allocation.Active || got.Etag != etag {
		t.Fatalf("GetShard = %+v", got)
	}
	got.State = allocation.Draining
	got.Weight = 500
	etag2, err := s.UpdateShard(ctx, got)
	must(t, err, "UpdateShard")
	_, err = s.UpdateShard(ctx, got)
	wantKind(t, err, fault.Conflict, "UpdateShard(stale)")
	_, err = s.CreateShard(ctx, &allocation.Shard{ID: "s2", Hostname: "hub2.example.com", Weight: 1, State: allocation.Active})
	must(t, err, "CreateShard(s2)")
	all, err := s.AllShards(ctx)
	must(t, err, "AllShards")
	if len(all) != 2 {
		t.Fatalf("AllShards = %d", len(all))
	}
	page1, next, err := s.ListShards(ctx, "", 1)
	must(t, err, "ListShards")
	page2, next2, err := s.ListShards(ctx, next, 1)
	must(t, err, "ListShards(2)")
	if len(page1) != 1 || page1[0].ID != "s1" || len(page2) != 1 || page2[0].ID != "s2" || next2 != "" {
		t.Fatalf("paging: %v %q %v %q", page1, next, page2, next2)
	}

	reg, id := newRegistration("dev-a", "s1")
	_, err = s.CreateRegistration(ctx, reg, id)
	must(t, err, "CreateRegistration")
	err = s.DeleteShard(ctx, "s1", "")
	wantKind(t, err, fault.FailedPrecondition, "DeleteShard(in use)")
	must(t, s.DeleteRegistration(ctx, "dev-a", ""), "DeleteRegistration")
	wantKind(t, s.DeleteShard(ctx, "s1", etag), fault.Conflict, "DeleteShard(stale)")
	must(t, s.DeleteShard(ctx, "s1", etag2), "DeleteShard")
	_, err = s.GetShard(ctx, "s1")
	wantKind(t, err, fault.NotFound, "GetShard after delete")
}

// ensureShards creates shards that registrations refer to, as in a real
// deployment, where every registration's shard exists.
func ensureShards(t *testing.T, s Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		_, err := s.CreateShard(t.Context(), &allocation.Shard{ID: id, Hostname: id + ".example.com", Weight: 1, State: allocation.Active})
		must(t, err, "CreateShard "+id)
	}
}

func newRegistration(regID, shard string) (*registry.Registration, *registry.Identity) {
	thumb := enrollment.Thumbprint([]byte(regID))
	reg := &registry.Registration{RegistrationID: regID, DeviceID: regID, Shard: shard, AssignedHub: shard + ".example.com",
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "g1",
		CredentialThumbprint: thumb, Created: t0, Updated: t0}
	id := &registry.Identity{DeviceID: regID, RegistrationID: regID, Shard: shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.X509, X509Thumbprint: thumb}, Version: 1, Created: t0, Updated: t0}
	return reg, id
}

func testRegistrationCreate(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s0", "s1", "s2")
	reg, id := newRegistration("Dev-1", "s1")
	etag, err := s.CreateRegistration(ctx, reg, id)
	must(t, err, "CreateRegistration")
	got, err := s.GetRegistration(ctx, "dev-1")
	must(t, err, "GetRegistration(other case)")
	if got.RegistrationID != "Dev-1" || got.DeviceID != "Dev-1" || got.Shard != "s1" || got.AssignedHub != "s1.example.com" ||
		got.Status != registry.Assigned || got.Substatus != registry.InitialAssignment || got.AttestationType != registry.X509 ||
		got.GroupID != "g1" || got.CredentialThumbprint != reg.CredentialThumbprint || got.Etag != etag || !got.Created.Equal(t0) {
		t.Fatalf("GetRegistration = %+v", got)
	}
	ident, err := s.GetIdentity(ctx, "Dev-1")
	must(t, err, "GetIdentity")
	if ident.RegistrationID != "Dev-1" || ident.Shard != "s1" || ident.Version != 1 || ident.Credential.X509Thumbprint != reg.CredentialThumbprint || ident.Status != registry.IdentityEnabled {
		t.Fatalf("GetIdentity = %+v", ident)
	}

	// Same registration ID again: refused, nothing changes.
	again, againID := newRegistration("DEV-1", "s2")
	_, err = s.CreateRegistration(ctx, again, againID)
	wantKind(t, err, fault.AlreadyExists, "CreateRegistration(same id)")
	got, _ = s.GetRegistration(ctx, "dev-1")
	if got.Shard != "s1" || got.Etag != etag {
		t.Fatalf("refused create changed the registration: %+v", got)
	}

	// Another registration claiming the same device ID: refused, nothing written.
	other, otherID := newRegistration("dev-2", "s1")
	other.DeviceID, otherID.DeviceID = "Dev-1", "Dev-1"
	_, err = s.CreateRegistration(ctx, other, otherID)
	wantKind(t, err, fault.AlreadyExists, "CreateRegistration(device ID taken)")
	if fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("reason = %s, want %s", fault.ReasonOf(err), fault.DeviceIDConflict)
	}
	_, err = s.GetRegistration(ctx, "dev-2")
	wantKind(t, err, fault.NotFound, "refused registration left behind")
	_, err = s.GetIdentity(ctx, "dev-2")
	wantKind(t, err, fault.NotFound, "refused identity left behind")
	_, err = s.GetIdentity(ctx, "nobody")
	wantKind(t, err, fault.NotFound, "GetIdentity(missing)")

	// A TPM device's identity carries its EK hash and bound key.
	tpmReg, tpmID := newRegistration("tpm-dev", "s1")
	ekHash := enrollment.Thumbprint([]byte("ek"))
	tpmReg.AttestationType, tpmReg.CredentialThumbprint, tpmReg.GroupID, tpmReg.Individual = registry.TPM, ekHash, "", true
	tpmID.Credential = registry.Credential{Type: registry.TPM, TPMEKHash: ekHash, TPMBoundKey: []byte{0, 3, 1, 2, 3}}
	_, err = s.CreateRegistration(ctx, tpmReg, tpmID)
	must(t, err, "CreateRegistration(TPM)")
	gotTPM, err := s.GetIdentity(ctx, "tpm-dev")
	must(t, err, "GetIdentity(TPM)")
	if gotTPM.Credential.Type != registry.TPM || gotTPM.Credential.TPMEKHash != ekHash || string(gotTPM.Credential.TPMBoundKey) != string(tpmID.Credential.TPMBoundKey) || gotTPM.Credential.X509Thumbprint != "" {
		t.Fatalf("TPM identity = %+v", gotTPM.Credential)
	}
	// A symmetric-key device's identity carries its key's hash.
	symReg, symID := newRegistration("sym-dev", "s1")
	keyHash := enrollment.Thumbprint([]byte("device key"))
	symReg.AttestationType, symReg.CredentialThumbprint = registry.SymmetricKey, keyHash
	symID.Credential = registry.Credential{Type: registry.SymmetricKey, SymmetricKeyHash: keyHash}
	_, err = s.CreateRegistration(ctx, symReg, symID)
	must(t, err, "CreateRegistration(symmetric)")
	gotSym, err := s.GetIdentity(ctx, "sym-dev")
	if err != nil || gotSym.Credential.Type != registry.SymmetricKey || gotSym.Credential.SymmetricKeyHash != keyHash || gotSym.Credential.X509Thumbprint != "" {
		t.Fatalf("symmetric identity = %+v, %v", gotSym, err)
	}
	// An X.509 identity whose certificate differs from the registration's
	// (mid-renewal) keeps its own thumbprint.
	renewReg, renewID := newRegistration("renewing", "s1")
	renewID.Credential.X509Thumbprint = enrollment.Thumbprint([]byte("new leaf"))
	_, err = s.CreateRegistration(ctx, renewReg, renewID)
	must(t, err, "CreateRegistration(renewing)")
	gotRenew, err := s.GetIdentity(ctx, "renewing")
	must(t, err, "GetIdentity(renewing)")
	if gotRenew.Credential.X509Thumbprint != renewID.Credential.X509Thumbprint || gotRenew.Credential.TPMEKHash != "" {
		t.Fatalf("renewing identity = %+v", gotRenew.Credential)
	}
}

func testRegistrationConcurrentCreate(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s0", "s1", "s2")
	const racers = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reg, id := newRegistration("racer", "s1")
			_, err := s.CreateRegistration(ctx, reg, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case fault.KindOf(err) != fault.AlreadyExists:
				t.Errorf("CreateRegistration: %v", err)
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d concurrent creates succeeded, want 1", created)
	}
	regs, _, err := s.ListRegistrations(ctx, registry.Filter{}, "", 100)
	must(t, err, "ListRegistrations")
	if len(regs) != 1 {
		t.Fatalf("%d registrations, want 1", len(regs))
	}
}

func testRegistrationUpdateDelete(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s0", "s1", "s2")
	reg, id := newRegistration("dev-1", "s1")
	etag, err := s.CreateRegistration(ctx, reg, id)
	must(t, err, "CreateRegistration")
	reg.Etag = etag
	if got, _ := s.GetRegistration(ctx, "dev-1"); got.InitialShard != "s1" {
		t.Fatalf("initial shard of a new registration: %q, want s1", got.InitialShard)
	}
	reg.Shard, id.Shard, reg.InitialShard = "s2", "s2", "s1"
	reg.Substatus = registry.DeviceDataReset
	id.Version = 2
	id.InitialTwin, id.IoTEdge = []byte(`{"tags":{"a":1}}`), true
	etag2, err := s.UpdateRegistration(ctx, reg, id)
	must(t, err, "UpdateRegistration")
	got, _ := s.GetRegistration(ctx, "dev-1")
	ident, _ := s.GetIdentity(ctx, "dev-1")
	if got.Shard != "s2" || got.Substatus != registry.DeviceDataReset || got.Etag != etag2 || ident.Shard != "s2" || ident.Version != 2 ||
		got.InitialShard != "s1" || string(ident.InitialTwin) != `{"tags":{"a":1}}` || !ident.IoTEdge {
		t.Fatalf("after update: %+v %+v", got, ident)
	}
	// The shard index follows the move.
	onS1, _, err := s.ListRegistrations(ctx, registry.Filter{Shard: "s1"}, "", 10)
	must(t, err, "ListRegistrations(s1)")
	onS2, _, err := s.ListRegistrations(ctx, registry.Filter{Shard: "s2"}, "", 10)
	must(t, err, "ListRegistrations(s2)")
	if len(onS1) != 0 || len(onS2) != 1 {
		t.Fatalf("shard index: s1 %d, s2 %d", len(onS1), len(onS2))
	}
	_, err = s.UpdateRegistration(ctx, reg, id) // stale etag
	wantKind(t, err, fault.Conflict, "UpdateRegistration(stale)")
	reg.Etag = etag2
	reg.DeviceID, id.DeviceID = "renamed", "renamed"
	_, err = s.UpdateRegistration(ctx, reg, id)
	wantKind(t, err, fault.InvalidArgument, "UpdateRegistration(device ID change)")

	wantKind(t, s.DeleteRegistration(ctx, "dev-1", etag), fault.Conflict, "DeleteRegistration(stale)")
	must(t, s.DeleteRegistration(ctx, "DEV-1", etag2), "DeleteRegistration")
	_, err = s.GetRegistration(ctx, "dev-1")
	wantKind(t, err, fault.NotFound, "GetRegistration after delete")
	_, err = s.GetIdentity(ctx, "dev-1")
	wantKind(t, err, fault.NotFound, "GetIdentity after delete")
	// The device ID is free again.
	reg2, id2 := newRegistration("dev-1", "s1")
	_, err = s.CreateRegistration(ctx, reg2, id2)
	must(t, err, "CreateRegistration after delete")
}

func testRegistrationList(t *testing.T, s Store) {
	ctx := t.Context()
	ensureShards(t, s, "s0", "s1", "s2")
	var want []string
	for i := range 9 {
		reg, id := newRegistration(fmt.Sprintf("dev-%d", i), fmt.Sprintf("s%d", i%3))
		if i%2 == 1 {
			reg.GroupID = "g2"
		}
		_, err := s.CreateRegistration(ctx, reg, id)
		must(t, err, "CreateRegistration")
		want = append(want, reg.RegistrationID)
	}
	collect := func(f registry.Filter) []string {
		var ids []string
		token := ""
		for {
			regs, next, err := s.ListRegistrations(ctx, f, token, 2)
			must(t, err, "ListRegistrations")
			if len(regs) > 2 {
				t.Fatalf("page of %d, limit 2", len(regs))
			}
			for _, r := range regs {
				ids = append(ids, r.RegistrationID)
			}
			if next == "" {
				sort.Strings(ids)
				return ids
			}
			token = next
		}
	}
	if got := collect(registry.Filter{}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("all = %v", got)
	}
	if got := collect(registry.Filter{GroupID: "g2"}); fmt.Sprint(got) != "[dev-1 dev-3 dev-5 dev-7]" {
		t.Fatalf("group g2 = %v", got)
	}
	if got := collect(registry.Filter{Shard: "s0"}); fmt.Sprint(got) != "[dev-0 dev-3 dev-6]" {
		t.Fatalf("shard s0 = %v", got)
	}
	if got := collect(registry.Filter{GroupID: "g1", Shard: "s0"}); fmt.Sprint(got) != "[dev-0 dev-6]" {
		t.Fatalf("group g1 on s0 = %v", got)
	}
	if got := collect(registry.Filter{GroupID: "none"}); len(got) != 0 {
		t.Fatalf("unknown group = %v", got)
	}
}

func testAccessKeys(t *testing.T, s Store) {
	ctx := t.Context()
	n, err := s.CountKeys(ctx)
	must(t, err, "CountKeys")
	if n != 0 {
		t.Fatalf("fresh store has %d keys", n)
	}
	token, k, err := access.Generate(rand.Reader, "owner", access.All, t0)
	must(t, err, "Generate")
	must(t, s.CreateKey(ctx, k), "CreateKey")
	wantKind(t, s.CreateKey(ctx, k), fault.AlreadyExists, "CreateKey again")
	got, err := access.Authenticate(ctx, s, token)
	must(t, err, "Authenticate")
	if got.Name != "owner" || !got.Has(access.ServiceConfig) || len(got.Permissions) != len(access.All) {
		t.Fatalf("Authenticate = %+v", got)
	}
	_, err = access.Authenticate(ctx, s, token+"x")
	wantKind(t, err, fault.Unauthenticated, "Authenticate(wrong secret)")
	n, _ = s.CountKeys(ctx)
	if n != 1 {
		t.Fatalf("CountKeys = %d", n)
	}

	// A key with a sealed shared access key keeps it; keys list in ID
	// order, page by page; a deleted key no longer authenticates.
	_, k2, err := access.Generate(rand.Reader, "dps", []access.Permission{access.EnrollmentRead}, t0)
	must(t, err, "Generate")
	k2.SealedSAS = []byte{9, 8, 7}
	must(t, s.CreateKey(ctx, k2), "CreateKey(with SAS)")
	got2, err := s.GetKey(ctx, k2.ID)
	must(t, err, "GetKey")
	if string(got2.SealedSAS) != "\x09\x08\x07" || got2.Name != "dps" || len(got2.Permissions) != 1 {
		t.Fatalf("GetKey = %+v", got2)
	}
	var ids []string
	for tok, pages := "", 0; ; pages++ {
		keys, next, err := s.ListKeys(ctx, tok, 1)
		must(t, err, "ListKeys")
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		if next == "" || pages > 5 {
			break
		}
		tok = next
	}
	want := []string{k.ID, k2.ID}
	if k2.ID < k.ID {
		want = []string{k2.ID, k.ID}
	}
	if len(ids) != 2 || ids[0] != want[0] || ids[1] != want[1] {
		t.Fatalf("ListKeys = %v, want %v", ids, want)
	}
	// Rotation replaces the secret and the shared access key in one
	// write; the key keeps its ID, name and permissions.
	newToken, rotated, err := access.Rotate(rand.Reader, k2)
	must(t, err, "Rotate")
	must(t, s.RotateKey(ctx, k2.ID, rotated.SecretHash, []byte{1}), "RotateKey")
	got3, err := access.Authenticate(ctx, s, newToken)
	must(t, err, "Authenticate(rotated)")
	if got3.Name != "dps" || len(got3.Permissions) != 1 || string(got3.SealedSAS) != "\x01" {
		t.Fatalf("rotated key = %+v", got3)
	}
	wantKind(t, s.RotateKey(ctx, "nobody", rotated.SecretHash, nil), fault.NotFound, "RotateKey(unknown)")
	must(t, s.DeleteKey(ctx, k.ID), "DeleteKey")
	wantKind(t, s.DeleteKey(ctx, k.ID), fault.NotFound, "DeleteKey again")
	_, err = access.Authenticate(ctx, s, token)
	wantKind(t, err, fault.Unauthenticated, "Authenticate(deleted key)")
	if n, _ = s.CountKeys(ctx); n != 1 {
		t.Fatalf("CountKeys after delete = %d", n)
	}
}

func newChallenge(id string) *attestation.Challenge {
	return &attestation.Challenge{ID: id, RegistrationID: "dev-1", Data: []byte{0, 1, 2, 0xff}, Expires: time.Now().Add(5 * time.Minute)}
}

func testChallengeSingleUse(t *testing.T, s Store) {
	ctx := t.Context()
	c := newChallenge("ch-1")
	must(t, s.PutChallenge(ctx, c), "PutChallenge")
	wantKind(t, s.PutChallenge(ctx, newChallenge("ch-1")), fault.AlreadyExists, "PutChallenge(same id)")
	got, err := s.TakeChallenge(ctx, "ch-1", time.Now())
	must(t, err, "TakeChallenge")
	if got.RegistrationID != "dev-1" || string(got.Data) != string(c.Data) || !got.Expires.Equal(c.Expires) {
		t.Fatalf("TakeChallenge = %+v, want %+v", got, c)
	}
	_, err = s.TakeChallenge(ctx, "ch-1", time.Now())
	wantKind(t, err, fault.NotFound, "TakeChallenge again")
	_, err = s.TakeChallenge(ctx, "never", time.Now())
	wantKind(t, err, fault.NotFound, "TakeChallenge(unknown)")

	// Of many concurrent takes, exactly one gets the challenge.
	must(t, s.PutChallenge(ctx, newChallenge("ch-race")), "PutChallenge")
	var mu sync.Mutex
	won := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.TakeChallenge(ctx, "ch-race", time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case fault.KindOf(err) != fault.NotFound:
				t.Errorf("TakeChallenge: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d concurrent takes succeeded, want 1", won)
	}
}

func testChallengeExpiry(t *testing.T, s Store) {
	ctx := t.Context()
	c := newChallenge("ch-old")
	must(t, s.PutChallenge(ctx, c), "PutChallenge")
	// The backend still holds it (its own expiry is later), but the stored
	// expiry decides: a take at or after it is refused, and spends it.
	_, err := s.TakeChallenge(ctx, "ch-old", c.Expires)
	wantKind(t, err, fault.FailedPrecondition, "TakeChallenge(at expiry)")
	if fault.ReasonOf(err) != fault.ChallengeExpired {
		t.Fatalf("reason = %s", fault.ReasonOf(err))
	}
	_, err = s.TakeChallenge(ctx, "ch-old", time.Now())
	wantKind(t, err, fault.NotFound, "TakeChallenge after an expired take")
	c2 := newChallenge("ch-fresh")
	must(t, s.PutChallenge(ctx, c2), "PutChallenge")
	if _, err := s.TakeChallenge(ctx, "ch-fresh", c2.Expires.Add(-time.Nanosecond)); err != nil {
		t.Fatalf("TakeChallenge just before expiry: %v", err)
	}
}

func testCancelled(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.CreateCA(ctx, newCA(t, "root", "Root")); err == nil {
		t.Fatal("CreateCA with a cancelled context succeeded")
	}
	if _, err := s.GetCA(t.Context(), "root"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("cancelled create left state: %v", err)
	}
	reg, id := newRegistration("dev", "s1")
	if _, err := s.CreateRegistration(ctx, reg, id); err == nil {
		t.Fatal("CreateRegistration with a cancelled context succeeded")
	}
}

func testCloseTwice(t *testing.T, s Store) {
	must(t, s.Close(), "Close")
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// testShardDeviceCounts checks region and capacity round trips and that
// shards report how many devices they hold as registrations come, move
// and go.
func testShardDeviceCounts(t *testing.T, s Store) {
	ctx := t.Context()
	_, err := s.CreateShard(ctx, &allocation.Shard{ID: "c1", Hostname: "c1.example.com", Weight: 1, State: allocation.Active, Region: "eu-west", Capacity: 10})
	must(t, err, "CreateShard c1")
	_, err = s.CreateShard(ctx, &allocation.Shard{ID: "c2", Hostname: "c2.example.com", Weight: 1, State: allocation.Active, Capacity: 5})
	must(t, err, "CreateShard c2")
	counts := func() (int, int) {
		t.Helper()
		all, err := s.AllShards(ctx)
		must(t, err, "AllShards")
		got := map[string]int{}
		for _, sh := range all {
			got[sh.ID] = sh.Devices
		}
		g1, err := s.GetShard(ctx, "c1")
		must(t, err, "GetShard")
		if g1.Devices != got["c1"] || g1.Region != "eu-west" || g1.Capacity != 10 {
			t.Fatalf("GetShard c1 = %+v, AllShards count %d", g1, got["c1"])
		}
		return got["c1"], got["c2"]
	}
	if a, b := counts(); a != 0 || b != 0 {
		t.Fatalf("empty shards count %d, %d", a, b)
	}
	var regs []*registry.Registration
	for i := range 3 {
		reg, id := newRegistration(fmt.Sprintf("cnt-%d", i), "c1")
		etag, err := s.CreateRegistration(ctx, reg, id)
		must(t, err, "CreateRegistration")
		reg.Etag = etag
		regs = append(regs, reg)
	}
	if a, b := counts(); a != 3 || b != 0 {
		t.Fatalf("after 3 registrations: %d, %d", a, b)
	}
	// A duplicate create changes nothing.
	dup, dupID := newRegistration("cnt-0", "c1")
	wantKind(t, func() error { _, err := s.CreateRegistration(ctx, dup, dupID); return err }(), fault.AlreadyExists, "duplicate CreateRegistration")
	// A move.
	moved := regs[0]
	ident, err := s.GetIdentity(ctx, moved.DeviceID)
	must(t, err, "GetIdentity")
	moved.Shard, ident.Shard = "c2", "c2"
	_, err = s.UpdateRegistration(ctx, moved, ident)
	must(t, err, "UpdateRegistration (move)")
	if a, b := counts(); a != 2 || b != 1 {
		t.Fatalf("after a move: %d, %d", a, b)
	}
	must(t, s.DeleteRegistration(ctx, regs[1].RegistrationID, ""), "DeleteRegistration")
	if a, b := counts(); a != 1 || b != 1 {
		t.Fatalf("after a delete: %d, %d", a, b)
	}
	sh, err := s.GetShard(ctx, "c2")
	must(t, err, "GetShard c2")
	sh.Capacity, sh.Region = 7, "us-east"
	_, err = s.UpdateShard(ctx, sh)
	must(t, err, "UpdateShard")
	if got, _ := s.GetShard(ctx, "c2"); got.Capacity != 7 || got.Region != "us-east" {
		t.Fatalf("UpdateShard region/capacity: %+v", got)
	}
}

// testClusters covers hub clusters: CRUD with etags, and deletion refused
// while a shard belongs to the cluster.
func testClusters(t *testing.T, s Store) {
	ctx := t.Context()
	thumb := enrollment.Thumbprint([]byte("hub node 1"))
	etag, err := s.CreateCluster(ctx, &allocation.Cluster{ID: "hc1", Certificates: []string{thumb}, Created: t0, Updated: t0})
	must(t, err, "CreateCluster")
	_, err = s.CreateCluster(ctx, &allocation.Cluster{ID: "hc1"})
	wantKind(t, err, fault.AlreadyExists, "CreateCluster again")
	got, err := s.GetCluster(ctx, "hc1")
	must(t, err, "GetCluster")
	if got.Etag != etag || len(got.Certificates) != 1 || !got.Pins(thumb) || !got.Created.Equal(t0) {
		t.Fatalf("GetCluster = %+v", got)
	}
	_, err = s.GetCluster(ctx, "nope")
	wantKind(t, err, fault.NotFound, "GetCluster(unknown)")
	got.Certificates = append(got.Certificates, enrollment.Thumbprint([]byte("hub node 2")))
	etag2, err := s.UpdateCluster(ctx, got)
	must(t, err, "UpdateCluster")
	_, err = s.UpdateCluster(ctx, got) // stale etag
	wantKind(t, err, fault.Conflict, "UpdateCluster(stale)")
	_, err = s.CreateCluster(ctx, &allocation.Cluster{ID: "hc2"})
	must(t, err, "CreateCluster hc2")
	var ids []string
	for tok := ""; ; {
		page, next, err := s.ListClusters(ctx, tok, 1)
		must(t, err, "ListClusters")
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		if next == "" || len(ids) > 5 {
			break
		}
		tok = next
	}
	if len(ids) != 2 || ids[0] != "hc1" || ids[1] != "hc2" {
		t.Fatalf("ListClusters = %v", ids)
	}
	_, err = s.CreateShard(ctx, &allocation.Shard{ID: "owned", Hostname: "owned.example.com", Weight: 1, State: allocation.Active, Cluster: "hc1"})
	must(t, err, "CreateShard owned")
	if sh, _ := s.GetShard(ctx, "owned"); sh.Cluster != "hc1" {
		t.Fatalf("shard cluster = %q", sh.Cluster)
	}
	err = s.DeleteCluster(ctx, "hc1", "")
	wantKind(t, err, fault.FailedPrecondition, "DeleteCluster(owning a shard)")
	must(t, s.DeleteShard(ctx, "owned", ""), "DeleteShard")
	wantKind(t, s.DeleteCluster(ctx, "hc1", etag), fault.Conflict, "DeleteCluster(stale etag)")
	must(t, s.DeleteCluster(ctx, "hc1", etag2), "DeleteCluster")
	_, err = s.GetCluster(ctx, "hc1")
	wantKind(t, err, fault.NotFound, "GetCluster(deleted)")
}
