package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var groupTable = table[*pb.EnrollmentGroup]{
	id: (*pb.EnrollmentGroup).GetId,
	cols: []column[*pb.EnrollmentGroup]{
		{"ID", (*pb.EnrollmentGroup).GetId},
		{"ATTESTATION", func(g *pb.EnrollmentGroup) string { return attestationCell(g.GetAttestationType()) }},
		{"CA", (*pb.EnrollmentGroup).GetCaCertificate},
		{"STATUS", func(g *pb.EnrollmentGroup) string { return statusCell(g.GetProvisioningStatus()) }},
		{"POLICY", func(g *pb.EnrollmentGroup) string { return policyCell(g.GetAllocation()) }},
		{"SHARDS", func(g *pb.EnrollmentGroup) string { return joined(g.GetAllocation().GetShards()) }},
	},
}

func groupCmd(env Env) *cobra.Command {
	r := resource[*pb.EnrollmentGroup]{
		noun: "enrollment group", arg: "ID", table: groupTable,
		get: func(ctx context.Context, cc *grpc.ClientConn, id string) (*pb.EnrollmentGroup, error) {
			return pb.NewEnrollmentServiceClient(cc).GetEnrollmentGroup(ctx, &pb.GetEnrollmentGroupRequest{Id: id})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, token string) ([]*pb.EnrollmentGroup, string, error) {
			p, err := pb.NewEnrollmentServiceClient(cc).ListEnrollmentGroups(ctx, &pb.ListEnrollmentGroupsRequest{PageSize: 500, PageToken: token})
			return p.GetEnrollmentGroups(), p.GetNextPageToken(), err
		},
		listed: func(all []*pb.EnrollmentGroup) proto.Message {
			return &pb.ListEnrollmentGroupsResponse{EnrollmentGroups: all}
		},
		delete: func(ctx context.Context, cc *grpc.ClientConn, id, etag string) error {
			_, err := pb.NewEnrollmentServiceClient(cc).DeleteEnrollmentGroup(ctx, &pb.DeleteEnrollmentGroupRequest{Id: id, Etag: etag})
			return err
		},
	}
	return group("group", "enrollment groups: create, get, list, update, enable, disable, delete",
		groupCreateCmd(env, r), r.getCmd(env), r.listCmd(env), groupUpdateCmd(env, r),
		groupStatusCmd(env, r, "enable", pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED),
		groupStatusCmd(env, r, "disable", pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED),
		r.deleteCmd(env))
}

func groupCreateCmd(env Env, r resource[*pb.EnrollmentGroup]) *cobra.Command {
	var ca, ekAllow, attestation string
	var disabled bool
	var af *allocFlags
	var sf settingsFlags
	var rf *revocationFlags
	cmd := r.writeCmd(env, "create ID", "create an enrollment group", func(cmd *cobra.Command, args []string, c *conn) (*pb.EnrollmentGroup, error) {
		alloc, err := af.allocation()
		if err != nil {
			return nil, err
		}
		g := &pb.EnrollmentGroup{Id: args[0], CaCertificate: ca, ProvisioningStatus: provisioningStatus(disabled), Allocation: alloc}
		sv, err := sf.values()
		if err != nil {
			return nil, err
		}
		sv.group(g)
		switch attestation {
		case "tpm":
			g.AttestationType = pb.AttestationType_ATTESTATION_TYPE_TPM
		case "symmetric":
			if err := quietLosesSecrets(cmd, "group keys"); err != nil {
				return nil, err
			}
			g.AttestationType, g.SymmetricKey = pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY, &pb.SymmetricKeyAttestation{}
		}
		if ekAllow != "" {
			g.TpmEkAllowList = strings.Split(ekAllow, ",")
		}
		if rf.given() {
			g.Revocation = rf.policy(nil)
		}
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		return pb.NewEnrollmentServiceClient(cc).CreateEnrollmentGroup(cmd.Context(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: g})
	})
	fs := cmd.Flags()
	fs.StringVar(&ca, "ca", "", "name of the CA certificate the group trusts")
	choiceVar(cmd, &attestation, "attestation", "x509", "x509; tpm for TPMs whose EK certificates chain to the CA; symmetric for devices with keys derived from the group key, printed once",
		"x509", "tpm", "symmetric")
	fs.StringVar(&ekAllow, "tpm-ek-allow", "", "TPM groups: comma-separated EK hashes to admit")
	af = addAllocFlags(cmd)
	fs.BoolVar(&disabled, "disabled", false, "create disabled")
	sf = addSettingsFlags(cmd)
	rf = addRevocationFlags(cmd)
	return cmd
}

