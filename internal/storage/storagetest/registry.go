package storagetest

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

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
