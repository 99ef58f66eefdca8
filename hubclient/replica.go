package hubclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Identity is what the hub keeps of a device: enough to admit it.
type Identity struct {
	DeviceID         string `json:"device_id"`
	RegistrationID   string `json:"registration_id"`
	Shard            string `json:"shard"`
	Enabled          bool   `json:"enabled"`
	AttestationType  string `json:"attestation_type"`
	X509Thumbprint   string `json:"x509_thumbprint,omitempty"`
	CAThumbprint     string `json:"ca_thumbprint,omitempty"`
	TPMEKHash        string `json:"tpm_ek_hash,omitempty"`
	TPMBoundKey      []byte `json:"tpm_bound_key,omitempty"`
	SymmetricKeyHash string `json:"symmetric_key_hash,omitempty"`
	InitialTwinJSON  string `json:"initial_twin_json,omitempty"`
	IoTEdge          bool   `json:"iot_edge,omitempty"`
	// IssuedSerial and IssuedThumbprint identify the operational
	// certificate Zerotouch issued the device, if any (admit a device
	// presenting it, once its chain verifies to IssuingCA and it is not
	// revoked); IssuedNotAfter is its expiry.
	IssuedSerial     string    `json:"issued_serial,omitempty"`
	IssuedThumbprint string    `json:"issued_thumbprint,omitempty"`
	IssuingCA        string    `json:"issuing_ca,omitempty"`
	IssuedNotAfter   time.Time `json:"issued_not_after,omitzero"`
	// DisabledReason says why a disabled identity is, when Zerotouch
	// disabled it by itself (CERTIFICATE_REVOKED: a CRL listed its
	// certificate).
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Version        int64     `json:"version"`
	Updated        time.Time `json:"updated"`
}

// FromPB converts a wire identity.
func FromPB(id *pb.DeviceIdentity) *Identity {
	out := &Identity{DeviceID: id.GetDeviceId(), RegistrationID: id.GetRegistrationId(), Shard: id.GetShard(), Enabled: id.GetEnabled(),
		AttestationType: id.GetAttestationType().String(), X509Thumbprint: id.GetX509Thumbprint(), CAThumbprint: id.GetCaThumbprint(),
		TPMEKHash: id.GetTpmEkHash(), TPMBoundKey: id.GetTpmBoundKey(), SymmetricKeyHash: id.GetSymmetricKeyHash(),
		InitialTwinJSON: id.GetInitialTwinJson(), IoTEdge: id.GetIotEdge(), DisabledReason: id.GetDisabledReason(), Version: id.GetVersion(), Updated: id.GetUpdateTime().AsTime()}
	if c := id.GetIssuedCertificate(); c != nil {
		out.IssuedSerial, out.IssuedThumbprint, out.IssuingCA, out.IssuedNotAfter = c.GetSerial(), c.GetSha256Thumbprint(), c.GetIssuingCa(), c.GetNotAfter().AsTime()
	}
	return out
}

// replicaFile is the replica on disk.
type replicaFile struct {
	// Cursors maps each shard to the cursor of the last event applied.
	Cursors    map[string]uint64    `json:"cursors"`
	Identities map[string]*Identity `json:"identities"`
}

// Replica is a hub's copy of its shards' identities, by device ID. It is
// safe for concurrent use.
type Replica struct {
	path string
	mu   sync.Mutex
	f    replicaFile
}

// OpenReplica loads the replica kept at path, or starts an empty one if the
// file does not exist.
func OpenReplica(path string) (*Replica, error) {
	r := &Replica{path: path, f: replicaFile{Cursors: map[string]uint64{}, Identities: map[string]*Identity{}}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &r.f); err != nil {
		return nil, fmt.Errorf("replica %s: %w", path, err)
	}
	if r.f.Cursors == nil {
		r.f.Cursors = map[string]uint64{}
	}
	if r.f.Identities == nil {
		r.f.Identities = map[string]*Identity{}
	}
	return r, nil
}

// Save writes the replica atomically (a temporary file, synced, renamed
// over the old one): a crash leaves the old or the new file, never half.
func (r *Replica) Save() error {
	r.mu.Lock()
	raw, err := json.Marshal(&r.f)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.path), filepath.Base(r.path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), r.path)
}

// Cursor returns the shard's cursor and whether the replica has one (a
// shard without one starts from a snapshot).
func (r *Replica) Cursor(shard string) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.f.Cursors[shard]
	return c, ok
}

// Forget drops the shard's cursor, so that it is resynced from a snapshot.
func (r *Replica) Forget(shard string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.f.Cursors, shard)
}

// Drop removes a shard the cluster no longer owns: its identities and its
// cursor. It returns how many identities went.
func (r *Replica) Drop(shard string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for dev, id := range r.f.Identities {
		if id.Shard == shard {
			delete(r.f.Identities, dev)
			n++
		}
	}
	delete(r.f.Cursors, shard)
	return n
}

// Shards returns the shards the replica has cursors for, sorted.
func (r *Replica) Shards() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.f.Cursors))
	for sh := range r.f.Cursors {
		out = append(out, sh)
	}
	sort.Strings(out)
	return out
}

// Get returns a device's identity, or nil.
func (r *Replica) Get(deviceID string) *Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id := r.f.Identities[deviceID]; id != nil {
		c := *id
		return &c
	}
	return nil
}

// Identities returns every identity, by device ID order.
func (r *Replica) Identities() []*Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Identity, 0, len(r.f.Identities))
	for _, id := range r.f.Identities {
		c := *id
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out
}

// Apply applies one event and advances the shard's cursor. It reports
// whether the event changed the replica: an event older than what the
// replica holds of the device (a duplicate, or overtaken by a later
// change) does not.
func (r *Replica) Apply(ev *pb.IdentityEvent) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.GetCursor() > r.f.Cursors[ev.GetShard()] {
		r.f.Cursors[ev.GetShard()] = ev.GetCursor()
	}
	id := ev.GetIdentity()
	cur := r.f.Identities[id.GetDeviceId()]
	if ev.GetKind() == pb.IdentityEventKind_IDENTITY_EVENT_KIND_DELETED {
		// Only the deletion of what the replica holds on that shard: a
		// device that moved between two of the hub's shards may be
		// created on the new one before it is deleted from the old.
		if cur == nil || cur.Shard != ev.GetShard() || cur.Version > id.GetVersion() {
			return false
		}
		delete(r.f.Identities, id.GetDeviceId())
		return true
	}
	if cur != nil && cur.Version >= id.GetVersion() {
		return false
	}
	r.f.Identities[id.GetDeviceId()] = FromPB(id)
	return true
}

// Reset replaces a shard's identities with a snapshot taken at cursor.
// Identities the replica holds at a newer version are kept.
func (r *Replica) Reset(shard string, snapshot []*pb.DeviceIdentity, cursor uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for dev, id := range r.f.Identities {
		if id.Shard == shard {
			delete(r.f.Identities, dev)
		}
	}
	for _, id := range snapshot {
		if cur := r.f.Identities[id.GetDeviceId()]; cur == nil || cur.Version < id.GetVersion() {
			r.f.Identities[id.GetDeviceId()] = FromPB(id)
		}
	}
	r.f.Cursors[shard] = cursor
}

// cursors returns a copy of every shard's cursor.
func (r *Replica) cursors() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.f.Cursors))
	for k, v := range r.f.Cursors {
		out[k] = v
	}
	return out
}
