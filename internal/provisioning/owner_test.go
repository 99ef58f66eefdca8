package provisioning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	"github.com/zerotouch/zerotouch/internal/storage/storagetest"
)

// The enrollments of the ownership tests: the registration ID's individual
// enrollment, group "a", group "b", group "b-adopt" (which adopts a's
// devices) and an individual enrollment that adopts a's devices.
const (
	kindNone       = "none"
	kindIndividual = "individual"
	// kindIndividualGone registered through an individual enrollment that
	// an operator has since deleted.
	kindIndividualGone  = "individual-deleted"
	kindGroupA          = "group-a"
	kindGroupB          = "group-b"
	kindGroupBAdopt     = "group-b-adopting-a"
	kindIndividualAdopt = "individual-adopting-a"
)

var attTypes = []registry.AttestationType{registry.X509, registry.TPM, registry.SymmetricKey}

// owned is what the ownership rule says, written out by hand for every
// (existing, attesting) pair: "" when the attempt may register, else the
// refusal's reason (TPM_EK_MISMATCH is decided by the attestation types,
// below).
var owned = map[[2]string]fault.Reason{
	{kindNone, kindIndividual}:      "",
	{kindNone, kindIndividualAdopt}: "",
	{kindNone, kindGroupA}:          "",
	{kindNone, kindGroupB}:          "",
	{kindNone, kindGroupBAdopt}:     "",

	{kindIndividual, kindIndividual}:      "",
	{kindIndividual, kindIndividualAdopt}: "",
	{kindIndividual, kindGroupA}:          fault.RegistrationOwned, // reserved
	{kindIndividual, kindGroupB}:          fault.RegistrationOwned,
	{kindIndividual, kindGroupBAdopt}:     fault.RegistrationOwned, // adoption is of groups' devices

	{kindIndividualGone, kindGroupA}:      fault.RegistrationOwned, // bound to the (deleted) individual enrollment
	{kindIndividualGone, kindGroupB}:      fault.RegistrationOwned,
	{kindIndividualGone, kindGroupBAdopt}: fault.RegistrationOwned,

	{kindGroupA, kindIndividual}:      fault.RegistrationOwned, // bound to a
	{kindGroupA, kindIndividualAdopt}: "",
	{kindGroupA, kindGroupA}:          "", // a new credential within the group: an update
	{kindGroupA, kindGroupB}:          fault.RegistrationOwned,
	{kindGroupA, kindGroupBAdopt}:     "",
}

// want is the expected outcome of one attempt.
func want(existing, attesting string, existingType, attType registry.AttestationType) fault.Reason {
	r := owned[[2]string{existing, attesting}]
	if r == "" && existing != kindNone && existingType == registry.TPM && attType == registry.TPM {
		return fault.TPMEKMismatch // always another TPM in these tests
	}
	return r
}

func isIndividual(kind string) bool {
	return kind == kindIndividual || kind == kindIndividualAdopt || kind == kindIndividualGone
}

// planOf is what attestation would have decided for a device matched by
// the enrollment kind, holding credential cred.
func planOf(regID, kind string, att registry.AttestationType, cred string) plan {
	p := plan{regID: regID, deviceID: regID, thumbprint: thumb(cred), attType: att, settings: enrollment.DeviceSettings{Reprovision: enrollment.ReprovisionNever}}
	switch kind {
	case kindIndividual, kindIndividualGone:
		p.individual = true
	case kindIndividualAdopt:
		p.individual, p.settings.AdoptFrom = true, []string{"a"}
	case kindGroupA:
		p.groupID = "a"
	case kindGroupB:
		p.groupID = "b"
	case kindGroupBAdopt:
		p.groupID, p.settings.AdoptFrom = "b-adopt", []string{"a"}
	}
	p.cred = registry.Credential{Type: att}
	switch att {
	case registry.X509:
		p.cred.X509Thumbprint, p.cred.CAThumbprint = p.thumbprint, thumb("ca-"+p.groupID)
	case registry.TPM:
		p.cred.TPMEKHash, p.cred.TPMBoundKey = p.thumbprint, []byte(cred)
	case registry.SymmetricKey:
		p.cred.SymmetricKeyHash = p.thumbprint
	}
	return p
}

