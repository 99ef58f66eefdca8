package cli

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var enrollmentTable = table[*pb.Enrollment]{
	id: (*pb.Enrollment).GetRegistrationId,
	cols: []column[*pb.Enrollment]{
		{"REGISTRATION ID", (*pb.Enrollment).GetRegistrationId},
		{"ATTESTATION", func(e *pb.Enrollment) string { return attestationCell(e.GetAttestationType()) }},
		{"DEVICE ID", (*pb.Enrollment).GetDeviceId},
		{"STATUS", func(e *pb.Enrollment) string { return statusCell(e.GetProvisioningStatus()) }},
		{"POLICY", func(e *pb.Enrollment) string { return policyCell(e.GetAllocation()) }},
		{"CREATED", func(e *pb.Enrollment) string { return when(e.GetCreateTime()) }},
	},
}

func enrollmentCmd(env Env) *cobra.Command {
	r := resource[*pb.Enrollment]{
		noun: "individual enrollment", arg: "REGISTRATION_ID", table: enrollmentTable,
		get: func(ctx context.Context, cc *grpc.ClientConn, id string) (*pb.Enrollment, error) {
			return pb.NewEnrollmentServiceClient(cc).GetEnrollment(ctx, &pb.GetEnrollmentRequest{RegistrationId: id})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, token string) ([]*pb.Enrollment, string, error) {
			p, err := pb.NewEnrollmentServiceClient(cc).ListEnrollments(ctx, &pb.ListEnrollmentsRequest{PageSize: 500, PageToken: token})
			return p.GetEnrollments(), p.GetNextPageToken(), err
		},
		listed: func(all []*pb.Enrollment) proto.Message { return &pb.ListEnrollmentsResponse{Enrollments: all} },
		delete: func(ctx context.Context, cc *grpc.ClientConn, id, etag string) error {
			_, err := pb.NewEnrollmentServiceClient(cc).DeleteEnrollment(ctx, &pb.DeleteEnrollmentRequest{RegistrationId: id, Etag: etag})
			return err
		},
	}
	return group("enrollment", "individual enrollments: create, import, get, list, update, enable, disable, delete",
		enrollmentCreateCmd(env, r), enrollmentImportCmd(env), enrollmentImportBenchCmd(env), r.getCmd(env), r.listCmd(env), enrollmentUpdateCmd(env, r),
		enrollmentStatusCmd(env, r, "enable", pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED),
		enrollmentStatusCmd(env, r, "disable", pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED),
		r.deleteCmd(env))
}

func enrollmentCreateCmd(env Env, r resource[*pb.Enrollment]) *cobra.Command {
	var certFile, thumb, tpmEK, primaryKey, secondaryKey, deviceID string
	var symmetric, disabled bool
	var af *allocFlags
	var sf settingsFlags
	cmd := r.writeCmd(env, "create REGISTRATION_ID", "create an individual enrollment: a certificate, a TPM's EK or symmetric keys",
		func(cmd *cobra.Command, args []string, c *conn) (*pb.Enrollment, error) {
			alloc, err := af.allocation()
			if err != nil {
				return nil, err
			}
			e := &pb.Enrollment{RegistrationId: args[0], DeviceId: deviceID, Sha256Thumbprint: thumb, ProvisioningStatus: provisioningStatus(disabled), Allocation: alloc}
			sv, err := sf.values()
			if err != nil {
				return nil, err
			}
			sv.enrollment(e)
			if symmetric {
				if primaryKey == "" {
					if err := quietLosesSecrets(cmd, "keys"); err != nil {
						return nil, err
					}
				}
				if e.SymmetricKey, err = symmetricKeys(primaryKey, secondaryKey); err != nil {
					return nil, err
				}
			}
			if v, isFile := strings.CutPrefix(tpmEK, "@"); isFile {
				pemText, err := readFile("tpm-ek", v)
				if err != nil {
					return nil, err
				}
				e.Tpm = &pb.TpmAttestation{EndorsementKeyPem: pemText}
			} else if tpmEK != "" {
				raw, err := base64.StdEncoding.DecodeString(tpmEK)
				if err != nil {
					return nil, usagef("--tpm-ek is not base64: %v", err)
				}
				e.Tpm = &pb.TpmAttestation{EndorsementKey: raw}
			}
			if certFile != "" {
				if e.CertificatePem, err = readFile("cert", certFile); err != nil {
					return nil, err
				}
			}
			cc, err := c.dial()
			if err != nil {
				return nil, err
			}
			return pb.NewEnrollmentServiceClient(cc).CreateEnrollment(cmd.Context(), &pb.CreateEnrollmentRequest{Enrollment: e})
		})
	fs := cmd.Flags()
	fs.StringVar(&certFile, "cert", "", "the device's leaf certificate, PEM")
	fs.StringVar(&thumb, "thumbprint", "", "or the leaf certificate's SHA-256 thumbprint, hex")
	fs.StringVar(&tpmEK, "tpm-ek", "", "or, for a TPM: its EK as base64 TPM2B_PUBLIC, or @FILE holding a PEM public key")
	fs.BoolVar(&symmetric, "symmetric", false, "or a symmetric-key device (evaluation); keys are generated unless given, and printed once")
	fs.StringVar(&primaryKey, "primary-key", "", "with --symmetric: the primary key, base64")
	fs.StringVar(&secondaryKey, "secondary-key", "", "with --symmetric: the secondary key, base64")
	fs.StringVar(&deviceID, "device-id", "", "device ID for the registry identity (default: the registration ID)")
	af = addAllocFlags(cmd)
	fs.BoolVar(&disabled, "disabled", false, "create disabled")
	sf = addSettingsFlags(cmd)
	return cmd
}

