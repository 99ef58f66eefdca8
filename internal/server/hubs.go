package server

import (
	"context"
	"crypto/x509"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func clusterToPB(c *allocation.Cluster) *pb.HubCluster {
	return &pb.HubCluster{Id: c.ID, CertificateThumbprints: c.Certificates, CreateTime: ts(c.Created), UpdateTime: ts(c.Updated), Etag: c.Etag}
}

// clusterCertificates pins the given PEM certificates (whose subject CN
// must be the cluster's ID) and thumbprints.
func clusterCertificates(id string, in *pb.HubCluster) ([]string, error) {
	thumbs := append([]string(nil), in.GetCertificateThumbprints()...)
	if len(in.GetCertificatePems()) > allocation.MaxClusterCertificates {
		return nil, fault.Invalidf("a hub cluster pins at most %d certificates", allocation.MaxClusterCertificates)
	}
	for i, p := range in.GetCertificatePems() {
		cert, err := enrollment.ParseCertificatePEM("certificate_pems", p)
		if err != nil {
			return nil, err
		}
		if cert.Subject.CommonName != id {
			return nil, fault.Invalidf("certificate_pems[%d]: subject CN %q is not the cluster's ID %q", i, cert.Subject.CommonName, id)
		}
		thumbs = append(thumbs, enrollment.Thumbprint(cert.Raw))
	}
	return thumbs, nil
}

// CreateHubCluster implements HubService.
func (s *services) CreateHubCluster(ctx context.Context, req *pb.CreateHubClusterRequest) (*pb.HubCluster, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetHubCluster()
	thumbs, err := clusterCertificates(in.GetId(), in)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.admin.CreateCluster(ctx, &allocation.Cluster{ID: in.GetId(), Certificates: thumbs})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return clusterToPB(c), nil
}

// GetHubCluster implements HubService.
func (s *services) GetHubCluster(ctx context.Context, req *pb.GetHubClusterRequest) (*pb.HubCluster, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.admin.GetCluster(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return clusterToPB(c), nil
}

// ListHubClusters implements HubService.
func (s *services) ListHubClusters(ctx context.Context, req *pb.ListHubClustersRequest) (*pb.ListHubClustersResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	cs, next, err := s.admin.ListClusters(ctx, req.GetPageToken(), n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListHubClustersResponse{NextPageToken: next}
	for _, c := range cs {
		out.HubClusters = append(out.HubClusters, clusterToPB(c))
	}
	return out, nil
}

// UpdateHubCluster implements HubService.
func (s *services) UpdateHubCluster(ctx context.Context, req *pb.UpdateHubClusterRequest) (*pb.HubCluster, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetHubCluster()
	paths, err := maskPaths(req.GetUpdateMask(), "certificates")
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.admin.GetCluster(ctx, in.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c.Etag = in.GetEtag()
	if paths["certificates"] {
		if c.Certificates, err = clusterCertificates(c.ID, in); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	if c, err = s.admin.UpdateCluster(ctx, c); err != nil {
		return nil, s.fail(ctx, err)
	}
	return clusterToPB(c), nil
}

// DeleteHubCluster implements HubService.
func (s *services) DeleteHubCluster(ctx context.Context, req *pb.DeleteHubClusterRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteCluster(ctx, req.GetId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// hubCluster authenticates a hub node: its TLS client certificate (whose
// key possession the handshake proved) must be within its validity period,
// name a cluster in its subject CN, and be pinned on that cluster. Every
// failure is the same UNAUTHENTICATED answer.
func (s *services) hubCluster(ctx context.Context) (*allocation.Cluster, error) {
	denied := fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a pinned hub cluster client certificate is required")
	_, state := peerInfo(ctx)
	if state == nil || len(state.PeerCertificates) == 0 {
		return nil, denied
	}
	leaf := state.PeerCertificates[0]
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) || !clientUsage(leaf) {
		return nil, denied
	}
	c, err := s.admin.GetCluster(ctx, leaf.Subject.CommonName)
	if err != nil {
		if fault.KindOf(err) == fault.NotFound || fault.KindOf(err) == fault.InvalidArgument {
			return nil, denied
		}
		return nil, err
	}
	if !c.Pins(enrollment.Thumbprint(leaf.Raw)) {
		return nil, denied
	}
	return c, nil
}

// clientUsage reports whether a certificate may authenticate a TLS client
// (no extended key usage, or client auth among them).
func clientUsage(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// LookupIdentity implements HubAssignmentService.
func (s *services) LookupIdentity(ctx context.Context, req *pb.LookupIdentityRequest) (*pb.DeviceIdentity, error) {
	c, err := s.hubCluster(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := enrollment.ValidateID("device_id", req.GetDeviceId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	id, err := s.admin.GetIdentity(ctx, req.GetDeviceId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	sh, err := s.admin.GetShard(ctx, id.Shard)
	if err != nil && fault.KindOf(err) != fault.NotFound {
		return nil, s.fail(ctx, err)
	}
	if sh == nil || sh.Cluster != c.ID {
		return nil, s.fail(ctx, fault.New(fault.PermissionDenied, fault.PermissionDeniedR, "device %q is not on a shard of hub cluster %q", req.GetDeviceId(), c.ID))
	}
	out := identityToPB(id)
	if out.Enabled {
		// A disabled enrollment disables its devices, whatever their
		// identities say.
		reg, err := s.admin.GetRegistration(ctx, id.RegistrationID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if out.Enabled, err = s.admin.EnrollmentEnabled(ctx, reg); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	return out, nil
}

func identityToPB(id *registry.Identity) *pb.DeviceIdentity {
	out := &pb.DeviceIdentity{DeviceId: id.DeviceID, RegistrationId: id.RegistrationID, Shard: id.Shard, Enabled: id.Status == registry.IdentityEnabled,
		X509Thumbprint: id.Credential.X509Thumbprint, CaThumbprint: id.Credential.CAThumbprint, TpmEkHash: id.Credential.TPMEKHash,
		TpmBoundKey: id.Credential.TPMBoundKey, SymmetricKeyHash: id.Credential.SymmetricKeyHash, InitialTwinJson: string(id.InitialTwin),
		IotEdge: id.IoTEdge, Version: id.Version, UpdateTime: ts(id.Updated)}
	switch id.Credential.Type {
	case registry.X509:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_X509
	case registry.TPM:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_TPM
	case registry.SymmetricKey:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY
	}
	return out
}

// GetWebhookSecret implements EnrollmentService.
func (s *services) GetWebhookSecret(ctx context.Context, req *pb.GetWebhookSecretRequest) (*pb.WebhookSecret, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	w := &enrollment.Allocation{Policy: enrollment.PolicyCustom, Webhook: &enrollment.Webhook{URL: req.GetUrl()}}
	if err := w.Validate(); err != nil {
		return nil, s.fail(ctx, err)
	}
	if s.admin.Secrets == nil {
		return nil, s.fail(ctx, fault.New(fault.FailedPrecondition, fault.SASDisabled, "no data key to derive webhook secrets from"))
	}
	return &pb.WebhookSecret{Url: req.GetUrl(), Secret: s.admin.Secrets.WebhookSecret(req.GetUrl())}, nil
}

// IssueHubCertificate implements HubService.
func (s *services) IssueHubCertificate(ctx context.Context, req *pb.IssueHubCertificateRequest) (*pb.HubCertificate, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetValidityDays() < 0 {
		return nil, s.fail(ctx, fault.Invalidf("validity_days must not be negative"))
	}
	cert, err := s.admin.IssueHubCertificate(ctx, req.GetHubCluster(), req.GetCsrPem(), time.Duration(req.GetValidityDays())*24*time.Hour)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ca, err := s.admin.HubCA()
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.HubCertificate{CertificatePem: pemCertificate(cert.Raw), CaCertificatePem: pemCertificate(ca.Cert.Raw),
		Sha256Thumbprint: enrollment.Thumbprint(cert.Raw), NotAfter: ts(cert.NotAfter)}, nil
}
