package server

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// A streaming import (ImportEnrollments over gRPC, NDJSON over REST in
// importhttp.go) reads items into a bounded queue, takes them off in
// chunks of up to importChunk (or what arrived within importLinger), writes
// each chunk as BatchCreateEnrollments writes a batch (the same
// createEnrollment per item, concurrently, so that the embedded store's
// commits and the audit log's appends are shared) and answers the chunk
// before it takes the next. Items received and not yet answered never
// exceed importWindow: the queue is full, the reader stops reading, and
// transport flow control holds the client back.
const (
	// importChunk is how many items are written together.
	importChunk = 1000
	// importWindow bounds the items a stream holds: queued, being
	// written, or waiting for their answer.
	importWindow = 2 * importChunk
	// importLinger is how long a partial chunk waits for more items
	// before it is written.
	importLinger = 20 * time.Millisecond
	// importWorkers write a chunk's items concurrently.
	importWorkers = 32
	// maxImportItemBytes bounds one item (its encoded message, or its
	// NDJSON line).
	maxImportItemBytes = 64 << 10
	// maxImportDuration bounds one stream; the client resumes on a new
	// one.
	maxImportDuration = time.Hour
	// maxImportStreams bounds the imports one replica runs at once.
	maxImportStreams = 4
	// maxImportBytes bounds the bytes of the items a stream holds (with
	// importWindow, what a stream can make the replica keep).
	maxImportBytes = 16 << 20
)

// importIdle ends a stream that sends no item for that long, so an idle
// client cannot hold one of the replica's import slots (a variable for
// tests).
var importIdle = 2 * time.Minute

// importSlots are a replica's import streams.
type importSlots chan struct{}

func newImportSlots() importSlots { return make(importSlots, maxImportStreams) }

// acquire takes a slot, or refuses with TOO_MANY_STREAMS.
func (s importSlots) acquire() (release func(), err error) {
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	default:
		return nil, fault.New(fault.ResourceExhausted, fault.TooManyStreams,
			"this replica runs %d imports at once already; retry later", maxImportStreams)
	}
}

// importSource is where an import's items come from: next returns the
// next item (io.EOF at the end). An item it could not decode comes with
// a non-nil refusal and nil enrollment; a fatal error ends the stream.
type importSource func() (seq int64, in *pb.Enrollment, refusal error, err error)

// importSink answers a chunk's results, in order.
type importSink func(results []*pb.ImportEnrollmentsResult) error

// importItem is one received item on its way through a chunk.
type importItem struct {
	seq     int64
	in      *pb.Enrollment
	refusal error
	// regKey and thumb identify the item's registration ID and credential
	// (empty when the item is malformed).
	regID, regKey, thumb string
	res                  *pb.ImportEnrollmentsResult
	// size is the item's encoded size (the stream's byte budget).
	size int64
}

// ImportEnrollments implements EnrollmentService.
func (s *enrollmentService) ImportEnrollments(stream pb.EnrollmentService_ImportEnrollmentsServer) error {
	ctx := withRequestID(stream.Context(), newRequestID(firstMetadata(stream.Context(), "x-request-id")))
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return s.fail(ctx, err)
	}
	release, err := s.imports.acquire()
	if err != nil {
		return s.fail(ctx, err)
	}
	defer release()
	first, validateOnly := true, false
	last := int64(0)
	next := func() (int64, *pb.Enrollment, error, error) {
		req, err := stream.Recv()
		if err != nil {
			return 0, nil, nil, err
		}
		if first {
			first, validateOnly = false, req.GetValidateOnly()
		} else if req.GetValidateOnly() != validateOnly {
			return 0, nil, nil, fault.Invalidf("validate_only is set by the first message of a stream and may not change")
		}
		seq := req.GetSequence()
		if seq <= last {
			return 0, nil, nil, fault.Invalidf("sequence %d does not follow %d: sequences are positive and strictly increasing", seq, last)
		}
		last = seq
		if n := proto.Size(req); n > maxImportItemBytes {
			return seq, nil, fault.New(fault.InvalidArgument, fault.BodyTooLarge, "the item is %d bytes; at most %d", n, maxImportItemBytes), nil
		}
		return seq, req.GetEnrollment(), nil, nil
	}
	sum, err := s.runImport(ctx, next, func() bool { return validateOnly }, func(rs []*pb.ImportEnrollmentsResult) error {
		return stream.Send(&pb.ImportEnrollmentsResponse{Results: rs})
	}, nil, nil)
	if err != nil {
		return s.fail(ctx, err)
	}
	return stream.Send(&pb.ImportEnrollmentsResponse{Summary: sum})
}

