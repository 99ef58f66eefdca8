package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// caService implements CertificateAuthorityService: CA certificates and
// their proof of possession.
type caService struct {
	pb.UnsafeCertificateAuthorityServiceServer
	base
}

// CreateCaCertificate implements CertificateAuthorityService.
func (s *caService) CreateCaCertificate(ctx context.Context, req *pb.CreateCaCertificateRequest) (*pb.CaCertificate, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetCaCertificate()
	ca, err := s.admin.CreateCA(ctx, in.GetName(), in.GetCertificatePem())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return caToPB(ca), nil
}

// GetCaCertificate implements CertificateAuthorityService.
func (s *caService) GetCaCertificate(ctx context.Context, req *pb.GetCaCertificateRequest) (*pb.CaCertificate, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ca, err := s.admin.GetCA(ctx, req.GetName())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return caToPB(ca), nil
}

// ListCaCertificates implements CertificateAuthorityService.
func (s *caService) ListCaCertificates(ctx context.Context, req *pb.ListCaCertificatesRequest) (*pb.ListCaCertificatesResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	cas, next, err := s.admin.ListCAs(ctx, enrollment.Page{Token: req.GetPageToken(), Limit: n})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListCaCertificatesResponse{NextPageToken: next}
	for _, ca := range cas {
		out.CaCertificates = append(out.CaCertificates, caToPB(ca))
	}
	return out, nil
}

// DeleteCaCertificate implements CertificateAuthorityService.
func (s *caService) DeleteCaCertificate(ctx context.Context, req *pb.DeleteCaCertificateRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteCA(ctx, req.GetName(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// GenerateVerificationCode implements CertificateAuthorityService.
func (s *caService) GenerateVerificationCode(ctx context.Context, req *pb.GenerateVerificationCodeRequest) (*pb.GenerateVerificationCodeResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ca, code, err := s.admin.GenerateVerificationCode(ctx, req.GetName(), req.GetEtag())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.GenerateVerificationCodeResponse{VerificationCode: code, ExpireTime: ts(ca.CodeExpires), CaCertificate: caToPB(ca)}, nil
}

// VerifyCaCertificate implements CertificateAuthorityService.
func (s *caService) VerifyCaCertificate(ctx context.Context, req *pb.VerifyCaCertificateRequest) (*pb.CaCertificate, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ca, err := s.admin.VerifyCA(ctx, req.GetName(), req.GetEtag(), req.GetCertificatePem())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return caToPB(ca), nil
}
