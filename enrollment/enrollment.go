package enrollment

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Limits on operator-supplied values.
const (
	MaxIDLength          = 128
	MaxShardsPerPolicy   = 100
	MaxCertificatePEM    = 16 << 10
	VerificationCodeLife = time.Hour
)

// Meta is what every stored resource carries.
type Meta struct {
	// Etag changes on every write; updates and deletes may require it.
	Etag    string
	Created time.Time
	Updated time.Time
}

// Policy names an allocation policy.
type Policy string

// The allocation policies an enrollment may name.
const (
	PolicyHashed Policy = "hashed"
	PolicyStatic Policy = "static"
	// PolicyGeo picks the client's region's shards first (DPS's
	// geoLatency), hashing among them.
	PolicyGeo Policy = "geo"
	// PolicyCustom asks a webhook (DPS's custom allocation).
	PolicyCustom Policy = "custom"
)

// Webhook limits.
const (
	MaxWebhookURL         = 2048
	DefaultWebhookTimeout = 5 * time.Second
	MaxWebhookTimeout     = 30 * time.Second
)

// Webhook is a custom allocation webhook: HTTPS only. When it fails (an
// error, a timeout, an answer naming no linked shard), Fallback decides
// ("" refuses the device).
type Webhook struct {
	URL      string
	Timeout  time.Duration
	Fallback Policy
}

// EffectiveTimeout is the timeout, defaulted.
func (w *Webhook) EffectiveTimeout() time.Duration {
	if w.Timeout == 0 {
		return DefaultWebhookTimeout
	}
	return w.Timeout
}

func (w *Webhook) validate(static string) error {
	if len(w.URL) > MaxWebhookURL {
		return fault.Invalidf("allocation.webhook.url is longer than %d characters", MaxWebhookURL)
	}
	u, err := url.Parse(w.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fault.Invalidf("allocation.webhook.url %q must be an https:// URL with a host and no user info", w.URL)
	}
	if w.Timeout < 0 || w.Timeout > MaxWebhookTimeout {
		return fault.Invalidf("allocation.webhook.timeout %s is outside 0-%s", w.Timeout, MaxWebhookTimeout)
	}
	switch w.Fallback {
	case "", PolicyHashed, PolicyGeo:
	case PolicyStatic:
		if static == "" {
			return fault.Invalidf("the static fallback needs allocation.static_shard")
		}
	default:
		return fault.Invalidf("allocation.webhook.fallback %q is not one of hashed, geo, static or none", w.Fallback)
	}
	return nil
}

// Allocation is how an enrollment's devices are spread over hub shards.
type Allocation struct {
	Policy Policy
	// Shards the enrollment may use; empty means every shard.
	Shards []string
	// StaticShard is the shard for PolicyStatic (and a static fallback).
	StaticShard string
	// Webhook is the custom policy's webhook.
	Webhook *Webhook
}

// Validate checks the allocation's shape (not whether the shards exist).
func (a Allocation) Validate() error {
	if (a.Policy == PolicyCustom) != (a.Webhook != nil) {
		return fault.Invalidf("allocation.webhook is required with the custom policy and valid only with it")
	}
	switch a.Policy {
	case PolicyCustom:
		if err := a.Webhook.validate(a.StaticShard); err != nil {
			return err
		}
		if a.StaticShard != "" {
			if err := ValidateID("allocation.static_shard", a.StaticShard); err != nil {
				return err
			}
		}
	case PolicyHashed, PolicyGeo:
		if a.StaticShard != "" {
			return fault.Invalidf("allocation.static_shard is only valid with the static policy")
		}
	case PolicyStatic:
		if err := ValidateID("allocation.static_shard", a.StaticShard); err != nil {
			return err
		}
		if len(a.Shards) > 0 && !contains(a.Shards, a.StaticShard) {
			return fault.Invalidf("allocation.static_shard %q is not among allocation.shards", a.StaticShard)
		}
	default:
		return fault.Invalidf("allocation.policy %q is not one of hashed, static, geo, custom", a.Policy)
	}
	if len(a.Shards) > MaxShardsPerPolicy {
		return fault.Invalidf("allocation.shards has %d entries, at most %d allowed", len(a.Shards), MaxShardsPerPolicy)
	}
	seen := make(map[string]bool, len(a.Shards))
	for _, s := range a.Shards {
		if err := ValidateID("allocation.shards", s); err != nil {
			return err
		}
		if seen[s] {
			return fault.Invalidf("allocation.shards lists %q twice", s)
		}
		seen[s] = true
	}
	return nil
}

