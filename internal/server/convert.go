package server

import (
	"bytes"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Paging limits for every List call.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, fault.Invalidf("page_size must not be negative")
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func statusToDisabled(s pb.ProvisioningStatus) (bool, error) {
	switch s {
	case pb.ProvisioningStatus_PROVISIONING_STATUS_UNSPECIFIED, pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED:
		return false, nil
	case pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED:
		return true, nil
	}
	return false, fault.Invalidf("provisioning_status %d is not known", s)
}

func disabledToStatus(disabled bool) pb.ProvisioningStatus {
	if disabled {
		return pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED
	}
	return pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED
}

func allocationFromPB(a *pb.Allocation) (enrollment.Allocation, error) {
	if a == nil {
		return enrollment.Allocation{Policy: enrollment.PolicyHashed}, nil
	}
	out := enrollment.Allocation{Shards: a.GetShards(), StaticShard: a.GetStaticShard()}
	if w := a.GetWebhook(); w != nil {
		fb, err := policyFromPB(w.GetFallbackPolicy())
		if err != nil || fb == enrollment.PolicyCustom {
			return out, fault.Invalidf("allocation.webhook.fallback_policy %d is not hashed, geo, static or unspecified", w.GetFallbackPolicy())
		}
		if w.GetFallbackPolicy() == pb.AllocationPolicy_ALLOCATION_POLICY_UNSPECIFIED {
			fb = ""
		}
		out.Webhook = &enrollment.Webhook{URL: w.GetUrl(), Timeout: time.Duration(w.GetTimeoutSeconds()) * time.Second, Fallback: fb}
	}
	var err error
	out.Policy, err = policyFromPB(a.GetPolicy())
	return out, err
}

// policyFromPB maps a policy; UNSPECIFIED is HASHED.
func policyFromPB(p pb.AllocationPolicy) (enrollment.Policy, error) {
	switch p {
	case pb.AllocationPolicy_ALLOCATION_POLICY_UNSPECIFIED, pb.AllocationPolicy_ALLOCATION_POLICY_HASHED:
		return enrollment.PolicyHashed, nil
	case pb.AllocationPolicy_ALLOCATION_POLICY_STATIC:
		return enrollment.PolicyStatic, nil
	case pb.AllocationPolicy_ALLOCATION_POLICY_GEO:
		return enrollment.PolicyGeo, nil
	case pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM:
		return enrollment.PolicyCustom, nil
	}
	return "", fault.Invalidf("allocation.policy %d is not known", p)
}

func policyToPB(p enrollment.Policy) pb.AllocationPolicy {
	switch p {
	case enrollment.PolicyStatic:
		return pb.AllocationPolicy_ALLOCATION_POLICY_STATIC
	case enrollment.PolicyGeo:
		return pb.AllocationPolicy_ALLOCATION_POLICY_GEO
	case enrollment.PolicyCustom:
		return pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM
	case enrollment.PolicyHashed:
		return pb.AllocationPolicy_ALLOCATION_POLICY_HASHED
	}
	return pb.AllocationPolicy_ALLOCATION_POLICY_UNSPECIFIED
}

func allocationToPB(a enrollment.Allocation) *pb.Allocation {
	out := &pb.Allocation{Policy: policyToPB(a.Policy), Shards: a.Shards, StaticShard: a.StaticShard}
	if w := a.Webhook; w != nil {
		out.Webhook = &pb.Webhook{Url: w.URL, TimeoutSeconds: int32(w.Timeout / time.Second), FallbackPolicy: policyToPB(w.Fallback)}
	}
	return out
}

// settingsFields are the device settings an enrollment message carries;
// EnrollmentGroup and Enrollment both implement it.
type settingsFields interface {
	GetReprovisionPolicy() pb.ReprovisionPolicy
	GetInitialTwin() string
	GetIotEdge() bool
	GetAdoptFrom() []string
	GetDisableDeviceSas() bool
	GetCredentialPolicy() string
}

// settingsFromPB applies the device settings that paths names (every one
// when paths is nil) to d. The shape of the result (twin, adopt_from) is
// checked by admin before anything is written.
func settingsFromPB(in settingsFields, paths map[string]bool, d *enrollment.DeviceSettings) error {
	all := paths == nil
	if all || paths["reprovision_policy"] {
		r, err := reprovisionFromPB(in.GetReprovisionPolicy())
		if err != nil {
			return err
		}
		d.Reprovision = r
	}
	if all || paths["initial_twin"] {
		twin, err := twinFromPB(in.GetInitialTwin())
		if err != nil {
			return err
		}
		d.InitialTwin = twin
	}
	if all || paths["iot_edge"] {
		d.IoTEdge = in.GetIotEdge()
	}
	if all || paths["adopt_from"] {
		d.AdoptFrom = in.GetAdoptFrom()
	}
	if all || paths["disable_device_sas"] {
		d.DisableSAS = in.GetDisableDeviceSas()
	}
	if all || paths["credential_policy"] {
		d.CredentialPolicy = in.GetCredentialPolicy()
	}
	return nil
}

// reprovisionFromPB maps a re-provisioning policy; UNSPECIFIED is MIGRATE.
func reprovisionFromPB(p pb.ReprovisionPolicy) (enrollment.Reprovision, error) {
	switch p {
	case pb.ReprovisionPolicy_REPROVISION_POLICY_UNSPECIFIED, pb.ReprovisionPolicy_REPROVISION_POLICY_MIGRATE:
		return enrollment.ReprovisionMigrate, nil
	case pb.ReprovisionPolicy_REPROVISION_POLICY_RESET:
		return enrollment.ReprovisionReset, nil
	case pb.ReprovisionPolicy_REPROVISION_POLICY_NEVER:
		return enrollment.ReprovisionNever, nil
	}
	return "", fault.Invalidf("reprovision_policy %d is not known", p)
}

func reprovisionToPB(r enrollment.Reprovision) pb.ReprovisionPolicy {
	switch r {
	case enrollment.ReprovisionReset:
		return pb.ReprovisionPolicy_REPROVISION_POLICY_RESET
	case enrollment.ReprovisionNever:
		return pb.ReprovisionPolicy_REPROVISION_POLICY_NEVER
	}
	return pb.ReprovisionPolicy_REPROVISION_POLICY_MIGRATE
}

// twinFromPB compacts an initial twin given as JSON text, as the DPS
// service API does with its initialTwin object: "" and "null" are none.
// Its shape and size are checked by enrollment.ValidateInitialTwin.
func twinFromPB(text string) ([]byte, error) {
	if text == "" {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(text)); err != nil {
		return nil, fault.Invalidf("initial_twin is not valid JSON: %v", err)
	}
	if buf.String() == "null" {
		return nil, nil
	}
	return buf.Bytes(), nil
}

func caToPB(ca *enrollment.CA) *pb.CaCertificate {
	out := &pb.CaCertificate{
		Name: ca.Name, Sha256Thumbprint: ca.Thumbprint, Verified: ca.Verified,
		CreateTime: ts(ca.Created), UpdateTime: ts(ca.Updated), Etag: ca.Etag,
	}
	if cert, err := ca.Certificate(); err == nil {
		out.CertificatePem = pemCertificate(cert.Raw)
		out.Subject = cert.Subject.String()
		out.Issuer = cert.Issuer.String()
		out.NotBefore = ts(cert.NotBefore)
		out.NotAfter = ts(cert.NotAfter)
	}
	return out
}

// revocationPolicyFromPB maps a group's revocation policy (ADR 23); nil
// is the default.
func revocationPolicyFromPB(in *pb.RevocationPolicy) (enrollment.RevocationPolicy, error) {
	out := enrollment.RevocationPolicy{OCSP: in.GetOcsp()}
	switch in.GetCheck() {
	case pb.RevocationCheck_REVOCATION_CHECK_UNSPECIFIED:
	case pb.RevocationCheck_REVOCATION_CHECK_REQUIRED:
		out.Check = enrollment.RevocationRequired
	case pb.RevocationCheck_REVOCATION_CHECK_BEST_EFFORT:
		out.Check = enrollment.RevocationBestEffort
	case pb.RevocationCheck_REVOCATION_CHECK_OFF:
		out.Check = enrollment.RevocationOff
	default:
		return out, fault.Invalidf("revocation.check %d is not known", in.GetCheck())
	}
	return out, nil
}

func revocationPolicyToPB(p enrollment.RevocationPolicy) *pb.RevocationPolicy {
	out := &pb.RevocationPolicy{Check: pb.RevocationCheck_REVOCATION_CHECK_REQUIRED, Ocsp: p.OCSP}
	switch p.EffectiveCheck() {
	case enrollment.RevocationBestEffort:
		out.Check = pb.RevocationCheck_REVOCATION_CHECK_BEST_EFFORT
	case enrollment.RevocationOff:
		out.Check = pb.RevocationCheck_REVOCATION_CHECK_OFF
	}
	return out
}

func groupToPB(g *enrollment.Group) *pb.EnrollmentGroup {
	out := &pb.EnrollmentGroup{
		Id: g.ID, CaCertificate: g.CAName, ProvisioningStatus: disabledToStatus(g.Disabled),
		Allocation: allocationToPB(g.Allocation), CreateTime: ts(g.Created), UpdateTime: ts(g.Updated), Etag: g.Etag,
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_X509, TpmEkAllowList: g.EKAllowList, DisableDeviceSas: g.DeviceSettings.DisableSAS,
		ReprovisionPolicy: reprovisionToPB(g.Reprovision), InitialTwin: string(g.InitialTwin), IotEdge: g.IoTEdge, AdoptFrom: g.AdoptFrom, CredentialPolicy: g.CredentialPolicy,
	}
	switch g.EffectiveMechanism() {
	case enrollment.MechanismTPM:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_TPM
	case enrollment.MechanismSymmetricKey:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY
	default:
		out.Revocation = revocationPolicyToPB(g.Revocation)
	}
	return out
}

func mechanismFromPB(t pb.AttestationType) (enrollment.Mechanism, error) {
	switch t {
	case pb.AttestationType_ATTESTATION_TYPE_UNSPECIFIED, pb.AttestationType_ATTESTATION_TYPE_X509:
		return enrollment.MechanismX509, nil
	case pb.AttestationType_ATTESTATION_TYPE_TPM:
		return enrollment.MechanismTPM, nil
	case pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY:
		return enrollment.MechanismSymmetricKey, nil
	}
	return "", fault.Invalidf("attestation_type %d is not known", t)
}

func individualToPB(e *enrollment.Individual) *pb.Enrollment {
	out := &pb.Enrollment{
		RegistrationId: e.RegistrationID, DeviceId: e.DeviceID, Sha256Thumbprint: e.Thumbprint,
		ProvisioningStatus: disabledToStatus(e.Disabled), Allocation: allocationToPB(e.Allocation),
		CreateTime: ts(e.Created), UpdateTime: ts(e.Updated), Etag: e.Etag,
		AttestationType: pb.AttestationType_ATTESTATION_TYPE_X509, DisableDeviceSas: e.DeviceSettings.DisableSAS,
		ReprovisionPolicy: reprovisionToPB(e.Reprovision), InitialTwin: string(e.InitialTwin), IotEdge: e.IoTEdge, AdoptFrom: e.AdoptFrom, CredentialPolicy: e.CredentialPolicy,
	}
	switch e.Mechanism {
	case enrollment.MechanismTPM:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_TPM
		out.Tpm = &pb.TpmAttestation{EndorsementKey: e.EKPublic}
	case enrollment.MechanismSymmetricKey:
		out.AttestationType = pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY
		out.Sha256Thumbprint = ""
	}
	return out
}

var shardStates = map[pb.ShardState]allocation.State{
	pb.ShardState_SHARD_STATE_UNSPECIFIED: allocation.Active,
	pb.ShardState_SHARD_STATE_ACTIVE:      allocation.Active,
	pb.ShardState_SHARD_STATE_DRAINING:    allocation.Draining,
	pb.ShardState_SHARD_STATE_DISABLED:    allocation.Disabled,
}

func shardStateFromPB(s pb.ShardState) (allocation.State, error) {
	st, ok := shardStates[s]
	if !ok {
		return "", fault.Invalidf("shard state %d is not known", s)
	}
	return st, nil
}

func shardToPB(s *allocation.Shard) *pb.Shard {
	state := pb.ShardState_SHARD_STATE_ACTIVE
	switch s.State {
	case allocation.Draining:
		state = pb.ShardState_SHARD_STATE_DRAINING
	case allocation.Disabled:
		state = pb.ShardState_SHARD_STATE_DISABLED
	}
	return &pb.Shard{Id: s.ID, Hostname: s.Hostname, Weight: int32(s.Weight), State: state, Region: s.Region, Capacity: int32(s.Capacity), HubCluster: s.Cluster,
		Devices: int64(s.Devices), CreateTime: ts(s.Created), UpdateTime: ts(s.Updated), Etag: s.Etag}
}

var (
	regStatuses = map[registry.Status]pb.RegistrationStatus{
		registry.Assigned:  pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNED,
		registry.Assigning: pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNING,
		registry.Failed:    pb.RegistrationStatus_REGISTRATION_STATUS_FAILED,
		registry.Disabled:  pb.RegistrationStatus_REGISTRATION_STATUS_DISABLED,
	}
	regSubstatuses = map[registry.Substatus]pb.RegistrationSubstatus{
		registry.InitialAssignment:                pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_INITIAL_ASSIGNMENT,
		registry.DeviceDataMigrated:               pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_DEVICE_DATA_MIGRATED,
		registry.DeviceDataReset:                  pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_DEVICE_DATA_RESET,
		registry.ReprovisionedToInitialAssignment: pb.RegistrationSubstatus_REGISTRATION_SUBSTATUS_REPROVISIONED_TO_INITIAL_ASSIGNMENT,
	}
	attestationTypes = map[registry.AttestationType]pb.AttestationType{
		registry.X509:         pb.AttestationType_ATTESTATION_TYPE_X509,
		registry.TPM:          pb.AttestationType_ATTESTATION_TYPE_TPM,
		registry.SymmetricKey: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY,
	}
)

func registrationToPB(r *registry.Registration) *pb.Registration {
	return &pb.Registration{
		RegistrationId: r.RegistrationID, DeviceId: r.DeviceID, AssignedHub: r.AssignedHub, Shard: r.Shard,
		Status: regStatuses[r.Status], Substatus: regSubstatuses[r.Substatus], AttestationType: attestationTypes[r.AttestationType],
		EnrollmentGroupId: r.GroupID, IndividualEnrollment: r.Individual, CredentialThumbprint: r.CredentialThumbprint,
		CreateTime: ts(r.Created), UpdateTime: ts(r.Updated), Etag: r.Etag, IssuedCertificate: issuedToPB(r.Issued),
	}
}

func issuedToPB(c *registry.IssuedCertificate) *pb.IssuedCertificate {
	if c == nil {
		return nil
	}
	return &pb.IssuedCertificate{Serial: c.Serial, Sha256Thumbprint: c.Thumbprint, IssuingCa: c.IssuingCA, NotAfter: ts(c.NotAfter), IssueTime: ts(c.At)}
}
