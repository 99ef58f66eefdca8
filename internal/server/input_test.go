package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func TestJSONMarshalerIsStrict(t *testing.T) {
	m := newJSONMarshaler()
	cases := []struct {
		name, body string
		wantErr    string // "" for success
	}{
		{"valid", `{"id":"s1","weight":3}`, ""},
		{"whitespace after", "{\"id\":\"s1\"}\n\t ", ""},
		{"empty", ``, "EOF"},
		{"unknown field", `{"id":"s1","colour":"red"}`, `unknown field "colour"`},
		{"data after", `{"id":"s1"} {"id":"s2"}`, "after its JSON value"},
		{"garbage after", `{"id":"s1"}]`, "after its JSON value"},
		{"wrong type", `{"weight":"heavy"}`, "weight"},
		{"invalid UTF-8", "{\"id\":\"\xff\"}", "UTF-8"},
		{"too deep", strings.Repeat("[", 20000), "depth"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Both shapes the gateway decodes into: the request itself
			// (body "*") and one of its fields (body "shard").
			for _, v := range []any{&pb.Shard{}, new(*pb.Shard)} {
				err := m.NewDecoder(strings.NewReader(c.body)).Decode(v)
				switch {
				case c.wantErr == "" && err != nil:
					t.Fatalf("%T: %v", v, err)
				case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
					t.Fatalf("%T: %v, want an error with %q", v, err, c.wantErr)
				}
			}
		})
	}
	var s *pb.Shard
	if err := m.NewDecoder(strings.NewReader(`{"id":"s1","weight":3}`)).Decode(&s); err != nil || s.GetId() != "s1" || s.GetWeight() != 3 {
		t.Fatalf("decoded %v, %v", s, err)
	}
	// Output is the gateway's default: unpopulated fields are emitted.
	out, err := m.Marshal(&pb.Shard{Id: "s1"})
	if err != nil || !bytes.Contains(out, []byte(`"weight":0`)) {
		t.Fatalf("marshal: %s %v", out, err)
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON; charset=UTF-8":   true,
		"application/json;charset=utf-16":   false,
		"application/json; charset":         false,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"application/jsonx":                 false,
		"application/merge-patch+json":      false,
		"":                                  false,
	} {
		if got := isJSON([]string{ct}); got != want {
			t.Errorf("isJSON(%q) = %v", ct, got)
		}
	}
	if isJSON([]string{"application/json", "text/plain"}) {
		t.Error("two Content-Types accepted")
	}
}

// restError decodes an error answer: HTTP status, gRPC code, reason.
func restError(t *testing.T, rec *httptest.ResponseRecorder) (int, codes.Code, string) {
	t.Helper()
	var st spb.Status
	if err := protojson.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("not a google.rpc.Status: %v: %s", err, rec.Body)
	}
	return rec.Code, codes.Code(st.GetCode()), reasonOf(status.FromProto(&st))
}

