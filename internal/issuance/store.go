package issuance

import (
	"context"
	"time"
)

// Revocation is one revoked certificate of an issuing CA.
type Revocation struct {
	IssuingCA string
	// Serial is the certificate's serial (SerialHex).
	Serial         string
	RegistrationID string
	// RevokedAt is when the revocation takes effect: a superseded
	// certificate is revoked once the policy's overlap ends. A CRL lists
	// and OCSP reports only revocations in effect.
	RevokedAt time.Time
	// Reason is the CRL reason code (RFC 5280 §5.3.1).
	Reason int
	// NotAfter is the certificate's; a CRL drops the entry after it.
	NotAfter time.Time
}

// horizon is how long after its certificate expired the revocation is
// kept.
func (r *Revocation) horizon() time.Duration {
	if r.Reason == ReasonSuperseded {
		return CRLValidity
	}
	return RevocationHorizon
}

// CRL reason codes Zerotouch uses.
const (
	ReasonUnspecified   = 0
	ReasonKeyCompromise = 1
	ReasonSuperseded    = 4
	ReasonCessation     = 5
)

// Store keeps issuing CAs, credential policies and revocations, with the
// error contract of enrollment.CAStore.
type Store interface {
	CreateIssuingCA(ctx context.Context, ca *CA) (etag string, err error)
	GetIssuingCA(ctx context.Context, name string) (*CA, error)
	// ListIssuingCAs returns every issuing CA (at most MaxIssuingCAs).
	ListIssuingCAs(ctx context.Context) ([]*CA, error)
	// UpdateIssuingCA replaces the CA if ca.Etag is current.
	UpdateIssuingCA(ctx context.Context, ca *CA) (etag string, err error)
	DeleteIssuingCA(ctx context.Context, name, etag string) error

	CreatePolicy(ctx context.Context, p *Policy) (etag string, err error)
	GetPolicy(ctx context.Context, name string) (*Policy, error)
	// ListPolicies returns every policy (at most MaxPolicies).
	ListPolicies(ctx context.Context) ([]*Policy, error)
	UpdatePolicy(ctx context.Context, p *Policy) (etag string, err error)
	DeletePolicy(ctx context.Context, name, etag string) error
	// IssuanceVersion changes whenever an issuing CA or a policy does.
	IssuanceVersion(ctx context.Context) (uint64, error)

	// Revoke records a revocation; a serial already revoked keeps the
	// earlier of the two times (revoked reports whether it was new).
	Revoke(ctx context.Context, r *Revocation) (revoked bool, err error)
	// GetRevocation returns a serial's revocation, or NotFound.
	GetRevocation(ctx context.Context, ca, serial string) (*Revocation, error)
	// ListRevocations returns every revocation of a CA (for its CRL).
	ListRevocations(ctx context.Context, ca string) ([]*Revocation, error)
	// PageRevocations returns at most limit revocations of a CA in serial
	// order, after the serial after ("" for the first).
	PageRevocations(ctx context.Context, ca, after string, limit int) ([]*Revocation, error)
	// RevocationsVersion changes whenever a CA's revocations do.
	RevocationsVersion(ctx context.Context, ca string) (uint64, error)
	// DropRevocation forgets a revocation (its certificate expired).
	DropRevocation(ctx context.Context, ca, serial string) error
}
