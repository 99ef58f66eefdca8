package cli

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

const defaultGRPCServer = "localhost:8444"

// opFlags makes a flag set with the connection flags.
func opFlags(name string, env Env) (*flag.FlagSet, *conn) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c := &conn{}
	c.register(fs, env, defaultGRPCServer)
	return fs, c
}

// withConn dials, runs fn, prints its result, and closes.
func withConn(ctx context.Context, env Env, c *conn, fn func(*grpc.ClientConn) (proto.Message, error)) error {
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	m, err := fn(cc)
	if err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	return printJSON(env.Stdout, m)
}

// allPages fetches every page of a List call.
func allPages[T any](fetch func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	for token := ""; ; {
		items, next, err := fetch(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

func readFile(flagName, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%w: --%s is required", errUsage, flagName)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func runCA(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "create", "get", "list", "delete", "verification-code", "verify")
	if err != nil {
		return err
	}
	fs, c := opFlags("ca "+sub, env)
	certFile := fs.String("cert", "", "PEM certificate file (create: the CA; verify: the proof)")
	etag := fs.String("etag", "", "act only if the CA's etag is this")
	pageSize := fs.Int("page-size", 100, "list page size")
	want := []string{"NAME"}
	if sub == "list" {
		want = nil
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewCertificateAuthorityServiceClient(cc)
		switch sub {
		case "create":
			pemText, err := readFile("cert", *certFile)
			if err != nil {
				return nil, err
			}
			return cl.CreateCaCertificate(ctx, &pb.CreateCaCertificateRequest{CaCertificate: &pb.CaCertificate{Name: pos[0], CertificatePem: pemText}})
		case "get":
			return cl.GetCaCertificate(ctx, &pb.GetCaCertificateRequest{Name: pos[0]})
		case "list":
			all, err := allPages(func(token string) ([]*pb.CaCertificate, string, error) {
				p, err := cl.ListCaCertificates(ctx, &pb.ListCaCertificatesRequest{PageSize: int32(*pageSize), PageToken: token})
				return p.GetCaCertificates(), p.GetNextPageToken(), err
			})
			return &pb.ListCaCertificatesResponse{CaCertificates: all}, err
		case "delete":
			_, err := cl.DeleteCaCertificate(ctx, &pb.DeleteCaCertificateRequest{Name: pos[0], Etag: *etag})
			return nil, err
		case "verification-code":
			return cl.GenerateVerificationCode(ctx, &pb.GenerateVerificationCodeRequest{Name: pos[0], Etag: *etag})
		default: // verify
			pemText, err := readFile("cert", *certFile)
			if err != nil {
				return nil, err
			}
			return cl.VerifyCaCertificate(ctx, &pb.VerifyCaCertificateRequest{Name: pos[0], CertificatePem: pemText, Etag: *etag})
		}
	})
}

// allocFlags are the allocation flags of groups and enrollments.
type allocFlags struct {
	shards, policy, static, webhook, fallback *string
	timeout                                   *time.Duration
	disabled                                  *bool
}

func addAllocFlags(fs *flag.FlagSet) allocFlags {
	return allocFlags{
		shards:   fs.String("shards", "", "comma-separated shard IDs the enrollment may use (default: all)"),
		policy:   fs.String("policy", "hashed", "allocation policy: hashed, static, geo or custom"),
		static:   fs.String("static-shard", "", "the shard for the static policy (or a static fallback)"),
		webhook:  fs.String("webhook-url", "", "the custom policy's webhook (https://)"),
		timeout:  fs.Duration("webhook-timeout", 0, "how long to wait for the webhook (default 5s, at most 30s)"),
		fallback: fs.String("webhook-fallback", "", "when the webhook fails: hashed, geo, static, or empty to refuse the device"),
		disabled: fs.Bool("disabled", false, "create disabled"),
	}
}

var policyNames = map[string]pb.AllocationPolicy{
	"": pb.AllocationPolicy_ALLOCATION_POLICY_UNSPECIFIED, "hashed": pb.AllocationPolicy_ALLOCATION_POLICY_HASHED,
	"static": pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, "geo": pb.AllocationPolicy_ALLOCATION_POLICY_GEO,
	"custom": pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM,
}

func (a allocFlags) allocation() (*pb.Allocation, error) {
	out := &pb.Allocation{StaticShard: *a.static}
	if *a.shards != "" {
		out.Shards = strings.Split(*a.shards, ",")
	}
	p, ok := policyNames[*a.policy]
	if !ok || *a.policy == "" {
		return nil, fmt.Errorf("%w: --policy %q is not hashed, static, geo or custom", errUsage, *a.policy)
	}
	out.Policy = p
	if *a.webhook != "" {
		fb, ok := policyNames[*a.fallback]
		if !ok || fb == pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM {
			return nil, fmt.Errorf("%w: --webhook-fallback %q is not hashed, geo, static or empty", errUsage, *a.fallback)
		}
		out.Webhook = &pb.Webhook{Url: *a.webhook, TimeoutSeconds: int32(a.timeout.Seconds()), FallbackPolicy: fb}
	}
	return out, nil
}

func (a allocFlags) status() pb.ProvisioningStatus {
	if *a.disabled {
		return pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED
	}
	return pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED
}

// symmetricKeys decodes keys given on the command line (empty: generated
// by the server).
func symmetricKeys(primary, secondary string) (*pb.SymmetricKeyAttestation, error) {
	out := &pb.SymmetricKeyAttestation{}
	for _, k := range []struct {
		in  string
		out *[]byte
	}{{primary, &out.PrimaryKey}, {secondary, &out.SecondaryKey}} {
		if k.in == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(k.in)
		if err != nil {
			return nil, fmt.Errorf("%w: a symmetric key is not base64: %v", errUsage, err)
		}
		*k.out = b
	}
	return out, nil
}

func runGroup(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "create", "get", "list", "update", "enable", "disable", "delete")
	if err != nil {
		return err
	}
	fs, c := opFlags("group "+sub, env)
	ca := fs.String("ca", "", "name of the CA certificate the group trusts (create)")
	attestation := fs.String("attestation", "x509", "x509; tpm for TPMs whose EK certificates chain to the CA; symmetric for devices with keys derived from the group key, printed once (create)")
	ekAllow := fs.String("tpm-ek-allow", "", "TPM groups: comma-separated EK hashes to admit (create, update)")
	af := addAllocFlags(fs)
	sf := addSettingsFlags(fs)
	etag := fs.String("etag", "", "act only if the group's etag is this (delete)")
	want := []string{"ID"}
	if sub == "list" {
		want = nil
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewEnrollmentServiceClient(cc)
		switch sub {
		case "create":
			alloc, err := af.allocation()
			if err != nil {
				return nil, err
			}
			g := &pb.EnrollmentGroup{Id: pos[0], CaCertificate: *ca, ProvisioningStatus: af.status(), Allocation: alloc}
			sv, err := sf.values(fs)
			if err != nil {
				return nil, err
			}
			sv.group(g)
			switch *attestation {
			case "x509":
			case "tpm":
				g.AttestationType = pb.AttestationType_ATTESTATION_TYPE_TPM
			case "symmetric":
				g.AttestationType, g.SymmetricKey = pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY, &pb.SymmetricKeyAttestation{}
			default:
				return nil, fmt.Errorf("%w: --attestation %q is not x509, tpm or symmetric", errUsage, *attestation)
			}
			if *ekAllow != "" {
				g.TpmEkAllowList = strings.Split(*ekAllow, ",")
			}
			return cl.CreateEnrollmentGroup(ctx, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: g})
		case "get":
			return cl.GetEnrollmentGroup(ctx, &pb.GetEnrollmentGroupRequest{Id: pos[0]})
		case "list":
			all, err := allPages(func(token string) ([]*pb.EnrollmentGroup, string, error) {
				p, err := cl.ListEnrollmentGroups(ctx, &pb.ListEnrollmentGroupsRequest{PageSize: 500, PageToken: token})
				return p.GetEnrollmentGroups(), p.GetNextPageToken(), err
			})
			return &pb.ListEnrollmentGroupsResponse{EnrollmentGroups: all}, err
		case "delete":
			_, err := cl.DeleteEnrollmentGroup(ctx, &pb.DeleteEnrollmentGroupRequest{Id: pos[0], Etag: *etag})
			return nil, err
		}
		cur, err := cl.GetEnrollmentGroup(ctx, &pb.GetEnrollmentGroupRequest{Id: pos[0]})
		if err != nil {
			return nil, err
		}
		upd := &pb.EnrollmentGroup{Id: pos[0], Etag: cur.Etag}
		var mask []string
		switch sub {
		case "enable":
			upd.ProvisioningStatus, mask = pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED, []string{"provisioning_status"}
		case "disable":
			upd.ProvisioningStatus, mask = pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED, []string{"provisioning_status"}
		default: // update: only what the flags name
			sv, err := sf.values(fs)
			if err != nil {
				return nil, err
			}
			sv.group(upd)
			mask = sv.paths
			if upd.Allocation, err = af.update(fs, cur.GetAllocation()); err != nil {
				return nil, err
			} else if upd.Allocation != nil {
				mask = append(mask, "allocation")
			}
			fs.Visit(func(f *flag.Flag) {
				if f.Name == "tpm-ek-allow" {
					mask = append(mask, "tpm_ek_allow_list")
				}
			})
			if len(mask) == 0 {
				return nil, fmt.Errorf("%w: give at least one of the allocation flags, --tpm-ek-allow or a device setting (--reprovision, --initial-twin, --iot-edge, --adopt-from, --disable-device-sas)", errUsage)
			}
			if *ekAllow != "" {
				upd.TpmEkAllowList = strings.Split(*ekAllow, ",")
			}
		}
		return cl.UpdateEnrollmentGroup(ctx, &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	})
}

