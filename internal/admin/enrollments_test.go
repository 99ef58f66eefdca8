package admin

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

func TestCreateGroup(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	verifiedCA(t, s, "acme")
	verifiedCA(t, s, "spare")
	addShard(t, s, "s1", "")
	g, err := s.CreateGroup(ctx, &enrollment.Group{ID: "acme-devices", CAName: "acme", Allocation: hashedOn("s1")})
	if err != nil || g.Etag == "" || g.Mechanism != enrollment.MechanismX509 || g.Created.IsZero() {
		t.Fatalf("create: %+v %v", g, err)
	}
	cases := []struct {
		name string
		g    enrollment.Group
		want fault.Reason
	}{
		{"no id", enrollment.Group{CAName: "spare", Allocation: hashedOn()}, fault.FieldInvalid},
		{"bad id", enrollment.Group{ID: "a/b", CAName: "spare", Allocation: hashedOn()}, fault.FieldInvalid},
		{"no CA", enrollment.Group{ID: "g2", Allocation: hashedOn()}, fault.FieldInvalid},
		{"unknown CA", enrollment.Group{ID: "g2", CAName: "nobody", Allocation: hashedOn()}, fault.ResourceNotFound},
		{"CA has a group", enrollment.Group{ID: "g2", CAName: "acme", Allocation: hashedOn()}, fault.ResourceExists},
		{"id taken", enrollment.Group{ID: "acme-devices", CAName: "spare", Allocation: hashedOn()}, fault.ResourceExists},
		{"unknown shard", enrollment.Group{ID: "g2", CAName: "spare", Allocation: hashedOn("s1", "s9")}, fault.FieldInvalid},
		{"bad policy", enrollment.Group{ID: "g2", CAName: "spare", Allocation: enrollment.Allocation{Policy: "random"}}, fault.FieldInvalid},
		{"allow-list on X.509", enrollment.Group{ID: "g2", CAName: "spare", Allocation: hashedOn(), EKAllowList: []string{strings.Repeat("a", 64)}}, fault.FieldInvalid},
		{"bad settings", enrollment.Group{ID: "g2", CAName: "spare", Allocation: hashedOn(), DeviceSettings: enrollment.DeviceSettings{Reprovision: "sometimes"}}, fault.FieldInvalid},
		{"bad twin", enrollment.Group{ID: "g2", CAName: "spare", Allocation: hashedOn(), DeviceSettings: enrollment.DeviceSettings{InitialTwin: []byte(`[]`)}}, fault.FieldInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := s.CreateGroup(ctx, &tc.g)
			reason(t, err, tc.want)
			unchanged(t, s, before, tc.name)
		})
	}
}

func TestTPMGroupAllowList(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	h := func(c string) string { return strings.Repeat(c, 64) }
	many := make([]string, enrollment.MaxEKAllowList+1)
	for i := range many {
		many[i] = h("0")
	}
	cases := []struct {
		name string
		list []string
		want fault.Reason
		norm []string
	}{
		{"none", nil, "", nil},
		{"normalised", []string{h("A"), h("b")}, "", []string{h("a"), h("b")}},
		{"twice, any case", []string{h("a"), h("A")}, fault.FieldInvalid, nil},
		{"short", []string{"abcd"}, fault.FieldInvalid, nil},
		{"not hex", []string{h("g")}, fault.FieldInvalid, nil},
		{"too many", many, fault.FieldInvalid, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "vendor" + string(rune('a'+i))
			verifiedCA(t, s, name)
			before := snapshot(t, s)
			g, err := s.CreateGroup(ctx, &enrollment.Group{ID: name, CAName: name, Mechanism: enrollment.MechanismTPM, EKAllowList: tc.list, Allocation: hashedOn()})
			reason(t, err, tc.want)
			if tc.want != "" {
				unchanged(t, s, before, tc.name)
				return
			}
			got, err := s.GetGroup(ctx, g.ID)
			if err != nil || got.Mechanism != enrollment.MechanismTPM || !slices.Equal(got.EKAllowList, tc.norm) {
				t.Fatalf("stored: %+v %v", got, err)
			}
			// The list is checked on update too.
			got.EKAllowList = []string{"nope"}
			before = snapshot(t, s)
			_, err = s.UpdateGroup(ctx, got)
			reason(t, err, fault.FieldInvalid)
			unchanged(t, s, before, "update")
		})
	}
}

