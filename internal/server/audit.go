package server

import (
	"context"
	"encoding/hex"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/audit"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// auditService implements AuditService: reading and verifying the audit
// log (ADR 19).
type auditService struct {
	pb.UnsafeAuditServiceServer
	base
}

func auditRecordToPB(r *audit.Record) *pb.AuditRecord {
	return &pb.AuditRecord{Seq: r.Seq, Time: ts(r.Time), ActorId: r.ActorID, ActorName: r.ActorName, Action: r.Action, Resource: r.Resource,
		Surface: r.Surface, Source: r.Source, RequestId: r.RequestID, Outcome: r.Outcome, Reason: r.Reason, IfMatch: r.IfMatch, Etag: r.Etag,
		Summary: r.Summary}
}

// ListAuditRecords implements AuditService.
func (s *auditService) ListAuditRecords(ctx context.Context, req *pb.ListAuditRecordsRequest) (*pb.ListAuditRecordsResponse, error) {
	ctx, err := s.authorize(ctx, access.AuditRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	f := audit.Filter{ActorID: req.GetActorId(), Action: req.GetAction(), Resource: req.GetResource(), Outcome: req.GetOutcome()}
	if req.StartTime != nil {
		f.Since = req.GetStartTime().AsTime()
	}
	if req.EndTime != nil {
		f.Until = req.GetEndTime().AsTime()
	}
	recs, next, err := s.admin.ListAudit(ctx, f, req.GetPageToken(), n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListAuditRecordsResponse{NextPageToken: next}
	for _, r := range recs {
		out.Records = append(out.Records, auditRecordToPB(r))
	}
	return out, nil
}

// VerifyAuditLog implements AuditService.
func (s *auditService) VerifyAuditLog(ctx context.Context, _ *pb.VerifyAuditLogRequest) (*pb.VerifyAuditLogResponse, error) {
	ctx, err := s.authorize(ctx, access.AuditRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	res, err := s.admin.VerifyAudit(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.VerifyAuditLogResponse{Intact: len(res.Problems) == 0, Records: res.Entries, AnchorSeq: res.Anchor.Seq,
		HeadSeq: res.Head.Seq, HeadMac: hex.EncodeToString(res.Head.MAC)}
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, &pb.AuditProblem{Seq: p.Seq, Reason: p.Reason})
	}
	return out, nil
}
