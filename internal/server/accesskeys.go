package server

import (
	"cmp"
	"context"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// accessKeyService implements AccessKeyService: operators' access keys.
type accessKeyService struct {
	pb.UnsafeAccessKeyServiceServer
	base

	// dpsHost is the host name DPS service SAS tokens must name.
	dpsHost string
}

func accessKeyToPB(k *access.Key) *pb.AccessKey {
	out := &pb.AccessKey{Id: k.ID, Name: k.Name, HasSharedAccessKey: k.SealedSAS != nil, CreateTime: ts(k.Created),
		HasSecondarySecret: k.SecondaryHash != nil}
	if !k.Expires.IsZero() {
		out.ExpireTime = ts(k.Expires)
	}
	if !k.LastUsed.IsZero() {
		out.LastUsedTime = ts(k.LastUsed)
	}
	for _, p := range k.Permissions {
		out.Permissions = append(out.Permissions, string(p))
	}
	return out
}

// CreateAccessKey implements AccessKeyService.
func (s *accessKeyService) CreateAccessKey(ctx context.Context, req *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	ctx, me, err := s.caller(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var expires time.Time
	if req.ExpireTime != nil {
		if err := req.GetExpireTime().CheckValid(); err != nil {
			return nil, s.fail(ctx, fault.Invalidf("expire_time is not a valid time"))
		}
		expires = req.GetExpireTime().AsTime()
	}
	k, err := s.admin.CreateAccessKey(ctx, me, req.GetName(), req.GetPermissions(), req.GetNoSharedAccessKey(), expires)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.CreateAccessKeyResponse{AccessKey: accessKeyToPB(k.Key), Token: k.Token, SharedAccessKey: k.SAS, ServiceHostName: s.dpsHost,
		Secret: string(access.Primary)}, nil
}

// ListAccessKeys implements AccessKeyService.
func (s *accessKeyService) ListAccessKeys(ctx context.Context, req *pb.ListAccessKeysRequest) (*pb.ListAccessKeysResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	keys, next, err := s.admin.ListAccessKeys(ctx, req.GetPageToken(), n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListAccessKeysResponse{NextPageToken: next}
	for _, k := range keys {
		out.AccessKeys = append(out.AccessKeys, accessKeyToPB(k))
	}
	return out, nil
}

// GetCallerAccessKey implements AccessKeyService: any valid key reads
// itself, with its effective permissions.
func (s *accessKeyService) GetCallerAccessKey(ctx context.Context, _ *pb.GetCallerAccessKeyRequest) (*pb.AccessKey, error) {
	ctx, me, err := s.authenticate(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := accessKeyToPB(me)
	out.Permissions = nil
	for _, p := range access.All {
		if me.Has(p) {
			out.Permissions = append(out.Permissions, string(p))
		}
	}
	return out, nil
}

// DeleteAccessKey implements AccessKeyService.
func (s *accessKeyService) DeleteAccessKey(ctx context.Context, req *pb.DeleteAccessKeyRequest) (*emptypb.Empty, error) {
	ctx, me, err := s.caller(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteAccessKey(ctx, me, req.GetId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// RotateAccessKey implements AccessKeyService.
func (s *accessKeyService) RotateAccessKey(ctx context.Context, req *pb.RotateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	ctx, me, err := s.caller(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	slot := access.Slot(cmp.Or(req.GetSecret(), string(access.Primary)))
	k, err := s.admin.RotateAccessKey(ctx, me, req.GetId(), slot)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.CreateAccessKeyResponse{AccessKey: accessKeyToPB(k.Key), Token: k.Token, SharedAccessKey: k.SAS, ServiceHostName: s.dpsHost,
		Secret: string(slot)}, nil
}
