// Package dps is the Azure IoT Hub DPS-compatible device API, so that
// devices running the Azure IoT provisioning SDKs register with Zerotouch
// unchanged: the same paths, JSON shapes, status strings, content type and
// error bodies (shared/reference/dps-protocol.md §1). It is a separate HTTP
// handler over the same registration use case as the native API, not a
// gateway mapping.
package dps

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// maxBody bounds a device's request body.
const maxBody = 64 << 10

// Handler serves /{idScope}/registrations/… for one ID scope.
type Handler struct {
	Prov    *provisioning.Service
	IDScope string
	Log     *slog.Logger
	// Locate, if set, is the region a request's client is in (the geo
	// policy): the server's geo table, which knows trusted proxy headers.
	Locate func(r *http.Request) string
}

// registrationRequest is DPS's DeviceRegistration body.
type registrationRequest struct {
	RegistrationID string          `json:"registrationId"`
	TPM            *tpmAttestation `json:"tpm,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

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
	X509                   *attestedBy     `json:"x509,omitempty"`
	SymmetricKey           *attestedBy     `json:"symmetricKey,omitempty"`
	TPM                    *tpmResult      `json:"tpm,omitempty"`
	Payload                json.RawMessage `json:"payload,omitempty"`
}

type tpmResult struct {
	AuthenticationKey string `json:"authenticationKey"`
}

type attestedBy struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// OperationStatus is DPS's RegistrationOperationStatus.
type OperationStatus struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"`
	RegistrationState *RegistrationState `json:"registrationState,omitempty"`
}

// ErrorBody is DPS's ProvisioningServiceErrorDetails, with the stable
// reason in info.
type ErrorBody struct {
	ErrorCode    int               `json:"errorCode"`
	TrackingID   string            `json:"trackingId"`
	Message      string            `json:"message"`
	Info         map[string]string `json:"info,omitempty"`
	TimestampUTC string            `json:"timestampUtc"`
}

// ServeHTTP routes the three device operations.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 3 || parts[0] != h.IDScope || parts[1] != "registrations" {
		h.fail(w, r, fault.NotFoundf("no such ID scope or path"))
		return
	}
	regID := parts[2]
	switch {
	case len(parts) == 4 && parts[3] == "register" && r.Method == http.MethodPut:
		h.register(w, r, regID)
	case len(parts) == 5 && parts[3] == "operations" && r.Method == http.MethodGet:
		h.operation(w, r, regID, parts[4])
	case len(parts) == 3 && r.Method == http.MethodPost:
		h.lookup(w, r, regID)
	default:
		h.fail(w, r, fault.NotFoundf("no such operation"))
	}
}

func (h *Handler) resource(regID string) string { return h.IDScope + "/registrations/" + regID }

// request is the registration request the HTTP request makes: the
// caller's credential (a SAS token, or its TLS client certificate) and
// where it comes from.
func (h *Handler) request(r *http.Request, regID string) provisioning.Request {
	req := provisioning.Request{RegistrationID: regID, Transport: provisioning.TransportDPS,
		RequestID: r.Header.Get("X-Request-Id"), Peer: r.RemoteAddr}
	if h.Locate != nil {
		req.Region = h.Locate(r)
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth != "":
		req.Evidence = provisioning.SASToken{Token: auth, Resource: h.resource(regID)}
	case r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
		req.Evidence = provisioning.X509Chain{Chain: r.TLS.PeerCertificates}
	}
	return req
}

func readBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "read the request body")
	}
	if len(raw) > maxBody {
		return fault.Invalidf("the request body is larger than %d bytes", maxBody)
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "the request body is not a DeviceRegistration")
	}
	return nil
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, regID string) {
	var body registrationRequest
	if err := readBody(r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if body.RegistrationID != "" && !strings.EqualFold(body.RegistrationID, regID) {
		h.fail(w, r, fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "the body's registrationId is not the path's"))
		return
	}
	req := h.request(r, regID)
	// The device's payload goes to a custom allocation webhook; a DPS
	// device polls a slow one.
	req.Payload, req.CanPoll = body.Payload, true
	if body.TPM != nil {
		h.registerTPM(w, r, req, body.TPM)
		return
	}
	res, err := h.Prov.Register(r.Context(), req)
	if fault.ReasonOf(err) == fault.Assigning {
		h.assigning(w, regID, assigningOperationID(regID, time.Now().Add(assigningFor)), err)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, OperationStatus{OperationID: operationID(res.Registration), Status: "assigned", RegistrationState: toState(res.Registration)})
}

// assigningFor bounds how long an ASSIGNING operation is worth polling:
// the longest webhook timeout, and a margin.
const assigningFor = 40 * time.Second

// assigningOperationID names a pending assignment: the registration ID and
// the time after which polling it gives up. A device can only poll its own
// (it authenticates again), so the ID needs no secrecy.
func assigningOperationID(regID string, deadline time.Time) string {
	return "0.assigning." + base64.RawURLEncoding.EncodeToString([]byte(regID+"|"+strconv.FormatInt(deadline.Unix(), 10)))
}

