package record

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// gen draws random values that probe the encoding's edges: empty strings,
// odd-length and uppercase hex, zero and far times, nil and empty slices.
type gen struct{ r *rand.Rand }

func (g gen) pick(n int) int { return g.r.IntN(n) }

func (g gen) hexString(n int) string {
	b := make([]byte, (n+1)/2)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

func (g gen) str() string {
	switch g.pick(8) {
	case 0:
		return ""
	case 1:
		return g.hexString(64)
	case 2:
		return g.hexString(1 + g.pick(40))
	case 3:
		return "ABCDEF0123"
	case 4:
		return "dévice-ü\x00\xff"
	case 5:
		return "0" + g.hexString(31)
	}
	return "sensor-" + g.hexString(g.pick(12))
}

// strOr returns def or a random string.
func (g gen) strOr(def string) string {
	if g.pick(3) == 0 {
		return g.str()
	}
	return def
}

func (g gen) time() time.Time {
	switch g.pick(6) {
	case 0:
		return time.Time{}
	case 1:
		return time.Date(1, 2, 3, 4, 5, 6, 7, time.UTC)
	case 2:
		return time.Date(3000, 1, 1, 0, 0, 0, int(g.r.Int64N(1e9)), time.UTC)
	case 3:
		return time.Unix(0, 0)
	}
	return time.Unix(1_700_000_000+g.r.Int64N(200_000_000), g.r.Int64N(1e9))
}

func (g gen) bytes() []byte {
	if g.pick(2) == 0 {
		return nil
	}
	b := make([]byte, 1+g.pick(300))
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

func (g gen) issued() *Issued {
	if g.pick(2) == 0 {
		return nil
	}
	if g.pick(10) == 0 {
		return &Issued{}
	}
	return &Issued{Serial: g.str(), Thumbprint: g.hexString(64), CA: g.str(), NotAfter: g.time(), At: g.time(), Policy: g.str(), Enrollment: g.str()}
}

func (g gen) registration() *Registration {
	reg := "dev-" + g.hexString(g.pick(20))
	if g.pick(10) == 0 {
		reg = g.str()
	}
	shard := g.str()
	created := g.time()
	r := &Registration{V: Version, RegistrationID: reg, DeviceID: g.strOr(reg), Shard: shard, Hub: g.str(), Status: g.strOr(defStatus),
		Substatus: g.strOr(defSubstatus), Attestation: []string{"x509", "tpm", "symmetricKey", "", "other"}[g.pick(5)], GroupID: g.str(),
		Individual: g.pick(2) == 0, Thumbprint: g.str(), InitialShard: g.strOr(shard), Payload: g.bytes(), Issued: g.issued(),
		Superseded: g.issued(), Etag: g.strOr(g.hexString(16)), Created: created, Updated: created}
	if g.pick(2) == 0 {
		r.Updated = g.time()
	}
	return r
}

func (g gen) identity() *Identity {
	dev := g.str()
	created := g.time()
	id := &Identity{V: Version, DeviceID: dev, RegistrationID: g.strOr(dev), Shard: g.str(), Status: g.strOr(defIdStatus),
		CredType: []string{"x509", "tpm", "symmetricKey", "", "other"}[g.pick(5)], X509Thumbprint: g.str(), CAThumbprint: g.str(),
		TPMEKHash: g.str(), TPMBoundKey: g.bytes(), SymKeyHash: g.str(), Issued: g.issued(), Twin: g.bytes(), Edge: g.pick(2) == 0,
		DisabledReason: g.str(), Version: g.r.Int64() - g.r.Int64(), Created: created, Updated: created}
	if g.pick(2) == 0 {
		id.Version = created.UnixMicro() + int64(g.pick(100))
	}
	if g.pick(2) == 0 {
		id.Updated = g.time()
	}
	for range g.pick(4) {
		id.Chain = append(id.Chain, CertRef{Issuer: g.str(), Serial: g.str()})
	}
	return id
}

// identityOf is an identity as a store derives it from a registration,
// with some fields changed.
func (g gen) identityOf(r *Registration) *Identity {
	id := g.identity()
	if g.pick(4) > 0 {
		id.DeviceID, id.RegistrationID, id.Shard, id.CredType = r.DeviceID, r.RegistrationID, r.Shard, r.Attestation
		id.Created, id.Updated = r.Created, r.Updated
		if r.Issued != nil && g.pick(2) == 0 {
			c := *r.Issued
			id.Issued = &c
		}
		switch id.CredType {
		case "x509":
			id.X509Thumbprint = r.Thumbprint
		case "tpm":
			id.TPMEKHash = r.Thumbprint
		case "symmetricKey":
			id.SymKeyHash = r.Thumbprint
		}
	}
	return id
}

// utc puts every time of v (a pointer to a record) in UTC, as decoding
// returns them.
func utc(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			utc(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			utc(v.Index(i))
		}
	case reflect.Struct:
		if t, ok := v.Addr().Interface().(*time.Time); ok {
			*t = t.UTC()
			return
		}
		for i := range v.NumField() {
			utc(v.Field(i))
		}
	}
}

func equal(t *testing.T, what string, i int, got, want any) {
	t.Helper()
	utc(reflect.ValueOf(want))
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("%s %d:\n got %s\nwant %s", what, i, g, w)
	}
}