// runImport reads items from next until io.EOF, writes them in chunks and
// answers them through send, and returns the totals. validateOnly is read
// once the first item arrived. If unblock is set, runImport calls it as
// it returns and waits for the reader to stop (next must then return); if
// abortSend is set, a send that gives up calls it and waits for the send
// to return. Else (gRPC) the reader's Recv and a blocked Send return once
// the handler has returned, which cancels the stream.
func (s *enrollmentService) runImport(ctx context.Context, next importSource, validateOnly func() bool, send importSink, unblock, abortSend func()) (*pb.ImportEnrollmentsSummary, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, maxImportDuration,
		fault.New(fault.ResourceExhausted, fault.DeadlineExceeded, "an import stream lasts at most %v; resume on a new stream after the last item answered", maxImportDuration))
	var inFlight, peak atomic.Int64
	// held is the bytes of the items in flight; the reader waits while a
	// new item would take it past maxImportBytes.
	var (
		bmu       sync.Mutex
		held      int64
		peakBytes int64
	)
	room := sync.NewCond(&bmu)
	stopWaking := context.AfterFunc(ctx, func() { bmu.Lock(); room.Broadcast(); bmu.Unlock() })
	defer stopWaking()
	queue := make(chan *importItem, importWindow-importChunk-1)
	readErr := make(chan error, 1)
	readerDone := make(chan struct{})
	defer func() {
		cancel()
		if unblock != nil {
			unblock()
			<-readerDone
		}
	}()
	go func() {
		defer close(readerDone)
		defer close(queue)
		for {
			seq, in, refusal, err := next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
			size := int64(proto.Size(in))
			bmu.Lock()
			for held > 0 && held+size > maxImportBytes && ctx.Err() == nil {
				room.Wait()
			}
			held += size
			peakBytes = max(peakBytes, held)
			bmu.Unlock()
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			select {
			case queue <- &importItem{seq: seq, in: in, refusal: refusal, size: size}:
			case <-ctx.Done():
				return
			}
		}
	}()
	sum := &pb.ImportEnrollmentsSummary{}
	chunk := make([]*importItem, 0, importChunk)
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	idle := time.NewTimer(importIdle)
	defer idle.Stop()
	for {
		chunk = chunk[:0]
		idle.Reset(importIdle)
		var it *importItem
		var ok bool
		select {
		case it, ok = <-queue:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-idle.C:
			return nil, fault.New(fault.ResourceExhausted, fault.DeadlineExceeded, "no item for %v: the import stream ended; resume on a new stream after the last item answered", importIdle)
		}
		if ok {
			chunk = append(chunk, it)
			linger.Reset(importLinger)
		gather:
			for len(chunk) < importChunk {
				select {
				case it, ok := <-queue:
					if !ok {
						break gather
					}
					chunk = append(chunk, it)
				case <-linger.C:
					break gather
				}
			}
		}
		if len(chunk) == 0 {
			select {
			case err := <-readErr:
				return nil, err
			default:
			}
			if err := context.Cause(ctx); err != nil {
				return nil, err
			}
			sum.MaxInFlight = peak.Load()
			bmu.Lock()
			sum.MaxInFlightBytes = peakBytes
			bmu.Unlock()
			return sum, nil
		}
		wctx := ctx
		if validateOnly() {
			wctx = admin.ValidateOnly(ctx)
		}
		s.writeChunk(wctx, chunk)
		results := make([]*pb.ImportEnrollmentsResult, len(chunk))
		for i, it := range chunk {
			results[i] = it.res
			switch it.res.Outcome {
			case pb.ImportOutcome_IMPORT_OUTCOME_CREATED:
				sum.Created++
			case pb.ImportOutcome_IMPORT_OUTCOME_UNCHANGED:
				sum.Unchanged++
			default:
				sum.Refused++
			}
		}
		if err := sendWithin(ctx, send, results, abortSend); err != nil {
			return nil, err
		}
		inFlight.Add(-int64(len(chunk)))
		var freed int64
		for _, it := range chunk {
			freed += it.size
		}
		bmu.Lock()
		held -= freed
		room.Broadcast()
		bmu.Unlock()
		if err := context.Cause(ctx); err != nil {
			return nil, err
		}
	}
}

