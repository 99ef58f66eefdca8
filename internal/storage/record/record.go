// Package record defines how domain values are persisted: private-to-storage
// JSON record types with a schema version, and their conversions to and from
// the domain types. Every backend stores these records, never the domain
// structs, so that a domain change cannot silently change what is on disk.
// The records stored once per device (registrations, identities, log
// events) also have a compact binary encoding (compact.go), which the
// stores write; their readers accept both.
package record

import (
	"encoding/json"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Version is the schema version written into every record.
const Version = 1

// Allocation is an enrollment's allocation.
type Allocation struct {
	Policy      string   `json:"p"`
	Shards      []string `json:"s,omitempty"`
	StaticShard string   `json:"st,omitempty"`
	Webhook     *Webhook `json:"wh,omitempty"`
}

// Webhook is a custom allocation webhook.
type Webhook struct {
	URL      string        `json:"u"`
	Timeout  time.Duration `json:"t,omitempty"`
	Fallback string        `json:"f,omitempty"`
}

// FromAllocation converts a domain allocation.
func FromAllocation(a enrollment.Allocation) Allocation {
	r := Allocation{Policy: string(a.Policy), Shards: a.Shards, StaticShard: a.StaticShard}
	if w := a.Webhook; w != nil {
		r.Webhook = &Webhook{URL: w.URL, Timeout: w.Timeout, Fallback: string(w.Fallback)}
	}
	return r
}

// Domain converts back.
func (r Allocation) Domain() enrollment.Allocation {
	a := enrollment.Allocation{Policy: enrollment.Policy(r.Policy), Shards: r.Shards, StaticShard: r.StaticShard}
	if w := r.Webhook; w != nil {
		a.Webhook = &enrollment.Webhook{URL: w.URL, Timeout: w.Timeout, Fallback: enrollment.Policy(w.Fallback)}
	}
	return a
}

// CA is a stored CA certificate.
type CA struct {
	V           int       `json:"v"`
	Name        string    `json:"name"`
	DER         []byte    `json:"der"`
	Thumbprint  string    `json:"thumb"`
	SubjectKey  string    `json:"subj"`
	Verified    bool      `json:"verified"`
	Code        string    `json:"code,omitempty"`
	CodeExpires time.Time `json:"code_exp,omitzero"`
	Etag        string    `json:"etag"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// FromCA converts a domain CA, with the etag the write will carry.
func FromCA(ca *enrollment.CA, etag string) *CA {
	return &CA{V: Version, Name: ca.Name, DER: ca.DER, Thumbprint: ca.Thumbprint, SubjectKey: ca.SubjectKey,
		Verified: ca.Verified, Code: ca.VerificationCode, CodeExpires: ca.CodeExpires, Etag: etag, Created: ca.Created, Updated: ca.Updated}
}

// Domain converts back.
func (r *CA) Domain() *enrollment.CA {
	return &enrollment.CA{Name: r.Name, DER: r.DER, Thumbprint: r.Thumbprint, SubjectKey: r.SubjectKey,
		Verified: r.Verified, VerificationCode: r.Code, CodeExpires: r.CodeExpires,
		Meta: enrollment.Meta{Etag: r.Etag, Created: r.Created, Updated: r.Updated}}
}

// ApplyUpdate copies the fields UpdateCA may change.
func (r *CA) ApplyUpdate(ca *enrollment.CA, etag string) {
	r.Verified, r.Code, r.CodeExpires, r.Updated, r.Etag = ca.Verified, ca.VerificationCode, ca.CodeExpires, ca.Updated, etag
}

// Group is a stored enrollment group.
type Group struct {
	V          int        `json:"v"`
	ID         string     `json:"id"`
	CAName     string     `json:"ca"`
	Disabled   bool       `json:"disabled,omitempty"`
	Mechanism  string     `json:"mech,omitempty"` // "" is x509
	EKAllow    []string   `json:"ekallow,omitempty"`
	SealedKeys []byte     `json:"sk,omitempty"`
	Allocation Allocation `json:"alloc"`
	// Revocation is an X.509 group's revocation checking (ADR 23).
	Revocation *Revocation `json:"rev,omitempty"`
	Settings
	Etag    string    `json:"etag"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Revocation is a group's revocation policy; nil is the default.
type Revocation struct {
	Check string `json:"c,omitempty"`
	OCSP  bool   `json:"ocsp,omitempty"`
}

// FromRevocation converts a domain revocation policy (the default is nil).
func FromRevocation(p enrollment.RevocationPolicy) *Revocation {
	if p == (enrollment.RevocationPolicy{}) {
		return nil
	}
	return &Revocation{Check: string(p.Check), OCSP: p.OCSP}
}

// Domain converts back.
func (r *Revocation) Domain() enrollment.RevocationPolicy {
	if r == nil {
		return enrollment.RevocationPolicy{}
	}
	return enrollment.RevocationPolicy{Check: enrollment.RevocationCheck(r.Check), OCSP: r.OCSP}
}

// Settings are an enrollment's device settings.
type Settings struct {
	Twin        json.RawMessage `json:"twin,omitempty"`
	Edge        bool            `json:"edge,omitempty"`
	Reprovision string          `json:"reprov,omitempty"`
	AdoptFrom   []string        `json:"adopt,omitempty"`
	NoSAS       bool            `json:"nosas,omitempty"`
	CredPolicy  string          `json:"cpol,omitempty"`
}

// FromSettings converts domain settings.
func FromSettings(d enrollment.DeviceSettings) Settings {
	return Settings{Twin: d.InitialTwin, Edge: d.IoTEdge, Reprovision: string(d.Reprovision), AdoptFrom: d.AdoptFrom, NoSAS: d.DisableSAS, CredPolicy: d.CredentialPolicy}
}

// Domain converts back.
func (r Settings) Domain() enrollment.DeviceSettings {
	return enrollment.DeviceSettings{InitialTwin: r.Twin, IoTEdge: r.Edge, Reprovision: enrollment.Reprovision(r.Reprovision), AdoptFrom: r.AdoptFrom,
		DisableSAS: r.NoSAS, CredentialPolicy: r.CredPolicy}
}

// FromGroup converts a domain group.
func FromGroup(g *enrollment.Group, etag string) *Group {
	mech := string(g.Mechanism)
	if g.Mechanism == enrollment.MechanismX509 {
		mech = ""
	}
	return &Group{V: Version, ID: g.ID, CAName: g.CAName, Disabled: g.Disabled, Mechanism: mech, EKAllow: g.EKAllowList, SealedKeys: g.SealedKeys,
		Allocation: FromAllocation(g.Allocation), Revocation: FromRevocation(g.Revocation), Settings: FromSettings(g.DeviceSettings), Etag: etag, Created: g.Created, Updated: g.Updated}
}

// Domain converts back.
func (r *Group) Domain() *enrollment.Group {
	g := &enrollment.Group{ID: r.ID, CAName: r.CAName, Disabled: r.Disabled, Mechanism: enrollment.Mechanism(r.Mechanism),
		EKAllowList: r.EKAllow, SealedKeys: r.SealedKeys, Allocation: r.Allocation.Domain(), Revocation: r.Revocation.Domain(), DeviceSettings: r.Settings.Domain(),
		Meta: enrollment.Meta{Etag: r.Etag, Created: r.Created, Updated: r.Updated}}
	g.Mechanism = g.EffectiveMechanism()
	return g
}

// ApplyUpdate copies the fields UpdateGroup may change.
func (r *Group) ApplyUpdate(g *enrollment.Group, etag string) {
	r.Disabled, r.EKAllow, r.Allocation, r.Updated, r.Etag = g.Disabled, g.EKAllowList, FromAllocation(g.Allocation), g.Updated, etag
	r.Settings, r.Revocation = FromSettings(g.DeviceSettings), FromRevocation(g.Revocation)
}

// Individual is a stored individual enrollment.
type Individual struct {
	V              int        `json:"v"`
	RegistrationID string     `json:"reg"`
	DeviceID       string     `json:"dev,omitempty"`
	Mechanism      string     `json:"mech,omitempty"` // "" is x509
	Thumbprint     string     `json:"thumb"`
	EKPublic       []byte     `json:"ek,omitempty"`
	SealedKeys     []byte     `json:"sk,omitempty"`
	Disabled       bool       `json:"disabled,omitempty"`
	Allocation     Allocation `json:"alloc"`
	Settings
	Etag    string    `json:"etag"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// FromIndividual converts a domain individual enrollment.
func FromIndividual(e *enrollment.Individual, etag string) *Individual {
	mech := string(e.Mechanism)
	if e.Mechanism == enrollment.MechanismX509 {
		mech = ""
	}
	return &Individual{V: Version, RegistrationID: e.RegistrationID, DeviceID: e.DeviceID, Mechanism: mech, Thumbprint: e.Thumbprint,
		EKPublic: e.EKPublic, SealedKeys: e.SealedKeys, Disabled: e.Disabled, Allocation: FromAllocation(e.Allocation), Settings: FromSettings(e.DeviceSettings), Etag: etag, Created: e.Created, Updated: e.Updated}
}

// Device is the enrollment's effective device ID.
func (r *Individual) Device() string {
	if r.DeviceID != "" {
		return r.DeviceID
	}
	return r.RegistrationID
}

// Domain converts the record.
func (r *Individual) Domain() *enrollment.Individual {
	mech := enrollment.Mechanism(r.Mechanism)
	if mech == "" {
		mech = enrollment.MechanismX509
	}
	return &enrollment.Individual{RegistrationID: r.RegistrationID, DeviceID: r.DeviceID, Mechanism: mech, Thumbprint: r.Thumbprint,
		EKPublic: r.EKPublic, SealedKeys: r.SealedKeys, Disabled: r.Disabled, Allocation: r.Allocation.Domain(), DeviceSettings: r.Settings.Domain(),
		Meta: enrollment.Meta{Etag: r.Etag, Created: r.Created, Updated: r.Updated}}
}

// ApplyUpdate copies the fields UpdateIndividual may change.
func (r *Individual) ApplyUpdate(e *enrollment.Individual, etag string) {
	r.DeviceID, r.Disabled, r.Allocation, r.Updated, r.Etag = e.DeviceID, e.Disabled, FromAllocation(e.Allocation), e.Updated, etag
	r.Settings = FromSettings(e.DeviceSettings)
}

// Shard is a stored hub shard.
type Shard struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`
	Hostname string    `json:"host"`
	Weight   int       `json:"w"`
	State    string    `json:"state"`
	Region   string    `json:"region,omitempty"`
	Capacity int       `json:"cap,omitempty"`
	Cluster  string    `json:"cluster,omitempty"`
	Etag     string    `json:"etag"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// FromShard converts a domain shard.
func FromShard(s *allocation.Shard, etag string) *Shard {
	return &Shard{V: Version, ID: s.ID, Hostname: s.Hostname, Weight: s.Weight, State: string(s.State), Region: s.Region, Capacity: s.Capacity, Cluster: s.Cluster,
		Etag: etag, Created: s.Created, Updated: s.Updated}
}

// Domain converts back.
func (r *Shard) Domain() *allocation.Shard {
	return &allocation.Shard{ID: r.ID, Hostname: r.Hostname, Weight: r.Weight, State: allocation.State(r.State), Region: r.Region, Capacity: r.Capacity, Cluster: r.Cluster,
		Etag: r.Etag, Created: r.Created, Updated: r.Updated}
}

// ApplyUpdate copies the fields UpdateShard may change.
func (r *Shard) ApplyUpdate(s *allocation.Shard, etag string) {
	r.Hostname, r.Weight, r.State, r.Updated, r.Etag = s.Hostname, s.Weight, string(s.State), s.Updated, etag
	r.Region, r.Capacity, r.Cluster = s.Region, s.Capacity, s.Cluster
}

// Registration is a stored registration.
type Registration struct {
	V              int       `json:"v"`
	RegistrationID string    `json:"reg"`
	DeviceID       string    `json:"dev"`
	Shard          string    `json:"shard"`
	Hub            string    `json:"hub"`
	Status         string    `json:"st"`
	Substatus      string    `json:"sub"`
	Attestation    string    `json:"att"`
	GroupID        string    `json:"grp,omitempty"`
	Individual     bool      `json:"ind,omitempty"`
	Thumbprint     string    `json:"thumb,omitempty"`
	InitialShard   string    `json:"ish,omitempty"`
	Payload        []byte    `json:"pl,omitempty"`
	Issued         *Issued   `json:"iss,omitempty"`
	Superseded     *Issued   `json:"sup,omitempty"`
	Etag           string    `json:"etag"`
	Created        time.Time `json:"created"`
	Updated        time.Time `json:"updated"`
}

// FromRegistration converts a domain registration.
func FromRegistration(r *registry.Registration, etag string) *Registration {
	return &Registration{V: Version, RegistrationID: r.RegistrationID, DeviceID: r.DeviceID, Shard: r.Shard, Hub: r.AssignedHub,
		Status: string(r.Status), Substatus: string(r.Substatus), Attestation: string(r.AttestationType), GroupID: r.GroupID,
		Individual: r.Individual, Thumbprint: r.CredentialThumbprint, InitialShard: r.InitialShard, Payload: r.Payload, Issued: FromIssued(r.Issued), Superseded: FromIssued(r.Superseded), Etag: etag, Created: r.Created, Updated: r.Updated}
}

// Issued is an issued certificate's record (ADR 22).
type Issued struct {
	Serial     string    `json:"sn"`
	Thumbprint string    `json:"t"`
	CA         string    `json:"ca"`
	NotAfter   time.Time `json:"na"`
	At         time.Time `json:"at"`
	Policy     string    `json:"p,omitempty"`
	Enrollment string    `json:"e,omitempty"`
}

// FromIssued converts a domain issued certificate (nil stays nil).
func FromIssued(c *registry.IssuedCertificate) *Issued {
	if c == nil {
		return nil
	}
	return &Issued{Serial: c.Serial, Thumbprint: c.Thumbprint, CA: c.IssuingCA, NotAfter: c.NotAfter, At: c.At, Policy: c.Policy, Enrollment: c.Enrollment}
}

// Domain converts back.
func (r *Issued) Domain() *registry.IssuedCertificate {
	if r == nil {
		return nil
	}
	return &registry.IssuedCertificate{Serial: r.Serial, Thumbprint: r.Thumbprint, IssuingCA: r.CA, NotAfter: r.NotAfter, At: r.At, Policy: r.Policy, Enrollment: r.Enrollment}
}

// Domain converts back.
func (r *Registration) Domain() *registry.Registration {
	return &registry.Registration{RegistrationID: r.RegistrationID, DeviceID: r.DeviceID, Shard: r.Shard, AssignedHub: r.Hub,
		Status: registry.Status(r.Status), Substatus: registry.Substatus(r.Substatus), AttestationType: registry.AttestationType(r.Attestation),
		GroupID: r.GroupID, Individual: r.Individual, CredentialThumbprint: r.Thumbprint, InitialShard: orString(r.InitialShard, r.Shard), Payload: r.Payload,
		Issued: r.Issued.Domain(), Superseded: r.Superseded.Domain(), Etag: r.Etag, Created: r.Created, Updated: r.Updated}
}

// Identity is a stored registry identity.
type Identity struct {
	V              int       `json:"v"`
	DeviceID       string    `json:"dev"`
	RegistrationID string    `json:"reg"`
	Shard          string    `json:"shard"`
	Status         string    `json:"st"`
	CredType       string    `json:"ct"`
	X509Thumbprint string    `json:"x5t,omitempty"`
	CAThumbprint   string    `json:"cat,omitempty"`
	TPMEKHash      string    `json:"ekh,omitempty"`
	TPMBoundKey    []byte    `json:"bk,omitempty"`
	SymKeyHash     string    `json:"skh,omitempty"`
	Issued         *Issued   `json:"iss,omitempty"`
	Chain          []CertRef `json:"x5c,omitempty"`
	Twin           []byte    `json:"twin,omitempty"`
	Edge           bool      `json:"edge,omitempty"`
	// DisabledReason is kept only while the identity is disabled.
	DisabledReason string    `json:"dr,omitempty"`
	Version        int64     `json:"ver"`
	Created        time.Time `json:"created"`
	Updated        time.Time `json:"updated"`
}

// CertRef names a certificate of a device's chain by issuer and serial
// (ADR 23).
type CertRef struct {
	Issuer string `json:"i"`
	Serial string `json:"s"`
}

// FromChain converts a domain chain.
func FromChain(refs []registry.CertRef) []CertRef {
	var out []CertRef
	for _, r := range refs {
		out = append(out, CertRef{Issuer: r.Issuer, Serial: r.Serial})
	}
	return out
}

// ChainDomain converts back.
func ChainDomain(refs []CertRef) []registry.CertRef {
	var out []registry.CertRef
	for _, r := range refs {
		out = append(out, registry.CertRef{Issuer: r.Issuer, Serial: r.Serial})
	}
	return out
}

// KeptDisabledReason is what a store keeps of an identity's disabled
// reason: nothing once it is enabled again.
func KeptDisabledReason(id *registry.Identity) string {
	if id.Status != registry.IdentityDisabled {
		return ""
	}
	return id.DisabledReason
}

// FromIdentity converts a domain identity.
func FromIdentity(id *registry.Identity) *Identity {
	return &Identity{V: Version, DeviceID: id.DeviceID, RegistrationID: id.RegistrationID, Shard: id.Shard,
		Status: string(id.Status), CredType: string(id.Credential.Type), X509Thumbprint: id.Credential.X509Thumbprint,
		CAThumbprint: id.Credential.CAThumbprint, TPMEKHash: id.Credential.TPMEKHash, TPMBoundKey: id.Credential.TPMBoundKey,
		SymKeyHash: id.Credential.SymmetricKeyHash, Issued: FromIssued(id.Credential.Issued), Chain: FromChain(id.Credential.X509Chain), Twin: id.InitialTwin, Edge: id.IoTEdge,
		DisabledReason: KeptDisabledReason(id), Version: id.Version, Created: id.Created, Updated: id.Updated}
}

// Domain converts back.
func (r *Identity) Domain() *registry.Identity {
	return &registry.Identity{DeviceID: r.DeviceID, RegistrationID: r.RegistrationID, Shard: r.Shard, Status: registry.IdentityStatus(r.Status),
		Credential: registry.Credential{Type: registry.AttestationType(r.CredType), X509Thumbprint: r.X509Thumbprint, CAThumbprint: r.CAThumbprint,
			TPMEKHash: r.TPMEKHash, TPMBoundKey: r.TPMBoundKey, SymmetricKeyHash: r.SymKeyHash, Issued: r.Issued.Domain(), X509Chain: ChainDomain(r.Chain)},
		InitialTwin: r.Twin, IoTEdge: r.Edge, DisabledReason: r.DisabledReason, Version: r.Version, Created: r.Created, Updated: r.Updated}
}

// AccessKey is a stored access key (the secret's hash, never the secret).
type AccessKey struct {
	V           int       `json:"v"`
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Permissions []string  `json:"perms"`
	SecretHash  []byte    `json:"hash"`
	Secondary   []byte    `json:"hash2,omitempty"`
	SealedSAS   []byte    `json:"sas,omitempty"`
	SealedSAS2  []byte    `json:"sas2,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"exp,omitzero"`
	LastUsed    time.Time `json:"used,omitzero"`
}

// Rotate replaces one slot's secret hash and sealed shared access key.
func (r *AccessKey) Rotate(slot access.Slot, secretHash, sealedSAS []byte) {
	if slot == access.Secondary {
		r.Secondary, r.SealedSAS2 = secretHash, sealedSAS
		return
	}
	r.SecretHash, r.SealedSAS = secretHash, sealedSAS
}

// FromAccessKey converts a domain access key.
func FromAccessKey(k *access.Key) *AccessKey {
	r := &AccessKey{V: Version, ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Secondary: k.SecondaryHash, SealedSAS: k.SealedSAS,
		SealedSAS2: k.SealedSAS2, Created: k.Created, Expires: k.Expires, LastUsed: k.LastUsed}
	for _, p := range k.Permissions {
		r.Permissions = append(r.Permissions, string(p))
	}
	return r
}

// Domain converts back.
func (r *AccessKey) Domain() *access.Key {
	k := &access.Key{ID: r.ID, Name: r.Name, SecretHash: r.SecretHash, SecondaryHash: r.Secondary, SealedSAS: r.SealedSAS,
		SealedSAS2: r.SealedSAS2, Created: r.Created, Expires: r.Expires, LastUsed: r.LastUsed}
	for _, p := range r.Permissions {
		k.Permissions = append(k.Permissions, access.Permission(p))
	}
	return k
}

// Challenge is a stored attestation challenge.
type Challenge struct {
	V              int    `json:"v"`
	ID             string `json:"id"`
	RegistrationID string `json:"reg"`
	Data           []byte `json:"data"`
	Expires        int64  `json:"exp"` // Unix nanoseconds
}

// FromChallenge converts a domain challenge.
func FromChallenge(c *attestation.Challenge) *Challenge {
	return &Challenge{V: Version, ID: c.ID, RegistrationID: c.RegistrationID, Data: c.Data, Expires: c.Expires.UnixNano()}
}

// Domain converts back.
func (r *Challenge) Domain() *attestation.Challenge {
	return &attestation.Challenge{ID: r.ID, RegistrationID: r.RegistrationID, Data: r.Data, Expires: time.Unix(0, r.Expires)}
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Cluster is a stored hub cluster.
type Cluster struct {
	V            int       `json:"v"`
	ID           string    `json:"id"`
	Certificates []string  `json:"certs,omitempty"`
	Etag         string    `json:"etag"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
}

// FromCluster converts a domain hub cluster.
func FromCluster(c *allocation.Cluster, etag string) *Cluster {
	return &Cluster{V: Version, ID: c.ID, Certificates: c.Certificates, Etag: etag, Created: c.Created, Updated: c.Updated}
}

// Domain converts back.
func (r *Cluster) Domain() *allocation.Cluster {
	return &allocation.Cluster{ID: r.ID, Certificates: r.Certificates, Etag: r.Etag, Created: r.Created, Updated: r.Updated}
}

// ApplyUpdate copies the fields UpdateCluster may change.
func (r *Cluster) ApplyUpdate(c *allocation.Cluster, etag string) {
	r.Certificates, r.Updated, r.Etag = c.Certificates, c.Updated, etag
}

// Event is a stored assignment-log event (its seq is its key).
type Event struct {
	V        int       `json:"v"`
	Shard    string    `json:"s"`
	Kind     string    `json:"k"`
	Time     time.Time `json:"t"`
	Identity *Identity `json:"i"`
	// Nonce makes an event unique where a store must tell two apart
	// (Redis outboxes).
	Nonce string `json:"n,omitempty"`
}

// FromEvent converts a domain event. The identity's X.509 chain (what
// CRLs name, ADR 23) stays with the registration: hubs do not get it, and
// every event would carry it.
func FromEvent(e registry.Event) *Event {
	id := FromIdentity(e.Identity)
	id.Chain = nil
	return &Event{V: Version, Shard: e.Shard, Kind: string(e.Kind), Time: e.Time, Identity: id}
}

// Domain converts back, with the event's seq.
func (r *Event) Domain(seq uint64) *registry.Event {
	return &registry.Event{Shard: r.Shard, Seq: seq, Kind: registry.EventKind(r.Kind), Time: r.Time, Identity: r.Identity.Domain()}
}
