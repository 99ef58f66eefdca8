package redis

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

func randHex(r *rand.Rand, n int) string {
	b := make([]byte, (n+1)/2)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

func randBytes(r *rand.Rand) []byte {
	if r.IntN(2) == 0 {
		return nil
	}
	b := make([]byte, 1+r.IntN(300))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randIssued(r *rand.Rand, at time.Time) *registry.IssuedCertificate {
	if r.IntN(2) == 0 {
		return nil
	}
	return &registry.IssuedCertificate{Serial: randHex(r, 1+r.IntN(40)), Thumbprint: randHex(r, 64), IssuingCA: "issuing-" + randHex(r, 4),
		NotAfter: at.Add(90 * 24 * time.Hour), At: at, Policy: []string{"", "short-lived"}[r.IntN(2)], Enrollment: "g:acme@" + randHex(r, 8)}
}

// randDevice is a random registration and identity as provisioning makes
// them: X.509 (with a chain), TPM (with a bound key) or symmetric key,
// sometimes with an issued certificate, twin, payload, a disabled reason,
// another shard or device ID, later updates.
func randDevice(r *rand.Rand, i int) (*registry.Registration, *registry.Identity) {
	now := time.Unix(1_790_000_000+int64(i), r.Int64N(1e9))
	att := []registry.AttestationType{registry.X509, registry.TPM, registry.SymmetricKey}[r.IntN(3)]
	regID := fmt.Sprintf("Device-%d", i)
	devID := regID
	if r.IntN(4) == 0 {
		devID = "other-" + randHex(r, 6)
	}
	reg := &registry.Registration{RegistrationID: regID, DeviceID: devID, Shard: fmt.Sprintf("shard-%d", r.IntN(4)), AssignedHub: "hub.example.com",
		Status: registry.Assigned, Substatus: []registry.Substatus{registry.InitialAssignment, "deviceDataUpdated", "reprovisionedToInitialAssignment"}[r.IntN(3)],
		AttestationType: att, CredentialThumbprint: randHex(r, 64), Payload: randBytes(r), Created: now, Updated: now}
	if r.IntN(2) == 0 {
		reg.GroupID = "group-" + randHex(r, 4)
	} else {
		reg.Individual = true
	}
	reg.InitialShard = reg.Shard
	if r.IntN(4) == 0 {
		reg.InitialShard = "shard-9"
	}
	if r.IntN(3) == 0 {
		reg.Updated = now.Add(time.Duration(r.Int64N(int64(time.Hour))))
	}
	reg.Issued, reg.Superseded = randIssued(r, now), randIssued(r, now.Add(-time.Hour))
	id := &registry.Identity{DeviceID: devID, RegistrationID: regID, Shard: reg.Shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: att, Issued: reg.Issued}, InitialTwin: randBytes(r), IoTEdge: r.IntN(3) == 0,
		Version: registry.NextVersion(0, now), Created: reg.Created, Updated: reg.Updated}
	if r.IntN(4) == 0 {
		id.Credential.Issued = randIssued(r, now)
	}
	if r.IntN(3) == 0 {
		id.Status, id.DisabledReason = registry.IdentityDisabled, []string{"", "CERTIFICATE_REVOKED"}[r.IntN(2)]
	}
	switch att {
	case registry.X509:
		id.Credential.X509Thumbprint = reg.CredentialThumbprint
		if reg.GroupID != "" {
			id.Credential.CAThumbprint = randHex(r, 64)
			for range 1 + r.IntN(3) {
				id.Credential.X509Chain = append(id.Credential.X509Chain, registry.CertRef{Issuer: randHex(r, 64), Serial: randHex(r, 1+r.IntN(40))})
			}
		}
	case registry.TPM:
		id.Credential.TPMEKHash, id.Credential.TPMBoundKey = reg.CredentialThumbprint, randBytes(r)
		if r.IntN(3) == 0 {
			id.Credential.X509Thumbprint = randHex(r, 64) // a TPM device's issued X.509 credential
		}
	case registry.SymmetricKey:
		id.Credential.SymmetricKeyHash = reg.CredentialThumbprint
	}
	if r.IntN(5) == 0 {
		id.Credential.X509Thumbprint, id.Credential.TPMEKHash = randHex(r, 64), randHex(r, 64) // re-attested with another credential
	}
	if r.IntN(4) == 0 {
		id.Updated = id.Updated.Add(time.Minute)
		id.Version += 60_000_000
	}
	return reg, id
}

// utcTimes puts every time reachable from v in UTC, as decoding returns them.
func utcTimes(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			utcTimes(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			utcTimes(v.Index(i))
		}
	case reflect.Struct:
		if t, ok := v.Addr().Interface().(*time.Time); ok {
			*t = t.UTC()
			return
		}
		for i := range v.NumField() {
			utcTimes(v.Field(i))
		}
	}
}