func enrollmentUpdateCmd(env Env, r resource[*pb.Enrollment]) *cobra.Command {
	var deviceID string
	var af *allocFlags
	var sf settingsFlags
	cmd := r.writeCmd(env, "update REGISTRATION_ID", "change what the flags name, and only that", func(cmd *cobra.Command, args []string, c *conn) (*pb.Enrollment, error) {
		sv, err := sf.values()
		if err != nil {
			return nil, err
		}
		mask := sv.paths
		if !changed(cmd.Flags(), allocationFlagNames...) && len(mask) == 0 && !cmd.Flags().Changed("device-id") {
			return nil, usagef("give at least one of --device-id, the allocation flags or a device setting (--reprovision, --initial-twin, --iot-edge, --adopt-from, --disable-device-sas)")
		}
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewEnrollmentServiceClient(cc)
		cur, err := cl.GetEnrollment(cmd.Context(), &pb.GetEnrollmentRequest{RegistrationId: args[0]})
		if err != nil {
			return nil, err
		}
		upd := &pb.Enrollment{RegistrationId: args[0], Etag: cur.Etag}
		sv.enrollment(upd)
		if upd.Allocation, err = af.update(cur.GetAllocation()); err != nil {
			return nil, err
		} else if upd.Allocation != nil {
			mask = append(mask, "allocation")
		}
		if cmd.Flags().Changed("device-id") {
			upd.DeviceId, mask = deviceID, append(mask, "device_id")
		}
		return cl.UpdateEnrollment(cmd.Context(), &pb.UpdateEnrollmentRequest{Enrollment: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	})
	cmd.Flags().StringVar(&deviceID, "device-id", "", "device ID for the registry identity")
	af = addAllocFlags(cmd)
	sf = addSettingsFlags(cmd)
	return cmd
}

func enrollmentStatusCmd(env Env, r resource[*pb.Enrollment], verb string, to pb.ProvisioningStatus) *cobra.Command {
	return r.writeCmd(env, verb+" REGISTRATION_ID", verb+" an individual enrollment (and its device's identity)", func(cmd *cobra.Command, args []string, c *conn) (*pb.Enrollment, error) {
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewEnrollmentServiceClient(cc)
		cur, err := cl.GetEnrollment(cmd.Context(), &pb.GetEnrollmentRequest{RegistrationId: args[0]})
		if err != nil {
			return nil, err
		}
		return cl.UpdateEnrollment(cmd.Context(), &pb.UpdateEnrollmentRequest{
			Enrollment: &pb.Enrollment{RegistrationId: args[0], Etag: cur.Etag, ProvisioningStatus: to},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}})
	})
}
