package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// errAuditBroken is verify's answer when the chain is broken.
var errAuditBroken = errors.New("the audit log is not intact")

func runAudit(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "list", "verify")
	if err != nil {
		return err
	}
	fs, c := opFlags("audit "+sub, env)
	actor := fs.String("actor", "", "only changes by this access key ID (list)")
	action := fs.String("action", "", "only this action, e.g. CreateEnrollmentGroup (list)")
	resource := fs.String("resource", "", "only changes of this resource ID (list)")
	outcome := fs.String("outcome", "", "done or refused (list)")
	since := fs.String("since", "", "only records at or after this time: RFC 3339, or a duration ago such as 24h (list)")
	until := fs.String("until", "", "only records before this time: RFC 3339, or a duration ago (list)")
	limit := fs.Int("limit", 100, "at most this many records, newest first (list)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	req := &pb.ListAuditRecordsRequest{ActorId: *actor, Action: *action, Resource: *resource, Outcome: *outcome}
	for _, t := range []struct {
		flag, value string
		dst         **timestamppb.Timestamp
	}{{"--since", *since, &req.StartTime}, {"--until", *until, &req.EndTime}} {
		if t.value == "" {
			continue
		}
		at, err := parseWhen(t.value, time.Now())
		if err != nil {
			return fmt.Errorf("%w: %s: %v", errUsage, t.flag, err)
		}
		*t.dst = timestamppb.New(at)
	}
	if *limit < 1 {
		return fmt.Errorf("%w: --limit must be at least 1", errUsage)
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewAuditServiceClient(cc)
		if sub == "verify" {
			res, err := cl.VerifyAuditLog(ctx, &pb.VerifyAuditLogRequest{})
			if err != nil {
				return nil, err
			}
			if !res.GetIntact() {
				var where []string
				for _, p := range res.GetProblems() {
					where = append(where, fmt.Sprintf("record %d: %s", p.GetSeq(), p.GetReason()))
				}
				_ = printJSON(env.Stdout, res)
				return nil, fmt.Errorf("%w:\n  %s", errAuditBroken, strings.Join(where, "\n  "))
			}
			return res, nil
		}
		out := &pb.ListAuditRecordsResponse{}
		token := ""
		for len(out.Records) < *limit {
			req.PageToken, req.PageSize = token, int32(min(*limit-len(out.Records), 1000))
			page, err := cl.ListAuditRecords(ctx, req)
			if err != nil {
				return nil, err
			}
			out.Records = append(out.Records, page.GetRecords()...)
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
		out.NextPageToken = token
		return out, nil
	})
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
