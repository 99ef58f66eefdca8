package record

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/zerotouch/zerotouch/internal/storage/record/wire"
)

// The compact binary encoding of the records stored once per device
// (registrations, identities, assignment-log events; the Redis device
// record combines a registration and its identity). A value is a format
// byte (CompactV1) and then protobuf wire-format fields, written by hand
// with protowire: no generated code, and no schema outside this file.
//
//   - Fields equal to their default are left out. Defaults are fixed
//     ("assigned", "enabled", x509) or derived from what the value is
//     stored with: a device ID defaults to the registration ID, an
//     identity's shard to its event's or registration's shard, an
//     updated time to the created time.
//   - Hex strings (thumbprints, issuer IDs, serials, etags) are stored as
//     their bytes when they are lowercase hex, so a SHA-256 takes 32 bytes
//     rather than 64; an odd-length one has its own field number, and
//     anything else is stored as a string, so every value round-trips
//     exactly.
//   - Times are Unix nanoseconds (zigzag varints); a time outside
//     int64 nanoseconds (the zero time) is seconds and nanoseconds.
//   - Unknown fields are skipped.
//
// JSON records (first byte '{') written by earlier builds still decode:
// every reader accepts both.

// CompactV1 is the first byte of a compact record.
const CompactV1 byte = 0x01

// IsJSON reports whether raw is a JSON record of an earlier build.
func IsJSON(raw []byte) bool { return len(raw) > 0 && raw[0] == '{' }

// hexNums are the field numbers of one hex string: even-length lowercase
// hex as bytes, odd-length as the bytes of "0"+s, anything else as a
// string.
type hexNums struct{ even, odd, str wire.Number }

// timeNums are the field numbers of one time: Unix nanoseconds, or
// seconds and nanoseconds.
type timeNums struct{ nanos, secs wire.Number }

type enc struct{ b []byte }

func (e *enc) str(num wire.Number, s string) {
	e.b = wire.AppendTag(e.b, num, wire.BytesType)
	e.b = wire.AppendString(e.b, s)
}

// strDef writes s unless it is def.
func (e *enc) strDef(num wire.Number, s, def string) {
	if s != def {
		e.str(num, s)
	}
}

func (e *enc) bytes(num wire.Number, v []byte) {
	if len(v) > 0 {
		e.b = wire.AppendTag(e.b, num, wire.BytesType)
		e.b = wire.AppendBytes(e.b, v)
	}
}

func (e *enc) uvarint(num wire.Number, v uint64) {
	e.b = wire.AppendTag(e.b, num, wire.VarintType)
	e.b = wire.AppendVarint(e.b, v)
}