// sendWithin sends a chunk's answers, and gives up when the client has read
// none of them for importIdle or ctx ends: a client that sends items and
// never reads the answers cannot hold the stream, and its import slot, by
// leaving the send blocked on flow control. Over gRPC the blocked Send
// returns once the handler returns (the stream is cancelled); over REST
// abort ends the connection's write deadline and the send is waited for.
func sendWithin(ctx context.Context, send importSink, results []*pb.ImportEnrollmentsResult, abort func()) error {
	errc := make(chan error, 1)
	go func() { errc <- send(results) }()
	t := time.NewTimer(importIdle)
	defer t.Stop()
	var cause error
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		cause = context.Cause(ctx)
	case <-t.C:
		cause = fault.New(fault.ResourceExhausted, fault.DeadlineExceeded, "the client read no answers for %v: the import stream ended; resume on a new stream after the last item answered", importIdle)
	}
	if abort != nil {
		abort()
		<-errc
	}
	return cause
}

// writeChunk answers every item of chunk. Items are written concurrently,
// except that an item naming a registration ID or credential an earlier
// item of the chunk names waits for the earlier one: the first in the
// stream wins, as if the items were written one by one.
func (s *enrollmentService) writeChunk(ctx context.Context, chunk []*importItem) {
	seen := make(map[string]bool, 2*len(chunk))
	var first, later []*importItem
	for _, it := range chunk {
		if it.refusal == nil {
			it.refusal = identify(it)
		}
		if it.refusal != nil {
			it.res = s.refused(ctx, it, it.refusal)
			continue
		}
		if seen[it.regKey] || seen["#"+it.thumb] {
			// It waits for an earlier item; so does any later item that
			// names what this one names.
			seen[it.regKey], seen["#"+it.thumb] = true, true
			later = append(later, it)
			continue
		}
		seen[it.regKey], seen["#"+it.thumb] = true, true
		first = append(first, it)
	}
	parallel(len(first), importWorkers, func(i int) { s.importOne(ctx, first[i]) })
	for _, it := range later {
		s.importOne(ctx, it)
	}
}

// importOne creates one item, as BatchCreateEnrollments does. An item
// refused because its registration ID is enrolled already with the same
// credential is unchanged: a replayed item.
func (s *enrollmentService) importOne(ctx context.Context, it *importItem) {
	e, err := s.createEnrollment(ctx, it.in)
	switch {
	case err == nil:
		it.res = &pb.ImportEnrollmentsResult{Sequence: it.seq, Outcome: pb.ImportOutcome_IMPORT_OUTCOME_CREATED, RegistrationId: e.GetRegistrationId()}
	case errors.Is(err, fault.ErrAlreadyExists) && mayRead(ctx):
		if old, gerr := s.admin.GetIndividual(ctx, it.regID); gerr == nil && sameImport(it, old) {
			it.res = &pb.ImportEnrollmentsResult{Sequence: it.seq, Outcome: pb.ImportOutcome_IMPORT_OUTCOME_UNCHANGED, RegistrationId: old.RegistrationID}
			return
		}
		it.res = s.refused(ctx, it, err)
	default:
		it.res = s.refused(ctx, it, err)
	}
}

