// Package dpsdevice is the Azure IoT Hub DPS-compatible device API, so
// that devices running the Azure IoT provisioning SDKs register with
// Zerotouch unchanged: the same paths (/{idScope}/registrations/…), JSON
// shapes, status strings, content type and error bodies (docs/dps.md;
// shared/reference/dps-protocol.md §1). It is a transport: it translates
// DPS's requests into provisioning.Request values and renders the answers
// (errors through internal/apierr), beside the native API over the same
// registration use case, not a gateway mapping. The DPS service
// (enrollment) API is internal/dpsservice (ADR 10).
//
// It never imports a store or another transport.
package dpsdevice

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
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

// NotFound answers any path outside the API with a DPS error body, so that
// a device with a wrong ID scope gets JSON (the Node SDK needs it).
func (h *Handler) NotFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, fault.NotFoundf("no such ID scope or path"))
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

// readBody decodes a bounded JSON body; an empty body leaves v alone.
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
	h.write(w, a.DPSStatus, a.DPSBody(r.Header.Get("X-Request-Id"), time.Now()))
}