// TestSymmetricKeys: keys are generated when not given, checked when
// given, returned once, and stored only sealed to their record.
func TestSymmetricKeys(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	mine := bytes.Repeat([]byte{7}, 32)
	g, keys, err := s.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "sym", Allocation: hashedOn()}, mine, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys.Primary, mine) || len(keys.Secondary) != 32 || bytes.Equal(keys.Secondary, mine) || g.Mechanism != enrollment.MechanismSymmetricKey {
		t.Fatalf("group keys: %+v %+v", keys, g)
	}
	e, ikeys, err := s.CreateSymmetricIndividual(ctx, &enrollment.Individual{RegistrationID: "Sym-Dev", Allocation: hashedOn()}, nil, nil)
	if err != nil || len(ikeys.Primary) != 32 || len(ikeys.Secondary) != 32 || bytes.Equal(ikeys.Primary, ikeys.Secondary) || e.Mechanism != enrollment.MechanismSymmetricKey {
		t.Fatalf("individual: %+v %+v %v", e, ikeys, err)
	}
	storedG, err := s.GetGroup(ctx, "sym")
	if err != nil {
		t.Fatal(err)
	}
	storedE, err := s.GetIndividual(ctx, "sym-dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		sealed []byte
		aad    string
		want   *secrets.SymmetricKeys
	}{
		{"group", storedG.SealedKeys, secrets.GroupAAD("sym"), keys},
		{"individual", storedE.SealedKeys, secrets.IndividualAAD("Sym-Dev"), ikeys},
	} {
		for _, k := range [][]byte{tc.want.Primary, tc.want.Secondary} {
			if bytes.Contains(tc.sealed, k) || bytes.Contains(tc.sealed, []byte(base64.StdEncoding.EncodeToString(k))) {
				t.Fatalf("%s: a key is stored in the clear", tc.name)
			}
		}
		opened, err := s.Secrets.OpenKeys(tc.sealed, tc.aad)
		if err != nil || !bytes.Equal(opened.Primary, tc.want.Primary) || !bytes.Equal(opened.Secondary, tc.want.Secondary) {
			t.Fatalf("%s: opened %+v %v", tc.name, opened, err)
		}
		if _, err := s.Secrets.OpenKeys(tc.sealed, secrets.GroupAAD("other")); err == nil {
			t.Fatalf("%s: the sealed keys open for another record", tc.name)
		}
	}

	noKey := &Service{Store: s.Store, Now: s.Now, Rand: s.Rand}
	cases := []struct {
		name string
		do   func() error
		want fault.Reason
	}{
		{"short key", func() error {
			_, _, err := s.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "g2", Allocation: hashedOn()}, []byte("short"), nil)
			return err
		}, fault.FieldInvalid},
		{"long key", func() error {
			_, _, err := s.CreateSymmetricIndividual(ctx, &enrollment.Individual{RegistrationID: "d2", Allocation: hashedOn()}, nil, make([]byte, 100))
			return err
		}, fault.FieldInvalid},
		{"group with a CA", func() error {
			_, _, err := s.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "g2", CAName: "acme", Allocation: hashedOn()}, nil, nil)
			return err
		}, fault.FieldInvalid},
		{"group with an EK allow-list", func() error {
			_, _, err := s.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "g2", EKAllowList: []string{strings.Repeat("a", 64)}, Allocation: hashedOn()}, nil, nil)
			return err
		}, fault.FieldInvalid},
		{"bad group id", func() error {
			_, _, err := s.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "", Allocation: hashedOn()}, nil, nil)
			return err
		}, fault.FieldInvalid},
		{"bad registration id", func() error {
			_, _, err := s.CreateSymmetricIndividual(ctx, &enrollment.Individual{RegistrationID: "dev!", Allocation: hashedOn()}, nil, nil)
			return err
		}, fault.RegistrationIDInvalid},
		{"unknown shard", func() error {
			_, _, err := s.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "g2", Allocation: hashedOn("nowhere")}, nil, nil)
			return err
		}, fault.FieldInvalid},
		{"taken", func() error {
			_, _, err := s.CreateSymmetricIndividual(ctx, &enrollment.Individual{RegistrationID: "SYM-DEV", Allocation: hashedOn()}, nil, nil)
			return err
		}, fault.ResourceExists},
		{"no data key", func() error {
			_, _, err := noKey.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "g2", Allocation: hashedOn()}, nil, nil)
			return err
		}, fault.SASDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			reason(t, tc.do(), tc.want)
			unchanged(t, s, before, tc.name)
		})
	}
}