func parseAssigningOperationID(opID, regID string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(opID, "0.assigning.")
	if !ok {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	id, unix, ok := strings.Cut(string(raw), "|")
	n, err2 := strconv.ParseInt(unix, 10, 64)
	if err != nil || !ok || err2 != nil || !strings.EqualFold(id, regID) {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// assigning answers 202 with status "assigning" and a retry hint, as DPS
// does while it allocates.
func (h *Handler) assigning(w http.ResponseWriter, regID, opID string, err error) {
	wait := time.Second
	if fe, ok := fault.As(err); ok && fe.RetryAfter > 0 {
		wait = fe.RetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	h.write(w, http.StatusAccepted, OperationStatus{OperationID: opID, Status: "assigning",
		RegistrationState: &RegistrationState{RegistrationID: regID, Status: "assigning"}})
}

// registerTPM is DPS's TPM flow: the first PUT is answered 401 with the
// authenticationKey that delivers a key into the device's TPM; the second
// carries a SAS signed by that key, and is answered with the hub key,
// delivered the same way.
func (h *Handler) registerTPM(w http.ResponseWriter, r *http.Request, req provisioning.Request, t *tpmAttestation) {
	ek, err1 := base64.StdEncoding.DecodeString(t.EndorsementKey)
	srk, err2 := base64.StdEncoding.DecodeString(t.StorageRootKey)
	if err1 != nil || err2 != nil {
		h.fail(w, r, fault.New(fault.InvalidArgument, fault.TPMStructureInvalid, "tpm.endorsementKey and tpm.storageRootKey must be base64 TPM2B_PUBLIC"))
		return
	}
	token := r.Header.Get("Authorization")
	if token == "" {
		req.Evidence = provisioning.DPSTPMBegin{EKPublic: ek, SRKPublic: srk}
		ch, err := h.Prov.BeginTPM(r.Context(), req)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.write(w, http.StatusUnauthorized, map[string]string{"authenticationKey": base64.StdEncoding.EncodeToString(ch.AuthenticationKey), "keyName": "registration"})
		return
	}
	req.Evidence = provisioning.DPSTPMAnswer{EKPublic: ek, SRKPublic: srk, Token: token, Resource: h.resource(req.RegistrationID)}
	res, err := h.Prov.Register(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	state := toState(res.Registration)
	state.TPM = &tpmResult{AuthenticationKey: base64.StdEncoding.EncodeToString(res.AuthenticationKey)}
	h.write(w, http.StatusOK, OperationStatus{OperationID: operationID(res.Registration), Status: "assigned", RegistrationState: state})
}

func (h *Handler) operation(w http.ResponseWriter, r *http.Request, regID, opID string) {
	reg, err := h.Prov.Lookup(r.Context(), h.request(r, regID))
	if deadline, pending := parseAssigningOperationID(opID, regID); pending {
		switch {
		case err == nil:
			opID = operationID(reg) // decided
		case fault.KindOf(err) == fault.NotFound && time.Now().Before(deadline):
			h.assigning(w, regID, opID, nil)
			return
		case fault.KindOf(err) == fault.NotFound:
			h.write(w, http.StatusOK, OperationStatus{OperationID: opID, Status: "failed", RegistrationState: &RegistrationState{
				RegistrationID: regID, Status: "failed", ErrorCode: 503000, ErrorMessage: "the assignment was not decided: " + string(fault.CustomAllocationFailed)}})
			return
		}
	}
	if err == nil && opID != operationID(reg) {
		err = fault.NotFoundf("no such operation")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, OperationStatus{OperationID: opID, Status: "assigned", RegistrationState: toState(reg)})
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request, regID string) {
	var body map[string]json.RawMessage
	if err := readBody(r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, ok := body["csr"]; ok {
		h.fail(w, r, fault.Invalidf("a status lookup takes no csr"))
		return
	}
	reg, err := h.Prov.Lookup(r.Context(), h.request(r, regID))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, toState(reg))
}

// operationID names a registration's (completed) operation; it stays the
// same for the registration's life, so a device polling it finds it.
func operationID(reg *registry.Registration) string {
	return "0." + base64.RawURLEncoding.EncodeToString([]byte(reg.RegistrationID+"|"+strconv.FormatInt(reg.Created.UnixNano(), 36)))
}

// NotFound answers any path outside the API with a DPS error body, so that
// a device with a wrong ID scope gets JSON (the Node SDK needs it).
func (h *Handler) NotFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, fault.NotFoundf("no such ID scope or path"))
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func toState(reg *registry.Registration) *RegistrationState {
	s := &RegistrationState{
		RegistrationID: reg.RegistrationID, CreatedDateTimeUTC: utc(reg.Created), AssignedHub: reg.AssignedHub,
		DeviceID: reg.DeviceID, Status: string(reg.Status), Substatus: string(reg.Substatus),
		LastUpdatedDateTimeUTC: utc(reg.Updated), Etag: base64.StdEncoding.EncodeToString([]byte(strconv.Quote(reg.Etag))),
		Payload: reg.Payload,
	}
	by := &attestedBy{EnrollmentGroupID: reg.GroupID}
	switch reg.AttestationType {
	case registry.SymmetricKey:
		s.SymmetricKey = by
	case registry.X509:
		s.X509 = by
	}
	return s
}

func (h *Handler) write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers an error the DPS way. A disabled enrollment or
// registration is, as in DPS, a completed operation whose status is
// "disabled".
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	a := apierr.Classify(r.Context(), h.Log, r.Header.Get("X-Request-Id"), err, apierr.Operator)
	if a.Reason == fault.EnrollmentDisabled || a.Reason == fault.RegistrationDisabled {
		regID := ""
		if parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/"); len(parts) > 2 {
			regID = parts[2]
		}
		msg := "the enrollment is disabled"
		if a.Reason == fault.RegistrationDisabled {
			msg = "the registration is disabled"
		}
		h.write(w, http.StatusOK, OperationStatus{OperationID: "0.disabled", Status: "disabled",
			RegistrationState: &RegistrationState{RegistrationID: regID, Status: "disabled", ErrorCode: 401002, ErrorMessage: msg}})
		return
	}
	if s := a.RetryAfterSeconds(); s != "" {
		w.Header().Set("Retry-After", s)
	}
	// A malformed request is told what is wrong with it; a refusal only
	// its reason.
	if a.DPSStatus != http.StatusBadRequest && a.DPSStatus != http.StatusNotFound {
		a.Message = "registration refused: " + string(a.Reason)
	}
	h.write(w, a.DPSStatus, errorBody(r, a))
}
