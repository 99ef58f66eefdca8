package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/server"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// rawCodec sends and receives bytes as they are, so a test can put
// malformed protobuf on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// statusReason is the ErrorInfo reason of a gRPC status, or "".
func statusReason(t *testing.T, st *status.Status) string {
	t.Helper()
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != server.ErrorDomain {
				t.Errorf("ErrorInfo domain %q", info.GetDomain())
			}
			return info.GetReason()
		}
	}
	return ""
}

// TestMalformedGRPCHasReason: bytes that are not the method's message, a
// message over the size limit and a method that does not exist are each
// refused with a stable reason, never a bare INTERNAL.
func TestMalformedGRPCHasReason(t *testing.T) {
	e := start(t)
	// String field 1 with invalid UTF-8, which proto3 refuses.
	badUTF8 := []byte{0x0a, 0x02, 0xff, 0xfe}
	cases := []struct {
		name, method string
		msg          []byte
		code         codes.Code
		reason       string
	}{
		{"invalid wire format", "/zerotouch.v1.HubService/ListShards", []byte{0xff, 0xff, 0xff, 0xff}, codes.InvalidArgument, "FIELD_INVALID"},
		{"truncated field", "/zerotouch.v1.HubService/GetShard", []byte{0x0a, 0x10, 'a'}, codes.InvalidArgument, "FIELD_INVALID"},
		{"invalid UTF-8", "/zerotouch.v1.HubService/GetShard", badUTF8, codes.InvalidArgument, "FIELD_INVALID"},
		{"device API", "/zerotouch.v1.DeviceRegistrationService/Register", badUTF8, codes.InvalidArgument, "FIELD_INVALID"},
		{"too large", "/zerotouch.v1.EnrollmentService/BatchCreateEnrollments", bytes.Repeat([]byte{0}, 2<<20+1), codes.InvalidArgument, "BODY_TOO_LARGE"},
		{"unknown method", "/zerotouch.v1.HubService/Frobnicate", []byte{}, codes.Unimplemented, "PATH_NOT_FOUND"},
		{"unknown service", "/zerotouch.v1.NoSuchService/Get", []byte{}, codes.Unimplemented, "PATH_NOT_FOUND"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out []byte
			err := e.admin.Invoke(e.owner(), c.method, c.msg, &out, grpc.ForceCodec(rawCodec{}))
			st := status.Convert(err)
			if st.Code() != c.code || statusReason(t, st) != c.reason {
				t.Fatalf("%v: want %v %s", err, c.code, c.reason)
			}
		})
	}

	// A server-streaming method receives its request the same way.
	t.Run("stream", func(t *testing.T) {
		s, err := e.admin.NewStream(e.owner(), &grpc.StreamDesc{ServerStreams: true},
			"/zerotouch.v1.HubAssignmentService/WatchAssignments", grpc.ForceCodec(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SendMsg([]byte{0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		s.CloseSend()
		var out []byte
		err = s.RecvMsg(&out)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || statusReason(t, st) != "FIELD_INVALID" {
			t.Fatalf("%v: want InvalidArgument FIELD_INVALID", err)
		}
	})

	// Well-formed requests are not affected.
	if _, err := pb.NewHubServiceClient(e.admin).ListShards(e.owner(), &pb.ListShardsRequest{}); err != nil {
		t.Fatalf("ListShards: %v", err)
	}
}

// restAnswer is one REST answer: the HTTP status, the google.rpc.Status
// of an error and its reason.
type restAnswer struct {
	http   int
	code   codes.Code
	reason string
	msg    string
	body   string
}

func (e *env) restCall(t *testing.T, client *http.Client, method, path, contentType string, body []byte) restAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+e.httpAddr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.ownerKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := restAnswer{http: res.StatusCode, body: string(raw)}
	if res.StatusCode < 300 {
		return a
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: error answered as %q: %s", method, path, ct, raw)
	}
	var st spb.Status
	if err := protojson.Unmarshal(raw, &st); err != nil {
		t.Fatalf("%s %s: error body is not a google.rpc.Status: %v: %s", method, path, err, raw)
	}
	a.code, a.msg = codes.Code(st.GetCode()), st.GetMessage()
	for _, d := range st.GetDetails() {
		info := &errdetails.ErrorInfo{}
		if d.MessageIs(info) && d.UnmarshalTo(info) == nil {
			if info.GetDomain() != server.ErrorDomain {
				t.Errorf("%s %s: ErrorInfo domain %q", method, path, info.GetDomain())
			}
			a.reason = info.GetReason()
		}
	}
	return a
}

// TestMalformedRESTHasReason walks malformed input through the native REST
// API: query parameters, bodies that do not decode, invalid UTF-8, JSON
// nested too deep, bodies over the limit, wrong types, unknown fields,
// other media types, and paths or methods that do not exist. Each answer
// is a google.rpc.Status with a stable reason and the right HTTP status,
// and nothing is written.
func TestMalformedRESTHasReason(t *testing.T) {
	e := start(t)
	e.createShard("s1", 1)
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const jsonCT = "application/json"
	shard := `{"id":"s2","hostname":"h.example.com","weight":1}`
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	cases := []struct {
		name, method, path, contentType, body string
		http                                  int
		code                                  codes.Code
		reason                                string
		msgHas                                string
	}{
		{"page size not a number", "GET", "/v1/caCertificates?pageSize=abc", "", "", 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"page size overflows", "GET", "/v1/shards?pageSize=99999999999999999999", "", "", 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"truncated JSON", "POST", "/v1/shards", jsonCT, `{"id":"s2",`, 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"not JSON", "POST", "/v1/shards", jsonCT, `id=s2`, 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"invalid UTF-8", "POST", "/v1/shards", jsonCT, "{\"id\":\"s\xff\xfe\",\"hostname\":\"h.example.com\",\"weight\":1}", 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"nested too deep", "POST", "/v1/shards", jsonCT, `{"id":` + deep + `}`, 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"too deep in a batch", "POST", "/v1/enrollments:batchCreate", jsonCT, deep, 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"wrong type", "POST", "/v1/shards", jsonCT, `{"id":"s2","hostname":"h.example.com","weight":"heavy"}`, 400, codes.InvalidArgument, "FIELD_INVALID", "weight"},
		{"string for an object", "POST", "/v1/enrollments", jsonCT, `{"registrationId":"r1","symmetricKey":"yes"}`, 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"unknown field", "POST", "/v1/shards", jsonCT, `{"id":"s2","hostname":"h.example.com","weight":1,"colour":"red"}`, 400, codes.InvalidArgument, "FIELD_INVALID", `"colour"`},
		{"unknown nested field", "POST", "/v1/enrollments", jsonCT, `{"registrationId":"r1","symmetricKey":{"bogus":1}}`, 400, codes.InvalidArgument, "FIELD_INVALID", `"bogus"`},
		{"unknown field in an update", "PATCH", "/v1/shards/s1", jsonCT, `{"weight":5,"colour":"red"}`, 400, codes.InvalidArgument, "FIELD_INVALID", `"colour"`},
		{"unknown field, device API", "POST", "/v1/registrations/dev-1:register", jsonCT, `{"colour":"red"}`, 400, codes.InvalidArgument, "FIELD_INVALID", `"colour"`},
		{"data after the JSON", "POST", "/v1/shards", jsonCT, shard + `{"id":"s3"}`, 400, codes.InvalidArgument, "FIELD_INVALID", ""},
		{"too large", "POST", "/v1/shards", jsonCT, `{"id":"` + strings.Repeat("a", 1<<20) + `"}`, 413, codes.InvalidArgument, "BODY_TOO_LARGE", ""},
		{"too large update", "PATCH", "/v1/shards/s1", jsonCT, `{"hostname":"` + strings.Repeat("a", 1<<20) + `"}`, 413, codes.InvalidArgument, "BODY_TOO_LARGE", ""},
		{"batch too large", "POST", "/v1/enrollments:batchCreate", jsonCT, `{"enrollments":[],"x":"` + strings.Repeat("a", 4<<20) + `"}`, 413, codes.InvalidArgument, "BODY_TOO_LARGE", ""},
		{"text/plain", "POST", "/v1/shards", "text/plain", shard, 415, codes.InvalidArgument, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"form", "POST", "/v1/shards", "application/x-www-form-urlencoded", shard, 415, codes.InvalidArgument, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"UTF-16 JSON", "POST", "/v1/shards", "application/json; charset=utf-16", shard, 415, codes.InvalidArgument, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"malformed media type", "POST", "/v1/shards", "application/json; charset", shard, 415, codes.InvalidArgument, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"text/plain update", "PATCH", "/v1/shards/s1", "text/plain", `{"weight":5}`, 415, codes.InvalidArgument, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"text/plain, device API", "POST", "/v1/registrations/dev-1:register", "text/plain", `{}`, 415, codes.InvalidArgument, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"unknown path", "GET", "/v1/frobnicators", "", "", 404, codes.NotFound, "PATH_NOT_FOUND", ""},
		{"unknown verb", "POST", "/v1/frobnicators:list", jsonCT, `{}`, 404, codes.NotFound, "PATH_NOT_FOUND", ""},
		{"verb on a resource", "POST", "/v1/shards/s1:frobnicate", jsonCT, `{}`, 405, codes.Unimplemented, "METHOD_NOT_ALLOWED", ""},
		{"wrong method", "PUT", "/v1/shards", jsonCT, shard, 405, codes.Unimplemented, "METHOD_NOT_ALLOWED", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			a := e.restCall(t, client, c.method, c.path, c.contentType, body)
			if a.http != c.http || a.code != c.code || a.reason != c.reason || !strings.Contains(a.msg, c.msgHas) {
				t.Fatalf("%s %s: %d %v %s %q, want %d %v %s %q", c.method, c.path, a.http, a.code, a.reason, a.msg, c.http, c.code, c.reason, c.msgHas)
			}
		})
	}
	if _, err := e.store.GetShard(t.Context(), "s2"); err == nil {
		t.Error("a refused shard was created")
	}
	if s, err := e.store.GetShard(t.Context(), "s1"); err != nil || s.Weight != 1 {
		t.Errorf("a refused update changed the shard: %+v %v", s, err)
	}
	if _, err := e.store.GetIndividual(t.Context(), "r1"); err == nil {
		t.Error("a refused enrollment was created")
	}
}

// TestRESTStrictInputAccepts: what the strict decoding must still accept.
// A charset of UTF-8 in any case is JSON; GET and DELETE carry no body and
// no Content-Type; an empty body is an empty request. A body without a
// Content-Type is refused (415).
func TestRESTStrictInputAccepts(t *testing.T) {
	e := start(t)
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ok := func(method, path, contentType, body string, want int) string {
		t.Helper()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		a := e.restCall(t, client, method, path, contentType, b)
		if a.http != want {
			t.Fatalf("%s %s (%q): %d %s, want %d", method, path, contentType, a.http, a.body, want)
		}
		return a.body
	}
	ok("POST", "/v1/shards", "application/json", `{"id":"s1","hostname":"h.example.com","weight":1}`, 200)
	ok("POST", "/v1/shards", "", `{"id":"s2","hostname":"h.example.com","weight":1}`, 415)
	ok("POST", "/v1/shards", "application/json", `{"id":"s2","hostname":"h.example.com","weight":1}`, 200)
	created := ok("POST", "/v1/shards", "Application/JSON; charset=UTF-8", `{"id":"s3","hostname":"h.example.com","weight":1}`+"\n", 200)
	var s3 struct {
		Etag string `json:"etag"`
	}
	if err := json.Unmarshal([]byte(created), &s3); err != nil || s3.Etag == "" {
		t.Fatalf("create answer: %v %s", err, created)
	}
	ok("PATCH", "/v1/shards/s3", "application/json", `{"etag":"`+s3.Etag+`","weight":7}`, 200)
	if s, err := e.store.GetShard(t.Context(), "s3"); err != nil || s.Weight != 7 {
		t.Fatalf("update: %+v %v", s, err)
	}
	body := ok("GET", "/v1/shards", "", "", 200)
	var list struct {
		Shards []json.RawMessage `json:"shards"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Shards) != 3 {
		t.Fatalf("list: %v %s", err, body)
	}
	ok("GET", "/v1/shards/s1", "", "", 200)
	ok("DELETE", "/v1/shards/s2", "", "", 200)
	// A Content-Type on a request without a body declares nothing.
	ok("GET", "/v1/shards/s1", "text/plain", "", 200)
	// An empty body is an empty request (here: nothing to create).
	if a := e.restCall(t, client, "POST", "/v1/shards", "application/json", nil); a.http != 400 || a.reason != "FIELD_INVALID" {
		t.Fatalf("empty create: %d %s", a.http, a.body)
	}

	// The access-key API and its clients speak the same JSON.
	ok("POST", "/v1/accessKeys", "application/json", `{"name":"ci","permissions":["`+string(access.EnrollmentRead)+`"]}`, 200)
}

// TestMalformedDPSHasReason: the DPS-compatible APIs answer malformed
// bodies with their own error shape, and it carries the reason too.
func TestMalformedDPSHasReason(t *testing.T) {
	e := start(t)
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	device := []struct{ name, method, path, body, reason string }{
		{"truncated JSON", "PUT", "/" + idScope + "/registrations/dev-1/register", `{"registrationId":`, "FIELD_INVALID"},
		{"not JSON", "PUT", "/" + idScope + "/registrations/dev-1/register", `registrationId=dev-1`, "FIELD_INVALID"},
		{"wrong type", "PUT", "/" + idScope + "/registrations/dev-1/register", `{"registrationId":5}`, "FIELD_INVALID"},
		// encoding/json reads invalid UTF-8 as U+FFFD: the ID is not the path's.
		{"invalid UTF-8", "PUT", "/" + idScope + "/registrations/dev-1/register", "{\"registrationId\":\"dev-\xff\"}", "REGISTRATION_ID_INVALID"},
		{"nested too deep", "PUT", "/" + idScope + "/registrations/dev-1/register", `{"payload":` + deep + `}`, "FIELD_INVALID"},
		// Just over the device API's 64 KiB: the server drains what
		// follows its limit (net/http reads up to 256 KiB after a handler),
		// so the client sees the answer rather than a reset.
		{"too large", "PUT", "/" + idScope + "/registrations/dev-1/register", `{"payload":"` + strings.Repeat("a", 64<<10) + `"}`, "FIELD_INVALID"},
		{"lookup not JSON", "POST", "/" + idScope + "/registrations/dev-1", `[`, "FIELD_INVALID"},
		{"unknown operation", "POST", "/" + idScope + "/registrations/dev-1/frobnicate", `{}`, "RESOURCE_NOT_FOUND"},
		{"other ID scope", "PUT", "/0ne0000other/registrations/dev-1/register", `{}`, "RESOURCE_NOT_FOUND"},
	}
	for _, c := range device {
		t.Run("device/"+c.name, func(t *testing.T) {
			code, _, raw := e.dpsCall(c.method, c.path, "", c.body, nil)
			eb := decodeErr(t, raw)
			if code < 400 || code >= 500 || eb.Info["reason"] != c.reason || eb.ErrorCode/1000 != code {
				t.Fatalf("%d %s: want a 4xx DPS error with reason %s", code, raw, c.reason)
			}
		})
	}

	keyID, key := e.newSASKey("dps-service", access.All...)
	svc := e.serviceClient(keyID, key)
	service := []struct{ name, method, path, body string }{
		{"truncated JSON", "PUT", "/enrollments/dev-1", `{"registrationId":`},
		{"unknown field", "PUT", "/enrollments/dev-1", `{"registrationId":"dev-1","attestation":{"type":"symmetricKey"},"colour":"red"}`},
		{"wrong type", "PUT", "/enrollmentGroups/g1", `{"enrollmentGroupId":5}`},
		{"data after the JSON", "PUT", "/enrollmentGroups/g1", `{"enrollmentGroupId":"g1"} {}`},
		{"too large", "PUT", "/enrollmentGroups/g1", `{"enrollmentGroupId":"` + strings.Repeat("a", 1<<20) + `"}`},
	}
	for _, c := range service {
		t.Run("service/"+c.name, func(t *testing.T) {
			a := svc.call(c.method, c.path, c.body)
			if a.code != http.StatusBadRequest || a.reason(t) != "FIELD_INVALID" {
				t.Fatalf("%d %s: want 400 FIELD_INVALID", a.code, a.body)
			}
		})
	}
	e.assertNoRegistration("dev-1")
	if _, err := e.store.GetIndividual(t.Context(), "dev-1"); err == nil {
		t.Error("a refused enrollment was created")
	}
}