func runEnrollment(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "create", "import", "get", "list", "update", "enable", "disable", "delete")
	if err != nil {
		return err
	}
	if sub == "import" {
		return runEnrollmentImport(ctx, env, args)
	}
	fs, c := opFlags("enrollment "+sub, env)
	certFile := fs.String("cert", "", "the device's leaf certificate, PEM (create)")
	thumb := fs.String("thumbprint", "", "or the leaf certificate's SHA-256 thumbprint, hex (create)")
	tpmEK := fs.String("tpm-ek", "", "or, for a TPM: its EK as base64 TPM2B_PUBLIC, or @FILE holding a PEM public key (create)")
	symmetric := fs.Bool("symmetric", false, "or a symmetric-key device (evaluation); keys are generated unless given, and printed once (create)")
	primaryKey := fs.String("primary-key", "", "with --symmetric: the primary key, base64")
	secondaryKey := fs.String("secondary-key", "", "with --symmetric: the secondary key, base64")
	deviceID := fs.String("device-id", "", "device ID for the registry identity (default: the registration ID)")
	af := addAllocFlags(fs)
	sf := addSettingsFlags(fs)
	etag := fs.String("etag", "", "act only if the enrollment's etag is this (delete)")
	want := []string{"REGISTRATION_ID"}
	if sub == "list" {
		want = nil
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewEnrollmentServiceClient(cc)
		switch sub {
		case "create":
			alloc, err := af.allocation()
			if err != nil {
				return nil, err
			}
			e := &pb.Enrollment{RegistrationId: pos[0], DeviceId: *deviceID, Sha256Thumbprint: *thumb, ProvisioningStatus: af.status(), Allocation: alloc}
			sv, err := sf.values(fs)
			if err != nil {
				return nil, err
			}
			sv.enrollment(e)
			if *symmetric {
				sk, err := symmetricKeys(*primaryKey, *secondaryKey)
				if err != nil {
					return nil, err
				}
				e.SymmetricKey = sk
			}
			if v, isFile := strings.CutPrefix(*tpmEK, "@"); isFile {
				pemText, err := readFile("tpm-ek", v)
				if err != nil {
					return nil, err
				}
				e.Tpm = &pb.TpmAttestation{EndorsementKeyPem: pemText}
			} else if *tpmEK != "" {
				raw, err := base64.StdEncoding.DecodeString(*tpmEK)
				if err != nil {
					return nil, fmt.Errorf("%w: --tpm-ek is not base64: %v", errUsage, err)
				}
				e.Tpm = &pb.TpmAttestation{EndorsementKey: raw}
			}
			if *certFile != "" {
				if e.CertificatePem, err = readFile("cert", *certFile); err != nil {
					return nil, err
				}
			}
			return cl.CreateEnrollment(ctx, &pb.CreateEnrollmentRequest{Enrollment: e})
		case "get":
			return cl.GetEnrollment(ctx, &pb.GetEnrollmentRequest{RegistrationId: pos[0]})
		case "list":
			all, err := allPages(func(token string) ([]*pb.Enrollment, string, error) {
				p, err := cl.ListEnrollments(ctx, &pb.ListEnrollmentsRequest{PageSize: 500, PageToken: token})
				return p.GetEnrollments(), p.GetNextPageToken(), err
			})
			return &pb.ListEnrollmentsResponse{Enrollments: all}, err
		case "delete":
			_, err := cl.DeleteEnrollment(ctx, &pb.DeleteEnrollmentRequest{RegistrationId: pos[0], Etag: *etag})
			return nil, err
		}
		cur, err := cl.GetEnrollment(ctx, &pb.GetEnrollmentRequest{RegistrationId: pos[0]})
		if err != nil {
			return nil, err
		}
		upd := &pb.Enrollment{RegistrationId: pos[0], Etag: cur.Etag}
		var mask []string
		switch sub {
		case "enable":
			upd.ProvisioningStatus, mask = pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED, []string{"provisioning_status"}
		case "disable":
			upd.ProvisioningStatus, mask = pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED, []string{"provisioning_status"}
		default: // update: only what the flags name
			sv, err := sf.values(fs)
			if err != nil {
				return nil, err
			}
			sv.enrollment(upd)
			mask = sv.paths
			if upd.Allocation, err = af.update(fs, cur.GetAllocation()); err != nil {
				return nil, err
			} else if upd.Allocation != nil {
				mask = append(mask, "allocation")
			}
			fs.Visit(func(f *flag.Flag) {
				if f.Name == "device-id" {
					upd.DeviceId, mask = *deviceID, append(mask, "device_id")
				}
			})
			if len(mask) == 0 {
				return nil, fmt.Errorf("%w: give at least one of --device-id, the allocation flags or a device setting (--reprovision, --initial-twin, --iot-edge, --adopt-from, --disable-device-sas)", errUsage)
			}
		}
		return cl.UpdateEnrollment(ctx, &pb.UpdateEnrollmentRequest{Enrollment: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	})
}

