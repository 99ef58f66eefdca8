package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// importBatch is how many enrollments one BatchCreateEnrollments call carries.
const importBatch = 1000

// ekLine is one enrollment of an EK file and the line it came from.
type ekLine struct {
	line int
	item *pb.Enrollment
}

// enrollmentImportCmd creates TPM enrollments from a file of lines
// "registration_id,endorsement_key" (the EK as base64 TPM2B_PUBLIC; an
// empty registration ID is derived from the EK), in batches. It skips a
// header line, reports every bad line (malformed, a duplicate of an
// earlier line, or refused by the server) with its number and goes on,
// and ends with a summary; it fails if any line did. --dry-run has the
// server check every item as a create would and writes nothing.
func enrollmentImportCmd(env Env) *cobra.Command {
	var dryRun bool
	cmd := opCmd(env, "import FILE", "create TPM enrollments from a file of registration_id,endorsement_key lines (exit 1 if any line failed)",
		func(cmd *cobra.Command, args []string, c *conn) error {
			return importEKFile(cmd.Context(), env, c, args[0], dryRun)
		})
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check every line, here and on the server (as a create would: the EK, the names, what is already enrolled), and write nothing")
	return cmd
}

func importEKFile(ctx context.Context, env Env, c *conn, file string, dryRun bool) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	items, malformed := parseEKFile(env.Stdout, file, string(raw))
	created, refused := 0, 0
	if len(items) > 0 {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		cl := pb.NewEnrollmentServiceClient(cc)
		for start := 0; start < len(items); start += importBatch {
			batch := items[start:min(start+importBatch, len(items))]
			req := &pb.BatchCreateEnrollmentsRequest{ValidateOnly: dryRun}
			for _, it := range batch {
				req.Enrollments = append(req.Enrollments, it.item)
			}
			resp, err := cl.BatchCreateEnrollments(ctx, req)
			if err != nil {
				return fmt.Errorf("after %d created (lines up to %d): %w", created, batch[0].line-1, err)
			}
			for i, r := range resp.GetResults() {
				if e := r.GetError(); e != nil {
					fmt.Fprintf(env.Stdout, "%s:%d: %s: %s\n", file, batch[i].line, e.GetReason(), e.GetMessage())
				}
			}
			created += int(resp.GetCreated())
			refused += int(resp.GetFailed())
		}
	}
	verb := "created"
	if dryRun {
		verb = "would be created (dry run: nothing was written)"
	}
	fmt.Fprintf(env.Stdout, "%d %s, %d refused, %d malformed\n", created, verb, refused, malformed)
	if failed := refused + malformed; failed > 0 {
		return fmt.Errorf("%d of %d lines failed; they are listed above", failed, failed+created)
	}
	return nil
}

// parseEKFile reads an EK file's data lines, reporting on w every line it
// cannot use (FILE:LINE: why) and counting them. Blank lines and lines
// starting with # are skipped, and so is a header: a first data line
// whose second column is a short name rather than base64.
func parseEKFile(w io.Writer, name, text string) (items []ekLine, malformed int) {
	bad := func(n int, format string, args ...any) {
		fmt.Fprintf(w, "%s:%d: malformed: %s\n", name, n, fmt.Sprintf(format, args...))
		malformed++
	}
	byID, byEK := map[string]int{}, map[string]int{}
	first := true
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		wasFirst := first
		first = false
		id, ekText, ok := strings.Cut(line, ",")
		id, ekText = strings.TrimSpace(id), strings.TrimSpace(ekText)
		ek, err := base64.StdEncoding.DecodeString(ekText)
		switch {
		case wasFirst && ok && err != nil && looksLikeHeader(ekText):
			fmt.Fprintf(w, "%s:%d: skipped as a header: %q\n", name, n, line)
			continue
		case !ok:
			bad(n, "want registration_id,endorsement_key (the EK as base64 TPM2B_PUBLIC), found no comma")
			continue
		case ekText == "":
			bad(n, "no endorsement key after the comma")
			continue
		case err != nil:
			bad(n, "the endorsement key is not base64 (%v)", err)
			continue
		}
		regID := id
		if regID == "" {
			regID = tpm.RegistrationID(ek)
		}
		key, ekKey := enrollment.Key(regID), string(ek)
		if m, dup := byID[key]; dup {
			bad(n, "registration ID %q is already on line %d", regID, m)
			continue
		}
		if m, dup := byEK[ekKey]; dup {
			bad(n, "the same endorsement key is already on line %d", m)
			continue
		}
		byID[key], byEK[ekKey] = n, n
		items = append(items, ekLine{line: n, item: &pb.Enrollment{RegistrationId: id, Tpm: &pb.TpmAttestation{EndorsementKey: ek}}})
	}
	return items, malformed
}

// looksLikeHeader reports whether an EK column is a column name (as
// "endorsement_key" or "EK") rather than a damaged key: short, and with
// none of base64's '+', '/' or '='.
func looksLikeHeader(col string) bool {
	return len(col) <= 40 && !strings.ContainsAny(col, "+/=")
}
