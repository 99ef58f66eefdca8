package server

import (
	"context"
	"strings"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/internal/access"
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

// caller authenticates the caller and checks p, returning its key.
func (s *services) caller(ctx context.Context, p access.Permission) (*access.Key, error) {
	token, ok := strings.CutPrefix(firstMetadata(ctx, "authorization"), "Bearer ")
	if !ok {
		return nil, fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a valid access key is required (authorization: Bearer ztk...)")
	}
	k, err := access.Authenticate(ctx, s.store, strings.TrimSpace(token))
	if err != nil {
		return nil, err
	}
	return k, access.Require(k, p)
}

// CreateAccessKey implements AccessKeyService.
func (s *services) CreateAccessKey(ctx context.Context, req *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	if err := s.authorize(ctx, access.ServiceConfig); err != nil {
		return nil, s.fail(ctx, err)
	}
	k, err := s.admin.CreateAccessKey(ctx, s.store, req.GetName(), req.GetPermissions(), req.GetNoSharedAccessKey())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.CreateAccessKeyResponse{AccessKey: accessKeyToPB(k.Key), Token: k.Token, SharedAccessKey: k.SAS}, nil
}

// ListAccessKeys implements AccessKeyService.
func (s *services) ListAccessKeys(ctx context.Context, req *pb.ListAccessKeysRequest) (*pb.ListAccessKeysResponse, error) {
	if err := s.authorize(ctx, access.ServiceConfig); err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	keys, next, err := s.store.ListKeys(ctx, req.GetPageToken(), n)
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
	me, err := s.caller(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetId() == me.ID {
		return nil, s.fail(ctx, fault.New(fault.FailedPrecondition, fault.ResourceInUse, "an access key cannot delete itself; use another key with ServiceConfig"))
	}
	if err := s.store.DeleteKey(ctx, req.GetId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}
