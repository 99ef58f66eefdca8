// Package registry holds the outcome of provisioning: a device's registration
// record and the registry identity that its hub needs to admit it, and the
// store interface that writes both together, atomically.
//
// It imports the domain vocabulary (enrollment keys) and internal/fault; it
// knows nothing of transports or storage engines.
package registry

import (
	"context"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"time"
)

// Status of a registration.
type Status string

// Registration statuses, as in DPS.
const (
	Assigned  Status = "assigned"
	Assigning Status = "assigning"
	Failed    Status = "failed"
	Disabled  Status = "disabled"
)

// Substatus says how the current assignment came about, as in DPS.
type Substatus string

// Substatuses.
const (
	InitialAssignment                Substatus = "initialAssignment"
	DeviceDataMigrated               Substatus = "deviceDataMigrated"
	DeviceDataReset                  Substatus = "deviceDataReset"
	ReprovisionedToInitialAssignment Substatus = "reprovisionedToInitialAssignment"
)

// AttestationType names how the device proved itself.
type AttestationType string

// Attestation types.
const (
	X509         AttestationType = "x509"
	TPM          AttestationType = "tpm"
	SymmetricKey AttestationType = "symmetricKey"
)

// Registration records that a device registered and where it was assigned.
type Registration struct {
	// RegistrationID as the device presented it; stores key it by
	// enrollment.Key (case folded).
	RegistrationID string
	DeviceID       string
	Shard          string
	// AssignedHub is the shard's device-facing hostname at assignment.
	AssignedHub     string
	Status          Status
	Substatus       Substatus
	AttestationType AttestationType
	// GroupID is set when the device matched an enrollment group.
	GroupID string
	// Individual is true when the device matched an individual enrollment.
	Individual bool
	// CredentialThumbprint is the hex SHA-256 of the credential used: the
	// X.509 leaf certificate, or the TPM's EK (TPM2B_PUBLIC).
	CredentialThumbprint string
	// InitialShard is the shard of the device's first assignment ("" in
	// records written before it existed: then Shard).
	InitialShard string
	// Payload is the custom allocation webhook's payload for the device
	// (JSON), if any.
	Payload []byte
	// Issued is the operational certificate Zerotouch issued the device
	// last (ADR 22), nil if none; Superseded is the one it replaced,
	// still valid until the policy's overlap ends.
	Issued     *IssuedCertificate
	Superseded *IssuedCertificate
	Etag       string
	Created    time.Time
	Updated    time.Time
}

// IssuedCertificate is a certificate Zerotouch issued a device (ADR 22).
type IssuedCertificate struct {
	// Serial is the certificate's serial number in lowercase hex.
	Serial string
	// Thumbprint is the hex SHA-256 of the certificate.
	Thumbprint string
	IssuingCA  string
	NotAfter   time.Time
	// At is when it was issued (for a superseded one: when it was
	// superseded).
	At time.Time
	// Policy is the credential policy it was issued under; Enrollment the
	// enrollment that admitted the device then ("g:" or "i:", its ID and
	// its creation time): a renewal needs the same one, not a namesake
	// created since.
	Policy, Enrollment string
}

// Credential is what a hub checks when the device connects.
type Credential struct {
	Type AttestationType
	// X509Thumbprint is the hex SHA-256 of the device's leaf certificate.
	X509Thumbprint string
	// CAThumbprint is the hex SHA-256 of the CA the chain was verified to
	// (enrollment groups only).
	CAThumbprint string
	// TPMEKHash is the hex SHA-256 of the TPM's endorsement key (TPM2B_PUBLIC).
	TPMEKHash string
	// TPMBoundKey is the TPM2B_PUBLIC of the key the device holds in its
	// TPM and proved bound to the EK: the hub authenticates the device with it.
	TPMBoundKey []byte
	// SymmetricKeyHash is the hex SHA-256 of the key a symmetric-key device
	// signed with (never the key).
	SymmetricKeyHash string
	// Issued is the operational certificate the device was issued (ADR
	// 22): a hub admits a device presenting it (checking the issuing CA's
	// CRL or OCSP), besides the credential above.
	Issued *IssuedCertificate
	// X509Chain names the certificates of an X.509 group device's
	// verified chain below the group's CA, leaf first, as a CRL names
	// them (ADR 23): the stores index registrations by them (Filter.Cert),
	// so that a new CRL finds the devices it revokes.
	X509Chain []CertRef
}

