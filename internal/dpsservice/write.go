package dpsservice

import (
	"context"
	"errors"
	"net/http"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// The operations on one enrollment or group: PUT, GET, DELETE and the
// attestation mechanism call.

// writeMode is how a write treats an existing or absent enrollment.
type writeMode int

const (
	upsert     writeMode = iota // PUT: create or replace
	createOnly                  // bulk "create"
	updateOnly                  // bulk "update" and "updateIfMatchETag"
)

// maxWriteAttempts bounds retries of an unconditional replace that raced
// another writer.
const maxWriteAttempts = 3

// createOrReplace is DPS's PUT of one resource: create it when absent
// (unless the mode only updates, or If-Match names an etag: then 404/412);
// otherwise check If-Match and replace. An unconditional replace that
// raced another writer reads again; a conditional one reports the 412.
func createOrReplace[D, R any](ctx context.Context, what, id, etag string, mode writeMode,
	get func() (D, string, error), create func() (R, error), update func(D) (R, error)) (R, error) {
	var zero R
	for range maxWriteAttempts {
		cur, curEtag, err := get()
		switch {
		case errors.Is(err, fault.ErrNotFound):
			if mode == updateOnly {
				return zero, err
			}
			if etag != "" && etag != "*" {
				return zero, fault.New(fault.Conflict, fault.EtagMismatch, "%s %q does not exist (If-Match was given)", what, id)
			}
			return create()
		case err != nil:
			return zero, err
		}
		if mode == createOnly {
			return zero, fault.New(fault.AlreadyExists, fault.ResourceExists, "%s %q already exists", what, id)
		}
		if err := matchEtag(etag, curEtag, what, id); err != nil {
			return zero, err
		}
		out, err := update(cur)
		if fault.KindOf(err) == fault.Conflict && (etag == "" || etag == "*") {
			continue // changed between our read and write: read again
		}
		return out, err
	}
	return zero, fault.New(fault.Unavailable, fault.StoreUnavailable, "too many concurrent changes to %s %q; retry", what, id)
}

func (s *Service) put(req *svcRequest) error {
	ctx, etag := req.r.Context(), ifMatch(req.r)
	if req.kind == "enrollments" {
		var in IndividualEnrollment
		if err := readJSON(req.r, maxServiceBody, "IndividualEnrollment", &in); err != nil {
			return err
		}
		out, err := s.writeIndividual(ctx, req.id, &in, etag, upsert)
		if err != nil {
			return err
		}
		s.write(req.w, http.StatusOK, out)
		return nil
	}
	var in EnrollmentGroup
	if err := readJSON(req.r, maxServiceBody, "EnrollmentGroup", &in); err != nil {
		return err
	}
	out, err := s.writeGroup(ctx, req.id, &in, etag, upsert)
	if err != nil {
		return err
	}
	s.write(req.w, http.StatusOK, out)
	return nil
}

func (s *Service) get(req *svcRequest) error {
	ctx := req.r.Context()
	if req.kind == "enrollments" {
		e, err := s.Admin.GetIndividual(ctx, req.id)
		if err != nil {
			return err
		}
		out, err := s.individualToDPS(ctx, e, false)
		if err != nil {
			return err
		}
		if reg, err := s.Admin.GetRegistration(ctx, e.RegistrationID); err == nil && reg.Individual {
			out.RegistrationState = toRegistrationState(reg)
		} else if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		s.write(req.w, http.StatusOK, out)
		return nil
	}
	g, err := s.Admin.GetGroup(ctx, req.id)
	if err != nil {
		return err
	}
	out, err := s.groupToDPS(ctx, g, false)
	if err != nil {
		return err
	}
	s.write(req.w, http.StatusOK, out)
	return nil
}

func (s *Service) delete(req *svcRequest) error {
	ctx, etag := req.r.Context(), ifMatch(req.r)
	if etag == "*" {
		etag = ""
	}
	var err error
	if req.kind == "enrollments" {
		err = s.Admin.DeleteIndividual(ctx, req.id, etag)
	} else {
		err = s.Admin.DeleteGroup(ctx, req.id, etag)
	}
	if err != nil {
		return err
	}
	req.w.WriteHeader(http.StatusNoContent)
	return nil
}

// attestationMechanism is POST …/{id}/attestationmechanism: the
// attestation with its symmetric keys (GET never shows them).
func (s *Service) attestationMechanism(req *svcRequest) error {
	ctx := req.r.Context()
	var m *AttestationMechanism
	if req.kind == "enrollments" {
		e, err := s.Admin.GetIndividual(ctx, req.id)
		if err != nil {
			return err
		}
		if m, err = s.individualAttestation(ctx, e, true); err != nil {
			return err
		}
	} else {
		g, err := s.Admin.GetGroup(ctx, req.id)
		if err != nil {
			return err
		}
		if m, err = s.groupAttestation(ctx, g, true); err != nil {
			return err
		}
	}
	s.write(req.w, http.StatusOK, m)
	return nil
}
