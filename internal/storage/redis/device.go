package redis

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

// device is a registration and its identity: one key, so one write.
type device struct {
	R *registry.Registration
	I *registry.Identity
}

// deviceRecord is how earlier builds stored a device: registration and
// identity in one JSON value, with the fields they share written once,
// thumbprints as raw bytes and times as Unix nanoseconds. Devices are now
// written in the compact binary encoding (record.EncodeDevice, first byte
// record.CompactV1); records of this form (first byte '{') still decode.
// See docs/adr/0007-redis-layout.md.
type deviceRecord struct {
	V          int    `json:"v"`
	Reg        string `json:"r"`
	Dev        string `json:"d,omitempty"` // when it differs from Reg
	Shard      string `json:"s"`
	Hub        string `json:"h"`
	Status     string `json:"st,omitempty"` // omitted when "assigned"
	Substatus  string `json:"su,omitempty"` // omitted when "initialAssignment"
	Att        string `json:"a"`
	Group      string `json:"g,omitempty"`
	Individual bool   `json:"in,omitempty"`
	Thumb      []byte `json:"t,omitempty"`
	Etag       string `json:"e"`
	Created    int64  `json:"c"`
	Updated    int64  `json:"u"`
	// Identity fields that are not the registration's.
	IStatus  string `json:"is,omitempty"` // omitted when "enabled"
	ICred    string `json:"ic,omitempty"` // when it differs from Att
	IThumb   []byte `json:"it,omitempty"` // when it differs from Thumb
	ICA      []byte `json:"ica,omitempty"`
	IFP      []byte `json:"ifp,omitempty"` // credential fingerprint, when it differs from Thumb
	IBK      []byte `json:"ibk,omitempty"` // TPM: the bound key's TPM2B_PUBLIC
	IVersion int64  `json:"iv"`
	// Initial shard, when it differs from Shard; the identity's twin and
	// IoT Edge flag.
	IShard string          `json:"ish,omitempty"`
	ITwin  json.RawMessage `json:"itw,omitempty"`
	IEdge  bool            `json:"ie,omitempty"`
	// The custom allocation webhook's payload.
	Payload  json.RawMessage `json:"pl,omitempty"`
	ICreated int64           `json:"icr,omitempty"` // when it differs from Created
	IUpdated int64           `json:"iu,omitempty"`  // when it differs from Updated
	// The issued certificate (ADR 22): the registration's and, unless
	// IIss says otherwise, the identity's; the superseded one.
	Iss  *record.Issued `json:"x,omitempty"`
	IIss *record.Issued `json:"ix,omitempty"`
	Sup  *record.Issued `json:"xs,omitempty"`
	// The identity's X.509 chain as CRLs name it ("issuer:serial,…", both
	// hex), and why it is disabled (ADR 23).
	IChain string `json:"ic5,omitempty"`
	IDR    string `json:"idr,omitempty"`
}

// deviceRecordVersion is deviceRecord's "v".
const deviceRecordVersion = 1

// encodeDevice encodes a registration and its identity as one compact
// record (record.EncodeDevice): the bulk of Redis memory per device.
func encodeDevice(r *registry.Registration, etag string, id *registry.Identity) ([]byte, error) {
	return record.EncodeDevice(record.FromRegistration(r, etag), record.FromIdentity(id)), nil
}

// decodeDevice decodes a device record: compact, or JSON (deviceRecord) as
// earlier builds wrote it.
func decodeDevice(raw string) (*device, error) {
	if record.IsJSON([]byte(raw)) {
		return decodeDeviceJSON(raw)
	}
	reg, id, err := record.DecodeDevice([]byte(raw))
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode device record")
	}
	return &device{R: reg.Domain(), I: id.Domain()}, nil
}

func decodeChain(s string) ([]registry.CertRef, error) {
	if s == "" {
		return nil, nil
	}
	var out []registry.CertRef
	for _, pair := range strings.Split(s, ",") {
		issuer, serial, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, fault.New(fault.Internal, fault.InternalError, "decode device record: chain entry %q", pair)
		}
		out = append(out, registry.CertRef{Issuer: issuer, Serial: serial})
	}
	return out, nil
}

func orDefaultString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// decodeDeviceJSON decodes a device record of an earlier build.
func decodeDeviceJSON(raw string) (*device, error) {
	var rec deviceRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.V != deviceRecordVersion {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "decode device record (version %d)", rec.V)
	}
	devID := rec.Dev
	if devID == "" {
		devID = rec.Reg
	}
	thumb := hex.EncodeToString(rec.Thumb)
	r := &registry.Registration{RegistrationID: rec.Reg, DeviceID: devID, Shard: rec.Shard, AssignedHub: rec.Hub,
		Status:    registry.Status(orDefaultString(rec.Status, string(registry.Assigned))),
		Substatus: registry.Substatus(orDefaultString(rec.Substatus, string(registry.InitialAssignment))), AttestationType: registry.AttestationType(rec.Att),
		GroupID: rec.Group, Individual: rec.Individual, CredentialThumbprint: thumb, Etag: rec.Etag,
		InitialShard: orDefaultString(rec.IShard, rec.Shard), Payload: rec.Payload,
		Created: time.Unix(0, rec.Created).UTC(), Updated: time.Unix(0, rec.Updated).UTC()}
	id := &registry.Identity{DeviceID: devID, RegistrationID: rec.Reg, Shard: rec.Shard, Status: registry.IdentityStatus(orDefaultString(rec.IStatus, string(registry.IdentityEnabled))),
		Credential: registry.Credential{Type: r.AttestationType}, Version: rec.IVersion,
		InitialTwin: rec.ITwin, IoTEdge: rec.IEdge, DisabledReason: rec.IDR, Created: r.Created, Updated: r.Updated}
	chain, err := decodeChain(rec.IChain)
	if err != nil {
		return nil, err
	}
	id.Credential.X509Chain = chain
	if rec.ICred != "" {
		id.Credential.Type = registry.AttestationType(rec.ICred)
	}
	fingerprint, other := thumb, ""
	if rec.IFP != nil {
		fingerprint = hex.EncodeToString(rec.IFP)
	}
	if rec.IThumb != nil {
		other = hex.EncodeToString(rec.IThumb)
	}
	switch id.Credential.Type {
	case registry.TPM:
		id.Credential.TPMEKHash, id.Credential.X509Thumbprint, id.Credential.TPMBoundKey = fingerprint, other, rec.IBK
	case registry.SymmetricKey:
		id.Credential.SymmetricKeyHash = fingerprint
	default:
		id.Credential.X509Thumbprint, id.Credential.TPMEKHash = fingerprint, other
	}
	if rec.ICA != nil {
		id.Credential.CAThumbprint = hex.EncodeToString(rec.ICA)
	}
	r.Issued, r.Superseded, id.Credential.Issued = rec.Iss.Domain(), rec.Sup.Domain(), rec.Iss.Domain()
	if rec.IIss != nil {
		id.Credential.Issued = nil
		if rec.IIss.Serial != "" {
			id.Credential.Issued = rec.IIss.Domain()
		}
	}
	if rec.ICreated != 0 {
		id.Created = time.Unix(0, rec.ICreated).UTC()
	}
	if rec.IUpdated != 0 {
		id.Updated = time.Unix(0, rec.IUpdated).UTC()
	}
	return &device{R: r, I: id}, nil
}