// mayRead reports whether the caller may read enrollments: only then does
// a replayed item say the enrollment exists as the item describes it (to
// a write-only key it is refused like any existing one).
func mayRead(ctx context.Context) bool {
	c := admin.CallerOf(ctx)
	return c != nil && c.Key != nil && access.Require(c.Key, access.EnrollmentRead) == nil
}

// sameImport reports whether the stored enrollment is what the item
// describes: its credential and mechanism, device ID, status, allocation
// and device settings (not its etag or times).
func sameImport(it *importItem, old *enrollment.Individual) bool {
	in := it.in
	mech := enrollment.MechanismX509
	if in.GetTpm() != nil {
		mech = enrollment.MechanismTPM
	}
	if it.thumb == "" || !strings.EqualFold(old.Thumbprint, it.thumb) || old.Mechanism != mech {
		return false
	}
	disabled, err := statusToDisabled(in.GetProvisioningStatus())
	if err != nil {
		return false
	}
	alloc, err := allocationFromPB(in.GetAllocation())
	if err != nil {
		return false
	}
	want := &enrollment.Individual{RegistrationID: it.regID, DeviceID: in.GetDeviceId(), Disabled: disabled, Allocation: alloc}
	if err := settingsFromPB(in, nil, &want.DeviceSettings); err != nil {
		return false
	}
	return want.EffectiveDeviceID() == old.EffectiveDeviceID() && want.Disabled == old.Disabled &&
		reflect.DeepEqual(want.Allocation, old.Allocation) && reflect.DeepEqual(want.DeviceSettings, old.DeviceSettings)
}

func (s *enrollmentService) refused(ctx context.Context, it *importItem, err error) *pb.ImportEnrollmentsResult {
	return &pb.ImportEnrollmentsResult{Sequence: it.seq, Outcome: pb.ImportOutcome_IMPORT_OUTCOME_REFUSED, RegistrationId: it.regID, Error: itemError(ctx, s.log, err)}
}

// identify finds an item's registration ID and credential thumbprint, or
// refuses an item that cannot have them. The create checks the rest.
func identify(it *importItem) error {
	in := it.in
	switch {
	case in == nil:
		return fault.Invalidf("the item has no enrollment")
	case in.GetSymmetricKey() != nil:
		return fault.New(fault.InvalidArgument, fault.AttestationUnsupported,
			"an import takes X.509 and TPM enrollments; create symmetric-key enrollments with CreateEnrollment or BatchCreateEnrollments, which return their keys")
	case in.GetTpm() != nil:
		ek := in.GetTpm().GetEndorsementKey()
		if pemText := in.GetTpm().GetEndorsementKeyPem(); len(ek) == 0 && pemText != "" {
			var err error
			if ek, err = tpm.EKFromPEM(pemText); err != nil {
				return err
			}
		}
		if len(ek) == 0 {
			return fault.Invalidf("tpm.endorsement_key or tpm.endorsement_key_pem is required")
		}
		it.regID, it.thumb = in.GetRegistrationId(), tpm.EKHash(ek)
		if it.regID == "" {
			it.regID = tpm.RegistrationID(ek)
		}
	default:
		it.regID, it.thumb = in.GetRegistrationId(), strings.ToLower(in.GetSha256Thumbprint())
		if c := in.GetCertificatePem(); c != "" {
			cert, err := enrollment.ParseCertificatePEM("certificate_pem", c)
			if err != nil {
				return err
			}
			it.thumb = enrollment.Thumbprint(cert.Raw)
		}
		if it.thumb == "" {
			return fault.Invalidf("certificate_pem or sha256_thumbprint is required")
		}
	}
	it.regKey = enrollment.Key(it.regID)
	return nil
}

// parallel runs fn(0) … fn(n-1) on up to workers goroutines and waits
// (admin.Parallel with more workers: a chunk is larger than a batch).
func parallel(n, workers int, fn func(i int)) {
	done := make(chan struct{})
	var next atomic.Int64
	w := min(n, workers)
	for range w {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	for range w {
		<-done
	}
}
