package server

import (
	"context"
	"time"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/attempts"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// failedAttemptService implements FailedAttemptService: the refused device
// requests (ADR 20).
type failedAttemptService struct {
	pb.UnsafeFailedAttemptServiceServer
	base
}

func attemptToPB(a *attempts.Attempt) *pb.FailedAttempt {
	return &pb.FailedAttempt{Time: ts(a.Time), RegistrationId: a.RegistrationID, Credential: a.Credential, Source: a.Source,
		Transport: a.Transport, Reason: a.Reason, RequestId: a.RequestID}
}

// ListFailedAttempts implements FailedAttemptService.
func (s *failedAttemptService) ListFailedAttempts(ctx context.Context, req *pb.ListFailedAttemptsRequest) (*pb.ListFailedAttemptsResponse, error) {
	ctx, err := s.authorize(ctx, access.RegistrationRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	f := attempts.Filter{RegistrationID: req.GetRegistrationId(), Reason: req.GetReason(), Source: req.GetSource()}
	if req.StartTime != nil {
		f.Since = req.GetStartTime().AsTime()
	}
	if req.EndTime != nil {
		f.Until = req.GetEndTime().AsTime()
	}
	list, next, err := s.admin.ListFailedAttempts(ctx, f, req.GetPageToken(), n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListFailedAttemptsResponse{NextPageToken: next}
	for i := range list {
		out.FailedAttempts = append(out.FailedAttempts, attemptToPB(&list[i]))
	}
	return out, nil
}

// SummarizeFailedAttempts implements FailedAttemptService.
func (s *failedAttemptService) SummarizeFailedAttempts(ctx context.Context, req *pb.SummarizeFailedAttemptsRequest) (*pb.SummarizeFailedAttemptsResponse, error) {
	ctx, err := s.authorize(ctx, access.RegistrationRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	top := int(req.GetTop())
	if top == 0 {
		top = 10
	}
	var since, until time.Time
	if req.StartTime != nil {
		since = req.GetStartTime().AsTime()
	}
	if req.EndTime != nil {
		until = req.GetEndTime().AsTime()
	}
	hours, total, err := s.admin.SummarizeFailedAttempts(ctx, req.GetBy(), since, until, top)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.SummarizeFailedAttemptsResponse{}
	for _, c := range hours {
		out.Hours = append(out.Hours, &pb.FailedAttemptCount{Hour: ts(c.Hour), Key: c.Key, Count: c.N})
	}
	for _, c := range total {
		out.Total = append(out.Total, &pb.FailedAttemptCount{Key: c.Key, Count: c.N})
	}
	return out, nil
}
