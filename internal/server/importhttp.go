package server

import (
	"bufio"
	"bytes"
	"github.com/zerotouch/zerotouch/internal/lines"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// The REST form of ImportEnrollments (docs/api.md): POST importPath with
// an NDJSON body, one ImportEnrollmentsRequest per line (sequence may be
// left out: it is then the line's number; validate_only is the query
// parameter validateOnly instead), answered as NDJSON while the body is
// still being read: an ImportEnrollmentsResult per item, in order, and a
// last line {"summary": {...}}, or {"error": {...}} if the stream ended
// on an error. A line over maxImportItemBytes, or one that is not an
// ImportEnrollmentsRequest (an unknown field, say), is refused as an item
// (BODY_TOO_LARGE, FIELD_INVALID); blank lines are skipped.

const (
	importPath = "/v1/enrollments:import"
	// maxImportBodyBytes bounds a whole REST import (about ten million
	// TPM items); memory does not depend on it.
	maxImportBodyBytes = 8 << 30
)

// importHandler serves importPath.
func (s *enrollmentService) importHandler(gw *runtime.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The access key and proxy headers, as the gateway passes them.
		md := metadata.MD{}
		for k, vs := range r.Header {
			md.Append(strings.ToLower(k), vs...)
		}
		ctx := metadata.NewIncomingContext(r.Context(), md)
		_, out := runtime.MarshalerForRequest(gw, r)
		refuse := func(httpStatus int, err error) {
			st := toStatus(ctx, s.log, err, false)
			if httpStatus != 0 {
				httpErrorHandler(ctx, gw, out, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: st})
				return
			}
			httpErrorHandler(ctx, gw, out, w, r, st)
		}
		ctx, err := s.authorize(ctx, access.EnrollmentWrite)
		if err != nil {
			s.admin.Refused(ctx, "ImportEnrollments", "", err)
			refuse(0, err)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-ndjson" && mt != "application/jsonl" {
			refuse(http.StatusUnsupportedMediaType, fault.New(fault.InvalidArgument, fault.UnsupportedMediaType, "the request body must be application/x-ndjson"))
			return
		}
		validateOnly := false
		if v := r.URL.Query().Get("validateOnly"); v != "" {
			if validateOnly, err = strconv.ParseBool(v); err != nil {
				refuse(0, fault.Invalidf("validateOnly must be true or false"))
				return
			}
		}
		release, err := s.imports.acquire()
		if err != nil {
			refuse(0, err)
			return
		}
		defer release()

		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex() // HTTP/1.1: answer while reading; HTTP/2 always can
		_ = rc.SetReadDeadline(time.Now().Add(maxImportDuration + time.Minute))
		_ = rc.SetWriteDeadline(time.Now().Add(maxImportDuration + time.Minute))
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)

		br := bufio.NewReaderSize(r.Body, maxImportItemBytes+1)
		line, last := int64(0), int64(0)
		next := func() (int64, *pb.Enrollment, error, error) {
			for {
				text, tooLong, err := lines.Read(br)
				if err != nil {
					return 0, nil, nil, err
				}
				line++
				if tooLong {
					last = max(line, last+1)
					return last, nil, fault.New(fault.InvalidArgument, fault.BodyTooLarge, "line %d is longer than %d bytes", line, maxImportItemBytes), nil
				}
				text = bytes.TrimSpace(text)
				if len(text) == 0 {
					continue
				}
				req := &pb.ImportEnrollmentsRequest{}
				if err := protojson.Unmarshal(text, req); err != nil {
					last = max(line, last+1)
					return last, nil, fault.New(fault.InvalidArgument, fault.FieldInvalid, "line %d: %v", line, err), nil
				}
				if req.GetValidateOnly() {
					return 0, nil, nil, fault.Invalidf("line %d: set validateOnly as the query parameter, not per line", line)
				}
				seq := req.GetSequence()
				if seq == 0 {
					seq = line
				}
				if seq <= last {
					return 0, nil, nil, fault.Invalidf("line %d: sequence %d does not follow %d: sequences are positive and strictly increasing", line, seq, last)
				}
				last = seq
				return seq, req.GetEnrollment(), nil, nil
			}
		}
		enc := protojson.MarshalOptions{}
		writeLine := func(m proto.Message, wrap string) error {
			b, err := enc.Marshal(m)
			if err != nil {
				return err
			}
			if wrap != "" {
				b = append(append([]byte(`{"`+wrap+`":`), b...), '}')
			}
			_, err = w.Write(append(b, '\n'))
			return err
		}
		sum, err := s.runImport(ctx, next, func() bool { return validateOnly }, func(rs []*pb.ImportEnrollmentsResult) error {
			for _, res := range rs {
				if err := writeLine(res, ""); err != nil {
					return err
				}
			}
			return rc.Flush()
		}, func() { _ = rc.SetReadDeadline(time.Now()) }, func() { _ = rc.SetWriteDeadline(time.Now()) })
		if err != nil {
			s.admin.Refused(ctx, "ImportEnrollments", "", err)
			st := status.Convert(toStatus(ctx, s.log, err, false))
			_ = writeLine(&pb.ItemError{Code: int32(st.Code()), Reason: reasonOf(st), Message: st.Message()}, "error")
			_ = rc.Flush()
			return
		}
		_ = writeLine(sum, "summary")
		_ = rc.Flush()
	})
}
