package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// errAuditBroken is verify's answer when the chain is broken.
var errAuditBroken = errors.New("the audit log is not intact")

var auditTable = table[*pb.AuditRecord]{
	id: func(r *pb.AuditRecord) string { return count(r.GetSeq()) },
	cols: []column[*pb.AuditRecord]{
		{"SEQ", func(r *pb.AuditRecord) string { return count(r.GetSeq()) }},
		{"TIME", func(r *pb.AuditRecord) string { return when(r.GetTime()) }},
		{"ACTOR", func(r *pb.AuditRecord) string { return first(r.GetActorName(), r.GetActorId()) }},
		{"ACTION", (*pb.AuditRecord).GetAction},
		{"RESOURCE", (*pb.AuditRecord).GetResource},
		{"OUTCOME", (*pb.AuditRecord).GetOutcome},
		{"REASON", (*pb.AuditRecord).GetReason},
		{"SURFACE", (*pb.AuditRecord).GetSurface},
		{"SOURCE", (*pb.AuditRecord).GetSource},
	},
}

var auditVerifyTable = table[*pb.VerifyAuditLogResponse]{
	cols: []column[*pb.VerifyAuditLogResponse]{
		{"INTACT", func(r *pb.VerifyAuditLogResponse) string { return yesNo(r.GetIntact()) }},
		{"RECORDS", func(r *pb.VerifyAuditLogResponse) string { return count(r.GetRecords()) }},
		{"ANCHOR", func(r *pb.VerifyAuditLogResponse) string { return count(r.GetAnchorSeq()) }},
		{"HEAD", func(r *pb.VerifyAuditLogResponse) string { return count(r.GetHeadSeq()) }},
		{"PROBLEMS", func(r *pb.VerifyAuditLogResponse) string { return count(int64(len(r.GetProblems()))) }},
	},
}

func auditCmd(env Env) *cobra.Command {
	return group("audit", "the audit log of operator changes: list, verify (the hash chain)", auditListCmd(env), auditVerifyCmd(env))
}

func auditListCmd(env Env) *cobra.Command {
	var actor, action, resource, outcome, since, until string
	var limit int
	var o *output
	cmd := opCmd(env, "list", "list audit records, newest first", func(cmd *cobra.Command, _ []string, c *conn) error {
		req := &pb.ListAuditRecordsRequest{ActorId: actor, Action: action, Resource: resource, Outcome: outcome}
		var err error
		if req.StartTime, req.EndTime, err = timeRange(since, until); err != nil {
			return err
		}
		if limit < 1 {
			return usagef("--limit must be at least 1")
		}
		cc, err := c.dial()
		if err != nil {
			return err
		}
		cl := pb.NewAuditServiceClient(cc)
		out := &pb.ListAuditRecordsResponse{}
		out.Records, out.NextPageToken, err = upTo(limit, func(token string, size int32) ([]*pb.AuditRecord, string, error) {
			req.PageToken, req.PageSize = token, size
			page, err := cl.ListAuditRecords(cmd.Context(), req)
			return page.GetRecords(), page.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return auditTable.print(env.Stdout, o, out, out.Records)
	})
	fs := cmd.Flags()
	fs.StringVar(&actor, "actor", "", "only changes by this access key ID")
	fs.StringVar(&action, "action", "", "only this action, e.g. CreateEnrollmentGroup")
	fs.StringVar(&resource, "resource", "", "only changes of this resource ID")
	choiceVar(cmd, &outcome, "outcome", "", "done or refused", "", "done", "refused")
	fs.StringVar(&since, "since", "", "only records at or after this time: RFC 3339, or a duration ago such as 24h")
	fs.StringVar(&until, "until", "", "only records before this time: RFC 3339, or a duration ago")
	fs.IntVar(&limit, "limit", 100, "at most this many records, newest first")
	o = addOutput(cmd, formatTable, "the records' sequence numbers, one a line")
	return cmd
}

// auditVerifyCmd checks the whole chain: exit 1, naming each record that
// was edited, removed or reordered, when it is broken.
func auditVerifyCmd(env Env) *cobra.Command {
	var o *output
	cmd := opCmd(env, "verify", "check the audit log's MAC chain (exit 1 naming the records that were edited, removed or reordered)", func(cmd *cobra.Command, _ []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		res, err := pb.NewAuditServiceClient(cc).VerifyAuditLog(cmd.Context(), &pb.VerifyAuditLogRequest{})
		if err != nil {
			return err
		}
		if !o.quiet {
			if err := auditVerifyTable.one(env.Stdout, o, res); err != nil {
				return err
			}
		}
		if !res.GetIntact() {
			var where []string
			for _, p := range res.GetProblems() {
				where = append(where, fmt.Sprintf("record %d: %s", p.GetSeq(), p.GetReason()))
			}
			return fmt.Errorf("%w:\n  %s", errAuditBroken, strings.Join(where, "\n  "))
		}
		return nil
	})
	o = addOutput(cmd, formatJSON, "nothing: the exit status says whether the log is intact")
	return cmd
}

// timeRange reads --since and --until ("" for none).
func timeRange(since, until string) (start, end *timestamppb.Timestamp, err error) {
	for _, t := range []struct {
		flag, value string
		dst         **timestamppb.Timestamp
	}{{"--since", since, &start}, {"--until", until, &end}} {
		if t.value == "" {
			continue
		}
		at, err := parseWhen(t.value, time.Now())
		if err != nil {
			return nil, nil, usagef("%s: %v", t.flag, err)
		}
		*t.dst = timestamppb.New(at)
	}
	return start, end, nil
}

// upTo follows a listing's pages until it has limit items or the end,
// and returns them with the token to go on ("" at the end).
func upTo[T any](limit int, fetch func(token string, size int32) ([]T, string, error)) ([]T, string, error) {
	var all []T
	token := ""
	for len(all) < limit {
		items, next, err := fetch(token, int32(min(limit-len(all), 1000)))
		if err != nil {
			return nil, "", err
		}
		all = append(all, items...)
		if token = next; token == "" {
			break
		}
	}
	return all, token, nil
}

// parseWhen reads a time: RFC 3339, or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("a duration ago must not be negative")
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration", s)
	}
	return t, nil
}

// parseUntil reads a time: RFC 3339, or a duration after now.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("a duration from now must be positive")
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration", s)
	}
	return t, nil
}
