package server

import (
	"context"
	"strings"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func accessKeyToPB(k *access.Key) *pb.AccessKey {
	out := &pb.AccessKey{Id: k.ID, Name: k.Name, HasSharedAccessKey: k.SealedSAS != nil, CreateTime: ts(k.Created)}
	for _, p := range k.Permissions {
		out.Permissions = append(out.Permissions, string(p))
	}
	return out
}

// caller authenticates the caller and checks p, returning its key and the
// context that names it as the actor of the request's changes.
func (s *services) caller(ctx context.Context, p access.Permission) (context.Context, *access.Key, error) {
	token, ok := strings.CutPrefix(firstMetadata(ctx, "authorization"), "Bearer ")
	if !ok {
		return ctx, nil, fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a valid access key is required (authorization: Bearer ztk...)")
	}
	k, err := s.admin.Authenticate(ctx, strings.TrimSpace(token))
	if err != nil {
		return ctx, nil, err
	}
	return admin.WithActor(ctx, k.ID), k, access.Require(k, p)
}

// CreateAccessKey implements AccessKeyService.
func (s *services) CreateAccessKey(ctx context.Context, req *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	ctx, me, err := s.caller(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	k, err := s.admin.CreateAccessKey(ctx, me, req.GetName(), req.GetPermissions(), req.GetNoSharedAccessKey())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.CreateAccessKeyResponse{AccessKey: accessKeyToPB(k.Key), Token: k.Token, SharedAccessKey: k.SAS, ServiceHostName: s.dpsHost}, nil
}

// ListAccessKeys implements AccessKeyService.
func (s *services) ListAccessKeys(ctx context.Context, req *pb.ListAccessKeysRequest) (*pb.ListAccessKeysResponse, error) {
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

// DeleteAccessKey implements AccessKeyService.
func (s *services) DeleteAccessKey(ctx context.Context, req *pb.DeleteAccessKeyRequest) (*emptypb.Empty, error) {
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
func (s *services) RotateAccessKey(ctx context.Context, req *pb.RotateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	ctx, me, err := s.caller(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	k, err := s.admin.RotateAccessKey(ctx, me, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.CreateAccessKeyResponse{AccessKey: accessKeyToPB(k.Key), Token: k.Token, SharedAccessKey: k.SAS, ServiceHostName: s.dpsHost}, nil
}
