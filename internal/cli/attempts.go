package cli

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func runFailedAttempts(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "list", "summary")
	if err != nil {
		return err
	}
	fs, c := opFlags("failed-attempts "+sub, env)
	regID := fs.String("registration-id", "", "only this registration ID (list)")
	reason := fs.String("reason", "", "only this reason, e.g. CERTIFICATE_UNTRUSTED (list)")
	source := fs.String("source", "", "only this source address or CIDR prefix, e.g. 203.0.113.0/24 (list)")
	by := fs.String("by", "source", "count per registration_id, source or reason (summary)")
	top := fs.Int("top", 10, "the top N keys per hour and over the range (summary)")
	since := fs.String("since", "24h", "from this time: RFC 3339, or a duration ago")
	until := fs.String("until", "", "before this time: RFC 3339, or a duration ago (default now)")
	limit := fs.Int("limit", 100, "at most this many records, newest hour first (list)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	start, end, err := timeRange(*since, *until)
	if err != nil {
		return err
	}
	if *limit < 1 || *top < 1 {
		return fmt.Errorf("%w: --limit and --top must be at least 1", errUsage)
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewFailedAttemptServiceClient(cc)
		if sub == "summary" {
			return cl.SummarizeFailedAttempts(ctx, &pb.SummarizeFailedAttemptsRequest{By: *by, StartTime: start, EndTime: end, Top: int32(*top)})
		}
		req := &pb.ListFailedAttemptsRequest{RegistrationId: *regID, Reason: *reason, Source: *source, StartTime: start, EndTime: end}
		out := &pb.ListFailedAttemptsResponse{}
		out.FailedAttempts, out.NextPageToken, err = upTo(*limit, func(token string, size int32) ([]*pb.FailedAttempt, string, error) {
			req.PageToken, req.PageSize = token, size
			page, err := cl.ListFailedAttempts(ctx, req)
			return page.GetFailedAttempts(), page.GetNextPageToken(), err
		})
		return out, err
	})
}