func TestCreateX509Individual(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	ca := mintCA(t, "Acme Root")
	dev := mintDevice(t, "dev-1", ca)
	thumb := enrollment.Thumbprint(dev.Cert.Raw)
	e, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev-1", Allocation: hashedOn()}, certPEM(dev.Cert))
	if err != nil || e.Thumbprint != thumb || e.Mechanism != enrollment.MechanismX509 || e.Etag == "" {
		t.Fatalf("by certificate: %+v %v", e, err)
	}
	// By thumbprint, in any case; stored lowercase.
	other := enrollment.Thumbprint(mintDevice(t, "dev-2", ca).Cert.Raw)
	e, err = s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev-2", DeviceID: "device-2", Thumbprint: strings.ToUpper(other), Allocation: hashedOn()}, "")
	if err != nil || e.Thumbprint != other || e.EffectiveDeviceID() != "device-2" {
		t.Fatalf("by thumbprint: %+v %v", e, err)
	}
	dev3 := mintDevice(t, "dev-3", ca)
	cases := []struct {
		name string
		e    enrollment.Individual
		pem  string
		want fault.Reason
	}{
		{"bad registration id", enrollment.Individual{RegistrationID: "dev 3"}, certPEM(dev3.Cert), fault.RegistrationIDInvalid},
		{"no registration id", enrollment.Individual{}, certPEM(dev3.Cert), fault.RegistrationIDInvalid},
		{"bad device id", enrollment.Individual{RegistrationID: "dev-3", DeviceID: "dev/3"}, certPEM(dev3.Cert), fault.FieldInvalid},
		{"CN is not the registration id", enrollment.Individual{RegistrationID: "dev-4"}, certPEM(dev3.Cert), fault.FieldInvalid},
		{"thumbprint disagrees", enrollment.Individual{RegistrationID: "dev-3", Thumbprint: other}, certPEM(dev3.Cert), fault.FieldInvalid},
		{"bad thumbprint", enrollment.Individual{RegistrationID: "dev-3", Thumbprint: "abc"}, "", fault.FieldInvalid},
		{"no credential", enrollment.Individual{RegistrationID: "dev-3"}, "", fault.FieldInvalid},
		{"not PEM", enrollment.Individual{RegistrationID: "dev-3"}, "certificate", fault.FieldInvalid},
		{"unknown shard", enrollment.Individual{RegistrationID: "dev-3", Allocation: hashedOn("s9")}, certPEM(dev3.Cert), fault.FieldInvalid},
		{"registration id taken, any case", enrollment.Individual{RegistrationID: "DEV-1", Allocation: hashedOn()}, certPEM(mintDevice(t, "DEV-1", ca).Cert), fault.ResourceExists},
		{"certificate taken", enrollment.Individual{RegistrationID: "dev-3", Thumbprint: thumb, Allocation: hashedOn()}, "", fault.ResourceExists},
		{"device ID is another's device ID", enrollment.Individual{RegistrationID: "dev-3", DeviceID: "device-2", Allocation: hashedOn()}, certPEM(dev3.Cert), fault.DeviceIDConflict},
		{"device ID is another's registration ID", enrollment.Individual{RegistrationID: "dev-3", DeviceID: "DEV-1", Allocation: hashedOn()}, certPEM(dev3.Cert), fault.DeviceIDConflict},
		{"device ID held by a group device's identity", enrollment.Individual{RegistrationID: "dev-3", DeviceID: "grp-dev", Allocation: hashedOn()}, certPEM(dev3.Cert), fault.DeviceIDConflict},
		{"device ID a group device's in another case", enrollment.Individual{RegistrationID: "dev-3", DeviceID: "GRP-DEV", Allocation: hashedOn()}, certPEM(dev3.Cert), fault.DeviceIDConflict},
	}
	registerDevice(t, s, "grp-dev", "s1", "g1")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := s.CreateIndividual(ctx, &tc.e, tc.pem)
			reason(t, err, tc.want)
			unchanged(t, s, before, tc.name)
		})
	}
}

