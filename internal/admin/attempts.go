package admin

import (
	"context"
	"time"

	"github.com/zerotouch/zerotouch/internal/attempts"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// ListFailedAttempts lists refused device requests (ADR 20).
func (s *Service) ListFailedAttempts(ctx context.Context, f attempts.Filter, token string, limit int) ([]attempts.Attempt, string, error) {
	if s.Attempts == nil {
		return nil, "", fault.New(fault.FailedPrecondition, fault.FieldInvalid, "the failed-attempt log is off")
	}
	return s.Attempts.List(ctx, f, token, limit)
}

// SummarizeFailedAttempts counts refused device requests per key and hour.
func (s *Service) SummarizeFailedAttempts(ctx context.Context, by string, since, until time.Time, top int) ([]attempts.Count, []attempts.Count, error) {
	if s.Attempts == nil {
		return nil, nil, fault.New(fault.FailedPrecondition, fault.FieldInvalid, "the failed-attempt log is off")
	}
	return s.Attempts.Summarize(ctx, by, since, until, top)
}
