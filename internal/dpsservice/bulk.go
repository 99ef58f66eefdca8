package dpsservice

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// bulk is POST /enrollments or /enrollmentGroups: DPS's bulk operation.
// Each item succeeds or fails on its own; the answer lists the failures.
func (s *Service) bulk(req *svcRequest) error {
	ctx := req.r.Context()
	var op BulkOperation
	if err := readJSON(req.r, maxBulkBody, "BulkEnrollmentOperation", &op); err != nil {
		return err
	}
	mode := map[string]writeMode{"create": createOnly, "update": updateOnly, "updateIfMatchETag": updateOnly, "delete": -1}
	m, ok := mode[op.Mode]
	if !ok {
		return fault.Invalidf("mode %q is not one of create, update, updateIfMatchETag, delete", op.Mode)
	}
	if len(op.Enrollments) == 0 || len(op.Enrollments) > MaxBulk {
		return fault.Invalidf("a bulk operation holds 1-%d enrollments, not %d", MaxBulk, len(op.Enrollments))
	}
	errs := make([]*BulkError, len(op.Enrollments))
	admin.Parallel(len(op.Enrollments), func(i int) { errs[i] = s.bulkItem(ctx, req, op.Enrollments[i], op.Mode, m) })
	out := BulkResult{IsSuccessful: true, Errors: []BulkError{}}
	for _, e := range errs {
		if e != nil {
			out.IsSuccessful = false
			out.Errors = append(out.Errors, *e)
		}
	}
	s.write(req.w, http.StatusOK, out)
	return nil
}

// bulkItem runs one item of a bulk operation and returns its error, if any.
func (s *Service) bulkItem(ctx context.Context, req *svcRequest, raw json.RawMessage, mode string, m writeMode) *BulkError {
	ctx = admin.ForItem(ctx)
	var id string
	var err error
	if req.kind == "enrollments" {
		var in IndividualEnrollment
		if err = decodeStrict(raw, "IndividualEnrollment", &in); err == nil {
			id = in.RegistrationID
			err = s.bulkIndividual(ctx, &in, mode, m)
		}
	} else {
		var in EnrollmentGroup
		if err = decodeStrict(raw, "EnrollmentGroup", &in); err == nil {
			id = in.EnrollmentGroupID
			err = s.bulkGroup(ctx, &in, mode, m)
		}
	}
	if err == nil {
		return nil
	}
	s.Admin.Refused(ctx, "dps.bulk."+mode+"."+req.kind, id, err) // unless its write recorded it
	a := apierr.Classify(ctx, s.Log, req.r.Header.Get("X-Request-Id"), err, apierr.Operator)
	be := &BulkError{ErrorCode: a.DPSErrorCode, ErrorStatus: string(a.Reason) + ": " + a.Message}
	if req.kind == "enrollments" {
		be.RegistrationID = id
	} else {
		be.EnrollmentGroupID = id
	}
	return be
}

func (s *Service) bulkIndividual(ctx context.Context, in *IndividualEnrollment, mode string, m writeMode) error {
	if in.RegistrationID == "" {
		return fault.New(fault.InvalidArgument, fault.RegistrationIDInvalid, "registrationId is required")
	}
	etag := ""
	if mode == "updateIfMatchETag" || mode == "delete" {
		etag = unquoteEtag(in.Etag)
	}
	if mode == "updateIfMatchETag" && etag == "" {
		return fault.Invalidf("mode updateIfMatchETag needs each enrollment's etag")
	}
	if mode == "delete" {
		return s.Admin.DeleteIndividual(ctx, in.RegistrationID, strings.TrimPrefix(etag, "*"))
	}
	_, err := s.writeIndividual(ctx, "", in, etag, m)
	return err
}

func (s *Service) bulkGroup(ctx context.Context, in *EnrollmentGroup, mode string, m writeMode) error {
	if in.EnrollmentGroupID == "" {
		return fault.Invalidf("enrollmentGroupId is required")
	}
	etag := ""
	if mode == "updateIfMatchETag" || mode == "delete" {
		etag = unquoteEtag(in.Etag)
	}
	if mode == "updateIfMatchETag" && etag == "" {
		return fault.Invalidf("mode updateIfMatchETag needs each enrollment group's etag")
	}
	if mode == "delete" {
		return s.Admin.DeleteGroup(ctx, in.EnrollmentGroupID, strings.TrimPrefix(etag, "*"))
	}
	_, err := s.writeGroup(ctx, "", in, etag, m)
	return err
}