func TestCreateTPMIndividual(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	// By the EK's PEM public key, with the registration ID derived.
	e, err := s.CreateTPMIndividual(ctx, &enrollment.Individual{Allocation: hashedOn()}, nil, ekPEM(t))
	if err != nil || e.Mechanism != enrollment.MechanismTPM || e.RegistrationID != tpm.RegistrationID(e.EKPublic) || e.Thumbprint != tpm.EKHash(e.EKPublic) {
		t.Fatalf("by PEM: %+v %v", e, err)
	}
	taken := e.EKPublic
	// By its TPM2B_PUBLIC, under a chosen ID.
	ek, err := tpm.EKFromPEM(ekPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	e, err = s.CreateTPMIndividual(ctx, &enrollment.Individual{RegistrationID: "tpm-1", Allocation: hashedOn()}, ek, "")
	if err != nil || e.RegistrationID != "tpm-1" || !bytes.Equal(e.EKPublic, ek) {
		t.Fatalf("by TPM2B_PUBLIC: %+v %v", e, err)
	}
	// A signing key is no EK.
	pub, err := tpm.ParsePublic("ek", ek)
	if err != nil {
		t.Fatal(err)
	}
	pub.ObjectAttributes.Decrypt, pub.ObjectAttributes.SignEncrypt = false, true
	signing := tpm.MarshalPublic(pub)
	cases := []struct {
		name   string
		regID  string
		ek     []byte
		ekPEM  string
		reason fault.Reason
	}{
		{"neither", "tpm-2", nil, "", fault.FieldInvalid},
		{"both", "tpm-2", ek, ekPEM(t), fault.FieldInvalid},
		{"PEM of no key", "tpm-2", nil, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", fault.FieldInvalid},
		{"P-384", "tpm-2", nil, publicKeyPEM(t, elliptic.P384()), fault.KeyUnsupported},
		{"not a TPM2B_PUBLIC", "tpm-2", []byte{0, 3, 1, 2, 3}, "", fault.TPMStructureInvalid},
		{"trailing bytes", "tpm-2", append(append([]byte(nil), ek...), 0), "", fault.TPMStructureInvalid},
		{"signing key", "tpm-2", signing, "", fault.TPMKeyAttributesInvalid},
		{"bad registration id", "tpm 2", nil, ekPEM(t), fault.RegistrationIDInvalid},
		{"EK taken", "tpm-2", taken, "", fault.ResourceExists},
		{"registration id taken", "TPM-1", nil, ekPEM(t), fault.ResourceExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := s.CreateTPMIndividual(ctx, &enrollment.Individual{RegistrationID: tc.regID, Allocation: hashedOn()}, tc.ek, tc.ekPEM)
			reason(t, err, tc.reason)
			unchanged(t, s, before, tc.name)
		})
	}
}

// TestUpdateEnrollments: updates need the current etag, are validated
// like creates, and change only what they may.
func TestUpdateEnrollments(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	addShard(t, s, "s1", "")
	verifiedCA(t, s, "acme")
	g, err := s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "acme", Allocation: hashedOn()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev-1", Thumbprint: strings.Repeat("c", 64), Allocation: hashedOn()}, "")
	if err != nil {
		t.Fatal(err)
	}
	groupWith := func(f func(*enrollment.Group)) func() error {
		return func() error {
			c := *g
			f(&c)
			_, err := s.UpdateGroup(ctx, &c)
			return err
		}
	}
	individualWith := func(f func(*enrollment.Individual)) func() error {
		return func() error {
			c := *e
			f(&c)
			_, err := s.UpdateIndividual(ctx, &c)
			return err
		}
	}
	cases := []struct {
		name string
		do   func() error
		want fault.Reason
	}{
		{"group without etag", groupWith(func(g *enrollment.Group) { g.Etag = "" }), fault.FieldInvalid},
		{"group with stale etag", groupWith(func(g *enrollment.Group) { g.Etag = "stale" }), fault.EtagMismatch},
		{"group on unknown shard", groupWith(func(g *enrollment.Group) { g.Allocation = hashedOn("s9") }), fault.FieldInvalid},
		{"group with bad settings", groupWith(func(g *enrollment.Group) { g.AdoptFrom = []string{"x", "x"} }), fault.FieldInvalid},
		{"unknown group", groupWith(func(g *enrollment.Group) { g.ID = "nobody" }), fault.ResourceNotFound},
		{"enrollment without etag", individualWith(func(e *enrollment.Individual) { e.Etag = "" }), fault.FieldInvalid},
		{"enrollment with stale etag", individualWith(func(e *enrollment.Individual) { e.Etag = "stale" }), fault.EtagMismatch},
		{"enrollment with bad device id", individualWith(func(e *enrollment.Individual) { e.DeviceID = "a b" }), fault.FieldInvalid},
		{"enrollment with bad allocation", individualWith(func(e *enrollment.Individual) { e.Allocation = enrollment.Allocation{Policy: enrollment.PolicyStatic} }), fault.FieldInvalid},
		{"unknown enrollment", individualWith(func(e *enrollment.Individual) { e.RegistrationID = "nobody" }), fault.ResourceNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			reason(t, tc.do(), tc.want)
			unchanged(t, s, before, tc.name)
		})
	}

	oldGroup, oldEnrollment := g.Etag, e.Etag
	g.Disabled, g.Allocation = true, hashedOn("s1")
	ug, err := s.UpdateGroup(ctx, g)
	if err != nil || ug.Etag == oldGroup || !ug.Disabled || !slices.Equal(ug.Shards, []string{"s1"}) || ug.CAName != "acme" {
		t.Fatalf("group update: %+v %v", ug, err)
	}
	e.DeviceID, e.Disabled = "device-1", true
	ue, err := s.UpdateIndividual(ctx, e)
	if err != nil || ue.Etag == oldEnrollment || !ue.Disabled || ue.EffectiveDeviceID() != "device-1" || ue.Thumbprint != e.Thumbprint {
		t.Fatalf("enrollment update: %+v %v", ue, err)
	}
	// The etag each update returned is the current one.
	if _, err := s.UpdateGroup(ctx, ug); err != nil {
		t.Fatalf("update with the returned etag: %v", err)
	}
	e.Etag = oldEnrollment
	_, err = s.UpdateIndividual(ctx, e)
	reason(t, err, fault.EtagMismatch)

	// Deletes: a stale etag refuses, "" deletes any version.
	before := snapshot(t, s)
	reason(t, s.DeleteIndividual(ctx, "dev-1", oldEnrollment), fault.EtagMismatch)
	reason(t, s.DeleteGroup(ctx, "g", oldGroup), fault.EtagMismatch)
	unchanged(t, s, before, "stale deletes")
	if err := s.DeleteIndividual(ctx, "DEV-1", ue.Etag); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, "g", ""); err != nil {
		t.Fatal(err)
	}
	reason(t, s.DeleteIndividual(ctx, "dev-1", ""), fault.ResourceNotFound)
	reason(t, s.DeleteGroup(ctx, "g", ""), fault.ResourceNotFound)
}