// TestCompactRoundTrip: random registrations, identities, device records
// and events decode to what was encoded, every field (issued certificates,
// TPM bound keys, twins, payloads, disabled reasons, chains, times).
func TestCompactRoundTrip(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(1, 2))}
	for i := range 20000 {
		reg := g.registration()
		raw, err := reg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var gotReg Registration
		if err := gotReg.UnmarshalBinary(raw); err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
		equal(t, "registration", i, &gotReg, reg)

		id := g.identity()
		raw, _ = id.MarshalBinary()
		var gotID Identity
		if err := gotID.UnmarshalBinary(raw); err != nil {
			t.Fatalf("identity %d: %v", i, err)
		}
		equal(t, "identity", i, &gotID, id)

		reg, id = g.registration(), nil
		id = g.identityOf(reg)
		r2, id2, err := DecodeDevice(EncodeDevice(reg, id))
		if err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
		equal(t, "device registration", i, r2, reg)
		equal(t, "device identity", i, id2, id)

		ev := &Event{V: Version, Shard: g.str(), Kind: []string{"created", "updated", "disabled", "enabled", "deleted", "other", ""}[g.pick(7)],
			Time: g.time(), Identity: g.identity()}
		if g.pick(2) == 0 {
			ev.Nonce = string(g.bytes())
		}
		raw, err = ev.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		gotEv, err := DecodeEvent(raw, ev.Shard)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		equal(t, "event", i, gotEv, ev)
	}
}

// TestJSONRecordsStillDecode: records and events as earlier builds wrote
// them (JSON) decode through the same functions.
func TestJSONRecordsStillDecode(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(3, 4))}
	for i := range 2000 {
		reg := g.registration()
		reg.Created, reg.Updated = reg.Created.UTC(), reg.Updated.UTC()
		raw, _ := json.Marshal(reg)
		var gotReg Registration
		if err := gotReg.UnmarshalBinary(raw); err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
		var want Registration
		_ = json.Unmarshal(raw, &want)
		equal(t, "JSON registration", i, &gotReg, &want)

		id := g.identity()
		raw, _ = json.Marshal(id)
		var gotID, wantID Identity
		if err := gotID.UnmarshalBinary(raw); err != nil {
			t.Fatalf("identity %d: %v", i, err)
		}
		_ = json.Unmarshal(raw, &wantID)
		equal(t, "JSON identity", i, &gotID, &wantID)
	}
	// An event exactly as the previous build stored it.
	old := `{"v":1,"s":"shard-3","k":"created","t":"2026-11-29T10:07:29.765539674Z","i":{"v":1,"dev":"sensor-0000003","reg":"sensor-0000003","shard":"shard-3","st":"enabled","ct":"x509","x5t":"f2764fd79fdab5132fc349ba555c9c56ff0c935c889c17ebe3d61315d780934e","cat":"e8e10fe9538a373803728230b7e311a2c9451839f67fc8f1b7c1050377a8b9b4","ver":1795946849764088,"created":"2026-11-29T10:07:29.76408827Z","updated":"2026-11-29T10:07:29.76408827Z"},"n":"i9qDVin-0sQ"}`
	ev, err := DecodeEvent([]byte(old), "shard-3")
	if err != nil {
		t.Fatal(err)
	}
	d := ev.Domain(7)
	if d.Seq != 7 || d.Kind != "created" || d.Shard != "shard-3" || d.Identity.DeviceID != "sensor-0000003" || d.Identity.Version != 1795946849764088 ||
		d.Identity.Credential.X509Thumbprint != "f2764fd79fdab5132fc349ba555c9c56ff0c935c889c17ebe3d61315d780934e" ||
		!d.Time.Equal(time.Date(2026, 11, 29, 10, 7, 29, 765539674, time.UTC)) {
		t.Fatalf("old JSON event decoded as %+v %+v", d, d.Identity)
	}
	// The compact form is smaller, and never starts with '{'.
	raw, _ := ev.MarshalBinary()
	if IsJSON(raw) || len(raw) >= len(old)/3 {
		t.Fatalf("compact event: %d bytes (JSON %d)", len(raw), len(old))
	}
	if _, err := DecodeEvent([]byte{0x7f, 1, 2}, "s"); err == nil {
		t.Fatal("an unknown format decoded")
	}
	if _, err := DecodeEvent(append([]byte{CompactV1}, bytes.Repeat([]byte{0xff}, 4)...), "s"); err == nil {
		t.Fatal("a malformed event decoded")
	}
}