var shardStateNames = map[string]pb.ShardState{
	"active":   pb.ShardState_SHARD_STATE_ACTIVE,
	"draining": pb.ShardState_SHARD_STATE_DRAINING,
	"disabled": pb.ShardState_SHARD_STATE_DISABLED,
}

func runShard(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "create", "get", "list", "update", "delete")
	if err != nil {
		return err
	}
	fs, c := opFlags("shard "+sub, env)
	hostname := fs.String("hostname", "", "device-facing hostname")
	weight := fs.Int("weight", 100, "weight 1-1000")
	state := fs.String("state", "active", "active, draining or disabled")
	region := fs.String("region", "", "region the shard runs in, for the geo policy")
	capacity := fs.Int("capacity", 0, "most devices the shard takes (0: unlimited)")
	cluster := fs.String("hub-cluster", "", "the hub cluster that owns the shard")
	etag := fs.String("etag", "", "act only if the shard's etag is this (delete)")
	want := []string{"ID"}
	if sub == "list" {
		want = nil
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	st, ok := shardStateNames[*state]
	if !ok {
		return fmt.Errorf("%w: --state %q is not active, draining or disabled", errUsage, *state)
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewHubServiceClient(cc)
		switch sub {
		case "create":
			return cl.CreateShard(ctx, &pb.CreateShardRequest{Shard: &pb.Shard{Id: pos[0], Hostname: *hostname, Weight: int32(*weight), State: st,
				Region: *region, Capacity: int32(*capacity), HubCluster: *cluster}})
		case "get":
			return cl.GetShard(ctx, &pb.GetShardRequest{Id: pos[0]})
		case "list":
			all, err := allPages(func(token string) ([]*pb.Shard, string, error) {
				p, err := cl.ListShards(ctx, &pb.ListShardsRequest{PageSize: 500, PageToken: token})
				return p.GetShards(), p.GetNextPageToken(), err
			})
			return &pb.ListShardsResponse{Shards: all}, err
		case "delete":
			_, err := cl.DeleteShard(ctx, &pb.DeleteShardRequest{Id: pos[0], Etag: *etag})
			return nil, err
		}
		cur, err := cl.GetShard(ctx, &pb.GetShardRequest{Id: pos[0]})
		if err != nil {
			return nil, err
		}
		upd := &pb.Shard{Id: pos[0], Etag: cur.Etag, Hostname: *hostname, Weight: int32(*weight), State: st, Region: *region, Capacity: int32(*capacity), HubCluster: *cluster}
		var mask []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "hostname", "weight", "state", "region", "capacity":
				mask = append(mask, f.Name)
			case "hub-cluster":
				mask = append(mask, "hub_cluster")
			}
		})
		if len(mask) == 0 {
			return nil, fmt.Errorf("%w: give at least one of --hostname, --weight, --state, --region, --capacity, --hub-cluster", errUsage)
		}
		return cl.UpdateShard(ctx, &pb.UpdateShardRequest{Shard: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	})
}

