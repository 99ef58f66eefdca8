package server

import (
	"context"
	"encoding/pem"
	"log/slog"
	"strings"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/registry"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// services implements every gRPC service of the API. Each management
// method authenticates its caller first, so the check holds whichever
// transport (gRPC, or REST through the in-process gateway) called it.
type services struct {
	pb.UnsafeDeviceRegistrationServiceServer
	pb.UnsafeCertificateAuthorityServiceServer
	pb.UnsafeEnrollmentServiceServer
	pb.UnsafeHubServiceServer
	pb.UnsafeRegistrationServiceServer
	pb.UnsafeAccessKeyServiceServer
	pb.UnsafeHubAssignmentServiceServer

	prov  *provisioning.Service
	admin *admin.Service
	log   *slog.Logger
	hubs  *hubStreams
	// dpsHost is the host name DPS service SAS tokens must name.
	dpsHost string
}

// authorize authenticates the caller's access key and checks p; the
// context it returns names the key as the actor of the request's changes.
func (s *services) authorize(ctx context.Context, p access.Permission) (context.Context, error) {
	ctx, _, err := s.caller(ctx, p)
	return ctx, err
}

func (s *services) fail(ctx context.Context, err error) error {
	return toStatus(ctx, s.log, err, false)
}

func pemCertificate(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// deviceRequest is the registration request a device call makes.
func deviceRequest(ctx context.Context, regID string, ev provisioning.Evidence) provisioning.Request {
	addr, _ := peerInfo(ctx)
	return provisioning.Request{RegistrationID: regID, Evidence: ev, Region: regionOf(ctx), Transport: transportOf(ctx),
		RequestID: requestID(ctx), Peer: addr}
}

// Register implements DeviceRegistrationService: a SAS token in the
// authorization metadata, or else the TLS client certificate.
func (s *services) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	var ev provisioning.Evidence
	if auth := firstMetadata(ctx, "authorization"); strings.HasPrefix(auth, "SharedAccessSignature ") {
		ev = provisioning.SASToken{Token: auth, Resource: "registrations/" + req.GetRegistrationId()}
	} else if _, state := peerInfo(ctx); state != nil {
		ev = provisioning.X509Chain{Chain: state.PeerCertificates}
	} else {
		ev = provisioning.X509Chain{}
	}
	res, err := s.prov.Register(ctx, deviceRequest(ctx, req.GetRegistrationId(), ev))
	if err != nil {
		return nil, toStatus(ctx, s.log, err, true)
	}
	return &pb.RegisterResponse{Registration: registrationToPB(res.Registration)}, nil
}

// BeginTpmAttestation implements DeviceRegistrationService.
func (s *services) BeginTpmAttestation(ctx context.Context, req *pb.BeginTpmAttestationRequest) (*pb.BeginTpmAttestationResponse, error) {
	ch, err := s.prov.BeginTPM(ctx, deviceRequest(ctx, req.GetRegistrationId(), provisioning.TPMBegin{
		EKPublic: req.GetEndorsementKey(), BoundKey: req.GetBoundKey(), EKCertificates: req.GetEndorsementKeyCertificates()}))
	if err != nil {
		return nil, toStatus(ctx, s.log, err, true)
	}
	return &pb.BeginTpmAttestationResponse{RegistrationId: ch.RegistrationID, ChallengeId: ch.ID, CredentialBlob: ch.CredentialBlob,
		EncryptedSecret: ch.EncryptedSecret, ExpireTime: ts(ch.Expires)}, nil
}

// CompleteTpmAttestation implements DeviceRegistrationService.
func (s *services) CompleteTpmAttestation(ctx context.Context, req *pb.CompleteTpmAttestationRequest) (*pb.RegisterResponse, error) {
	res, err := s.prov.Register(ctx, deviceRequest(ctx, req.GetRegistrationId(), provisioning.TPMAnswer{
		ChallengeID: req.GetChallengeId(), Secret: req.GetSecret()}))
	if err != nil {
		return nil, toStatus(ctx, s.log, err, true)
	}
	out := registrationToPB(res.Registration)
	out.TpmBoundKey = res.TPMBoundKey
	return &pb.RegisterResponse{Registration: out}, nil
}

// CreateCaCertificate implements CertificateAuthorityService.
func (s *services) CreateCaCertificate(ctx context.Context, req *pb.CreateCaCertificateRequest) (*pb.CaCertificate, error) {
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
func (s *services) GetCaCertificate(ctx context.Context, req *pb.GetCaCertificateRequest) (*pb.CaCertificate, error) {
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
func (s *services) ListCaCertificates(ctx context.Context, req *pb.ListCaCertificatesRequest) (*pb.ListCaCertificatesResponse, error) {
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
func (s *services) DeleteCaCertificate(ctx context.Context, req *pb.DeleteCaCertificateRequest) (*emptypb.Empty, error) {
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
func (s *services) GenerateVerificationCode(ctx context.Context, req *pb.GenerateVerificationCodeRequest) (*pb.GenerateVerificationCodeResponse, error) {
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
func (s *services) VerifyCaCertificate(ctx context.Context, req *pb.VerifyCaCertificateRequest) (*pb.CaCertificate, error) {
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

// maskPaths validates an update mask against the allowed paths; an empty
// mask means all of them. The etag and the resource's identifier may appear
// (the REST gateway derives a PATCH's mask from the body's fields) and are
// not updates.
func maskPaths(m *fieldmaskpb.FieldMask, allowed ...string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(m.GetPaths()) == 0 {
		for _, p := range allowed {
			out[p] = true
		}
		return out, nil
	}
	for _, p := range m.GetPaths() {
		if p == "etag" || p == "id" || p == "registration_id" {
			continue
		}
		ok := false
		for _, a := range allowed {
			if p == a {
				ok = true
			}
		}
		if !ok {
			return nil, fault.Invalidf("update_mask path %q is not updatable; allowed: %s", p, strings.Join(allowed, ", "))
		}
		out[p] = true
	}
	return out, nil
}

// CreateEnrollmentGroup implements EnrollmentService.
func (s *services) CreateEnrollmentGroup(ctx context.Context, req *pb.CreateEnrollmentGroupRequest) (*pb.EnrollmentGroup, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetEnrollmentGroup()
	disabled, err := statusToDisabled(in.GetProvisioningStatus())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	alloc, err := allocationFromPB(in.GetAllocation())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	mech, err := mechanismFromPB(in.GetAttestationType())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	g := &enrollment.Group{ID: in.GetId(), CAName: in.GetCaCertificate(), Disabled: disabled, Allocation: alloc,
		Mechanism: mech, EKAllowList: in.GetTpmEkAllowList()}
	if mech == enrollment.MechanismSymmetricKey {
		g, keys, err := s.admin.CreateSymmetricGroup(ctx, g, in.GetSymmetricKey().GetPrimaryKey(), in.GetSymmetricKey().GetSecondaryKey())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := groupToPB(g)
		out.SymmetricKey = &pb.SymmetricKeyAttestation{PrimaryKey: keys.Primary, SecondaryKey: keys.Secondary}
		return out, nil
	}
	g, err = s.admin.CreateGroup(ctx, g)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return groupToPB(g), nil
}

// GetEnrollmentGroup implements EnrollmentService.
func (s *services) GetEnrollmentGroup(ctx context.Context, req *pb.GetEnrollmentGroupRequest) (*pb.EnrollmentGroup, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	g, err := s.admin.GetGroup(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return groupToPB(g), nil
}

// ListEnrollmentGroups implements EnrollmentService.
func (s *services) ListEnrollmentGroups(ctx context.Context, req *pb.ListEnrollmentGroupsRequest) (*pb.ListEnrollmentGroupsResponse, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	groups, next, err := s.admin.ListGroups(ctx, enrollment.Page{Token: req.GetPageToken(), Limit: n})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListEnrollmentGroupsResponse{NextPageToken: next}
	for _, g := range groups {
		out.EnrollmentGroups = append(out.EnrollmentGroups, groupToPB(g))
	}
	return out, nil
}

// UpdateEnrollmentGroup implements EnrollmentService.
func (s *services) UpdateEnrollmentGroup(ctx context.Context, req *pb.UpdateEnrollmentGroupRequest) (*pb.EnrollmentGroup, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetEnrollmentGroup()
	paths, err := maskPaths(req.GetUpdateMask(), "provisioning_status", "allocation", "tpm_ek_allow_list")
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	g, err := s.admin.GetGroup(ctx, in.GetId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if in.GetCaCertificate() != "" && in.GetCaCertificate() != g.CAName {
		return nil, s.fail(ctx, fault.Invalidf("ca_certificate is immutable; create a new group instead"))
	}
	if m, err := mechanismFromPB(in.GetAttestationType()); err != nil || in.GetAttestationType() != 0 && m != g.EffectiveMechanism() {
		return nil, s.fail(ctx, fault.Invalidf("attestation_type is immutable; create a new group instead"))
	}
	g.Etag = in.GetEtag()
	if paths["provisioning_status"] {
		if g.Disabled, err = statusToDisabled(in.GetProvisioningStatus()); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	if paths["allocation"] {
		if g.Allocation, err = allocationFromPB(in.GetAllocation()); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	if paths["tpm_ek_allow_list"] {
		g.EKAllowList = in.GetTpmEkAllowList()
	}
	if g, err = s.admin.UpdateGroup(ctx, g); err != nil {
		return nil, s.fail(ctx, err)
	}
	return groupToPB(g), nil
}

// DeleteEnrollmentGroup implements EnrollmentService.
func (s *services) DeleteEnrollmentGroup(ctx context.Context, req *pb.DeleteEnrollmentGroupRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteGroup(ctx, req.GetId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// CreateEnrollment implements EnrollmentService.
func (s *services) CreateEnrollment(ctx context.Context, req *pb.CreateEnrollmentRequest) (*pb.Enrollment, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	e, err := s.createEnrollment(ctx, req.GetEnrollment())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return e, nil
}

func (s *services) createEnrollment(ctx context.Context, in *pb.Enrollment) (*pb.Enrollment, error) {
	disabled, err := statusToDisabled(in.GetProvisioningStatus())
	if err != nil {
		return nil, err
	}
	alloc, err := allocationFromPB(in.GetAllocation())
	if err != nil {
		return nil, err
	}
	e := &enrollment.Individual{RegistrationID: in.GetRegistrationId(), DeviceID: in.GetDeviceId(), Disabled: disabled, Allocation: alloc}
	if sk := in.GetSymmetricKey(); sk != nil {
		if in.GetCertificatePem() != "" || in.GetSha256Thumbprint() != "" || in.GetTpm() != nil {
			return nil, fault.Invalidf("a symmetric-key enrollment takes no certificate or TPM")
		}
		e, keys, err := s.admin.CreateSymmetricIndividual(ctx, e, sk.GetPrimaryKey(), sk.GetSecondaryKey())
		if err != nil {
			return nil, err
		}
		out := individualToPB(e)
		out.SymmetricKey = &pb.SymmetricKeyAttestation{PrimaryKey: keys.Primary, SecondaryKey: keys.Secondary}
		return out, nil
	}
	if t := in.GetTpm(); t != nil {
		if in.GetCertificatePem() != "" || in.GetSha256Thumbprint() != "" {
			return nil, fault.Invalidf("a TPM enrollment takes no certificate_pem or sha256_thumbprint")
		}
		e, err = s.admin.CreateTPMIndividual(ctx, e, t.GetEndorsementKey(), t.GetEndorsementKeyPem())
	} else {
		e.Thumbprint = in.GetSha256Thumbprint()
		e, err = s.admin.CreateIndividual(ctx, e, in.GetCertificatePem())
	}
	if err != nil {
		return nil, err
	}
	return individualToPB(e), nil
}

// MaxBatch bounds a batch create.
const MaxBatch = 1000

// BatchCreateEnrollments implements EnrollmentService.
func (s *services) BatchCreateEnrollments(ctx context.Context, req *pb.BatchCreateEnrollmentsRequest) (*pb.BatchCreateEnrollmentsResponse, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	items := req.GetEnrollments()
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, s.fail(ctx, fault.Invalidf("a batch holds 1-%d enrollments, not %d", MaxBatch, len(items)))
	}
	out := &pb.BatchCreateEnrollmentsResponse{Results: make([]*pb.BatchCreateEnrollmentsResult, len(items))}
	admin.Parallel(len(items), func(i int) {
		e, err := s.createEnrollment(ctx, items[i])
		if err != nil {
			out.Results[i] = &pb.BatchCreateEnrollmentsResult{Error: itemError(ctx, s.log, err)}
		} else {
			out.Results[i] = &pb.BatchCreateEnrollmentsResult{Enrollment: e}
		}
	})
	for _, r := range out.Results {
		if r.Error != nil {
			out.Failed++
		} else {
			out.Created++
		}
	}
	return out, nil
}

// GetEnrollment implements EnrollmentService.
func (s *services) GetEnrollment(ctx context.Context, req *pb.GetEnrollmentRequest) (*pb.Enrollment, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	e, err := s.admin.GetIndividual(ctx, req.GetRegistrationId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return individualToPB(e), nil
}

// ListEnrollments implements EnrollmentService.
func (s *services) ListEnrollments(ctx context.Context, req *pb.ListEnrollmentsRequest) (*pb.ListEnrollmentsResponse, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentRead)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	es, next, err := s.admin.ListIndividuals(ctx, enrollment.Page{Token: req.GetPageToken(), Limit: n})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.ListEnrollmentsResponse{NextPageToken: next}
	for _, e := range es {
		out.Enrollments = append(out.Enrollments, individualToPB(e))
	}
	return out, nil
}

// UpdateEnrollment implements EnrollmentService.
func (s *services) UpdateEnrollment(ctx context.Context, req *pb.UpdateEnrollmentRequest) (*pb.Enrollment, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetEnrollment()
	paths, err := maskPaths(req.GetUpdateMask(), "provisioning_status", "allocation", "device_id")
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	e, err := s.admin.GetIndividual(ctx, in.GetRegistrationId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if in.GetSha256Thumbprint() != "" && !strings.EqualFold(in.GetSha256Thumbprint(), e.Thumbprint) || in.GetCertificatePem() != "" || in.GetTpm() != nil {
		return nil, s.fail(ctx, fault.Invalidf("the enrolled certificate is immutable; create a new enrollment instead"))
	}
	e.Etag = in.GetEtag()
	if paths["provisioning_status"] {
		if e.Disabled, err = statusToDisabled(in.GetProvisioningStatus()); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	if paths["allocation"] {
		if e.Allocation, err = allocationFromPB(in.GetAllocation()); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	if paths["device_id"] {
		e.DeviceID = in.GetDeviceId()
	}
	if e, err = s.admin.UpdateIndividual(ctx, e); err != nil {
		return nil, s.fail(ctx, err)
	}
	return individualToPB(e), nil
}

// DeleteEnrollment implements EnrollmentService.
func (s *services) DeleteEnrollment(ctx context.Context, req *pb.DeleteEnrollmentRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteIndividual(ctx, req.GetRegistrationId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// CreateShard implements HubService.
func (s *services) CreateShard(ctx context.Context, req *pb.CreateShardRequest) (*pb.Shard, error) {
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
func (s *services) GetShard(ctx context.Context, req *pb.GetShardRequest) (*pb.Shard, error) {
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
func (s *services) withLog(ctx context.Context, shards ...*pb.Shard) error {
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
func (s *services) ListShards(ctx context.Context, req *pb.ListShardsRequest) (*pb.ListShardsResponse, error) {
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
func (s *services) UpdateShard(ctx context.Context, req *pb.UpdateShardRequest) (*pb.Shard, error) {
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
func (s *services) DeleteShard(ctx context.Context, req *pb.DeleteShardRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteShard(ctx, req.GetId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// GetRegistration implements RegistrationService.
func (s *services) GetRegistration(ctx context.Context, req *pb.GetRegistrationRequest) (*pb.Registration, error) {
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
func (s *services) ListRegistrations(ctx context.Context, req *pb.ListRegistrationsRequest) (*pb.ListRegistrationsResponse, error) {
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
func (s *services) DeleteRegistration(ctx context.Context, req *pb.DeleteRegistrationRequest) (*emptypb.Empty, error) {
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
func (s *services) DisableRegistration(ctx context.Context, req *pb.DisableRegistrationRequest) (*pb.Registration, error) {
	return s.setRegistrationEnabled(ctx, req.GetRegistrationId(), req.GetEtag(), false)
}

// EnableRegistration implements RegistrationService.
func (s *services) EnableRegistration(ctx context.Context, req *pb.EnableRegistrationRequest) (*pb.Registration, error) {
	return s.setRegistrationEnabled(ctx, req.GetRegistrationId(), req.GetEtag(), true)
}

func (s *services) setRegistrationEnabled(ctx context.Context, regID, etag string, enabled bool) (*pb.Registration, error) {
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
