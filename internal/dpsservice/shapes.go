package dpsservice

import (
	"encoding/json"
	"time"

	"github.com/zerotouch/zerotouch/internal/registry"
)

// The service API's JSON shapes (dps-protocol.md §4.3). The error body is
// apierr.DPSErrorBody, shared with the device API.

// X509CertificateInfo describes a stored certificate.
type X509CertificateInfo struct {
	SubjectName      string `json:"subjectName,omitempty"`
	SHA256Thumbprint string `json:"sha256Thumbprint,omitempty"`
	IssuerName       string `json:"issuerName,omitempty"`
	NotBeforeUTC     string `json:"notBeforeUtc,omitempty"`
	NotAfterUTC      string `json:"notAfterUtc,omitempty"`
	SerialNumber     string `json:"serialNumber,omitempty"`
	Version          int    `json:"version,omitempty"`
}

// X509CertificateWithInfo is a certificate as sent, or its info as returned.
type X509CertificateWithInfo struct {
	Certificate string               `json:"certificate,omitempty"`
	Info        *X509CertificateInfo `json:"info,omitempty"`
}

// X509Certificates is a primary/secondary pair.
type X509Certificates struct {
	Primary   *X509CertificateWithInfo `json:"primary,omitempty"`
	Secondary *X509CertificateWithInfo `json:"secondary,omitempty"`
}

// X509CAReferences names uploaded, verified CA certificates.
type X509CAReferences struct {
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// X509Attestation is DPS's X509Attestation.
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
	CAReferences        *X509CAReferences `json:"caReferences,omitempty"`
}

// TPMAttestation is DPS's TpmAttestation (base64 TPM2B_PUBLIC).
type TPMAttestation struct {
	EndorsementKey string `json:"endorsementKey"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
}

// SymmetricKeyAttestation is DPS's SymmetricKeyAttestation (base64 keys).
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// AttestationMechanism is DPS's AttestationMechanism.
type AttestationMechanism struct {
	Type         string                   `json:"type"`
	TPM          *TPMAttestation          `json:"tpm,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
}

// ReprovisionPolicy is DPS's ReprovisionPolicy.
type ReprovisionPolicy struct {
	UpdateHubAssignment *bool `json:"updateHubAssignment"`
	MigrateDeviceData   *bool `json:"migrateDeviceData"`
	// AdoptFromGroups is Zerotouch's own: the enrollment groups whose
	// registrations this enrollment's devices may take over (ADR 17).
	AdoptFromGroups []string `json:"adoptFromGroups,omitempty"`
}

// DeviceCapabilities is DPS's DeviceCapabilities.
type DeviceCapabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// enrollmentCommon are the fields individual enrollments and groups share.
type enrollmentCommon struct {
	Attestation                *AttestationMechanism `json:"attestation"`
	Capabilities               *DeviceCapabilities   `json:"capabilities,omitempty"`
	IoTHubHostName             string                `json:"iotHubHostName,omitempty"`
	InitialTwin                json.RawMessage       `json:"initialTwin,omitempty"`
	Etag                       string                `json:"etag,omitempty"`
	ProvisioningStatus         string                `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy    `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string              `json:"iotHubs,omitempty"`
	CustomAllocationDefinition json.RawMessage       `json:"customAllocationDefinition,omitempty"`
	CredentialPolicyName       string                `json:"credentialPolicyName,omitempty"`
	// DisableDeviceSAS is Zerotouch's own: refuse the enrollment's SAS
	// tokens (reason ENROLLMENT_SAS_DISABLED) while keeping its keys.
	DisableDeviceSAS bool `json:"disableDeviceSAS,omitempty"`
}

// IndividualEnrollment is DPS's IndividualEnrollment.
type IndividualEnrollment struct {
	RegistrationID            string                   `json:"registrationId"`
	DeviceID                  string                   `json:"deviceId,omitempty"`
	RegistrationState         *DeviceRegistrationState `json:"registrationState,omitempty"`
	OptionalDeviceInformation json.RawMessage          `json:"optionalDeviceInformation,omitempty"`
	enrollmentCommon
}

// EnrollmentGroup is DPS's EnrollmentGroup.
type EnrollmentGroup struct {
	EnrollmentGroupID string `json:"enrollmentGroupId"`
	enrollmentCommon
}

// DeviceRegistrationState is DPS's service view of a registration.
type DeviceRegistrationState struct {
	RegistrationID         string `json:"registrationId"`
	CreatedDateTimeUTC     string `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string `json:"assignedHub,omitempty"`
	DeviceID               string `json:"deviceId,omitempty"`
	Status                 string `json:"status"`
	Substatus              string `json:"substatus,omitempty"`
	ErrorCode              int    `json:"errorCode,omitempty"`
	ErrorMessage           string `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string `json:"lastUpdatedDateTimeUtc,omitempty"`
	Etag                   string `json:"etag,omitempty"`
	// Payload is the custom allocation webhook's payload for the device.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// BulkOperation is DPS's BulkEnrollmentOperation (and its group form).
type BulkOperation struct {
	Enrollments []json.RawMessage `json:"enrollments"`
	Mode        string            `json:"mode"`
}

// BulkError is one failed item of a bulk operation.
type BulkError struct {
	RegistrationID    string `json:"registrationId,omitempty"`
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	ErrorCode         int    `json:"errorCode"`
	ErrorStatus       string `json:"errorStatus"`
}

// BulkResult is DPS's BulkEnrollmentOperationResult.
type BulkResult struct {
	IsSuccessful bool        `json:"isSuccessful"`
	Errors       []BulkError `json:"errors"`
}

// utc is a time as DPS writes it.
func utc(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func toRegistrationState(reg *registry.Registration) *DeviceRegistrationState {
	return &DeviceRegistrationState{RegistrationID: reg.RegistrationID, CreatedDateTimeUTC: utc(reg.Created), AssignedHub: reg.AssignedHub,
		DeviceID: reg.DeviceID, Status: string(reg.Status), Substatus: string(reg.Substatus),
		LastUpdatedDateTimeUTC: utc(reg.Updated), Etag: quoteEtag(reg.Etag), Payload: reg.Payload}
}
