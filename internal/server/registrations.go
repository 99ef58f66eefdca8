package server

import (
	"context"
	"errors"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
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
	if id := req.GetDeviceId(); id != "" {
		return s.registrationByDeviceID(ctx, id, f)
	}
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

// registrationByDeviceID is ListRegistrations with a device ID: the one
// registration whose identity has it, by the device-ID index, if it also
// matches f.
func (s *registrationService) registrationByDeviceID(ctx context.Context, deviceID string, f registry.Filter) (*pb.ListRegistrationsResponse, error) {
	out := &pb.ListRegistrationsResponse{}
	id, err := s.admin.GetIdentity(ctx, deviceID)
	if errors.Is(err, fault.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	r, err := s.admin.GetRegistration(ctx, id.RegistrationID)
	if errors.Is(err, fault.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if (f.GroupID == "" || r.GroupID == f.GroupID) && (f.Shard == "" || r.Shard == f.Shard) {
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
