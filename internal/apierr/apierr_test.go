package apierr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// TestEveryKindToEveryWire walks every kind through the classifier and
// checks each wire format's rendering of it.
func TestEveryKindToEveryWire(t *testing.T) {
	cases := []struct {
		kind      fault.Kind
		code      codes.Code
		http      int
		dpsStatus int
		retry     bool
	}{
		{fault.NotFound, codes.NotFound, 404, 404, false},
		{fault.AlreadyExists, codes.AlreadyExists, 409, 409, false},
		{fault.Conflict, codes.Aborted, 409, 412, false},
		{fault.InvalidArgument, codes.InvalidArgument, 400, 400, false},
		{fault.FailedPrecondition, codes.FailedPrecondition, 400, 400, false},
		{fault.PermissionDenied, codes.PermissionDenied, 403, 401, false},
		{fault.Unauthenticated, codes.Unauthenticated, 401, 401, false},
		{fault.ResourceExhausted, codes.ResourceExhausted, 429, 429, true},
		{fault.Unavailable, codes.Unavailable, 503, 503, true},
		{fault.Internal, codes.Internal, 500, 500, false},
	}
	for _, tc := range cases {
		t.Run(tc.kind.String(), func(t *testing.T) {
			err := fault.New(tc.kind, "SOME_REASON", "what was wrong with %q", "it")
			a := Classify(context.Background(), nil, "req-1", err, Operator)
			if a.Code != tc.code || a.HTTP != tc.http || a.DPSStatus != tc.dpsStatus || a.Kind != tc.kind {
				t.Fatalf("answer %+v, want code %v http %d dps %d", a, tc.code, tc.http, tc.dpsStatus)
			}
			if a.DPSErrorCode/1000 != tc.dpsStatus {
				t.Fatalf("DPS errorCode %d for status %d", a.DPSErrorCode, tc.dpsStatus)
			}
			if tc.kind == fault.Internal {
				// A classified internal error is still a bug: no detail.
				if a.Reason != fault.InternalError || a.Message != "internal error" {
					t.Fatalf("internal: %+v", a)
				}
				return
			}
			if a.Reason != "SOME_REASON" || a.Message != `what was wrong with "it"` {
				t.Fatalf("reason/message: %+v", a)
			}
			if (a.RetryAfter > 0) != tc.retry || (a.RetryAfterSeconds() != "") != tc.retry {
				t.Fatalf("retry hint %v / %q, want retryable %v", a.RetryAfter, a.RetryAfterSeconds(), tc.retry)
			}
			st := a.Status()
			if st.Code() != tc.code || st.Message() != a.Message || ReasonOf(st) != "SOME_REASON" {
				t.Fatalf("status %v", st)
			}
			var gotRetry bool
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					gotRetry = ri.GetRetryDelay().AsDuration() == a.RetryAfter
				}
				if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() != Domain {
					t.Fatalf("domain %q", info.GetDomain())
				}
			}
			if gotRetry != tc.retry {
				t.Fatalf("RetryInfo present %v, want %v", gotRetry, tc.retry)
			}
			// A device learns only the reason.
			if d := Classify(context.Background(), nil, "", err, Device); d.Message != "registration refused: SOME_REASON" {
				t.Fatalf("device message %q", d.Message)
			}
		})
	}
}

func TestDPSSubCodes(t *testing.T) {
	for reason, want := range map[fault.Reason]int{
		fault.RegistrationIDInvalid: 401001, // Unauthenticated below
		fault.CertificateMissing:    401002,
		fault.SASInvalid:            401002,
		fault.ResourceNotFound:      404201,
		fault.RateLimited:           429001,
		fault.StoreUnavailable:      503000,
	} {
		kind := fault.Unauthenticated
		switch want / 1000 {
		case 404:
			kind = fault.NotFound
		case 429:
			kind = fault.ResourceExhausted
		case 503:
			kind = fault.Unavailable
		}
		if got := Classify(context.Background(), nil, "", fault.New(kind, reason, "x"), Operator).DPSErrorCode; got != want {
			t.Errorf("%s: errorCode %d, want %d", reason, got, want)
		}
	}
	if got := Classify(context.Background(), nil, "", fault.Invalidf("bad"), Operator).DPSErrorCode; got != 400004 {
		t.Errorf("invalid argument: %d", got)
	}
}

// TestUnknownErrorsAreLoggedOnce: an unclassified error is logged once,
// with the request ID, and answered INTERNAL with no detail.
func TestUnknownErrorsAreLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	secret := errors.New("open /var/lib/zerotouch/db: permission denied")
	a := Classify(context.Background(), log, "req-42", fmt.Errorf("wrapped: %w", secret), Device)
	if a.Code != codes.Internal || a.Reason != fault.InternalError || a.HTTP != http.StatusInternalServerError || strings.Contains(a.Message, "permission") {
		t.Fatalf("answer %+v", a)
	}
	if n := strings.Count(buf.String(), "internal error"); n != 1 || !strings.Contains(buf.String(), "request_id=req-42") || !strings.Contains(buf.String(), "permission denied") {
		t.Fatalf("log:\n%s", buf.String())
	}
	// A wrapped classified error keeps its classification and logs nothing.
	buf.Reset()
	a = Classify(context.Background(), log, "req-43", fmt.Errorf("store: %w", fault.New(fault.Unavailable, fault.StoreUnavailable, "down")), Operator)
	if a.Reason != fault.StoreUnavailable || buf.Len() != 0 {
		t.Fatalf("wrapped: %+v, log %q", a, buf.String())
	}
}

func TestCanceledAndDeadline(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	a := Classify(context.Background(), log, "r", context.Canceled, Operator)
	if a.Code != codes.Canceled || a.Reason != fault.Canceled || !a.Canceled || a.RetryAfter != 0 {
		t.Fatalf("canceled: %+v", a)
	}
	a = Classify(context.Background(), log, "r", fmt.Errorf("call: %w", context.DeadlineExceeded), Operator)
	if a.Code != codes.DeadlineExceeded || a.Reason != fault.DeadlineExceeded || a.RetryAfter == 0 || ReasonOf(a.Status()) != string(fault.DeadlineExceeded) {
		t.Fatalf("deadline: %+v", a)
	}
	if buf.Len() != 0 {
		t.Fatalf("logged: %s", buf.String())
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 59 * time.Second: "59"} {
		if got := (Answer{RetryAfter: d}).RetryAfterSeconds(); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
	err := fault.New(fault.ResourceExhausted, fault.RateLimited, "slow down")
	err.RetryAfter = 2500 * time.Millisecond
	if got := Classify(context.Background(), nil, "", err, Device).RetryAfterSeconds(); got != "3" {
		t.Fatalf("rate limit hint %q", got)
	}
}

func TestReason(t *testing.T) {
	st := Reason(codes.InvalidArgument, fault.BodyTooLarge, "too big")
	if st.Code() != codes.InvalidArgument || ReasonOf(st) != string(fault.BodyTooLarge) || st.Message() != "too big" {
		t.Fatalf("%v", st)
	}
}
