package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/zerotouch/zerotouch/internal/lines"
	"hash/maphash"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/apierr"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// importBatch is how many enrollments one BatchCreateEnrollments call
// carries (the TPM load tool's enrollments).
const importBatch = 1000

// maxImportLine bounds one line of an import file (the server's bound on
// one item is 64 KiB).
const maxImportLine = 64 << 10

// importRetries is how many times in a row an import reconnects after
// losing its stream without an item answered in between.
const importRetries = 8

// enrollmentImportCmd creates enrollments from a file, streamed to the
// server's ImportEnrollments (the file is read line by line, never held
// whole). A line is "registration_id,endorsement_key" (a TPM: the EK as
// base64 TPM2B_PUBLIC; an empty registration ID is derived from the EK),
// "registration_id,sha256_thumbprint" (an X.509 device: the hex SHA-256
// of its DER leaf certificate), or a JSON Enrollment as the API takes it.
// It skips a header line, blank lines and # comments, reports every bad
// line (malformed, a duplicate of an earlier line, or refused by the
// server) with its number and goes on, and ends with a summary; it fails
// if any line did. A line already enrolled identically (the same
// registration ID and credential) is unchanged, not a failure, so a file
// can be imported again. When the connection drops, it reconnects and
// resumes after the last line the server answered; --resume-after starts
// after a given line (the one a failed run names). --dry-run has the
// server check every item as a create would and writes nothing.
func enrollmentImportCmd(env Env) *cobra.Command {
	var opts importOptions
	cmd := opCmd(env, "import FILE", "create TPM and X.509 enrollments from a file of registration_id,endorsement_key or registration_id,sha256_thumbprint lines (exit 1 if any line failed)",
		func(cmd *cobra.Command, args []string, c *conn) error {
			cc, err := c.dial()
			if err != nil {
				return err
			}
			_, err = importFile(cmd.Context(), env, pb.NewEnrollmentServiceClient(cc), args[0], opts)
			return err
		})
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "check every line, here and on the server (as a create would: the EK, the names, what is already enrolled), and write nothing")
	cmd.Flags().Int64Var(&opts.resumeAfter, "resume-after", 0, "skip the lines up to this one (the last line a failed import says the server answered)")
	return cmd
}

// importOptions are an import's settings.
type importOptions struct {
	dryRun      bool
	resumeAfter int64
	// quiet prints no line (the benchmark's bulk files).
	quiet bool
}

// importTotals count an import's lines.
type importTotals struct {
	created, unchanged, refused, malformed int64
	// maxInFlight is the most items the server held at once (from its
	// summaries).
	maxInFlight int64
	elapsed     time.Duration
}

// lockedWriter serializes the lines of the sending and receiving halves.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func importFile(ctx context.Context, env Env, cl pb.EnrollmentServiceClient, file string, opts importOptions) (*importTotals, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	out := io.Writer(&lockedWriter{w: env.Stdout})
	if opts.quiet {
		out = io.Discard
	}
	p := newLineParser(out, file)
	tot := &importTotals{}
	acked := opts.resumeAfter
	start := time.Now()
	for tries := 0; ; {
		before := acked
		err := importAttempt(ctx, out, cl, file, p, tot, &acked, opts.dryRun)
		if err == nil {
			break
		}
		if acked > before {
			tries = 0
		}
		tries++
		if !retryableImport(err) || tries > importRetries || ctx.Err() != nil {
			return nil, fmt.Errorf("%w (the server answered every line up to %d; go on with --resume-after %d)", err, acked, acked)
		}
		fmt.Fprintf(env.Stderr, "import stream lost after line %d (%v); resuming\n", acked, err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(min(tries, 5)) * time.Second):
		}
	}
	tot.elapsed = time.Since(start)
	tot.malformed = int64(p.malformed)
	verb := "created"
	if opts.dryRun {
		verb = "would be created (dry run: nothing was written)"
	}
	fmt.Fprintf(env.Stdout, "%d %s, %d refused, %d malformed, %d unchanged (already enrolled identically)\n", tot.created, verb, tot.refused, tot.malformed, tot.unchanged)
	if failed := tot.refused + tot.malformed; failed > 0 {
		return tot, fmt.Errorf("%d of %d lines failed; they are listed above", failed, failed+tot.created+tot.unchanged)
	}
	return tot, nil
}

// retryableImport reports whether a lost stream is worth resuming: the
// connection dropped, the server was busy, or the stream reached the
// server's time limit.
func retryableImport(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.Aborted:
		return true
	case codes.ResourceExhausted:
		r := apierr.ReasonOf(st)
		return r == "TOO_MANY_STREAMS" || r == "DEADLINE_EXCEEDED"
	}
	return false
}