func (e *enc) flag(num wire.Number, v bool) {
	if v {
		e.uvarint(num, 1)
	}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hexDef writes s unless it is def.
func (e *enc) hexDef(n hexNums, s, def string) {
	switch {
	case s == def:
	case s == "" || !isLowerHex(s):
		e.str(n.str, s)
	case len(s)%2 == 1:
		v, _ := hex.DecodeString("0" + s)
		e.bytes(n.odd, v)
	default:
		v, _ := hex.DecodeString(s)
		e.bytes(n.even, v)
	}
}

var (
	minNanos = time.Unix(0, math.MinInt64)
	maxNanos = time.Unix(0, math.MaxInt64)
)

// timeDef writes t unless def is set and t equals it.
func (e *enc) timeDef(n timeNums, t time.Time, def *time.Time) {
	if def != nil && t.Equal(*def) {
		return
	}
	if inNanos(t) {
		e.uvarint(n.nanos, wire.EncodeZigZag(t.UnixNano()))
		return
	}
	var v []byte
	v = wire.AppendVarint(v, wire.EncodeZigZag(t.Unix()))
	v = wire.AppendVarint(v, uint64(t.Nanosecond()))
	e.b = wire.AppendTag(e.b, n.secs, wire.BytesType)
	e.b = wire.AppendBytes(e.b, v)
}

func (e *enc) msg(num wire.Number, fn func(*enc)) {
	var m enc
	fn(&m)
	e.b = wire.AppendTag(e.b, num, wire.BytesType)
	e.b = wire.AppendBytes(e.b, m.b)
}

var errCompact = errors.New("malformed compact record")

// field is one decoded field: v for length-delimited ones, x for varints.
type field struct {
	num wire.Number
	typ wire.Type
	v   []byte
	x   uint64
}

// walk calls fn for every varint and length-delimited field of b,
// skipping others.
func walk(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := wire.ConsumeTag(b)
		if n < 0 {
			return errCompact
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case wire.VarintType:
			f.x, n = wire.ConsumeVarint(b)
		case wire.BytesType:
			f.v, n = wire.ConsumeBytes(b)
		default:
			n = wire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errCompact
			}
			b = b[n:]
			continue
		}
		if n < 0 {
			return errCompact
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// hexField decodes a hex string field into *s if f is one of n's.
func hexField(f field, n hexNums, s *string) bool {
	switch f.num {
	case n.even:
		*s = hex.EncodeToString(f.v)
	case n.odd:
		if len(f.v) == 0 {
			return false
		}
		*s = hex.EncodeToString(f.v)[1:]
	case n.str:
		*s = string(f.v)
	default:
		return false
	}
	return true
}

// timeField decodes a time field into *t (and sets *set) if f is one of n's.
func timeField(f field, n timeNums, t *time.Time, set *bool) (bool, error) {
	switch f.num {
	case n.nanos:
		*t = time.Unix(0, wire.DecodeZigZag(f.x)).UTC()
	case n.secs:
		sec, k := wire.ConsumeVarint(f.v)
		if k < 0 {
			return true, errCompact
		}
		nsec, j := wire.ConsumeVarint(f.v[k:])
		if j < 0 {
			return true, errCompact
		}
		*t = time.Unix(wire.DecodeZigZag(sec), int64(nsec)).UTC()
	default:
		return false, nil
	}
	*set = true
	return true, nil
}

func clone(v []byte) []byte { return bytes.Clone(v) }

// Issued: field numbers.
var (
	issSerial   = hexNums{1, 8, 9}
	issThumb    = hexNums{2, 10, 11}
	issNotAfter = timeNums{4, 12}
	issAt       = timeNums{5, 13}
)

const (
	issCA         = 3
	issPolicy     = 6
	issEnrollment = 7
)

func (e *enc) issued(num wire.Number, r *Issued) {
	e.msg(num, func(m *enc) {
		m.hexDef(issSerial, r.Serial, "")
		m.hexDef(issThumb, r.Thumbprint, "")
		m.strDef(issCA, r.CA, "")
		m.timeDef(issNotAfter, r.NotAfter, nil)
		m.timeDef(issAt, r.At, nil)
		m.strDef(issPolicy, r.Policy, "")
		m.strDef(issEnrollment, r.Enrollment, "")
	})
}

func decodeIssued(b []byte) (*Issued, error) {
	r := &Issued{}
	var set bool
	err := walk(b, func(f field) error {
		if hexField(f, issSerial, &r.Serial) || hexField(f, issThumb, &r.Thumbprint) {
			return nil
		}
		if ok, err := timeField(f, issNotAfter, &r.NotAfter, &set); ok {
			return err
		}
		if ok, err := timeField(f, issAt, &r.At, &set); ok {
			return err
		}
		switch f.num {
		case issCA:
			r.CA = string(f.v)
		case issPolicy:
			r.Policy = string(f.v)
		case issEnrollment:
			r.Enrollment = string(f.v)
		}
		return nil
	})
	return r, err
}

func sameIssued(a, b *Issued) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Serial == b.Serial && a.Thumbprint == b.Thumbprint && a.CA == b.CA && a.NotAfter.Equal(b.NotAfter) &&
		a.At.Equal(b.At) && a.Policy == b.Policy && a.Enrollment == b.Enrollment
}

// Registration: field numbers.
var (
	regThumb   = hexNums{10, 18, 19}
	regEtag    = hexNums{11, 20, 21}
	regCreated = timeNums{12, 22}
	regUpdated = timeNums{13, 23}
)

const (
	regID         = 1
	regDevice     = 2
	regShard      = 3
	regHub        = 4
	regStatus     = 5
	regSubstatus  = 6
	regAtt        = 7
	regGroup      = 8
	regIndividual = 9
	regInitShard  = 14
	regIssued     = 24
	regSuperseded = 16
	regPayload    = 17
	regIdentity   = 15 // the Redis device record's identity
)

const (
	defStatus    = "assigned"
	defSubstatus = "initialAssignment"
	defAtt       = "x509"
	defIdStatus  = "enabled"
)

func (e *enc) registration(r *Registration) {
	e.str(regID, r.RegistrationID)
	e.strDef(regDevice, r.DeviceID, r.RegistrationID)
	e.strDef(regShard, r.Shard, "")
	e.strDef(regHub, r.Hub, "")
	e.strDef(regStatus, r.Status, defStatus)
	e.strDef(regSubstatus, r.Substatus, defSubstatus)
	e.strDef(regAtt, r.Attestation, defAtt)
	e.strDef(regGroup, r.GroupID, "")
	e.flag(regIndividual, r.Individual)
	e.hexDef(regThumb, r.Thumbprint, "")
	e.hexDef(regEtag, r.Etag, "")
	e.timeDef(regCreated, r.Created, nil)
	e.timeDef(regUpdated, r.Updated, &r.Created)
	e.strDef(regInitShard, r.InitialShard, r.Shard)
	if r.Issued != nil {
		e.issued(regIssued, r.Issued)
	}
	if r.Superseded != nil {
		e.issued(regSuperseded, r.Superseded)
	}
	e.bytes(regPayload, r.Payload)
}

// decodeRegistration decodes the registration's fields of b; identity, if
// not nil, gets the identity field's bytes.
func decodeRegistration(b []byte, identity *[]byte) (*Registration, error) {
	r := &Registration{V: Version, Status: defStatus, Substatus: defSubstatus, Attestation: defAtt}
	var devSet, updSet, ishSet, set bool
	err := walk(b, func(f field) error {
		if hexField(f, regThumb, &r.Thumbprint) || hexField(f, regEtag, &r.Etag) {
			return nil
		}
		if ok, err := timeField(f, regCreated, &r.Created, &set); ok {
			return err
		}
		if ok, err := timeField(f, regUpdated, &r.Updated, &updSet); ok {
			return err
		}
		switch f.num {
		case regID:
			r.RegistrationID = string(f.v)
		case regDevice:
			r.DeviceID, devSet = string(f.v), true
		case regShard:
			r.Shard = string(f.v)
		case regHub:
			r.Hub = string(f.v)
		case regStatus:
			r.Status = string(f.v)
		case regSubstatus:
			r.Substatus = string(f.v)
		case regAtt:
			r.Attestation = string(f.v)
		case regGroup:
			r.GroupID = string(f.v)
		case regIndividual:
			r.Individual = f.x != 0
		case regInitShard:
			r.InitialShard, ishSet = string(f.v), true
		case regIssued, regSuperseded:
			c, err := decodeIssued(f.v)
			if err != nil {
				return err
			}
			if f.num == regIssued {
				r.Issued = c
			} else {
				r.Superseded = c
			}
		case regPayload:
			r.Payload = clone(f.v)
		case regIdentity:
			if identity != nil {
				*identity = f.v
			}
		}
		return nil
	})
	if !devSet {
		r.DeviceID = r.RegistrationID
	}
	if !updSet {
		r.Updated = r.Created
	}
	if !ishSet {
		r.InitialShard = r.Shard
	}
	return r, err
}

// Identity: field numbers.
var (
	idX509    = hexNums{6, 17, 18}
	idCA      = hexNums{7, 19, 20}
	idEK      = hexNums{8, 21, 22}
	idSym     = hexNums{10, 23, 24}
	idCreated = timeNums{13, 28}
	idUpdated = timeNums{14, 29}
	// A chain entry's fields.
	certIssuer = hexNums{1, 3, 4}
	certSerial = hexNums{2, 5, 6}
)

const (
	idDevice   = 1
	idReg      = 2
	idShard    = 3
	idStatus   = 4
	idType     = 5
	idVersion  = 9
	idIssued   = 11
	idChain    = 12
	idDR       = 15
	idBoundKey = 16
	idNoIssued = 25
	idTwin     = 26
	idEdge     = 27
)

// idBase is what an identity's left-out fields default to: what it is
// stored with.
type idBase struct {
	device, reg      string // "" for the identity's own device ID
	shard            string
	fingerprint      string // the credential's primary fingerprint (by type)
	issued           *Issued
	created, updated *time.Time
}

// fingerprints returns pointers to the identity's X.509, EK and symmetric
// key fingerprints' defaults under base, by credential type.
func (b idBase) defaults(credType string) (x509, ek, sym string) {
	switch credType {
	case "tpm":
		return "", b.fingerprint, ""
	case "symmetricKey":
		return "", "", b.fingerprint
	case "x509":
		return b.fingerprint, "", ""
	}
	return "", "", ""
}

func (e *enc) identity(r *Identity, base idBase) {
	e.strDef(idDevice, r.DeviceID, base.device)
	reg := base.reg
	if reg == "" {
		reg = r.DeviceID
	}
	e.strDef(idReg, r.RegistrationID, reg)
	e.strDef(idShard, r.Shard, base.shard)
	e.strDef(idStatus, r.Status, defIdStatus)
	e.strDef(idType, r.CredType, defAtt)
	x509, ek, sym := base.defaults(r.CredType)
	e.hexDef(idX509, r.X509Thumbprint, x509)
	e.hexDef(idCA, r.CAThumbprint, "")
	e.hexDef(idEK, r.TPMEKHash, ek)
	e.uvarint(idVersion, wire.EncodeZigZag(r.Version-versionBase(r.Created)))
	e.hexDef(idSym, r.SymKeyHash, sym)
	switch {
	case sameIssued(r.Issued, base.issued):
	case r.Issued == nil:
		e.flag(idNoIssued, true)
	default:
		e.issued(idIssued, r.Issued)
	}
	for _, c := range r.Chain {
		e.msg(idChain, func(m *enc) {
			m.hexDef(certIssuer, c.Issuer, "")
			m.hexDef(certSerial, c.Serial, "")
		})
	}
	e.timeDef(idCreated, r.Created, base.created)
	updated := &r.Created
	if base.updated != nil {
		updated = base.updated
	}
	e.timeDef(idUpdated, r.Updated, updated)
	e.strDef(idDR, r.DisabledReason, "")
	e.bytes(idBoundKey, r.TPMBoundKey)
	e.bytes(idTwin, r.Twin)
	e.flag(idEdge, r.Edge)
}

func decodeIdentity(b []byte, base idBase) (*Identity, error) {
	r := &Identity{V: Version, DeviceID: base.device, Shard: base.shard, Status: defIdStatus, CredType: defAtt}
	var regSet, x509Set, ekSet, symSet, createdSet, updatedSet, noIssued, versionSet bool
	err := walk(b, func(f field) error {
		switch {
		case hexField(f, idX509, &r.X509Thumbprint):
			x509Set = true
			return nil
		case hexField(f, idEK, &r.TPMEKHash):
			ekSet = true
			return nil
		case hexField(f, idSym, &r.SymKeyHash):
			symSet = true
			return nil
		case hexField(f, idCA, &r.CAThumbprint):
			return nil
		}
		if ok, err := timeField(f, idCreated, &r.Created, &createdSet); ok {
			return err
		}
		if ok, err := timeField(f, idUpdated, &r.Updated, &updatedSet); ok {
			return err
		}
		switch f.num {
		case idDevice:
			r.DeviceID = string(f.v)
		case idReg:
			r.RegistrationID, regSet = string(f.v), true
		case idShard:
			r.Shard = string(f.v)
		case idStatus:
			r.Status = string(f.v)
		case idType:
			r.CredType = string(f.v)
		case idVersion:
			r.Version, versionSet = wire.DecodeZigZag(f.x), true
		case idIssued:
			c, err := decodeIssued(f.v)
			if err != nil {
				return err
			}
			r.Issued = c
		case idNoIssued:
			noIssued = true
		case idChain:
			var c CertRef
			if err := walk(f.v, func(g field) error {
				if !hexField(g, certIssuer, &c.Issuer) {
					hexField(g, certSerial, &c.Serial)
				}
				return nil
			}); err != nil {
				return err
			}
			r.Chain = append(r.Chain, c)
		case idDR:
			r.DisabledReason = string(f.v)
		case idBoundKey:
			r.TPMBoundKey = clone(f.v)
		case idTwin:
			r.Twin = clone(f.v)
		case idEdge:
			r.Edge = f.x != 0
		}
		return nil
	})
	if !regSet {
		r.RegistrationID = base.reg
		if r.RegistrationID == "" {
			r.RegistrationID = r.DeviceID
		}
	}
	x509, ek, sym := base.defaults(r.CredType)
	if !x509Set {
		r.X509Thumbprint = x509
	}
	if !ekSet {
		r.TPMEKHash = ek
	}
	if !symSet {
		r.SymKeyHash = sym
	}
	if r.Issued == nil && !noIssued && base.issued != nil {
		c := *base.issued
		r.Issued = &c
	}
	if !createdSet && base.created != nil {
		r.Created = *base.created
	}
	if !updatedSet {
		r.Updated = r.Created
		if base.updated != nil {
			r.Updated = *base.updated
		}
	}
	if versionSet {
		r.Version += versionBase(r.Created)
	}
	return r, err
}

// versionBase is what an identity's version is stored relative to: its
// creation time in microseconds (a new identity's version is the clock in
// microseconds, registry.NextVersion), so that it takes a byte or two.
func versionBase(created time.Time) int64 {
	if created.Before(minNanos) || created.After(maxNanos) {
		return 0
	}
	return created.UnixMicro()
}

// MarshalBinary encodes a registration compactly (the embedded store's).
func (r *Registration) MarshalBinary() ([]byte, error) {
	e := enc{b: []byte{CompactV1}}
	e.registration(r)
	return e.b, nil
}

// UnmarshalBinary decodes a compact or a JSON registration.
func (r *Registration) UnmarshalBinary(raw []byte) error {
	if IsJSON(raw) {
		return json.Unmarshal(raw, r)
	}
	if len(raw) == 0 || raw[0] != CompactV1 {
		return fmt.Errorf("registration record: unknown format")
	}
	d, err := decodeRegistration(raw[1:], nil)
	if err != nil {
		return err
	}
	*r = *d
	return nil
}

// MarshalBinary encodes an identity compactly (the embedded store's).
func (r *Identity) MarshalBinary() ([]byte, error) {
	e := enc{b: []byte{CompactV1}}
	e.identity(r, idBase{})
	return e.b, nil
}

// UnmarshalBinary decodes a compact or a JSON identity.
func (r *Identity) UnmarshalBinary(raw []byte) error {
	if IsJSON(raw) {
		return json.Unmarshal(raw, r)
	}
	if len(raw) == 0 || raw[0] != CompactV1 {
		return fmt.Errorf("identity record: unknown format")
	}
	d, err := decodeIdentity(raw[1:], idBase{})
	if err != nil {
		return err
	}
	*r = *d
	return nil
}

// deviceBase is the identity's base in a device record: its registration.
func deviceBase(reg *Registration) idBase {
	return idBase{device: reg.DeviceID, reg: reg.RegistrationID, shard: reg.Shard, fingerprint: reg.Thumbprint,
		issued: reg.Issued, created: &reg.Created, updated: &reg.Updated}
}

// EncodeDevice encodes a registration and its identity as one compact
// record (the Redis device record): the identity's fields that repeat
// the registration's are left out.
func EncodeDevice(reg *Registration, id *Identity) []byte {
	e := enc{b: []byte{CompactV1}}
	e.registration(reg)
	e.msg(regIdentity, func(m *enc) { m.identity(id, deviceBase(reg)) })
	return e.b
}

// DecodeDevice decodes what EncodeDevice wrote.
func DecodeDevice(raw []byte) (*Registration, *Identity, error) {
	if len(raw) == 0 || raw[0] != CompactV1 {
		return nil, nil, fmt.Errorf("device record: unknown format")
	}
	var idRaw []byte
	reg, err := decodeRegistration(raw[1:], &idRaw)
	if err != nil {
		return nil, nil, err
	}
	if idRaw == nil {
		return nil, nil, fmt.Errorf("device record without identity")
	}
	id, err := decodeIdentity(idRaw, deviceBase(reg))
	return reg, id, err
}

// Event: field numbers. The shard is not stored: it is the log's.
var evTime = timeNums{2, 3}

const (
	evKind     = 1 // a kind evKinds does not know
	evIdentity = 4
	evNonce    = 5
	evKindCode = 6 // an evKinds index
	evTimeDiff = 7 // nanoseconds after the identity's update
)

// evKinds are the event kinds stored as their index.
var evKinds = []string{"created", "updated", "disabled", "enabled", "deleted"}

// inNanos reports whether t is representable in int64 nanoseconds.
func inNanos(t time.Time) bool { return !t.Before(minNanos) && !t.After(maxNanos) }

// MarshalBinary encodes an event compactly, without its shard (the log's).
func (r *Event) MarshalBinary() ([]byte, error) {
	if r.Identity == nil {
		return nil, fmt.Errorf("event without identity")
	}
	e := enc{b: []byte{CompactV1}}
	if k := slices.Index(evKinds, r.Kind); k >= 0 {
		e.uvarint(evKindCode, uint64(k))
	} else {
		e.str(evKind, r.Kind)
	}
	if up := r.Identity.Updated; inNanos(r.Time) && inNanos(up) {
		e.uvarint(evTimeDiff, wire.EncodeZigZag(r.Time.UnixNano()-up.UnixNano()))
	} else {
		e.timeDef(evTime, r.Time, nil)
	}
	e.msg(evIdentity, func(m *enc) { m.identity(r.Identity, idBase{shard: r.Shard}) })
	e.bytes(evNonce, []byte(r.Nonce))
	return e.b, nil
}

// DecodeEvent decodes an event of shard's log, compact or JSON.
func DecodeEvent(raw []byte, shard string) (*Event, error) {
	if IsJSON(raw) {
		var r Event
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		if r.Identity == nil {
			return nil, fmt.Errorf("event without identity")
		}
		return &r, nil
	}
	if len(raw) == 0 || raw[0] != CompactV1 {
		return nil, fmt.Errorf("event: unknown format")
	}
	r := &Event{V: Version, Shard: shard}
	var idRaw []byte
	var set, diffSet bool
	var diff int64
	err := walk(raw[1:], func(f field) error {
		if ok, err := timeField(f, evTime, &r.Time, &set); ok {
			return err
		}
		switch f.num {
		case evKind:
			r.Kind = string(f.v)
		case evKindCode:
			if f.x >= uint64(len(evKinds)) {
				return errCompact
			}
			r.Kind = evKinds[f.x]
		case evTimeDiff:
			diff, diffSet = wire.DecodeZigZag(f.x), true
		case evIdentity:
			idRaw = f.v
		case evNonce:
			r.Nonce = string(f.v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if idRaw == nil {
		return nil, fmt.Errorf("event without identity")
	}
	if r.Identity, err = decodeIdentity(idRaw, idBase{shard: shard}); err != nil {
		return nil, err
	}
	if diffSet {
		r.Time = time.Unix(0, r.Identity.Updated.UnixNano()+diff).UTC()
	}
	return r, nil
}