// CertRef names a certificate by its verified issuer and its serial.
type CertRef struct {
	// Issuer identifies the CA certificate that verified it (the next
	// certificate of the device's verified path) by subject and public
	// key: revocation.IssuerID, the hex SHA-256 of its raw subject and
	// raw SubjectPublicKeyInfo. A CRL's serials are matched under the
	// IssuerID of the CA whose signature on the CRL verified, so a CA
	// with the same name but another key cannot revoke them.
	Issuer string
	// Serial is the serial number in lowercase hex.
	Serial string
}

// IdentityStatus is whether the hub should admit the device.
type IdentityStatus string

// Identity statuses.
const (
	IdentityEnabled  IdentityStatus = "enabled"
	IdentityDisabled IdentityStatus = "disabled"
)

// Identity is the device's registry identity on its shard.
type Identity struct {
	DeviceID       string
	RegistrationID string
	Shard          string
	Status         IdentityStatus
	Credential     Credential
	// InitialTwin is the twin the hub gives the device (JSON, from the
	// enrollment at the first assignment, or at a reset); empty for none.
	InitialTwin []byte
	// IoTEdge marks an IoT Edge device.
	IoTEdge bool
	// DisabledReason says why a disabled identity is disabled, when
	// something other than an operator's change disabled it (a fault
	// reason: CERTIFICATE_REVOKED); stores keep it only while the
	// identity is disabled.
	DisabledReason string
	// Version increases on every change of the identity (NextVersion), also
	// across a deletion and a new registration of the same device ID.
	Version int64
	Created time.Time
	Updated time.Time
}

// Filter narrows a registration list. Empty fields match everything.
type Filter struct {
	GroupID string
	Shard   string
	// Cert, when set, lists only the registrations whose identity's
	// X509Chain holds the certificate (it walks that index alone; the
	// other fields must then be empty).
	Cert *CertRef
}

// ReadAheader is a store whose reads are network round trips (Redis):
// ReadAhead reads, in one round trip, what a registration is about to
// read (the caches' versions, the individual enrollment by thumbprint,
// whether an individual enrollment reserves the name, the registration)
// and makes the rate-limit count it names, and returns a context in which
// each of those reads, and that count, takes its value once.
type ReadAheader interface {
	ReadAhead(ctx context.Context, a Ahead) context.Context
}

// Ahead is what ReadAhead reads: a registration's, and the credential
// presented for it. Count, when its Key is set, is a rate-limit count
// (ratelimit.Counter's Hit) to make in the same round trip.
type Ahead struct {
	RegistrationID, Thumbprint string
	Count                      ratelimit.Hit
}

// Store keeps registrations and identities. Registration IDs are looked up
// case-insensitively (enrollment.Key); device IDs are exact. Errors are
// fault kinds: NotFound, AlreadyExists, Conflict on etag mismatch,
// Unavailable when the backend is down.
type Store interface {
	// CreateRegistration writes reg and id in one atomic step and returns
	// the registration's etag. If a registration with the same ID exists it
	// is AlreadyExists (reason RESOURCE_ALREADY_EXISTS) and nothing is
	// written; if another registration holds id.DeviceID it is
	// AlreadyExists with reason DEVICE_ID_CONFLICT.
	CreateRegistration(ctx context.Context, reg *Registration, id *Identity) (etag string, err error)
	// UpdateRegistration replaces the registration and its identity in one
	// atomic step if reg.Etag is current, and returns the new etag. The
	// device ID must not change.
	UpdateRegistration(ctx context.Context, reg *Registration, id *Identity) (etag string, err error)
	GetRegistration(ctx context.Context, registrationID string) (*Registration, error)
	// ListRegistrations pages through registrations. With a group, shard
	// or certificate filter it walks that index in key order; unfiltered it lists the
	// registrations of every existing shard. A page may hold fewer than
	// limit items even when more follow.
	ListRegistrations(ctx context.Context, f Filter, token string, limit int) (regs []*Registration, next string, err error)
	// DeleteRegistration removes the registration and its identity in one
	// atomic step. A non-empty etag must be current.
	DeleteRegistration(ctx context.Context, registrationID, etag string) error
	// GetIdentity returns the identity of a device.
	GetIdentity(ctx context.Context, deviceID string) (*Identity, error)
	// Every write appends its events (Changes) to the shards' logs.
	EventLog
}
