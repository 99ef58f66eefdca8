package dpsdevice

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
)

// register is PUT …/register: X.509 (the TLS client certificate), a
// symmetric key's SAS token, or DPS's TPM flow (registerTPM).
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
	csr, err := DecodeCSR(body.CSR, r.URL.Query().Get("api-version"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req.CSR = csr
	if body.TPM != nil {
		h.registerTPM(w, r, req, body.TPM)
		return
	}
	res, err := h.Prov.Register(r.Context(), req)
	if fault.ReasonOf(err) == fault.Assigning {
		h.assigning(w, regID, AssigningOperationID(regID, time.Now().Add(AssigningFor)), err)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	state := ToState(res.Registration)
	state.IssuedCertificateChain = Chain(res.IssuedChain)
	h.write(w, http.StatusOK, OperationStatus{OperationID: OperationID(res.Registration), Status: "assigned", RegistrationState: state})
}

// AssigningFor bounds how long an ASSIGNING operation is worth polling:
// the longest webhook timeout, and a margin.
const AssigningFor = 40 * time.Second

// AssigningOperationID names a pending assignment: the registration ID and
// the time after which polling it gives up. A device can only poll its own
// (it authenticates again), so the ID needs no secrecy.
func AssigningOperationID(regID string, deadline time.Time) string {
	return "0.assigning." + base64.RawURLEncoding.EncodeToString([]byte(regID+"|"+strconv.FormatInt(deadline.Unix(), 10)))
}

func ParseAssigningOperationID(opID, regID string) (time.Time, bool) {
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
	state := ToState(res.Registration)
	state.TPM = &TPMResult{AuthenticationKey: base64.StdEncoding.EncodeToString(res.AuthenticationKey)}
	state.IssuedCertificateChain = Chain(res.IssuedChain)
	h.write(w, http.StatusOK, OperationStatus{OperationID: OperationID(res.Registration), Status: "assigned", RegistrationState: state})
}

// operation is GET …/operations/{operationId}: a device polls its
// registration (or a pending assignment).
func (h *Handler) operation(w http.ResponseWriter, r *http.Request, regID, opID string) {
	reg, err := h.Prov.Lookup(r.Context(), h.request(r, regID))
	if deadline, pending := ParseAssigningOperationID(opID, regID); pending {
		switch {
		case err == nil:
			opID = OperationID(reg) // decided
		case fault.KindOf(err) == fault.NotFound && time.Now().Before(deadline):
			h.assigning(w, regID, opID, nil)
			return
		case fault.KindOf(err) == fault.NotFound:
			h.write(w, http.StatusOK, OperationStatus{OperationID: opID, Status: "failed", RegistrationState: &RegistrationState{
				RegistrationID: regID, Status: "failed", ErrorCode: 503000, ErrorMessage: "the assignment was not decided: " + string(fault.CustomAllocationFailed)}})
			return
		}
	}
	if err == nil && opID != OperationID(reg) {
		err = fault.NotFoundf("no such operation")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, OperationStatus{OperationID: opID, Status: "assigned", RegistrationState: ToState(reg)})
}

// lookup is POST /{idScope}/registrations/{id}: a device's registration
// status.
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
	h.write(w, http.StatusOK, ToState(reg))
}
