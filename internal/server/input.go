package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// What the transports accept, and how they refuse the rest. A request the
// transport itself cannot take (a body that does not decode or is too
// large, a path or method that does not exist) never reaches a service,
// so toStatus never sees it; it is still answered with a stable reason.

// REST

// jsonMarshaler is the gateway's marshaler: the gateway's default output
// (protojson, unpopulated fields emitted), with strict input: an unknown
// field, or anything after the JSON value, is refused.
type jsonMarshaler struct{ *runtime.HTTPBodyMarshaler }

func newJSONMarshaler() jsonMarshaler {
	return jsonMarshaler{&runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
		// DiscardUnknown stays false: an unknown field is an error that
		// names the field.
		UnmarshalOptions: protojson.UnmarshalOptions{},
	}}}
}

// NewDecoder reads one JSON value and nothing after it. An empty body is
// io.EOF, which the gateway takes as an empty request.
func (m jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		d := json.NewDecoder(r)
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return err
		}
		if _, err := d.Token(); err != io.EOF {
			return errors.New("the request body has data after its JSON value")
		}
		return m.Unmarshal(raw, v)
	})
}

// limitedBody is a request body bounded by http.MaxBytesReader that
// remembers whether the bound was hit: the gateway reports a body it
// cannot read as InvalidArgument text, and the error handler turns it
// into BODY_TOO_LARGE.
type limitedBody struct {
	io.ReadCloser
	limit    int64
	exceeded atomic.Bool
}

func newLimitedBody(w http.ResponseWriter, body io.ReadCloser, limit int64) *limitedBody {
	return &limitedBody{ReadCloser: http.MaxBytesReader(w, body, limit), limit: limit}
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.exceeded.Store(true)
	}
	return n, err
}

// requireJSON refuses, with 415 UNSUPPORTED_MEDIA_TYPE, a REST request
// with a body (or a body of unknown length) that does not say it is
// application/json (a charset, if given, must be UTF-8): a body is JSON
// only when declared so, as issue #18 asks. A request without a body
// (GET, DELETE) is not checked.
func requireJSON(gw *runtime.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Values("Content-Type"); r.ContentLength != 0 && !isJSON(ct) {
			_, out := runtime.MarshalerForRequest(gw, r)
			httpErrorHandler(r.Context(), gw, out, w, r, &runtime.HTTPStatusError{HTTPStatus: http.StatusUnsupportedMediaType,
				Err: reasonStatus(codes.InvalidArgument, fault.UnsupportedMediaType, "the request body must be application/json")})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isJSON(contentType []string) bool {
	if len(contentType) != 1 {
		return false
	}
	mt, params, err := mime.ParseMediaType(contentType[0])
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// routingErrorHandler answers a path the gateway has no method for (404
// PATH_NOT_FOUND), a path it has with another HTTP method (405
// METHOD_NOT_ALLOWED), and a malformed path (400 FIELD_INVALID).
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var err error
	switch httpStatus {
	case http.StatusNotFound:
		err = reasonStatus(codes.NotFound, fault.PathNotFound, "no API method at this path")
	case http.StatusMethodNotAllowed:
		err = reasonStatus(codes.Unimplemented, fault.MethodNotAllowed, "the path does not take "+r.Method)
	case http.StatusBadRequest:
		err = reasonStatus(codes.InvalidArgument, fault.FieldInvalid, "malformed request path")
	default:
		httpStatus = http.StatusInternalServerError
		err = reasonStatus(codes.Internal, fault.InternalError, "internal error")
	}
	httpErrorHandler(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: err})
}

// gatewayError gives a reason to the gateway's own refusals, which carry
// none: a body over the limit becomes 413 BODY_TOO_LARGE, and a body, path
// or query parameter that does not decode becomes FIELD_INVALID (the
// message, the decoder's, names the field where it can). Errors that
// already carry an ErrorInfo pass unchanged.
func gatewayError(r *http.Request, err error) error {
	httpStatus := 0
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		httpStatus, err = hs.HTTPStatus, hs.Err
	}
	st, isStatus := status.FromError(err)
	if reasonOf(st) == "" {
		switch body, _ := r.Body.(*limitedBody); {
		case body != nil && body.exceeded.Load():
			httpStatus = http.StatusRequestEntityTooLarge
			err = reasonStatus(codes.InvalidArgument, fault.BodyTooLarge, fmt.Sprintf("the request body is larger than %d bytes", body.limit))
		case isStatus && st.Code() == codes.InvalidArgument || !isStatus && httpStatus == http.StatusBadRequest:
			err = reasonStatus(codes.InvalidArgument, fault.FieldInvalid, st.Message())
		}
	}
	if httpStatus != 0 {
		return &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: err}
	}
	return err
}