// TestDeviceRecordRoundTrip: a random registration and identity decode to
// what was written, every field, etag and times included.
func TestDeviceRecordRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		reg, id := randDevice(r, i)
		etag := randHex(r, 16)
		raw, err := encodeDevice(reg, etag, id)
		if err != nil {
			t.Fatal(err)
		}
		if raw[0] != record.CompactV1 {
			t.Fatalf("device %d: format byte %#x", i, raw[0])
		}
		d, err := decodeDevice(string(raw))
		if err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
		reg.Etag = etag
		id.DisabledReason = record.KeptDisabledReason(id)
		utcTimes(reflect.ValueOf(reg))
		utcTimes(reflect.ValueOf(id))
		if !reflect.DeepEqual(d.R, reg) {
			t.Fatalf("device %d registration:\n got %+v\nwant %+v", i, d.R, reg)
		}
		if !reflect.DeepEqual(d.I, id) {
			t.Fatalf("device %d identity:\n got %+v\nwant %+v", i, d.I, id)
		}
	}
}

// oldDevices are device records as the previous build stored them (JSON):
// an X.509 group device with its chain, and a TPM device with everything
// (bound key, twin, payload, issued and superseded certificates, a
// disabled reason, another device ID and initial shard).
var oldDevices = []string{
	`{"v":1,"r":"sensor-0000003","s":"shard-3","h":"hub-3.example.com","a":"x509","g":"acme-line-1","t":"8nZP15/atRMvw0m6VVycVv8Mk1yInBfr49YTFdeAk04=","e":"098c32e7f15cd661","c":1795946849764088270,"u":1795946849764088270,"ica":"6OEP6VOKNzgDcoIwt+MRoslFGDn2f8jxt8EFA3eoubQ=","iv":1795946849764088,"ic5":"e7b50f4ea3fb2db8ca6d5a635c7a8eb36b40e60d697ee6386bef1797bd1d7d22:91e50fdb1286b3a2d04b32769d626aa6,4813494d137e1631bba301d5acab6e7bb7aa74ce1185d456565ef51d737677b2:31f2b4bf9ade6beef5428277d1b9d35b"}`,
	`{"v":1,"r":"Tpm-Dev","d":"tpm-device-id","s":"shard-2","h":"hub-2.example.com","su":"deviceDataUpdated","a":"tpm","in":true,"t":"8nZP15/atRMvw0m6VVycVv8Mk1yInBfr49YTFdeAk04=","e":"0123456789abcdef","c":1700000000000000001,"u":1700000000500000000,"is":"disabled","it":"6OEP6VOKNzgDcoIwt+MRoslFGDn2f8jxt8EFA3eoubQ=","ibk":"AAMBAgM=","iv":1700000000500000,"ish":"shard-1","itw":{"tags":{"a":1}},"ie":true,"pl":{"x":"y"},"x":{"sn":"1f","t":"aa","ca":"issuing","na":"2024-01-01T00:00:00Z","at":"2023-11-14T22:13:20Z","p":"short","e":"i:Tpm-Dev@1"},"xs":{"sn":"1e","t":"bb","ca":"issuing","na":"2023-12-01T00:00:00Z","at":"2023-11-14T22:13:20Z"},"ix":{"sn":"","t":"","ca":"","na":"0001-01-01T00:00:00Z","at":"0001-01-01T00:00:00Z"},"idr":"CERTIFICATE_REVOKED","icr":1699999999000000000}`,
}

