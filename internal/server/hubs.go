package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// hubService implements HubService: shards, hub clusters and the
// certificates the hub CA issues them.
type hubService struct {
	pb.UnsafeHubServiceServer
	base
}

// CreateShard implements HubService.
func (s *hubService) CreateShard(ctx context.Context, req *pb.CreateShardRequest) (*pb.Shard, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetShard()
	state, err := shardStateFromPB(in.GetState())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	sh, err := s.admin.CreateShard(ctx, &allocation.Shard{ID: in.GetId(), Hostname: in.GetHostname(), Weight: int(in.GetWeight()), State: state,
		Region: in.GetRegion(), Capacity: int(in.GetCapacity()), Cluster: in.GetHubCluster()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return shardToPB(sh), nil
}

// GetShard implements HubService.
func (s *hubService) GetShard(ctx context.Context, req *pb.GetShardRequest) (*pb.Shard, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	sh, err := s.admin.GetShard(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := shardToPB(sh)
	if err := s.withLog(ctx, out); err != nil {
		return nil, s.fail(ctx, err)
	}
	return out, nil
}

// withLog fills in the shards' assignment log heads and their clusters'
// acknowledged cursors.
func (s *hubService) withLog(ctx context.Context, shards ...*pb.Shard) error {
	names := make([]string, len(shards))
	for i, sh := range shards {
		names[i] = sh.GetId()
	}
	heads, err := s.admin.LogHeads(ctx, names)
	if err != nil {
		return err
	}
	for i, sh := range shards {
		sh.AssignmentLogHead = heads[i]
		if sh.GetHubCluster() != "" {
			if sh.AssignmentAcknowledged, err = s.admin.AckedEvent(ctx, sh.GetHubCluster(), sh.GetId()); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListShards implements HubService.
func (s *hubService) ListShards(ctx context.Context, req *pb.ListShardsRequest) (*pb.ListShardsResponse, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	shards, next, err := s.admin.ListShards(ctx, req.GetPageToken(), n)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListShardsResponse{NextPageToken: next}
	for _, sh := range shards {
		out.Shards = append(out.Shards, shardToPB(sh))
	}
	if err := s.withLog(ctx, out.Shards...); err != nil {
		return nil, s.fail(ctx, err)
	}
	return out, nil
}

// UpdateShard implements HubService.
func (s *hubService) UpdateShard(ctx context.Context, req *pb.UpdateShardRequest) (*pb.Shard, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetShard()
	paths, err := maskPaths(req.GetUpdateMask(), "hostname", "weight", "state", "region", "capacity", "hub_cluster")
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	sh, err := s.admin.GetShard(ctx, in.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	sh.Etag = in.GetEtag()
	if paths["hostname"] {
		sh.Hostname = in.GetHostname()
	}
	if paths["weight"] {
		sh.Weight = int(in.GetWeight())
	}
	if paths["state"] {
		if sh.State, err = shardStateFromPB(in.GetState()); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	if paths["region"] {
		sh.Region = in.GetRegion()
	}
	if paths["capacity"] {
		sh.Capacity = int(in.GetCapacity())
	}
	if paths["hub_cluster"] {
		sh.Cluster = in.GetHubCluster()
	}
	if sh, err = s.admin.UpdateShard(ctx, sh); err != nil {
		return nil, s.fail(ctx, err)
	}
	return shardToPB(sh), nil
}

// DeleteShard implements HubService.
func (s *hubService) DeleteShard(ctx context.Context, req *pb.DeleteShardRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteShard(ctx, req.GetId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

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
func (s *hubService) CreateHubCluster(ctx context.Context, req *pb.CreateHubClusterRequest) (*pb.HubCluster, error) {
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
func (s *hubService) GetHubCluster(ctx context.Context, req *pb.GetHubClusterRequest) (*pb.HubCluster, error) {
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
func (s *hubService) ListHubClusters(ctx context.Context, req *pb.ListHubClustersRequest) (*pb.ListHubClustersResponse, error) {
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
func (s *hubService) UpdateHubCluster(ctx context.Context, req *pb.UpdateHubClusterRequest) (*pb.HubCluster, error) {
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
func (s *hubService) DeleteHubCluster(ctx context.Context, req *pb.DeleteHubClusterRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteCluster(ctx, req.GetId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// IssueHubCertificate implements HubService.
func (s *hubService) IssueHubCertificate(ctx context.Context, req *pb.IssueHubCertificateRequest) (*pb.HubCertificate, error) {
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
