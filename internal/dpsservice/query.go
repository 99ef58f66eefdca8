package dpsservice

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Queries (every item of a collection, paged with x-ms-continuation) and
// the registration states.

// queryPattern is the one query form supported: every item.
var queryPattern = regexp.MustCompile(`(?i)^\s*select\s+\*\s+from\s+(enrollments|enrollmentgroups|c|registrations|devices)?\s*$`)

type querySpec struct {
	Query string `json:"query"`
}

// pageOf reads the query body and paging headers.
func pageOf(r *http.Request) (token string, limit int, err error) {
	var q querySpec
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxServiceBody+1))
	if err != nil || len(raw) > maxServiceBody {
		return "", 0, fault.Invalidf("the query body is unreadable or larger than %d bytes", maxServiceBody)
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeStrict(raw, "QuerySpecification", &q); err != nil {
			return "", 0, err
		}
	}
	if q.Query != "" && !queryPattern.MatchString(q.Query) {
		return "", 0, fault.Invalidf("query %q is not supported; only SELECT * FROM <collection> is", q.Query)
	}
	limit = DefaultPage
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPage {
			return "", 0, fault.Invalidf("x-ms-max-item-count %q is not 1-%d", v, MaxPage)
		}
		limit = n
	}
	return r.Header.Get("x-ms-continuation"), limit, nil
}

func (s *Service) writePage(req *svcRequest, items any, next, itemType string, limit int) {
	h := req.w.Header()
	if next != "" {
		h.Set("x-ms-continuation", next)
	}
	h.Set("x-ms-item-type", itemType)
	h.Set("x-ms-max-item-count", strconv.Itoa(limit))
	s.write(req.w, http.StatusOK, items)
}

func (s *Service) queryEnrollments(req *svcRequest) error {
	ctx := req.r.Context()
	token, limit, err := pageOf(req.r)
	if err != nil {
		return err
	}
	if req.kind == "enrollments" {
		es, next, err := s.Admin.ListIndividuals(ctx, enrollment.Page{Token: token, Limit: limit})
		if err != nil {
			return err
		}
		out := make([]*IndividualEnrollment, 0, len(es))
		for _, e := range es {
			d, err := s.individualToDPS(ctx, e, false)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		s.writePage(req, out, next, "Enrollment", limit)
		return nil
	}
	gs, next, err := s.Admin.ListGroups(ctx, enrollment.Page{Token: token, Limit: limit})
	if err != nil {
		return err
	}
	out := make([]*EnrollmentGroup, 0, len(gs))
	for _, g := range gs {
		d, err := s.groupToDPS(ctx, g, false)
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	s.writePage(req, out, next, "EnrollmentGroup", limit)
	return nil
}

func (s *Service) getRegistration(req *svcRequest) error {
	reg, err := s.Admin.GetRegistration(req.r.Context(), req.id)
	if err != nil {
		return err
	}
	s.write(req.w, http.StatusOK, toRegistrationState(reg))
	return nil
}

func (s *Service) deleteRegistration(req *svcRequest) error {
	etag := ifMatch(req.r)
	if etag == "*" {
		etag = ""
	}
	if err := s.Admin.DeleteRegistration(req.r.Context(), req.id, etag); err != nil {
		return err
	}
	req.w.WriteHeader(http.StatusNoContent)
	return nil
}

// queryRegistrations is POST /registrations/{groupId}/query: the
// registration states of a group's devices.
func (s *Service) queryRegistrations(req *svcRequest) error {
	ctx := req.r.Context()
	token, limit, err := pageOf(req.r)
	if err != nil {
		return err
	}
	if _, err := s.Admin.GetGroup(ctx, req.id); err != nil {
		return err
	}
	regs, next, err := s.Admin.ListRegistrations(ctx, registry.Filter{GroupID: req.id}, token, limit)
	if err != nil {
		return err
	}
	out := make([]*DeviceRegistrationState, 0, len(regs))
	for _, r := range regs {
		out = append(out, toRegistrationState(r))
	}
	s.writePage(req, out, next, "DeviceRegistration", limit)
	return nil
}
