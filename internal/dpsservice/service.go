// Package dpsservice is the Azure IoT Hub DPS-compatible service
// (enrollment management) API: /enrollments, /enrollmentGroups and
// /registrations, as the Azure provisioning service SDKs call them
// (docs/dps.md; shared/reference/dps-protocol.md §4; ADR 10). It is a
// second transport over the operator use cases of internal/admin, the same
// ones the native API calls, so both see the same enrollments and every
// read and write passes admin: this package converts DPS's JSON, paths,
// etags and SAS tokens, and renders answers (errors through
// internal/apierr). The DPS device API is internal/dpsdevice.
//
// It never imports or calls a store, nor another transport.
package dpsservice

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// Limits on the service API's requests.
const (
	maxServiceBody = 64 << 10
	maxBulkBody    = 4 << 20
	// MaxBulk bounds the enrollments of one bulk operation.
	MaxBulk = 1000
	// MaxPage bounds x-ms-max-item-count; DefaultPage applies without it.
	MaxPage     = 1000
	DefaultPage = 100
)

// Service is the DPS-compatible service API. Requests are authenticated
// with DPS SAS tokens signed by an access key's shared access key, or with
// the key's bearer token; the key is then the actor of the request's
// changes (admin.WithActor).
type Service struct {
	// HostName is the service's host name: what a SAS token's sr must
	// name (never the request's Host header). "" accepts no SAS token.
	HostName string
	Admin    *admin.Service
	// Now stamps error bodies (time.Now when nil).
	Now func() time.Time
	Log *slog.Logger
	// ClientAddr, if set, is the client's address behind a trusted proxy
	// (the IP filter's); the peer's otherwise.
	ClientAddr func(r *http.Request) string
}

// Handles reports whether path's first segment belongs to the service API.
func Handles(path string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch strings.ToLower(first) {
	case "enrollments", "enrollmentgroups", "registrations":
		return true
	}
	return false
}

type svcRequest struct {
	w     http.ResponseWriter
	r     *http.Request
	kind  string // "enrollments", "enrollmentgroups", "registrations"
	id    string // "" for the collection
	extra string // "", "attestationmechanism", "query"
}

// ServeHTTP routes the service API. Static path segments are matched
// case-insensitively (the Node SDK sends /enrollmentgroups/…). It routes
// on the segments a SAS token's resource is matched against, each decoded
// exactly once, so that what is authorized is what is served:
// "/%65nrollments/acme" is the individual enrollment acme for both, never
// the group acme.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts, ok := access.PathSegments(strings.TrimSuffix(r.URL.EscapedPath(), "/"))
	if !ok {
		s.fail(w, r, fault.Invalidf("the path has an empty, \".\" or \"..\" segment, or is not valid URL encoding"))
		return
	}
	req := &svcRequest{w: w, r: r, kind: strings.ToLower(parts[0])}
	switch req.kind {
	case "enrollments", "enrollmentgroups", "registrations":
	default:
		s.fail(w, r, fault.NotFoundf("no such path"))
		return
	}
	if len(parts) > 3 {
		s.fail(w, r, fault.NotFoundf("no such path"))
		return
	}
	if len(parts) > 1 {
		req.id = parts[1]
	}
	if len(parts) == 3 {
		req.extra = strings.ToLower(parts[2])
	}
	// "/enrollments/query" is the query of the collection.
	if req.extra == "" && strings.EqualFold(req.id, "query") && req.kind != "registrations" && r.Method == http.MethodPost {
		req.id, req.extra = "", "query"
	}
	op, perm := s.route(req)
	if op == nil {
		s.fail(w, r, fault.NotFoundf("no such operation: %s %s", r.Method, r.URL.Path))
		return
	}
	// A SAS token grants the resource the operation acts on: a query
	// lists a collection, so it needs a token for the collection (or the
	// whole service), not one for an item whose ID happens to be "query"
	// or a registration ID equal to a group's.
	resource := parts
	if req.extra == "query" {
		resource = parts[:1]
	}
	key, err := s.authenticate(r, resource)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req.r = r.WithContext(admin.WithCaller(r.Context(), &admin.Caller{KeyID: key.ID, KeyName: key.Name, Key: key,
		Surface: "dps-service", Source: s.clientAddr(r), RequestID: r.Header.Get("X-Request-Id")}))
	if err := access.Require(key, perm); err != nil {
		s.refuse(req, err)
		return
	}
	if err := op(req); err != nil {
		s.refuse(req, err)
	}
}

