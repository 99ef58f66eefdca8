package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/revocation"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// CRLs uploaded for CA certificates (ADR 23), on CertificateAuthorityService.

// UploadCrl implements CertificateAuthorityService.
func (s *caService) UploadCrl(ctx context.Context, req *pb.UploadCrlRequest) (*pb.Crl, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	data := req.GetCrlDer()
	switch {
	case len(data) > 0 && req.GetCrlPem() != "":
		return nil, s.fail(ctx, fault.Invalidf("give crl_pem or crl_der, not both"))
	case req.GetCrlPem() != "":
		data = []byte(req.GetCrlPem())
	case len(data) == 0:
		return nil, s.fail(ctx, fault.Invalidf("crl_pem or crl_der is required"))
	}
	in, err := s.admin.UploadCRL(ctx, req.GetName(), data)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return crlToPB(in), nil
}

// GetCrl implements CertificateAuthorityService.
func (s *caService) GetCrl(ctx context.Context, req *pb.GetCrlRequest) (*pb.Crl, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in, err := s.admin.GetCRL(ctx, req.GetName())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return crlToPB(in), nil
}

// DeleteCrl implements CertificateAuthorityService.
func (s *caService) DeleteCrl(ctx context.Context, req *pb.DeleteCrlRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteCRL(ctx, req.GetName()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

func crlToPB(in *revocation.Info) *pb.Crl {
	out := &pb.Crl{CaCertificate: in.CA, Issuer: in.Issuer, ThisUpdate: ts(in.ThisUpdate), NextUpdate: ts(in.NextUpdate),
		RevokedCount: int32(in.Revoked), AddedCount: int32(in.Added), UploadTime: ts(in.Updated)}
	if in.Number != nil {
		out.CrlNumber = in.Number.String()
	}
	return out
}
