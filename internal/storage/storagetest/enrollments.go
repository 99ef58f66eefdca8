package storagetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
)

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
	// The same thumbprint and registration ID may be enrolled again.
	e.Etag = ""
	_, err = s.CreateIndividual(ctx, e)
	must(t, err, "CreateIndividual(again after delete)")
	byThumb, err = s.FindIndividualByThumbprint(ctx, thumb)
	must(t, err, "FindIndividualByThumbprint(again)")
	if byThumb.RegistrationID != "Device-1" || byThumb.DeviceID != "" {
		t.Fatalf("FindIndividualByThumbprint(again) = %+v", byThumb)
	}
}

// testIndividualPages pages through enough enrollments, in small pages,
// to see each once and in registration-ID order (Redis keeps them in
// several lists, merged per page).
func testIndividualPages(t *testing.T, s Store) {
	ctx := t.Context()
	var want []string
	for i := range 41 {
		id := fmt.Sprintf("pg-%03d", (i*17)%41)
		want = append(want, id)
		_, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: id,
			Thumbprint: enrollment.Thumbprint([]byte(id)), Allocation: hashed()})
		must(t, err, "CreateIndividual")
	}
	must(t, s.DeleteIndividual(ctx, "pg-007", ""), "DeleteIndividual")
	want = slices.DeleteFunc(want, func(id string) bool { return id == "pg-007" })
	slices.Sort(want)
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		list, next, err := s.ListIndividuals(ctx, enrollment.Page{Token: token, Limit: 6})
		must(t, err, "ListIndividuals")
		if len(list) > 6 {
			t.Fatalf("a page of %d for a limit of 6", len(list))
		}
		for _, e := range list {
			got = append(got, e.RegistrationID)
		}
		if next == "" {
			break
		}
		token = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged = %v\nwant %v", got, want)
	}
	_, _, err := s.ListIndividuals(ctx, enrollment.Page{Token: "!!not a token", Limit: 6})
	wantKind(t, err, fault.InvalidArgument, "ListIndividuals(bad token)")
}

// testIndividualNames checks ADR 17's reservation: an individual
// enrollment holds its registration ID and its device ID in one
// case-folded namespace, and ReservedByIndividual sees both.
func testIndividualNames(t *testing.T, s Store) {
	ctx := t.Context()
	n := 0
	ind := func(regID, devID string) *enrollment.Individual {
		n++
		return &enrollment.Individual{RegistrationID: regID, DeviceID: devID, Mechanism: enrollment.MechanismX509,
			Thumbprint: enrollment.Thumbprint(fmt.Appendf(nil, "names-%d", n)), Allocation: hashed()}
	}
	reserved := func(name string, want bool) {
		t.Helper()
		got, err := s.ReservedByIndividual(ctx, name)
		must(t, err, "ReservedByIndividual("+name+")")
		if got != want {
			t.Fatalf("ReservedByIndividual(%q) = %v, want %v", name, got, want)
		}
	}
	a := ind("ind-reg", "Sensor-0001")
	etagA, err := s.CreateIndividual(ctx, a)
	must(t, err, "CreateIndividual(custom device ID)")
	reserved("ind-reg", true)
	reserved("IND-REG", true)
	reserved("sensor-0001", true) // the device ID, any case
	reserved("sensor-0002", false)
	plain := ind("plain-1", "")
	_, err = s.CreateIndividual(ctx, plain)
	must(t, err, "CreateIndividual(default device ID)")
	reserved("plain-1", true)

	for _, c := range []struct{ name, regID, devID string }{
		{"registration ID is another's device ID", "sensor-0001", ""},
		{"registration ID is another's device ID, other case", "SENSOR-0001", "elsewhere"},
		{"device ID is another's device ID", "other-1", "sensor-0001"},
		{"device ID is another's registration ID", "other-2", "Ind-Reg"},
		{"device ID is another's default device ID", "other-3", "plain-1"},
	} {
		_, err := s.CreateIndividual(ctx, ind(c.regID, c.devID))
		if fault.KindOf(err) != fault.AlreadyExists || fault.ReasonOf(err) != fault.DeviceIDConflict {
			t.Fatalf("%s: err = %v (reason %s), want AlreadyExists DEVICE_ID_CONFLICT", c.name, err, fault.ReasonOf(err))
		}
		_, err = s.GetIndividual(ctx, c.regID)
		wantKind(t, err, fault.NotFound, c.name+": refused create left behind")
	}
	reserved("other-1", false)
	reserved("elsewhere", false)

	// Its own registration ID as its device ID is no collision.
	_, err = s.CreateIndividual(ctx, ind("self-1", "SELF-1"))
	must(t, err, "CreateIndividual(device ID = own registration ID)")

	// An update that moves the device ID moves the reservation, and may
	// not take another's name.
	gotA, err := s.GetIndividual(ctx, "ind-reg")
	must(t, err, "GetIndividual")
	taken := *gotA
	taken.DeviceID = "plain-1"
	_, err = s.UpdateIndividual(ctx, &taken)
	if fault.ReasonOf(err) != fault.DeviceIDConflict {
		t.Fatalf("UpdateIndividual to another's name: %v, want DEVICE_ID_CONFLICT", err)
	}
	moved := *gotA
	moved.DeviceID = "sensor-0002"
	etagA, err = s.UpdateIndividual(ctx, &moved)
	must(t, err, "UpdateIndividual(new device ID)")
	reserved("sensor-0001", false)
	reserved("sensor-0002", true)
	_, err = s.CreateIndividual(ctx, ind("sensor-0001", ""))
	must(t, err, "CreateIndividual(the freed name)")
	reserved("sensor-0001", true)

	must(t, s.DeleteIndividual(ctx, "ind-reg", etagA), "DeleteIndividual")
	reserved("ind-reg", false)
	reserved("sensor-0002", false)
}
