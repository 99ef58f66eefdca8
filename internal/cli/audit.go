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
	if req.StartTime, req.EndTime, err = timeRange(*since, *until); err != nil {
		return err
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
		out.Records, out.NextPageToken, err = upTo(*limit, func(token string, size int32) ([]*pb.AuditRecord, string, error) {
			req.PageToken, req.PageSize = token, size
			page, err := cl.ListAuditRecords(ctx, req)
			return page.GetRecords(), page.GetNextPageToken(), err
		})
		return out, err
	})
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
			return nil, nil, fmt.Errorf("%w: %s: %v", errUsage, t.flag, err)
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
