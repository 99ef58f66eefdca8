package dpsdevice

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/zerotouch/zerotouch/internal/registry"
)

// The device API's JSON shapes (dps-protocol.md §1). The error body is
// apierr.DPSErrorBody, shared with the service API.

// registrationRequest is DPS's DeviceRegistration body.
type registrationRequest struct {
	RegistrationID string          `json:"registrationId"`
	TPM            *tpmAttestation `json:"tpm,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	// CSR is DPS's certificate issuance preview: base64 DER PKCS#10.
	CSR string `json:"csr,omitempty"`
}

// DeviceRegistration is the register and status-lookup body, exported
// for the API's OpenAPI document.
type DeviceRegistration = registrationRequest

type tpmAttestation struct {
	EndorsementKey string `json:"endorsementKey"`
	StorageRootKey string `json:"storageRootKey"`
}

// RegistrationState is DPS's DeviceRegistrationResult.
type RegistrationState struct {
	RegistrationID         string          `json:"registrationId"`
	CreatedDateTimeUTC     string          `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string          `json:"assignedHub,omitempty"`
	DeviceID               string          `json:"deviceId,omitempty"`
	Status                 string          `json:"status"`
	Substatus              string          `json:"substatus,omitempty"`
	ErrorCode              int             `json:"errorCode,omitempty"`
	ErrorMessage           string          `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string          `json:"lastUpdatedDateTimeUtc,omitempty"`
	Etag                   string          `json:"etag,omitempty"`
	X509                   *AttestedBy     `json:"x509,omitempty"`
	SymmetricKey           *AttestedBy     `json:"symmetricKey,omitempty"`
	TPM                    *TPMResult      `json:"tpm,omitempty"`
	Payload                json.RawMessage `json:"payload,omitempty"`
	// IssuedCertificateChain answers a register request's csr: base64
	// DER, leaf → root. Never in a status lookup.
	IssuedCertificateChain []string `json:"issuedCertificateChain,omitempty"`
}

// TPMResult is DPS's TpmRegistrationResult: the hub key, delivered into
// the device's TPM.
type TPMResult struct {
	AuthenticationKey string `json:"authenticationKey"`
}

// AttestedBy is DPS's X509RegistrationResult and
// SymmetricKeyRegistrationResult: the enrollment group, if any.
type AttestedBy struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// OperationStatus is DPS's RegistrationOperationStatus.
type OperationStatus struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"`
	RegistrationState *RegistrationState `json:"registrationState,omitempty"`
}

// OperationID names a registration's (completed) operation; it stays the
// same for the registration's life, so a device polling it finds it.
func OperationID(reg *registry.Registration) string {
	return "0." + base64.RawURLEncoding.EncodeToString([]byte(reg.RegistrationID+"|"+strconv.FormatInt(reg.Created.UnixNano(), 36)))
}

// utc is a time as DPS writes it.
func utc(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func ToState(reg *registry.Registration) *RegistrationState {
	s := &RegistrationState{
		RegistrationID: reg.RegistrationID, CreatedDateTimeUTC: utc(reg.Created), AssignedHub: reg.AssignedHub,
		DeviceID: reg.DeviceID, Status: string(reg.Status), Substatus: string(reg.Substatus),
		LastUpdatedDateTimeUTC: utc(reg.Updated), Etag: base64.StdEncoding.EncodeToString([]byte(strconv.Quote(reg.Etag))),
		Payload: reg.Payload,
	}
	by := &AttestedBy{EnrollmentGroupID: reg.GroupID}
	switch reg.AttestationType {
	case registry.SymmetricKey:
		s.SymmetricKey = by
	case registry.X509:
		s.X509 = by
	}
	return s
}