func TestRequireJSON(t *testing.T) {
	gw := runtime.NewServeMux()
	h := requireJSON(gw, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	cases := []struct {
		method, contentType, body string
		want                      int
	}{
		{"POST", "application/json", `{}`, 204},
		{"POST", "application/json; charset=utf-8", `{}`, 204},
		{"POST", "", `{}`, 415}, // undeclared is not JSON
		{"POST", "text/plain", `{}`, 415},
		{"PATCH", "application/x-www-form-urlencoded", `a=b`, 415},
		{"POST", "application/json; charset=latin1", `{}`, 415},
		{"GET", "", "", 204},
		{"DELETE", "", "", 204},
		{"GET", "text/plain", "", 204}, // no body, nothing declared
		{"POST", "text/plain", "", 204},
	}
	for _, c := range cases {
		var body io.Reader = http.NoBody
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		r := httptest.NewRequest(c.method, "/v1/shards", body)
		if c.contentType != "" {
			r.Header.Set("Content-Type", c.contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != c.want {
			t.Errorf("%s %q %q: %d, want %d", c.method, c.contentType, c.body, rec.Code, c.want)
			continue
		}
		if c.want == 415 {
			if _, code, reason := restError(t, rec); code != codes.InvalidArgument || reason != string(fault.UnsupportedMediaType) {
				t.Errorf("%s %q: %v %s", c.method, c.contentType, code, reason)
			}
		}
	}
	// A body of unknown length (chunked) counts as a body.
	r := httptest.NewRequest("POST", "/v1/shards", strings.NewReader(`{}`))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 415 {
		t.Errorf("chunked text/plain: %d", rec.Code)
	}
}

func TestGatewayErrorsCarryReasons(t *testing.T) {
	gw := runtime.NewServeMux()
	m := newJSONMarshaler()
	withInfo := reasonStatus(codes.ResourceExhausted, fault.RateLimited, "slow down")
	cases := []struct {
		name     string
		err      error
		exceeded bool
		http     int
		code     codes.Code
		reason   fault.Reason
	}{
		{"decode error", status.Error(codes.InvalidArgument, `proto: unknown field "x"`), false, 400, codes.InvalidArgument, fault.FieldInvalid},
		{"body over the limit", status.Error(codes.InvalidArgument, "http: request body too large"), true, 413, codes.InvalidArgument, fault.BodyTooLarge},
		{"malformed path", &runtime.HTTPStatusError{HTTPStatus: 400, Err: errors.New("malformed sequence")}, false, 400, codes.InvalidArgument, fault.FieldInvalid},
		{"already has a reason", withInfo, false, 429, codes.ResourceExhausted, fault.RateLimited},
		{"reason kept with a full body", withInfo, true, 429, codes.ResourceExhausted, fault.RateLimited},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/v1/shards", strings.NewReader("{}"))
			body := newLimitedBody(rec, r.Body, 1)
			if c.exceeded {
				io.ReadAll(body)
			}
			r.Body = body
			httpErrorHandler(context.Background(), gw, m, rec, r, c.err)
			if h, code, reason := restError(t, rec); h != c.http || code != c.code || reason != string(c.reason) {
				t.Fatalf("%d %v %s, want %d %v %s", h, code, reason, c.http, c.code, c.reason)
			}
		})
	}

	for httpStatus, want := range map[int]struct {
		code   codes.Code
		reason fault.Reason
	}{
		http.StatusNotFound:         {codes.NotFound, fault.PathNotFound},
		http.StatusMethodNotAllowed: {codes.Unimplemented, fault.MethodNotAllowed},
		http.StatusBadRequest:       {codes.InvalidArgument, fault.FieldInvalid},
	} {
		rec := httptest.NewRecorder()
		routingErrorHandler(context.Background(), gw, m, rec, httptest.NewRequest("PUT", "/v1/nope", nil), httpStatus)
		if h, code, reason := restError(t, rec); h != httpStatus || code != want.code || reason != string(want.reason) {
			t.Errorf("routing %d: %d %v %s", httpStatus, h, code, reason)
		}
	}
}

func TestLimitedBodyRecordsOnlyTheLimit(t *testing.T) {
	rec := httptest.NewRecorder()
	b := newLimitedBody(rec, io.NopCloser(strings.NewReader("12345")), 5)
	if _, err := io.ReadAll(b); err != nil || b.exceeded.Load() {
		t.Fatalf("a body at the limit: %v, exceeded %v", err, b.exceeded.Load())
	}
	b = newLimitedBody(rec, io.NopCloser(strings.NewReader("123456")), 5)
	var tooLarge *http.MaxBytesError
	if _, err := io.ReadAll(b); !errors.As(err, &tooLarge) || !b.exceeded.Load() {
		t.Fatalf("a body over the limit: %v, exceeded %v", err, b.exceeded.Load())
	}
}

func TestRequestDecoder(t *testing.T) {
	d := newRequestDecoder(64, slog.New(slog.DiscardHandler))
	good, _ := proto.Marshal(&pb.GetShardRequest{Id: "s1"})
	cases := []struct {
		name   string
		data   []byte
		reason fault.Reason // "" for success
	}{
		{"valid", good, ""},
		{"invalid wire format", []byte{0xff, 0xff, 0xff}, fault.FieldInvalid},
		{"invalid UTF-8", []byte{0x0a, 0x02, 0xff, 0xfe}, fault.FieldInvalid},
		{"too large", append([]byte{0x0a, 80}, bytes.Repeat([]byte{'a'}, 80)...), fault.BodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Armed: the failure comes back from recv with its reason, and
			// not from the codec (which gRPC would answer as INTERNAL).
			m := &pb.GetShardRequest{}
			var codecErr error
			err := d.recv(context.Background(), m, func(v any) error {
				codecErr = d.Unmarshal(mem.BufferSlice{mem.SliceBuffer(c.data)}, v)
				return codecErr
			})
			if codecErr != nil {
				t.Fatalf("armed codec error %v", codecErr)
			}
			st := status.Convert(err)
			switch {
			case c.reason == "" && (err != nil || m.GetId() != "s1"):
				t.Fatalf("%v %v", m, err)
			case c.reason != "" && (st.Code() != codes.InvalidArgument || reasonOf(st) != string(c.reason)):
				t.Fatalf("%v, want InvalidArgument %s", err, c.reason)
			}
			// Unarmed (a receive not through decodingRegistrar): the codec
			// fails as the proto codec does.
			err = d.Unmarshal(mem.BufferSlice{mem.SliceBuffer(c.data)}, &pb.GetShardRequest{})
			if (err != nil) != (c.reason != "") {
				t.Fatalf("unarmed: %v", err)
			}
		})
	}
	// Other receive errors pass unchanged, and nothing stays armed.
	if err := d.recv(context.Background(), &pb.GetShardRequest{}, func(any) error { return io.EOF }); err != io.EOF {
		t.Fatalf("EOF became %v", err)
	}
	n := 0
	d.armed.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d receives still armed", n)
	}
}