// refuse answers an authenticated request's error; a refused change (any
// method but a read or a query) is recorded in the audit log, unless the
// change's own write already recorded it.
func (s *Service) refuse(req *svcRequest, err error) {
	if m := req.r.Method; m != http.MethodGet && req.extra != "query" {
		s.Admin.Refused(req.r.Context(), "dps."+strings.ToLower(m)+"."+req.kind, req.id, err)
	}
	s.fail(req.w, req.r, err)
}

// route picks a request's operation and the permission it needs; nil when
// there is no such operation.
func (s *Service) route(req *svcRequest) (func(*svcRequest) error, access.Permission) {
	switch m := req.r.Method; {
	case req.kind == "registrations" && req.id != "" && req.extra == "" && m == http.MethodGet:
		return s.getRegistration, access.RegistrationRead
	case req.kind == "registrations" && req.id != "" && req.extra == "" && m == http.MethodDelete:
		return s.deleteRegistration, access.RegistrationWrite
	case req.kind == "registrations" && req.id != "" && req.extra == "query" && m == http.MethodPost:
		return s.queryRegistrations, access.RegistrationRead
	case req.kind == "registrations":
	case req.id == "" && req.extra == "query" && m == http.MethodPost:
		return s.queryEnrollments, access.EnrollmentRead
	case req.id == "" && req.extra == "" && m == http.MethodPost:
		return s.bulk, access.EnrollmentWrite
	case req.id != "" && req.extra == "" && m == http.MethodPut:
		return s.put, access.EnrollmentWrite
	case req.id != "" && req.extra == "" && m == http.MethodGet:
		return s.get, access.EnrollmentRead
	case req.id != "" && req.extra == "" && m == http.MethodDelete:
		return s.delete, access.EnrollmentWrite
	case req.id != "" && req.extra == "attestationmechanism" && m == http.MethodPost:
		// The answer holds symmetric keys: write permission, not read.
		return s.attestationMechanism, access.EnrollmentWrite
	}
	return nil, ""
}

// authenticate accepts a DPS SAS token whose resource covers path (the
// decoded segments the request is routed on) or an access key's bearer
// token.
func (s *Service) authenticate(r *http.Request, path []string) (*access.Key, error) {
	auth := r.Header.Get("Authorization")
	if token, ok := strings.CutPrefix(auth, "Bearer "); ok {
		return s.Admin.Authenticate(r.Context(), token)
	}
	return s.Admin.AuthenticateSAS(r.Context(), auth, s.HostName, path)
}

// readJSON decodes a bounded body, refusing unknown fields.
func readJSON(r *http.Request, limit int64, what string, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "read the request body")
	}
	if int64(len(raw)) > limit {
		return fault.Invalidf("the request body is larger than %d bytes", limit)
	}
	return decodeStrict(raw, what, v)
}

func decodeStrict(raw []byte, what string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "the body is not a valid %s: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fault.Invalidf("the body holds more than one %s, or trailing data", what)
	}
	return nil
}

// quoteEtag is an etag as DPS writes it: a quoted string.
func quoteEtag(etag string) string { return `"` + etag + `"` }

// ifMatch returns the If-Match etag without quotes ("" when absent; "*"
// means any).
func ifMatch(r *http.Request) string { return unquoteEtag(r.Header.Get("If-Match")) }

func unquoteEtag(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	return strings.Trim(v, `"`)
}

// matchEtag checks a caller's etag against the current one.
func matchEtag(want, current, what, id string) error {
	if want == "" || want == "*" || subtle.ConstantTimeCompare([]byte(want), []byte(current)) == 1 {
		return nil
	}
	return fault.New(fault.Conflict, fault.EtagMismatch, "%s %q has changed (etag mismatch)", what, id)
}

func (s *Service) write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// fail answers an error with DPS's error body; the message says what was
// wrong (operators need it), info.reason carries the stable reason.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	a := apierr.Classify(r.Context(), s.Log, r.Header.Get("X-Request-Id"), err, apierr.Operator)
	if v := a.RetryAfterSeconds(); v != "" {
		w.Header().Set("Retry-After", v)
	}
	s.write(w, a.DPSStatus, a.DPSBody(r.Header.Get("X-Request-Id"), s.now()))
}

func (s *Service) clientAddr(r *http.Request) string {
	if s.ClientAddr != nil {
		return s.ClientAddr(r)
	}
	return r.RemoteAddr
}
