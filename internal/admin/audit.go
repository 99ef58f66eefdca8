package admin

import (
	"context"

	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// verifyPage is how many audit entries one read of a verification takes.
const verifyPage = 1000

// ListAudit lists audit records, newest first.
func (s *Service) ListAudit(ctx context.Context, f audit.Filter, token string, limit int) ([]*audit.Record, string, error) {
	if s.Audit == nil {
		return nil, "", fault.New(fault.FailedPrecondition, fault.FieldInvalid, "the audit log is off")
	}
	return s.Audit.List(ctx, f, token, limit)
}

// VerifyAudit checks the whole audit chain.
func (s *Service) VerifyAudit(ctx context.Context) (*audit.Result, error) {
	if s.Audit == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.FieldInvalid, "the audit log is off")
	}
	return s.Audit.Chain.Verify(ctx, s.Audit.Store, verifyPage)
}
