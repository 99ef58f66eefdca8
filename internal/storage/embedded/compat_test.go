package embedded

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

// TestJSONRecordsStillRead: a registration, identity and log event stored
// as JSON by an earlier build read back, and the next write stores them
// compactly.
func TestJSONRecordsStillRead(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	now := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	reg := &registry.Registration{RegistrationID: "old-dev", DeviceID: "old-dev", Shard: "s1", AssignedHub: "hub.example.com", Status: registry.Assigned,
		Substatus: registry.InitialAssignment, AttestationType: registry.TPM, Individual: true, CredentialThumbprint: "ab12", Payload: []byte(`{"p":1}`),
		Issued: &registry.IssuedCertificate{Serial: "0f", Thumbprint: "cd", IssuingCA: "ca", NotAfter: now.Add(time.Hour), At: now}, Created: now, Updated: now}
	id := &registry.Identity{DeviceID: "old-dev", RegistrationID: "old-dev", Shard: "s1", Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.TPM, TPMEKHash: "ab12", TPMBoundKey: []byte{0, 3, 1, 2, 3}}, InitialTwin: []byte(`{"t":1}`),
		Version: 42, Created: now, Updated: now}
	ev := record.FromEvent(registry.Event{Shard: "s1", Kind: registry.EventCreated, Time: now, Identity: id})
	err = s.db.Update(func(tx *bolt.Tx) error {
		put := func(b *bolt.Bucket, k string, v any) error {
			raw, _ := json.Marshal(v)
			return b.Put([]byte(k), raw)
		}
		if err := put(tx.Bucket(bReg), "old-dev", record.FromRegistration(reg, "7")); err != nil {
			return err
		}
		if err := put(tx.Bucket(bIdentity), "old-dev", record.FromIdentity(id)); err != nil {
			return err
		}
		if err := tx.Bucket(bIdentityReg).Put([]byte("old-dev"), []byte("old-dev")); err != nil {
			return err
		}
		if err := tx.Bucket(bRegShard).Put(indexKey("s1", "old-dev"), nil); err != nil {
			return err
		}
		lb, err := tx.Bucket(bLog).CreateBucketIfNotExists([]byte("s1"))
		if err != nil {
			return err
		}
		seq, _ := lb.NextSequence()
		return put(lb, string(seqKey(seq)), ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	gotReg, err := s.GetRegistration(ctx, "old-dev")
	if err != nil {
		t.Fatal(err)
	}
	if gotReg.Etag != "7" || gotReg.Issued == nil || gotReg.Issued.Serial != "0f" || string(gotReg.Payload) != `{"p":1}` || !gotReg.Created.Equal(now) {
		t.Fatalf("old registration read as %+v", gotReg)
	}
	gotID, err := s.GetIdentity(ctx, "old-dev")
	if err != nil {
		t.Fatal(err)
	}
	if gotID.Version != 42 || string(gotID.Credential.TPMBoundKey) != "\x00\x03\x01\x02\x03" || string(gotID.InitialTwin) != `{"t":1}` {
		t.Fatalf("old identity read as %+v", gotID)
	}
	events, err := s.ReadEvents(ctx, "s1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Seq != 1 || events[0].Kind != registry.EventCreated || events[0].Identity.Version != 42 {
		t.Fatalf("old events read as %+v", events)
	}

	// The next write stores the registration, identity and event compactly.
	gotID.Version, gotID.Updated = 43, now.Add(time.Second)
	gotReg.Updated = gotID.Updated
	if _, err := s.UpdateRegistration(ctx, gotReg, gotID); err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, raw := range [][]byte{tx.Bucket(bReg).Get([]byte("old-dev")), tx.Bucket(bIdentity).Get([]byte("old-dev")), tx.Bucket(bLog).Bucket([]byte("s1")).Get(seqKey(2))} {
			if len(raw) == 0 || raw[0] != record.CompactV1 {
				t.Errorf("record after a write: %q", raw)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if events, err = s.ReadEvents(ctx, "s1", 0, 10); err != nil || len(events) != 2 || events[1].Identity.Version != 43 {
		t.Fatalf("events after a write: %+v, %v", events, err)
	}
}
