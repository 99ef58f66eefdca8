package cli

import (
	"github.com/spf13/cobra"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var failedAttemptTable = table[*pb.FailedAttempt]{
	id: (*pb.FailedAttempt).GetRegistrationId,
	cols: []column[*pb.FailedAttempt]{
		{"TIME", func(a *pb.FailedAttempt) string { return when(a.GetTime()) }},
		{"REGISTRATION ID", (*pb.FailedAttempt).GetRegistrationId},
		{"SOURCE", (*pb.FailedAttempt).GetSource},
		{"TRANSPORT", (*pb.FailedAttempt).GetTransport},
		{"REASON", (*pb.FailedAttempt).GetReason},
		{"CREDENTIAL", (*pb.FailedAttempt).GetCredential},
		{"REQUEST ID", (*pb.FailedAttempt).GetRequestId},
	},
}

// summaryRow is one count of a summary: per hour, or over the range.
type summaryRow struct {
	total bool
	*pb.FailedAttemptCount
}

var failedAttemptSummaryTable = table[summaryRow]{
	id: func(r summaryRow) string { return r.GetKey() },
	cols: []column[summaryRow]{
		{"HOUR", func(r summaryRow) string {
			if r.total {
				return "total"
			}
			return when(r.GetHour())
		}},
		{"KEY", func(r summaryRow) string { return r.GetKey() }},
		{"COUNT", func(r summaryRow) string { return count(r.GetCount()) }},
	},
}

func failedAttemptsCmd(env Env) *cobra.Command {
	return group("failed-attempts", "refused device requests: list (filters), summary (per device, source or reason per hour)",
		failedAttemptsListCmd(env), failedAttemptsSummaryCmd(env))
}

func failedAttemptsListCmd(env Env) *cobra.Command {
	var regID, reason, source, since, until string
	var limit int
	var o *output
	cmd := opCmd(env, "list", "list refused device requests, newest hour first", func(cmd *cobra.Command, _ []string, c *conn) error {
		start, end, err := timeRange(since, until)
		if err != nil {
			return err
		}
		if limit < 1 {
			return usagef("--limit must be at least 1")
		}
		cc, err := c.dial()
		if err != nil {
			return err
		}
		cl := pb.NewFailedAttemptServiceClient(cc)
		req := &pb.ListFailedAttemptsRequest{RegistrationId: regID, Reason: reason, Source: source, StartTime: start, EndTime: end}
		out := &pb.ListFailedAttemptsResponse{}
		out.FailedAttempts, out.NextPageToken, err = upTo(limit, func(token string, size int32) ([]*pb.FailedAttempt, string, error) {
			req.PageToken, req.PageSize = token, size
			page, err := cl.ListFailedAttempts(cmd.Context(), req)
			return page.GetFailedAttempts(), page.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return failedAttemptTable.print(env.Stdout, o, out, out.FailedAttempts)
	})
	fs := cmd.Flags()
	fs.StringVar(&regID, "registration-id", "", "only this registration ID")
	fs.StringVar(&reason, "reason", "", "only this reason, e.g. CERTIFICATE_UNTRUSTED")
	fs.StringVar(&source, "source", "", "only this source address or CIDR prefix, e.g. 203.0.113.0/24")
	fs.StringVar(&since, "since", "24h", "from this time: RFC 3339, or a duration ago")
	fs.StringVar(&until, "until", "", "before this time: RFC 3339, or a duration ago (default now)")
	fs.IntVar(&limit, "limit", 100, "at most this many records, newest hour first")
	o = addOutput(cmd, formatTable, "the registration IDs, one a line")
	return cmd
}

func failedAttemptsSummaryCmd(env Env) *cobra.Command {
	var by, since, until string
	var top int
	var o *output
	cmd := opCmd(env, "summary", "count refused device requests per key, per hour and over the range", func(cmd *cobra.Command, _ []string, c *conn) error {
		start, end, err := timeRange(since, until)
		if err != nil {
			return err
		}
		if top < 1 {
			return usagef("--top must be at least 1")
		}
		cc, err := c.dial()
		if err != nil {
			return err
		}
		res, err := pb.NewFailedAttemptServiceClient(cc).SummarizeFailedAttempts(cmd.Context(),
			&pb.SummarizeFailedAttemptsRequest{By: by, StartTime: start, EndTime: end, Top: int32(top)})
		if err != nil {
			return err
		}
		var rows []summaryRow
		for _, t := range res.GetTotal() {
			rows = append(rows, summaryRow{true, t})
		}
		if !o.quiet {
			for _, h := range res.GetHours() {
				rows = append(rows, summaryRow{false, h})
			}
		}
		return failedAttemptSummaryTable.print(env.Stdout, o, res, rows)
	})
	choiceVar(cmd, &by, "by", "source", "count per registration_id, source or reason", "registration_id", "source", "reason")
	cmd.Flags().IntVar(&top, "top", 10, "the top N keys per hour and over the range")
	cmd.Flags().StringVar(&since, "since", "24h", "from this time: RFC 3339, or a duration ago")
	cmd.Flags().StringVar(&until, "until", "", "before this time: RFC 3339, or a duration ago (default now)")
	o = addOutput(cmd, formatTable, "the top keys over the range, one a line")
	return cmd
}