// gRPC

// requestDecoder is the server's gRPC codec: the proto codec, except when
// it decodes a request its handler armed (decodingRegistrar). gRPC answers
// a codec error itself, at once, as INTERNAL without details, and no
// interceptor sees it; so for an armed request a message over maxBytes or
// one that does not decode is not an error inside gRPC but is handed back
// to the handler's wrapper, which refuses it with INVALID_ARGUMENT and a
// reason (BODY_TOO_LARGE, FIELD_INVALID).
type requestDecoder struct {
	proto    encoding.CodecV2
	maxBytes int
	log      *slog.Logger
	// armed maps a request message being received to where its decoding
	// failure goes.
	armed sync.Map
}

func newRequestDecoder(maxBytes int, log *slog.Logger) *requestDecoder {
	return &requestDecoder{proto: encoding.GetCodecV2(grpcproto.Name), maxBytes: maxBytes, log: log}
}

func (d *requestDecoder) Name() string { return d.proto.Name() }

func (d *requestDecoder) Marshal(v any) (mem.BufferSlice, error) { return d.proto.Marshal(v) }

func (d *requestDecoder) Unmarshal(data mem.BufferSlice, v any) error {
	var err error
	if n := data.Len(); n > d.maxBytes {
		err = reasonStatus(codes.InvalidArgument, fault.BodyTooLarge, fmt.Sprintf("the request message is larger than %d bytes", d.maxBytes))
	} else if uerr := d.proto.Unmarshal(data, v); uerr != nil {
		err = reasonStatus(codes.InvalidArgument, fault.FieldInvalid, "malformed request message: "+uerr.Error())
	}
	if slot, ok := d.armed.Load(v); ok && err != nil {
		*slot.(*error) = err
		return nil
	}
	return err
}

// recv receives m with recv, answering a request that does not decode
// with its reason.
func (d *requestDecoder) recv(ctx context.Context, m any, recv func(any) error) error {
	var failure error
	d.armed.Store(m, &failure)
	err := recv(m)
	d.armed.Delete(m)
	if err == nil && failure != nil {
		method, _ := grpc.Method(ctx)
		d.log.DebugContext(ctx, "malformed request", "request_id", requestID(ctx), "method", method, "err", failure)
		return failure
	}
	return err
}

// decodingRegistrar registers services with their receive armed (see
// requestDecoder), for unary and streaming methods alike.
type decodingRegistrar struct {
	*grpc.Server
	dec *requestDecoder
}

func (r decodingRegistrar) RegisterService(sd *grpc.ServiceDesc, impl any) {
	d := *sd
	d.Methods = slices.Clone(sd.Methods)
	for i := range d.Methods {
		h := d.Methods[i].Handler
		d.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(m any) error { return r.dec.recv(ctx, m, dec) }, in)
		}
	}
	d.Streams = slices.Clone(sd.Streams)
	for i := range d.Streams {
		h := d.Streams[i].Handler
		d.Streams[i].Handler = func(srv any, ss grpc.ServerStream) error {
			return h(srv, decodingStream{ss, r.dec})
		}
	}
	r.Server.RegisterService(&d, impl)
}

type decodingStream struct {
	grpc.ServerStream
	dec *requestDecoder
}

func (s decodingStream) RecvMsg(m any) error {
	return s.dec.recv(s.Context(), m, s.ServerStream.RecvMsg)
}

// unknownMethod answers a gRPC service or method that does not exist.
func unknownMethod(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	return reasonStatus(codes.Unimplemented, fault.PathNotFound, "unknown method "+method)
}
