package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/registry"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// registrationService implements RegistrationService: device
// registrations, their deletion, disabling and enabling.
type registrationService struct {
	pb.UnsafeRegistrationServiceServer
	base
}

// GetRegistration implements RegistrationService.
func (s *registrationService) GetRegistration(ctx context.Context, req *pb.GetRegistrationRequest) (*pb.Registration, error) {
	ctx, err := s.authorize(ctx, access.RegistrationRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	r, err := s.admin.GetRegistration(ctx, req.GetRegistrationId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return registrationToPB(r), nil
}

// ListRegistrations implements RegistrationService.
func (s *registrationService) ListRegistrations(ctx context.Context, req *pb.ListRegistrationsRequest) (*pb.ListRegistrationsResponse, error) {
	ctx, err := s.authorize(ctx, access.RegistrationRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	f := registry.Filter{GroupID: req.GetEnrollmentGroupId(), Shard: req.GetShard()}
	regs, next, err := s.admin.ListRegistrations(ctx, f, req.GetPageToken(), n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListRegistrationsResponse{NextPageToken: next}
	for _, r := range regs {
		out.Registrations = append(out.Registrations, registrationToPB(r))
	}
	return out, nil
}

// DeleteRegistration implements RegistrationService.
func (s *registrationService) DeleteRegistration(ctx context.Context, req *pb.DeleteRegistrationRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.RegistrationWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteRegistration(ctx, req.GetRegistrationId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// DisableRegistration implements RegistrationService.
func (s *registrationService) DisableRegistration(ctx context.Context, req *pb.DisableRegistrationRequest) (*pb.Registration, error) {
	return s.setRegistrationEnabled(ctx, req.GetRegistrationId(), req.GetEtag(), false)
}

// EnableRegistration implements RegistrationService.
func (s *registrationService) EnableRegistration(ctx context.Context, req *pb.EnableRegistrationRequest) (*pb.Registration, error) {
	return s.setRegistrationEnabled(ctx, req.GetRegistrationId(), req.GetEtag(), true)
}

func (s *registrationService) setRegistrationEnabled(ctx context.Context, regID, etag string, enabled bool) (*pb.Registration, error) {
	ctx, err := s.authorize(ctx, access.RegistrationWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := enrollment.ValidateRegistrationID(regID); err != nil {
		return nil, s.fail(ctx, err)
	}
	reg, err := s.admin.SetRegistrationEnabled(ctx, regID, etag, enabled)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return registrationToPB(reg), nil
}