// importAttempt streams the lines after *acked on one stream, counting
// the answers into tot and moving *acked to the last line answered.
func importAttempt(ctx context.Context, out io.Writer, cl pb.EnrollmentServiceClient, file string, p *lineParser, tot *importTotals, acked *int64, dryRun bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.ImportEnrollments(ctx)
	if err != nil {
		return err
	}
	from := *acked
	sendErr := make(chan error, 1)
	go func() {
		sendErr <- func() error {
			br := bufio.NewReaderSize(f, maxImportLine+1)
			for n := int64(1); ; n++ {
				raw, tooLong, err := lines.Read(br)
				if errors.Is(err, io.EOF) {
					return stream.CloseSend()
				}
				if err != nil {
					return err
				}
				if n <= from {
					continue
				}
				item := p.parse(n, raw, tooLong)
				if item == nil {
					continue
				}
				if err := stream.Send(&pb.ImportEnrollmentsRequest{Sequence: n, Enrollment: item, ValidateOnly: dryRun}); err != nil {
					return nil // the stream broke: Recv says why
				}
			}
		}()
	}()
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cancel()
			if serr := <-sendErr; serr != nil && status.Code(err) == codes.Canceled {
				return serr
			}
			return err
		}
		for _, r := range resp.GetResults() {
			switch r.GetOutcome() {
			case pb.ImportOutcome_IMPORT_OUTCOME_CREATED:
				tot.created++
			case pb.ImportOutcome_IMPORT_OUTCOME_UNCHANGED:
				tot.unchanged++
			default:
				tot.refused++
				e := r.GetError()
				fmt.Fprintf(out, "%s:%d: %s: %s\n", file, r.GetSequence(), e.GetReason(), e.GetMessage())
			}
			*acked = r.GetSequence()
		}
		if s := resp.GetSummary(); s != nil {
			tot.maxInFlight = max(tot.maxInFlight, s.GetMaxInFlight())
		}
	}
	if err := <-sendErr; err != nil {
		return err
	}
	return nil
}

// lineParser turns an import file's lines into enrollments, reporting
// each line it cannot use (FILE:LINE: why) once, however often the file
// is read again to resume. It remembers the lines' registration IDs and
// credentials as 64-bit hashes (about 50 bytes a line), to refuse a
// duplicate of an earlier line.
type lineParser struct {
	w    io.Writer
	name string
	seed maphash.Seed
	// byID and byCred map hashed keys to the line that has them.
	byID, byCred map[uint64]int64
	// sawData: a data line was read (the header can only be the first);
	// parsed: the last line parsed, whose faults are already reported.
	sawData   bool
	parsed    int64
	malformed int
}

func newLineParser(w io.Writer, name string) *lineParser {
	return &lineParser{w: w, name: name, seed: maphash.MakeSeed(), byID: map[uint64]int64{}, byCred: map[uint64]int64{}}
}

// parse returns line n's enrollment, or nil for a line to skip.
func (p *lineParser) parse(n int64, raw []byte, tooLong bool) *pb.Enrollment {
	quiet := n <= p.parsed
	p.parsed = max(p.parsed, n)
	bad := func(format string, args ...any) *pb.Enrollment {
		if !quiet {
			fmt.Fprintf(p.w, "%s:%d: malformed: %s\n", p.name, n, fmt.Sprintf(format, args...))
			p.malformed++
		}
		return nil
	}
	if tooLong {
		p.sawData = true
		return bad("the line is longer than %d bytes", maxImportLine)
	}
	line := string(bytes.TrimSpace(raw))
	if line == "" || strings.HasPrefix(line, "#") {
		return nil
	}
	wasFirst := !p.sawData
	p.sawData = true
	var item *pb.Enrollment
	var regID, cred string
	if strings.HasPrefix(line, "{") {
		item = &pb.Enrollment{}
		if err := protojson.Unmarshal([]byte(line), item); err != nil {
			return bad("not an enrollment as JSON: %v", err)
		}
		regID, cred = item.GetRegistrationId(), strings.ToLower(item.GetSha256Thumbprint())
		if ek := item.GetTpm().GetEndorsementKey(); len(ek) > 0 {
			cred = tpm.EKHash(ek)
			if regID == "" {
				regID = tpm.RegistrationID(ek)
			}
		}
	} else {
		id, col, ok := strings.Cut(line, ",")
		id, col = strings.TrimSpace(id), strings.TrimSpace(col)
		switch {
		case !ok:
			return bad("want registration_id,endorsement_key (the EK as base64 TPM2B_PUBLIC) or registration_id,sha256_thumbprint, found no comma")
		case col == "":
			return bad("no endorsement key or thumbprint after the comma")
		case enrollment.ValidThumbprint(col):
			if id == "" {
				return bad("an X.509 line (a thumbprint) needs its registration ID, the certificate's CN")
			}
			regID, cred = id, strings.ToLower(col)
			item = &pb.Enrollment{RegistrationId: id, Sha256Thumbprint: cred}
		default:
			ek, err := base64.StdEncoding.DecodeString(col)
			switch {
			case err != nil && wasFirst && looksLikeHeader(col):
				if !quiet {
					fmt.Fprintf(p.w, "%s:%d: skipped as a header: %q\n", p.name, n, line)
				}
				return nil
			case err != nil:
				return bad("the endorsement key is not base64 (%v)", err)
			}
			regID, cred = id, tpm.EKHash(ek)
			if regID == "" {
				regID = tpm.RegistrationID(ek)
			}
			item = &pb.Enrollment{RegistrationId: id, Tpm: &pb.TpmAttestation{EndorsementKey: ek}}
		}
	}
	var idHash, credHash uint64
	if regID != "" {
		idHash = maphash.String(p.seed, enrollment.Key(regID))
		if m, dup := p.byID[idHash]; dup && m != n {
			return bad("registration ID %q is already on line %d", regID, m)
		}
	}
	if cred != "" {
		credHash = maphash.String(p.seed, cred)
		if m, dup := p.byCred[credHash]; dup && m != n {
			if item.GetTpm() != nil {
				return bad("the same endorsement key is already on line %d", m)
			}
			return bad("the same certificate thumbprint is already on line %d", m)
		}
		p.byCred[credHash] = n
	}
	if regID != "" {
		p.byID[idHash] = n
	}
	return item
}

// looksLikeHeader reports whether an EK column is a column name (as
// "endorsement_key" or "EK") rather than a damaged key: short, and with
// none of base64's '+', '/' or '='.
func looksLikeHeader(col string) bool {
	return len(col) <= 40 && !strings.ContainsAny(col, "+/=")
}