// ShardNames returns every shard the allocation refers to.
func (a Allocation) ShardNames() []string {
	names := append([]string(nil), a.Shards...)
	if a.StaticShard != "" && !contains(names, a.StaticShard) {
		names = append(names, a.StaticShard)
	}
	return names
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// CA is an uploaded CA certificate (a root or an intermediate) that
// enrollment groups can trust once its owner proved possession of its key.
type CA struct {
	Name string
	// DER is the certificate as uploaded.
	DER []byte
	// Thumbprint is the hex SHA-256 of DER.
	Thumbprint string
	// SubjectKey is the hex SHA-256 of the raw subject, to find the CA as
	// the issuer of a presented certificate.
	SubjectKey string
	Verified   bool
	// VerificationCode is the outstanding proof-of-possession code, if any.
	VerificationCode string
	CodeExpires      time.Time
	Meta
}

// Certificate parses the CA's DER.
func (c *CA) Certificate() (*x509.Certificate, error) {
	return x509.ParseCertificate(c.DER)
}

// MaxEKAllowList bounds a TPM group's allow-list; larger sets belong in
// individual enrollments.
const MaxEKAllowList = 10000

// Group admits every device whose chain leads to its CA certificate: X.509
// devices by their certificate chain, TPM devices by their EK certificate
// chain (the CA is then a TPM vendor's).
type Group struct {
	ID       string
	CAName   string
	Disabled bool
	// Mechanism is X.509 (the default) or TPM.
	Mechanism Mechanism
	// EKAllowList, for a TPM group, optionally limits it to these EK hashes
	// (hex SHA-256 of TPM2B_PUBLIC).
	EKAllowList []string
	// SealedKeys are a symmetric-key group's keys, sealed; such a group has
	// no CA.
	SealedKeys []byte
	// Revocation is how an X.509 group checks its devices' certificates
	// against CRLs and OCSP (ADR 23).
	Revocation RevocationPolicy
	Allocation
	DeviceSettings
	Meta
}

// EffectiveMechanism is the group's mechanism, X.509 when unset.
func (g *Group) EffectiveMechanism() Mechanism {
	if g.Mechanism == "" {
		return MechanismX509
	}
	return g.Mechanism
}

// AllowsEK reports whether a TPM group admits the EK hash.
func (g *Group) AllowsEK(ekHash string) bool {
	if len(g.EKAllowList) == 0 {
		return true
	}
	for _, h := range g.EKAllowList {
		if strings.EqualFold(h, ekHash) {
			return true
		}
	}
	return false
}

// Mechanism is how an individual enrollment's device attests.
type Mechanism string

// Attestation mechanisms of individual enrollments.
const (
	MechanismX509         Mechanism = "x509"
	MechanismTPM          Mechanism = "tpm"
	MechanismSymmetricKey Mechanism = "symmetricKey"
)

// Individual admits one device: by its leaf certificate's thumbprint
// (X.509), or by its TPM's endorsement key (TPM).
type Individual struct {
	// RegistrationID as given; lookups fold case (see Key).
	RegistrationID string
	// DeviceID for the registry identity; empty means RegistrationID.
	DeviceID  string
	Mechanism Mechanism
	// Thumbprint is the hex SHA-256 of the leaf certificate (X.509) or of
	// the EK's TPM2B_PUBLIC (TPM): unique across individual enrollments.
	Thumbprint string
	// EKPublic is the TPM2B_PUBLIC of the endorsement key (TPM only).
	EKPublic []byte
	// SealedKeys are the symmetric keys, sealed (symmetric key only).
	SealedKeys []byte
	Disabled   bool
	Allocation
	DeviceSettings
	Meta
}

// EffectiveDeviceID is the device ID the enrollment assigns.
func (e *Individual) EffectiveDeviceID() string {
	if e.DeviceID != "" {
		return e.DeviceID
	}
	return e.RegistrationID
}

// Thumbprint returns the hex SHA-256 of a DER certificate.
func Thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// SubjectKey returns the key under which a CA is found as the issuer of a
// certificate: the hex SHA-256 of a raw (DER) distinguished name.
func SubjectKey(rawName []byte) string {
	sum := sha256.Sum256(rawName)
	return hex.EncodeToString(sum[:])
}

// Key is the case-folded form of a registration ID used for look-ups:
// registration IDs are case-insensitive, as in DPS.
func Key(registrationID string) string { return strings.ToLower(registrationID) }

// NameTaken is the refusal of an individual enrollment whose registration
// ID or device ID (name) another individual enrollment (other, its
// registration ID) already reserves, as its device ID when asDevice.
func NameTaken(name, other string, asDevice bool) error {
	as := "registration ID"
	if asDevice {
		as = "device ID"
	}
	return fault.New(fault.AlreadyExists, fault.DeviceIDConflict,
		"%q is already the %s of individual enrollment %q; an individual enrollment's registration ID and device ID must not be another's", name, as, other)
}

// ValidThumbprint reports whether s is a lowercase or uppercase hex SHA-256.
func ValidThumbprint(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// ValidateID checks an operator-chosen identifier (CA names, group IDs,
// shard IDs, device IDs): 1-128 characters of [A-Za-z0-9-._:].
func ValidateID(field, id string) error {
	if id == "" {
		return fault.Invalidf("%s is required", field)
	}
	if len(id) > MaxIDLength {
		return fault.Invalidf("%s is %d characters long, at most %d allowed", field, len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return fault.Invalidf("%s contains %q; only letters, digits and - . _ : are allowed", field, id[i])
		}
	}
	return nil
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == ':'
}

// ValidateRegistrationID checks a registration ID by DPS's rule: 1-128
// characters of [A-Za-z0-9-._:], ending in a letter, digit or '-'.
func ValidateRegistrationID(id string) error {
	if id == "" {
		return fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "registration ID is empty")
	}
	if len(id) > MaxIDLength {
		return fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "registration ID is longer than %d characters", MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "registration ID contains a character outside [A-Za-z0-9-._:]")
		}
	}
	last := id[len(id)-1]
	if last == '.' || last == '_' || last == ':' {
		return fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "registration ID must end in a letter, a digit or '-'")
	}
	return nil
}