// TestUpdateIndividualDeviceIDConflict: an update may not move an
// individual enrollment's device ID onto another registration's identity,
// in any case, and a refused update changes nothing.
func TestUpdateIndividualDeviceIDConflict(t *testing.T) {
	s, _ := newAdmin(t)
	ctx := t.Context()
	ca := mintCA(t, "Acme Root")
	e, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev-1", Allocation: hashedOn()}, certPEM(mintDevice(t, "dev-1", ca).Cert))
	if err != nil {
		t.Fatal(err)
	}
	registerDevice(t, s, "grp-dev", "s1", "g1")
	for _, id := range []string{"grp-dev", "Grp-Dev"} {
		upd := *e
		upd.DeviceID = id
		_, err := s.UpdateIndividual(ctx, &upd)
		reason(t, err, fault.DeviceIDConflict)
	}
	if got, _ := s.Store.GetIndividual(ctx, "dev-1"); got.DeviceID != "" || got.Etag != e.Etag {
		t.Fatalf("a refused update changed the enrollment: %+v", got)
	}
}

// TestAdoptionNeedsRegistrationWrite: an enrollment that adopts another's
// registrations moves them, which otherwise takes RegistrationStatusWrite
// (a delete): a key with only EnrollmentWrite cannot set adoptFrom.
func TestAdoptionNeedsRegistrationWrite(t *testing.T) {
	s, _ := newAdmin(t)
	writer, _ := key(t, s, "writer", access.EnrollmentWrite)
	both, _ := key(t, s, "both", access.EnrollmentWrite, access.RegistrationWrite)
	adopting := enrollment.DeviceSettings{AdoptFrom: []string{"acme"}}
	as := func(k *access.Key) context.Context { return WithCaller(t.Context(), &Caller{KeyID: k.ID, Key: k}) }
	_, _, err := s.CreateSymmetricGroup(as(writer), &enrollment.Group{ID: "g1", Allocation: hashedOn(), DeviceSettings: adopting}, nil, nil)
	reason(t, err, fault.PermissionDeniedR)
	_, _, err = s.CreateSymmetricIndividual(as(writer), &enrollment.Individual{RegistrationID: "d1", Allocation: hashedOn(), DeviceSettings: adopting}, nil, nil)
	reason(t, err, fault.PermissionDeniedR)
	if _, err := s.GetGroup(t.Context(), "g1"); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("a refused create wrote the group: %v", err)
	}
	// Without adoption the writer creates; with both permissions, adoption.
	if _, _, err := s.CreateSymmetricGroup(as(writer), &enrollment.Group{ID: "g1", Allocation: hashedOn()}, nil, nil); err != nil {
		t.Fatal(err)
	}
	g, err := s.GetGroup(t.Context(), "g1")
	if err != nil {
		t.Fatal(err)
	}
	g.DeviceSettings = adopting
	_, err = s.UpdateGroup(as(writer), g)
	reason(t, err, fault.PermissionDeniedR)
	if g, err = s.UpdateGroup(as(both), g); err != nil {
		t.Fatalf("with RegistrationStatusWrite: %v", err)
	}
	// Once set, the writer may change the group's other fields, and
	// narrow the list, but not name another group.
	g.Disabled = true
	if g, err = s.UpdateGroup(as(writer), g); err != nil {
		t.Fatalf("the writer changing another field: %v", err)
	}
	g.AdoptFrom = []string{"acme", "other"}
	_, err = s.UpdateGroup(as(writer), g)
	reason(t, err, fault.PermissionDeniedR)
	g.AdoptFrom = nil
	if _, err := s.UpdateGroup(as(writer), g); err != nil {
		t.Fatalf("the writer dropping adoption: %v", err)
	}
	// The same for individual enrollments.
	e, _, err := s.CreateSymmetricIndividual(as(both), &enrollment.Individual{RegistrationID: "d1", Allocation: hashedOn(), DeviceSettings: adopting}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.DeviceID = "device-1"
	if e, err = s.UpdateIndividual(as(writer), e); err != nil {
		t.Fatalf("the writer changing an adopting enrollment's device ID: %v", err)
	}
	e.AdoptFrom = []string{"other"}
	_, err = s.UpdateIndividual(as(writer), e)
	reason(t, err, fault.PermissionDeniedR)
}