func runRegistration(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "get", "list", "disable", "enable", "delete")
	if err != nil {
		return err
	}
	fs, c := opFlags("registration "+sub, env)
	group := fs.String("group", "", "only this enrollment group's registrations (list)")
	shard := fs.String("shard", "", "only this shard's registrations (list)")
	etag := fs.String("etag", "", "act only if the registration's etag is this (disable, enable, delete)")
	want := []string{"REGISTRATION_ID"}
	if sub == "list" {
		want = nil
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewRegistrationServiceClient(cc)
		switch sub {
		case "get":
			return cl.GetRegistration(ctx, &pb.GetRegistrationRequest{RegistrationId: pos[0]})
		case "disable":
			return cl.DisableRegistration(ctx, &pb.DisableRegistrationRequest{RegistrationId: pos[0], Etag: *etag})
		case "enable":
			return cl.EnableRegistration(ctx, &pb.EnableRegistrationRequest{RegistrationId: pos[0], Etag: *etag})
		case "delete":
			_, err := cl.DeleteRegistration(ctx, &pb.DeleteRegistrationRequest{RegistrationId: pos[0], Etag: *etag})
			return nil, err
		}
		all, err := allPages(func(token string) ([]*pb.Registration, string, error) {
			p, err := cl.ListRegistrations(ctx, &pb.ListRegistrationsRequest{PageSize: 500, PageToken: token, EnrollmentGroupId: *group, Shard: *shard})
			return p.GetRegistrations(), p.GetNextPageToken(), err
		})
		return &pb.ListRegistrationsResponse{Registrations: all}, err
	})
}