// p0adopt is the AdoptFrom of the individual enrollment the attesting kind
// needs.
func p0adopt(attesting string) []string {
	if attesting == kindIndividualAdopt {
		return []string{"a"}
	}
	return nil
}

func thumb(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// stores are the backends the store-level tests run on.
func stores(t *testing.T) map[string]func(t *testing.T) storagetest.Store {
	return map[string]func(t *testing.T) storagetest.Store{
		"embedded": func(t *testing.T) storagetest.Store {
			s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"redis": func(t *testing.T) storagetest.Store {
			srv := redistest.Start(t, redistest.Options{})
			s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// newService is a registration service on store with one active shard.
func newService(t testing.TB, store storagetest.Store) *Service {
	t.Helper()
	if _, err := store.CreateShard(context.Background(), &allocation.Shard{ID: "s1", Hostname: "s1.hubs.example.com", Weight: 100, State: allocation.Active}); err != nil {
		t.Fatal(err)
	}
	return &Service{Enrollments: store, Shards: store, Registry: store, Challenges: store, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// enrollIndividual creates regID's individual enrollment (the ownership
// rule reads only that it exists).
func enrollIndividual(t testing.TB, store storagetest.Store, regID string, adoptFrom ...string) {
	t.Helper()
	ind := &enrollment.Individual{RegistrationID: regID, Mechanism: enrollment.MechanismX509, Thumbprint: thumb("enrollment-" + regID),
		DeviceSettings: enrollment.DeviceSettings{AdoptFrom: adoptFrom}}
	if _, err := store.CreateIndividual(context.Background(), ind); err != nil {
		t.Fatal(err)
	}
}

// createIndividual creates regID's individual enrollment assigning device
// ID deviceID ("" for the registration ID).
func createIndividual(store storagetest.Store, regID, deviceID string) error {
	_, err := store.CreateIndividual(context.Background(), &enrollment.Individual{RegistrationID: regID, DeviceID: deviceID,
		Mechanism: enrollment.MechanismX509, Thumbprint: thumb("enrollment-" + regID)})
	return err
}

// snapshot is what a refused attempt must leave as it was.
type snapshot struct {
	reg   registry.Registration
	ident registry.Identity
}

func snap(t *testing.T, store storagetest.Store, regID string) *snapshot {
	t.Helper()
	reg, err := store.GetRegistration(t.Context(), regID)
	if fault.KindOf(err) == fault.NotFound {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	ident, err := store.GetIdentity(t.Context(), reg.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot{*reg, *ident}
}

// TestOwnership runs every (existing enrollment kind × attesting
// enrollment kind × attestation type of each) through the registration
// use case on both stores: what the rule allows registers and moves the
// registration to the attesting enrollment; what it refuses answers its
// reason and leaves the registration and identity as they were.
func TestOwnership(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store := open(t)
			s := newService(t, store)
			ctx := t.Context()
			n := 0
			for pair := range owned {
				existing, attesting := pair[0], pair[1]
				for _, existingType := range attTypes {
					for _, attType := range attTypes {
						n++
						regID := fmt.Sprintf("dev-%d", n)
						// The individual enrollment comes before the first
						// registration when that registration is the
						// individual's, after it otherwise.
						if isIndividual(existing) {
							enrollIndividual(t, store, regID, p0adopt(attesting)...)
						}
						if existing != kindNone {
							if _, err := s.record(ctx, planOf(regID, existing, existingType, "first"), time.Now()); err != nil {
								t.Fatalf("%s: first registration by %s: %v", regID, existing, err)
							}
						}
						if !isIndividual(existing) && isIndividual(attesting) {
							enrollIndividual(t, store, regID, p0adopt(attesting)...)
						}
						if existing == kindIndividualGone {
							if err := store.DeleteIndividual(ctx, regID, ""); err != nil {
								t.Fatal(err)
							}
						}
						before := snap(t, store, regID)
						p := planOf(regID, attesting, attType, "second")
						_, err := s.record(ctx, p, time.Now())
						expect := want(existing, attesting, existingType, attType)
						what := fmt.Sprintf("%s registered by %s (%s), then %s (%s)", regID, existing, existingType, attesting, attType)
						if got := fault.ReasonOf(err); got != expect && !(expect == "" && err == nil) {
							t.Errorf("%s: reason %q (%v), want %q", what, got, err, expect)
							continue
						}
						after := snap(t, store, regID)
						if expect != "" {
							if !reflect.DeepEqual(before, after) {
								t.Errorf("%s: a refused attempt changed the registration:\n%+v\n%+v", what, before, after)
							}
							continue
						}
						if after.reg.Individual != p.individual || after.reg.GroupID != p.groupID ||
							after.reg.CredentialThumbprint != p.thumbprint || after.ident.Credential.Type != attType {
							t.Errorf("%s: registration %+v does not belong to the attesting device", what, after.reg)
						}
					}
				}
			}
		})
	}
}

func TestCheckOwnerTable(t *testing.T) {
	reg := func(individual bool, group string, att registry.AttestationType, cred string) *registry.Registration {
		return &registry.Registration{RegistrationID: "d", Individual: individual, GroupID: group, AttestationType: att, CredentialThumbprint: cred}
	}
	cases := []struct {
		name     string
		c        claim
		reserved bool
		existing *registry.Registration
		want     fault.Reason
	}{
		{"new ID, group", claim{regID: "d", groupID: "a"}, false, nil, ""},
		{"new ID reserved, group", claim{regID: "d", groupID: "a"}, true, nil, fault.RegistrationOwned},
		{"new ID reserved, group adopting everything", claim{regID: "d", groupID: "a", adoptFrom: []string{"b"}}, true, nil, fault.RegistrationOwned},
		{"new ID, individual", claim{regID: "d", individual: true}, true, nil, ""},
		{"same group, new certificate", claim{regID: "d", groupID: "a", attType: registry.X509, thumbprint: "2"}, false, reg(false, "a", registry.X509, "1"), ""},
		{"other group", claim{regID: "d", groupID: "b", attType: registry.X509, thumbprint: "2"}, false, reg(false, "a", registry.X509, "1"), fault.RegistrationOwned},
		{"group IDs are exact", claim{regID: "d", groupID: "A"}, false, reg(false, "a", registry.X509, "1"), fault.RegistrationOwned},
		{"other group adopting", claim{regID: "d", groupID: "b", adoptFrom: []string{"c", "a"}}, false, reg(false, "a", registry.X509, "1"), ""},
		{"other group adopting another", claim{regID: "d", groupID: "b", adoptFrom: []string{"c"}}, false, reg(false, "a", registry.X509, "1"), fault.RegistrationOwned},
		{"group over an individual's registration", claim{regID: "d", groupID: "b", adoptFrom: []string{""}}, false, reg(true, "", registry.X509, "1"), fault.RegistrationOwned},
		{"individual over a group's registration", claim{regID: "d", individual: true}, true, reg(false, "a", registry.X509, "1"), fault.RegistrationOwned},
		{"a registration with no owner", claim{regID: "d", groupID: "a", adoptFrom: []string{""}}, false, reg(false, "", registry.X509, "1"), fault.RegistrationOwned},
		{"same TPM", claim{regID: "d", groupID: "a", attType: registry.TPM, thumbprint: "1"}, false, reg(false, "a", registry.TPM, "1"), ""},
		{"another TPM in the group", claim{regID: "d", groupID: "a", attType: registry.TPM, thumbprint: "2"}, false, reg(false, "a", registry.TPM, "1"), fault.TPMEKMismatch},
		{"another TPM in another group", claim{regID: "d", groupID: "b", attType: registry.TPM, thumbprint: "2"}, false, reg(false, "a", registry.TPM, "1"), fault.RegistrationOwned},
		{"a TPM device moves to X.509 in its group", claim{regID: "d", groupID: "a", attType: registry.X509, thumbprint: "2"}, false, reg(false, "a", registry.TPM, "1"), ""},
	}
	for _, tc := range cases {
		err := checkOwner(tc.c, tc.reserved, tc.existing)
		if got := fault.ReasonOf(err); got != tc.want && !(tc.want == "" && err == nil) {
			t.Errorf("%s: %q (%v), want %q", tc.name, got, err, tc.want)
		}
		if err != nil && fault.KindOf(err) != fault.PermissionDenied {
			t.Errorf("%s: kind %v, want permission denied", tc.name, fault.KindOf(err))
		}
	}
}

// TestDeviceIDIsReserved: an individual enrollment's custom device ID is
// reserved like its registration ID. A group device, whose device ID is its
// registration ID, cannot register under it (it would take the hub
// identity the enrollment's device is to get), on both stores; the
// enrollment's own device then registers with that device ID.
func TestDeviceIDIsReserved(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store := open(t)
			s := newService(t, store)
			ctx := t.Context()
			if err := createIndividual(store, "ind-reg", "sensor-0001"); err != nil {
				t.Fatal(err)
			}
			for _, kind := range []string{kindGroupA, kindGroupBAdopt} {
				for _, att := range attTypes {
					for _, id := range []string{"sensor-0001", "SENSOR-0001"} {
						_, err := s.record(ctx, planOf(id, kind, att, "squatter"), time.Now())
						if fault.ReasonOf(err) != fault.RegistrationOwned {
							t.Fatalf("%s (%s) under %s: %v, want REGISTRATION_OWNED", kind, att, id, err)
						}
						if snap(t, store, id) != nil {
							t.Fatalf("%s: a refused attempt left a registration", id)
						}
					}
				}
			}
			p := planOf("ind-reg", kindIndividual, registry.X509, "real")
			p.deviceID = "sensor-0001"
			reg, err := s.record(ctx, p, time.Now())
			if err != nil || reg.DeviceID != "sensor-0001" {
				t.Fatalf("the enrolled device: %+v, %v", reg, err)
			}
		})
	}
}

// TestLookupIsOwned: DPS's status lookup shows a device only its own
// registration.
func TestLookupIsOwned(t *testing.T) {
	store := stores(t)["embedded"](t)
	s := newService(t, store)
	if _, err := s.record(t.Context(), planOf("dev-1", kindGroupA, registry.X509, "real"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.lookup(t.Context(), planOf("dev-1", kindGroupB, registry.X509, "attacker")); fault.ReasonOf(err) != fault.RegistrationOwned {
		t.Fatalf("lookup by another group: %v", err)
	}
	if reg, err := s.lookup(t.Context(), planOf("dev-1", kindGroupA, registry.X509, "renewed")); err != nil || reg.RegistrationID != "dev-1" {
		t.Fatalf("lookup by its group: %v, %v", reg, err)
	}
	if _, err := s.lookup(t.Context(), planOf("dev-2", kindGroupA, registry.X509, "new")); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("lookup of no registration: %v", err)
	}
}

// FuzzOwnership replays random sequences of attempts (which enrollment
// matched, which credential, which attestation type, whether an operator
// created or deleted the individual enrollment or the registration) for
// one registration ID through the registration use case on the embedded
// store, and checks the store against a model of the rule written apart
// from checkOwner: a registration never changes enrollment unless the
// attesting enrollment adopts from its group, never goes to a group while
// an individual enrollment reserves the ID (as its registration ID or as
// the device ID it assigns), and a refused attempt changes nothing.
func FuzzOwnership(f *testing.F) {
	f.Add([]byte{0x00, 0x21, 0x42, 0x13})
	f.Add([]byte{0x10, 0x05, 0x31, 0x52, 0x73, 0x06})
	f.Add([]byte{0x41, 0x07, 0x22, 0x41, 0x01})
	f.Add([]byte{0x33, 0x33, 0x13, 0x06, 0x34})
	store, err := embedded.Open(filepath.Join(f.TempDir(), "zerotouch.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	s := newService(f, store)
	kinds := []string{kindIndividual, kindIndividualAdopt, kindGroupA, kindGroupB, kindGroupBAdopt}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 32 {
			ops = ops[:32]
		}
		ctx := t.Context()
		regID := fmt.Sprintf("fuzz-%d", n.Add(1))
		reservedBy := "" // "" or the individual enrollment's kind
		// byDevice: another registration ID's individual enrollment
		// assigns regID as its device ID.
		byDevice := false
		other := regID + "-other"
		for i, op := range ops {
			switch op % 8 {
			case 5: // an operator creates an individual enrollment
				switch {
				case op&0x20 != 0 && byDevice:
				case op&0x20 != 0: // for another ID, assigning device ID regID
					err := createIndividual(store, other, regID)
					if reservedBy != "" {
						if fault.ReasonOf(err) != fault.DeviceIDConflict {
							t.Fatalf("op %d: a second reservation of %s: %v", i, regID, err)
						}
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					byDevice = true
				case byDevice: // regID's own, refused: its name is taken
					if err := createIndividual(store, regID, ""); fault.ReasonOf(err) != fault.DeviceIDConflict {
						t.Fatalf("op %d: the individual enrollment of a name another reserves: %v", i, err)
					}
				case reservedBy == "":
					reservedBy = kindIndividual
					if op&0x10 != 0 {
						reservedBy = kindIndividualAdopt
						enrollIndividual(t, store, regID, "a")
					} else {
						enrollIndividual(t, store, regID)
					}
				}
				continue
			case 6: // an operator deletes the individual enrollment(s)
				if reservedBy != "" {
					if err := store.DeleteIndividual(ctx, regID, ""); err != nil {
						t.Fatal(err)
					}
					reservedBy = ""
				}
				if byDevice {
					if err := store.DeleteIndividual(ctx, other, ""); err != nil {
						t.Fatal(err)
					}
					byDevice = false
				}
				continue
			case 7: // an operator deletes the registration
				if before := snap(t, store, regID); before != nil {
					if err := store.DeleteRegistration(ctx, regID, ""); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			kind := kinds[int(op%8)%len(kinds)]
			if isIndividual(kind) {
				if reservedBy == "" {
					continue // no individual enrollment can match
				}
				kind = reservedBy
			}
			att := attTypes[int(op>>4)%len(attTypes)]
			cred := fmt.Sprintf("cred-%d", (op>>6)&1)
			before := snap(t, store, regID)
			p := planOf(regID, kind, att, cred)
			_, err := s.record(ctx, p, time.Now())
			after := snap(t, store, regID)
			// The model.
			mayOwn := (reservedBy == "" && !byDevice) || isIndividual(kind)
			if mayOwn && before != nil {
				sameOwner := before.reg.Individual == p.individual && before.reg.GroupID == p.groupID
				adopts := !before.reg.Individual && before.reg.GroupID != "" && strings.Contains(","+strings.Join(p.settings.AdoptFrom, ",")+",", ","+before.reg.GroupID+",")
				mayOwn = sameOwner || adopts
			}
			cloned := before != nil && before.reg.AttestationType == registry.TPM && att == registry.TPM && before.reg.CredentialThumbprint != p.thumbprint
			switch {
			case mayOwn && !cloned && err != nil && fault.ReasonOf(err) != fault.RegistrationDisabled:
				t.Fatalf("op %d: %s (%s, %s) refused: %v", i, kind, att, cred, err)
			case (!mayOwn || cloned) && err == nil:
				t.Fatalf("op %d: %s (%s, %s) registered over %+v", i, kind, att, cred, before)
			case err != nil && !reflect.DeepEqual(before, after):
				t.Fatalf("op %d: refused attempt changed %+v to %+v", i, before, after)
			case err == nil && (after.reg.Individual != p.individual || after.reg.GroupID != p.groupID):
				t.Fatalf("op %d: registration %+v, want it owned by %s", i, after.reg, kind)
			}
		}
	})
}