// TestOldDeviceRecordsDecode: the JSON records of the previous build
// decode, and re-encoded compactly (as the next write does) decode to the
// same device.
func TestOldDeviceRecordsDecode(t *testing.T) {
	for i, raw := range oldDevices {
		d, err := decodeDevice(raw)
		if err != nil {
			t.Fatalf("old record %d: %v", i, err)
		}
		enc, err := encodeDevice(d.R, d.R.Etag, d.I)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decodeDevice(string(enc))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d2, d) {
			t.Fatalf("old record %d re-encoded:\n got %+v %+v\nwant %+v %+v", i, d2.R, d2.I, d.R, d.I)
		}
		t.Logf("old record %d: %d bytes of JSON, %d compact", i, len(raw), len(enc))
	}
	x := must(decodeDevice(oldDevices[0]))
	if x.R.Etag != "098c32e7f15cd661" || x.I.Credential.CAThumbprint != "e8e10fe9538a373803728230b7e311a2c9451839f67fc8f1b7c1050377a8b9b4" ||
		len(x.I.Credential.X509Chain) != 2 || x.I.Credential.X509Chain[1].Serial != "31f2b4bf9ade6beef5428277d1b9d35b" || x.I.Version != 1795946849764088 {
		t.Fatalf("X.509 record decoded as %+v %+v", x.R, x.I)
	}
	p := must(decodeDevice(oldDevices[1]))
	if p.R.DeviceID != "tpm-device-id" || p.R.InitialShard != "shard-1" || p.I.Status != registry.IdentityDisabled || p.I.DisabledReason != "CERTIFICATE_REVOKED" ||
		string(p.I.Credential.TPMBoundKey) != "\x00\x03\x01\x02\x03" || string(p.I.InitialTwin) != `{"tags":{"a":1}}` || string(p.R.Payload) != `{"x":"y"}` ||
		p.R.Issued == nil || p.R.Issued.Serial != "1f" || p.R.Superseded == nil || p.I.Credential.Issued != nil || !p.I.IoTEdge ||
		p.I.Created.UnixNano() != 1699999999000000000 || p.R.Created.UnixNano() != 1700000000000000001 || p.I.Credential.X509Thumbprint == "" {
		t.Fatalf("TPM record decoded as %+v %+v", p.R, p.I)
	}
}

// TestOldEventDecodes: a log entry as the previous build stored it (JSON)
// still decodes.
func TestOldEventDecodes(t *testing.T) {
	old := `{"v":1,"s":"shard-3","k":"created","t":"2026-11-29T10:07:29.765539674Z","i":{"v":1,"dev":"sensor-0000003","reg":"sensor-0000003","shard":"shard-3","st":"enabled","ct":"x509","x5t":"f2764fd79fdab5132fc349ba555c9c56ff0c935c889c17ebe3d61315d780934e","cat":"e8e10fe9538a373803728230b7e311a2c9451839f67fc8f1b7c1050377a8b9b4","ver":1795946849764088,"created":"2026-11-29T10:07:29.76408827Z","updated":"2026-11-29T10:07:29.76408827Z"},"n":"i9qDVin-0sQ"}`
	ev, err := decodeEvent(old, "shard-3", 12)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 12 || ev.Kind != registry.EventCreated || ev.Identity.DeviceID != "sensor-0000003" || ev.Identity.Version != 1795946849764088 {
		t.Fatalf("old event decoded as %+v %+v", ev, ev.Identity)
	}
	entries, err := outboxEntries(nil, ev.Identity)
	if err != nil || len(entries) != 1 {
		t.Fatal(entries, err)
	}
	shard, raw, _ := cutNUL(entries[0].(string))
	if shard != "shard-3" {
		t.Fatalf("outbox entry for shard %q", shard)
	}
	got, err := decodeEvent(raw, shard, 13)
	if err != nil || got.Identity.Version != ev.Identity.Version || !reflect.DeepEqual(got.Identity.Credential, ev.Identity.Credential) {
		t.Fatalf("compact event: %+v, %v", got, err)
	}
	t.Logf("event: %d bytes of JSON, %d compact", len(old), len(raw))
}

func cutNUL(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
