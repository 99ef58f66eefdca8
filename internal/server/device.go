package server

import (
	"context"
	"log/slog"
	"strings"

	"github.com/zerotouch/zerotouch/internal/provisioning"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// deviceService implements DeviceRegistrationService: devices register
// through the provisioning use case; they hold no access key.
type deviceService struct {
	pb.UnsafeDeviceRegistrationServiceServer

	prov *provisioning.Service
	log  *slog.Logger
}

// deviceRequest is the registration request a device call makes.
func deviceRequest(ctx context.Context, regID string, ev provisioning.Evidence) provisioning.Request {
	addr, _ := peerInfo(ctx)
	return provisioning.Request{RegistrationID: regID, Evidence: ev, Region: regionOf(ctx), Transport: transportOf(ctx),
		RequestID: requestID(ctx), Peer: addr}
}

// Register implements DeviceRegistrationService: a SAS token in the
// authorization metadata, or else the TLS client certificate.
func (s *deviceService) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	var ev provisioning.Evidence
	if auth := firstMetadata(ctx, "authorization"); strings.HasPrefix(auth, "SharedAccessSignature ") {
		ev = provisioning.SASToken{Token: auth, Resource: "registrations/" + req.GetRegistrationId()}
	} else if _, state := peerInfo(ctx); state != nil {
		ev = provisioning.X509Chain{Chain: state.PeerCertificates}
	} else {
		ev = provisioning.X509Chain{}
	}
	r := deviceRequest(ctx, req.GetRegistrationId(), ev)
	r.CSR = req.GetCsr()
	res, err := s.prov.Register(ctx, r)
	if err != nil {
		return nil, toStatus(ctx, s.log, err, true)
	}
	out := registrationToPB(res.Registration)
	out.IssuedCertificateChain = res.IssuedChain
	return &pb.RegisterResponse{Registration: out}, nil
}

// BeginTpmAttestation implements DeviceRegistrationService.
func (s *deviceService) BeginTpmAttestation(ctx context.Context, req *pb.BeginTpmAttestationRequest) (*pb.BeginTpmAttestationResponse, error) {
	ch, err := s.prov.BeginTPM(ctx, deviceRequest(ctx, req.GetRegistrationId(), provisioning.TPMBegin{
		EKPublic: req.GetEndorsementKey(), BoundKey: req.GetBoundKey(), EKCertificates: req.GetEndorsementKeyCertificates()}))
	if err != nil {
		return nil, toStatus(ctx, s.log, err, true)
	}
	return &pb.BeginTpmAttestationResponse{RegistrationId: ch.RegistrationID, ChallengeId: ch.ID, CredentialBlob: ch.CredentialBlob,
		EncryptedSecret: ch.EncryptedSecret, ExpireTime: ts(ch.Expires)}, nil
}

// CompleteTpmAttestation implements DeviceRegistrationService.
func (s *deviceService) CompleteTpmAttestation(ctx context.Context, req *pb.CompleteTpmAttestationRequest) (*pb.RegisterResponse, error) {
	r := deviceRequest(ctx, req.GetRegistrationId(), provisioning.TPMAnswer{ChallengeID: req.GetChallengeId(), Secret: req.GetSecret()})
	r.CSR = req.GetCsr()
	res, err := s.prov.Register(ctx, r)
	if err != nil {
		return nil, toStatus(ctx, s.log, err, true)
	}
	out := registrationToPB(res.Registration)
	out.TpmBoundKey, out.IssuedCertificateChain = res.TPMBoundKey, res.IssuedChain
	return &pb.RegisterResponse{Registration: out}, nil
}
