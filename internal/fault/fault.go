// Package fault defines the small set of error kinds and the stable reason
// codes that every layer of Zerotouch speaks.
//
// Domain packages return *Error values (or wrap them with fmt.Errorf and %w);
// exactly one function in the server package maps them to gRPC status. This
// package imports nothing but the standard library and must stay that way:
// domain packages depend on it.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind is the class of an error, independent of any transport.
type Kind int

// The kinds. Each maps to one gRPC code in the server package.
const (
	Internal Kind = iota
	NotFound
	AlreadyExists
	Conflict // a compare-and-swap (etag) mismatch
	InvalidArgument
	FailedPrecondition
	PermissionDenied
	Unauthenticated
	ResourceExhausted
	Unavailable
)

func (k Kind) String() string {
	switch k {
	case NotFound:
		return "not found"
	case AlreadyExists:
		return "already exists"
	case Conflict:
		return "conflict"
	case InvalidArgument:
		return "invalid argument"
	case FailedPrecondition:
		return "failed precondition"
	case PermissionDenied:
		return "permission denied"
	case Unauthenticated:
		return "unauthenticated"
	case ResourceExhausted:
		return "resource exhausted"
	case Unavailable:
		return "unavailable"
	default:
		return "internal"
	}
}

// Reason is a stable, machine-readable code that clients and tests rely on.
// Reasons are part of the public API: never rename one.
type Reason string

// Device-facing reasons.
const (
	CertificateMissing      Reason = "CERTIFICATE_MISSING"
	CertificateMalformed    Reason = "CERTIFICATE_MALFORMED"
	CertificateExpired      Reason = "CERTIFICATE_EXPIRED"
	CertificateNotYetValid  Reason = "CERTIFICATE_NOT_YET_VALID"
	CertificateUntrusted    Reason = "CERTIFICATE_UNTRUSTED"
	CertificateRevoked      Reason = "CERTIFICATE_REVOKED"
	RevocationUnknown       Reason = "REVOCATION_UNKNOWN" // no current CRL or OCSP answer for a certificate that has a source (ADR 23)
	CertificateUsage        Reason = "CERTIFICATE_USAGE_INVALID"
	KeyTooWeak              Reason = "KEY_TOO_WEAK"
	ChainTooLong            Reason = "CHAIN_TOO_LONG"
	KeyUnsupported          Reason = "KEY_UNSUPPORTED"
	CANotVerified           Reason = "CA_NOT_VERIFIED"
	RegistrationIDInvalid   Reason = "REGISTRATION_ID_INVALID"
	EnrollmentNotFound      Reason = "ENROLLMENT_NOT_FOUND"
	EnrollmentDisabled      Reason = "ENROLLMENT_DISABLED"
	RegistrationDisabled    Reason = "REGISTRATION_DISABLED"
	RegistrationOwned       Reason = "REGISTRATION_ID_OWNED" // another enrollment owns the ID (ADR 17)
	NoShardAvailable        Reason = "NO_SHARD_AVAILABLE"
	CustomAllocationFailed  Reason = "CUSTOM_ALLOCATION_FAILED"
	Assigning               Reason = "ASSIGNING"
	DeviceIDConflict        Reason = "DEVICE_ID_CONFLICT"
	RateLimited             Reason = "RATE_LIMITED"
	ChallengeExpired        Reason = "CHALLENGE_EXPIRED"
	SASInvalid              Reason = "SAS_INVALID"
	SASExpired              Reason = "SAS_EXPIRED"
	SASDisabled             Reason = "SAS_DISABLED"            // symmetric_keys.enabled is false
	EnrollmentSASDisabled   Reason = "ENROLLMENT_SAS_DISABLED" // the enrollment's disableDeviceSAS
	IPFiltered              Reason = "IP_FILTERED"             // the IP filter refuses the address (ADR 21)
	TPMStructureInvalid     Reason = "TPM_STRUCTURE_INVALID"
	TPMKeyAttributesInvalid Reason = "TPM_KEY_ATTRIBUTES_INVALID"
	TPMEKUnknown            Reason = "TPM_EK_UNKNOWN"
	TPMEKMismatch           Reason = "TPM_EK_MISMATCH"
	TPMEKCertificateInvalid Reason = "TPM_EK_CERTIFICATE_INVALID"
	TPMChallengeExpired     Reason = "TPM_CHALLENGE_EXPIRED"
	TPMChallengeFailed      Reason = "TPM_CHALLENGE_FAILED"
	// A CSR in a registration (certificate issuance, ADR 22).
	CSRInvalid              Reason = "CSR_INVALID"               // malformed, oversized, or its signature fails
	CSRSubjectMismatch      Reason = "CSR_SUBJECT_MISMATCH"      // its CN is not the registration ID
	CSRKeyNotAllowed        Reason = "CSR_KEY_NOT_ALLOWED"       // the policy does not allow its key type
	CSRExtensionNotAllowed  Reason = "CSR_EXTENSION_NOT_ALLOWED" // it asks to be a CA
	CSRKeyMismatch          Reason = "CSR_KEY_MISMATCH"          // a TPM's CSR is not for the key it proved
	CredentialPolicyMissing Reason = "CREDENTIAL_POLICY_MISSING" // the enrollment names no (existing) credential policy
)

