package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestImportEndsIdleStreams: a client that opens an import and sends
// nothing (or stops sending) does not hold the replica's import slot: the
// stream ends after importIdle, and at once when its context ends.
func TestImportEndsIdleStreams(t *testing.T) {
	f := newEnrollmentFixture(t)
	defer func(d time.Duration) { importIdle = d }(importIdle)
	importIdle = 50 * time.Millisecond
	run := func(ctx context.Context) error {
		stop := make(chan struct{})
		next := func() (int64, *pb.Enrollment, error, error) {
			<-stop // a client that sends nothing
			return 0, nil, nil, context.Canceled
		}
		_, err := f.svc.runImport(ctx, next, func() bool { return false },
			func([]*pb.ImportEnrollmentsResult) error { return nil }, func() { close(stop) }, nil)
		return err
	}
	if err := run(t.Context()); fault.ReasonOf(err) != fault.DeadlineExceeded {
		t.Fatalf("an idle stream: %v, want DEADLINE_EXCEEDED", err)
	}
	importIdle = time.Hour
	ctx, cancel := context.WithCancelCause(t.Context())
	gone := errors.New("the client went away")
	cancel(gone)
	if err := run(ctx); !errors.Is(err, gone) {
		t.Fatalf("a stream whose context ended: %v", err)
	}
}

// TestImportByteBudget: large items are held by bytes, not only by count:
// a stream of 30 KiB items never has more than maxImportBytes of them in
// flight (plus one), far fewer than the item window.
func TestImportByteBudget(t *testing.T) {
	f := newEnrollmentFixture(t)
	twin := `{"tags":{"pad":"` + strings.Repeat("a", 30<<10) + `"}}`
	const total = 1200
	i := 0
	next := func() (int64, *pb.Enrollment, error, error) {
		if i == total {
			return 0, nil, nil, io.EOF
		}
		i++
		return int64(i), &pb.Enrollment{RegistrationId: fmt.Sprintf("big-%d", i), Sha256Thumbprint: fmt.Sprintf("%064x", i), InitialTwin: twin}, nil, nil
	}
	ctx, err := f.svc.authorize(f.as(access.EnrollmentWrite), access.EnrollmentWrite)
	if err != nil {
		t.Fatal(err)
	}
	answered := 0
	sum, err := f.svc.runImport(ctx, next, func() bool { return true },
		func(rs []*pb.ImportEnrollmentsResult) error { answered += len(rs); return nil }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if answered != total || sum.GetCreated() != total {
		t.Fatalf("%d answered, summary %v", answered, sum)
	}
	if b := sum.GetMaxInFlightBytes(); b > maxImportBytes+64<<10 || b < 30<<10 {
		t.Errorf("%d bytes in flight at most, want at most %d", b, maxImportBytes)
	}
	if n := sum.GetMaxInFlight(); n >= importWindow {
		t.Errorf("%d items in flight: the byte budget did not hold them", n)
	}
}

// TestImportEndsUnreadStreams: a client that sends items and never reads
// the answers (the send blocked on flow control) does not hold the stream:
// it ends after importIdle, and the blocked send is released.
func TestImportEndsUnreadStreams(t *testing.T) {
	f := newEnrollmentFixture(t)
	defer func(d time.Duration) { importIdle = d }(importIdle)
	importIdle = 50 * time.Millisecond
	ctx, err := f.svc.authorize(f.as(access.EnrollmentWrite), access.EnrollmentWrite)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	next := func() (int64, *pb.Enrollment, error, error) {
		if i == 3 {
			return 0, nil, nil, io.EOF
		}
		i++
		return int64(i), &pb.Enrollment{RegistrationId: fmt.Sprintf("unread-%d", i), Sha256Thumbprint: fmt.Sprintf("%064x", i)}, nil, nil
	}
	released := make(chan struct{})
	blocked := func([]*pb.ImportEnrollmentsResult) error { <-released; return errors.New("the connection ended") }
	_, err = f.svc.runImport(ctx, next, func() bool { return true }, blocked, nil, func() { close(released) })
	if fault.ReasonOf(err) != fault.DeadlineExceeded {
		t.Fatalf("a stream whose answers are never read: %v, want DEADLINE_EXCEEDED", err)
	}
}
