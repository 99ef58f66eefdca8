package server

import (
	"context"
	"strings"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// enrollmentService implements EnrollmentService: enrollment groups,
// individual enrollments and webhook secrets.
type enrollmentService struct {
	pb.UnsafeEnrollmentServiceServer
	base
	// imports are the replica's running ImportEnrollments streams.
	imports importSlots
}

// settingsPaths are the update_mask paths of the device settings both
// enrollment messages carry.
var settingsPaths = []string{"disable_device_sas", "reprovision_policy", "initial_twin", "iot_edge", "adopt_from", "credential_policy"}

// CreateEnrollmentGroup implements EnrollmentService.
func (s *enrollmentService) CreateEnrollmentGroup(ctx context.Context, req *pb.CreateEnrollmentGroupRequest) (*pb.EnrollmentGroup, error) {
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
	rev, err := revocationPolicyFromPB(in.GetRevocation())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	g := &enrollment.Group{ID: in.GetId(), CAName: in.GetCaCertificate(), Disabled: disabled, Allocation: alloc,
		Mechanism: mech, EKAllowList: in.GetTpmEkAllowList(), Revocation: rev}
	if err := settingsFromPB(in, nil, &g.DeviceSettings); err != nil {
		return nil, s.fail(ctx, err)
	}
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
func (s *enrollmentService) GetEnrollmentGroup(ctx context.Context, req *pb.GetEnrollmentGroupRequest) (*pb.EnrollmentGroup, error) {
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
func (s *enrollmentService) ListEnrollmentGroups(ctx context.Context, req *pb.ListEnrollmentGroupsRequest) (*pb.ListEnrollmentGroupsResponse, error) {
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
func (s *enrollmentService) UpdateEnrollmentGroup(ctx context.Context, req *pb.UpdateEnrollmentGroupRequest) (*pb.EnrollmentGroup, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetEnrollmentGroup()
	paths, err := maskPaths(req.GetUpdateMask(), append([]string{"provisioning_status", "allocation", "tpm_ek_allow_list", "revocation"}, settingsPaths...)...)
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
	if paths["revocation"] {
		if g.Revocation, err = revocationPolicyFromPB(in.GetRevocation()); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	if err := settingsFromPB(in, paths, &g.DeviceSettings); err != nil {
		return nil, s.fail(ctx, err)
	}
	if g, err = s.admin.UpdateGroup(ctx, g); err != nil {
		return nil, s.fail(ctx, err)
	}
	return groupToPB(g), nil
}

// DeleteEnrollmentGroup implements EnrollmentService.
func (s *enrollmentService) DeleteEnrollmentGroup(ctx context.Context, req *pb.DeleteEnrollmentGroupRequest) (*emptypb.Empty, error) {
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
func (s *enrollmentService) CreateEnrollment(ctx context.Context, req *pb.CreateEnrollmentRequest) (*pb.Enrollment, error) {
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

func (s *enrollmentService) createEnrollment(ctx context.Context, in *pb.Enrollment) (*pb.Enrollment, error) {
	disabled, err := statusToDisabled(in.GetProvisioningStatus())
	if err != nil {
		return nil, err
	}
	alloc, err := allocationFromPB(in.GetAllocation())
	if err != nil {
		return nil, err
	}
	e := &enrollment.Individual{RegistrationID: in.GetRegistrationId(), DeviceID: in.GetDeviceId(), Disabled: disabled, Allocation: alloc}
	if err := settingsFromPB(in, nil, &e.DeviceSettings); err != nil {
		return nil, err
	}
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
func (s *enrollmentService) BatchCreateEnrollments(ctx context.Context, req *pb.BatchCreateEnrollmentsRequest) (*pb.BatchCreateEnrollmentsResponse, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	items := req.GetEnrollments()
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, s.fail(ctx, fault.Invalidf("a batch holds 1-%d enrollments, not %d", MaxBatch, len(items)))
	}
	validateOnly := req.GetValidateOnly()
	if validateOnly {
		ctx = admin.ValidateOnly(ctx)
	}
	out := &pb.BatchCreateEnrollmentsResponse{Results: make([]*pb.BatchCreateEnrollmentsResult, len(items))}
	admin.Parallel(len(items), func(i int) {
		e, err := s.createEnrollment(ctx, items[i])
		switch {
		case err != nil:
			out.Results[i] = &pb.BatchCreateEnrollmentsResult{Error: itemError(ctx, s.log, err)}
		case validateOnly:
			// Nothing was stored: no etag, no times, and no keys
			// (generated keys would never be seen again).
			e.Etag, e.CreateTime, e.UpdateTime, e.SymmetricKey = "", nil, nil, nil
			out.Results[i] = &pb.BatchCreateEnrollmentsResult{Enrollment: e}
		default:
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
func (s *enrollmentService) GetEnrollment(ctx context.Context, req *pb.GetEnrollmentRequest) (*pb.Enrollment, error) {
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
func (s *enrollmentService) ListEnrollments(ctx context.Context, req *pb.ListEnrollmentsRequest) (*pb.ListEnrollmentsResponse, error) {
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
func (s *enrollmentService) UpdateEnrollment(ctx context.Context, req *pb.UpdateEnrollmentRequest) (*pb.Enrollment, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetEnrollment()
	paths, err := maskPaths(req.GetUpdateMask(), append([]string{"provisioning_status", "allocation", "device_id"}, settingsPaths...)...)
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
	if err := settingsFromPB(in, paths, &e.DeviceSettings); err != nil {
		return nil, s.fail(ctx, err)
	}
	if e, err = s.admin.UpdateIndividual(ctx, e); err != nil {
		return nil, s.fail(ctx, err)
	}
	return individualToPB(e), nil
}

// DeleteEnrollment implements EnrollmentService.
func (s *enrollmentService) DeleteEnrollment(ctx context.Context, req *pb.DeleteEnrollmentRequest) (*emptypb.Empty, error) {
	ctx, err := s.authorize(ctx, access.EnrollmentWrite)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.admin.DeleteIndividual(ctx, req.GetRegistrationId(), req.GetEtag()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &emptypb.Empty{}, nil
}

// GetWebhookSecret implements EnrollmentService.
func (s *enrollmentService) GetWebhookSecret(ctx context.Context, req *pb.GetWebhookSecretRequest) (*pb.WebhookSecret, error) {
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