func groupUpdateCmd(env Env, r resource[*pb.EnrollmentGroup]) *cobra.Command {
	var ekAllow string
	var af *allocFlags
	var sf settingsFlags
	var rf *revocationFlags
	cmd := r.writeCmd(env, "update ID", "change what the flags name, and only that", func(cmd *cobra.Command, args []string, c *conn) (*pb.EnrollmentGroup, error) {
		sv, err := sf.values()
		if err != nil {
			return nil, err
		}
		mask := sv.paths
		if !changed(cmd.Flags(), allocationFlagNames...) && len(mask) == 0 && !cmd.Flags().Changed("tpm-ek-allow") && !rf.given() {
			return nil, usagef("give at least one of the allocation flags, --tpm-ek-allow, --revocation-check, --revocation-ocsp or a device setting (--reprovision, --initial-twin, --iot-edge, --adopt-from, --disable-device-sas, --credential-policy)")
		}
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewEnrollmentServiceClient(cc)
		cur, err := cl.GetEnrollmentGroup(cmd.Context(), &pb.GetEnrollmentGroupRequest{Id: args[0]})
		if err != nil {
			return nil, err
		}
		upd := &pb.EnrollmentGroup{Id: args[0], Etag: cur.Etag}
		sv.group(upd)
		if upd.Allocation, err = af.update(cur.GetAllocation()); err != nil {
			return nil, err
		} else if upd.Allocation != nil {
			mask = append(mask, "allocation")
		}
		if cmd.Flags().Changed("tpm-ek-allow") {
			mask = append(mask, "tpm_ek_allow_list")
			if ekAllow != "" {
				upd.TpmEkAllowList = strings.Split(ekAllow, ",")
			}
		}
		if rf.given() {
			mask = append(mask, "revocation")
			upd.Revocation = rf.policy(cur.GetRevocation())
		}
		return cl.UpdateEnrollmentGroup(cmd.Context(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	})
	cmd.Flags().StringVar(&ekAllow, "tpm-ek-allow", "", `TPM groups: comma-separated EK hashes to admit ("" for none)`)
	af = addAllocFlags(cmd)
	sf = addSettingsFlags(cmd)
	rf = addRevocationFlags(cmd)
	return cmd
}

// groupStatusCmd is enable or disable: the group's devices register, or
// are refused (ENROLLMENT_DISABLED), and so are their identities.
func groupStatusCmd(env Env, r resource[*pb.EnrollmentGroup], verb string, to pb.ProvisioningStatus) *cobra.Command {
	return r.writeCmd(env, verb+" ID", verb+" an enrollment group (and its devices' identities)", func(cmd *cobra.Command, args []string, c *conn) (*pb.EnrollmentGroup, error) {
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewEnrollmentServiceClient(cc)
		cur, err := cl.GetEnrollmentGroup(cmd.Context(), &pb.GetEnrollmentGroupRequest{Id: args[0]})
		if err != nil {
			return nil, err
		}
		return cl.UpdateEnrollmentGroup(cmd.Context(), &pb.UpdateEnrollmentGroupRequest{
			EnrollmentGroup: &pb.EnrollmentGroup{Id: args[0], Etag: cur.Etag, ProvisioningStatus: to},
			UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}})
	})
}