// Operator-facing reasons.
const (
	EtagMismatch          Reason = "ETAG_MISMATCH"
	PermissionDeniedR     Reason = "PERMISSION_DENIED"
	UnauthenticatedR      Reason = "UNAUTHENTICATED"
	ResourceNotFound      Reason = "RESOURCE_NOT_FOUND"
	ResourceExists        Reason = "RESOURCE_ALREADY_EXISTS"
	ResourceInUse         Reason = "RESOURCE_IN_USE"
	FieldInvalid          Reason = "FIELD_INVALID"
	VerificationCodeStale Reason = "VERIFICATION_CODE_INVALID"
	AccessKeyProtected    Reason = "ACCESS_KEY_PROTECTED"
	ProofInvalid          Reason = "PROOF_OF_POSSESSION_INVALID"
	StoreUnavailable      Reason = "STORE_UNAVAILABLE"
	// CursorExpired: the assignment log no longer holds the events after
	// a hub's cursor (trimmed by retention, or a cursor the log never
	// reached); the hub resyncs from a snapshot.
	CursorExpired Reason = "CURSOR_EXPIRED"
	// TooManyStreams: a hub cluster has as many assignment streams open
	// as it may.
	TooManyStreams Reason = "TOO_MANY_STREAMS"
	InternalError  Reason = "INTERNAL"
	// Canceled and DeadlineExceeded: the caller gave up, or its deadline
	// passed, before the answer.
	Canceled         Reason = "CANCELED"
	DeadlineExceeded Reason = "DEADLINE_EXCEEDED"
)

// Transport reasons: a request refused before it reaches a service. The
// server package gives them their codes; docs/errors.md lists them.
const (
	// BodyTooLarge: the request body or gRPC message is over the limit.
	BodyTooLarge Reason = "BODY_TOO_LARGE"
	// UnsupportedMediaType: a REST request body that is not JSON.
	UnsupportedMediaType Reason = "UNSUPPORTED_MEDIA_TYPE"
	// PathNotFound: no API method at the path (a REST path, or a gRPC
	// service or method).
	PathNotFound Reason = "PATH_NOT_FOUND"
	// MethodNotAllowed: a REST path that exists, with another HTTP method.
	MethodNotAllowed Reason = "METHOD_NOT_ALLOWED"
	// AttestationUnsupported: the transport does not carry the
	// attestation asked for (TPM over MQTT: DPS's TPM flow is HTTPS-only).
	AttestationUnsupported Reason = "ATTESTATION_UNSUPPORTED"
)

// Error is a classified error with a stable reason.
type Error struct {
	Kind   Kind
	Reason Reason
	// Msg is safe to show to the caller.
	Msg string
	// Err is the underlying cause; it is logged, never sent to a device.
	Err error
	// RetryAfter, when set, is how long the caller should wait.
	RetryAfter time.Duration
	// Metadata is machine-readable detail for the caller (ErrorInfo
	// metadata), such as the shard whose cursor expired.
	Metadata map[string]string
}

func (e *Error) Error() string {
	s := string(e.Reason)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, fault.NotFoundErr) style checks work by kind:
// a target *Error with only Kind set matches any error of that kind, one
// with a Reason matches that reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t.Reason != "" {
		return e.Reason == t.Reason
	}
	return t.Msg == "" && t.Err == nil && e.Kind == t.Kind
}

// Sentinels for errors.Is by kind.
var (
	ErrNotFound      = &Error{Kind: NotFound}
	ErrAlreadyExists = &Error{Kind: AlreadyExists}
	ErrConflict      = &Error{Kind: Conflict}
	ErrInvalid       = &Error{Kind: InvalidArgument}
	ErrPrecondition  = &Error{Kind: FailedPrecondition}
	ErrUnavailable   = &Error{Kind: Unavailable}
)

// New returns an error of the kind with the reason and a caller-safe message.
func New(k Kind, r Reason, format string, args ...any) *Error {
	return &Error{Kind: k, Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// Wrap is New with an underlying cause that is logged but not shown.
func Wrap(k Kind, r Reason, cause error, format string, args ...any) *Error {
	return &Error{Kind: k, Reason: r, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// ReasonOf returns the reason of err, or INTERNAL for unclassified errors.
func ReasonOf(err error) Reason {
	if e, ok := As(err); ok {
		return e.Reason
	}
	return InternalError
}

// KindOf returns the kind of err, or Internal for unclassified errors.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}

// Convenience constructors for the store contracts.

// NotFoundf is a NotFound error with reason RESOURCE_NOT_FOUND.
func NotFoundf(format string, args ...any) *Error {
	return New(NotFound, ResourceNotFound, format, args...)
}

// Existsf is an AlreadyExists error with reason RESOURCE_ALREADY_EXISTS.
func Existsf(format string, args ...any) *Error {
	return New(AlreadyExists, ResourceExists, format, args...)
}

// EtagMismatchf is a Conflict error with reason ETAG_MISMATCH.
func EtagMismatchf(format string, args ...any) *Error {
	return New(Conflict, EtagMismatch, format, args...)
}

// Invalidf is an InvalidArgument error with reason FIELD_INVALID.
func Invalidf(format string, args ...any) *Error {
	return New(InvalidArgument, FieldInvalid, format, args...)
}
