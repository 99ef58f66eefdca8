package cli

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var shardStateNames = map[string]pb.ShardState{
	"active":   pb.ShardState_SHARD_STATE_ACTIVE,
	"draining": pb.ShardState_SHARD_STATE_DRAINING,
	"disabled": pb.ShardState_SHARD_STATE_DISABLED,
}

func count[N int32 | int64 | uint64](n N) string { return strconv.FormatInt(int64(n), 10) }

var shardTable = table[*pb.Shard]{
	id: (*pb.Shard).GetId,
	cols: []column[*pb.Shard]{
		{"ID", (*pb.Shard).GetId},
		{"HOSTNAME", (*pb.Shard).GetHostname},
		{"STATE", func(s *pb.Shard) string { return enum(s.GetState(), "SHARD_STATE_") }},
		{"WEIGHT", func(s *pb.Shard) string { return count(s.GetWeight()) }},
		{"REGION", (*pb.Shard).GetRegion},
		{"DEVICES", func(s *pb.Shard) string { return count(s.GetDevices()) }},
		{"CAPACITY", func(s *pb.Shard) string {
			if s.GetCapacity() == 0 {
				return "unlimited"
			}
			return count(s.GetCapacity())
		}},
		{"HUB CLUSTER", (*pb.Shard).GetHubCluster},
		{"LOG HEAD", func(s *pb.Shard) string { return count(s.GetAssignmentLogHead()) }},
		{"ACKNOWLEDGED", func(s *pb.Shard) string { return count(s.GetAssignmentAcknowledged()) }},
	},
}

func shardCmd(env Env) *cobra.Command {
	r := resource[*pb.Shard]{
		noun: "shard", arg: "ID", table: shardTable,
		get: func(ctx context.Context, cc *grpc.ClientConn, id string) (*pb.Shard, error) {
			return pb.NewHubServiceClient(cc).GetShard(ctx, &pb.GetShardRequest{Id: id})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, token string) ([]*pb.Shard, string, error) {
			p, err := pb.NewHubServiceClient(cc).ListShards(ctx, &pb.ListShardsRequest{PageSize: 500, PageToken: token})
			return p.GetShards(), p.GetNextPageToken(), err
		},
		listed: func(all []*pb.Shard) proto.Message { return &pb.ListShardsResponse{Shards: all} },
		delete: func(ctx context.Context, cc *grpc.ClientConn, id, etag string) error {
			_, err := pb.NewHubServiceClient(cc).DeleteShard(ctx, &pb.DeleteShardRequest{Id: id, Etag: etag})
			return err
		},
	}
	return group("shard", "hub shards: create, get, list, update, delete",
		shardWriteCmd(env, r, "create"), r.getCmd(env), r.listCmd(env), shardWriteCmd(env, r, "update"), r.deleteCmd(env))
}

// shardWriteCmd is create, or update (of what its flags name).
func shardWriteCmd(env Env, r resource[*pb.Shard], verb string) *cobra.Command {
	var s pb.Shard
	var weight, capacity int
	var state string
	short := "create a shard: where devices land"
	if verb == "update" {
		short = "change what the flags name, and only that"
	}
	cmd := r.writeCmd(env, verb+" ID", short, func(cmd *cobra.Command, args []string, c *conn) (*pb.Shard, error) {
		s.Id, s.Weight, s.Capacity, s.State = args[0], int32(weight), int32(capacity), shardStateNames[state]
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewHubServiceClient(cc)
		if verb == "create" {
			return cl.CreateShard(cmd.Context(), &pb.CreateShardRequest{Shard: &s})
		}
		var mask []string
		cmd.Flags().Visit(func(f *pflag.Flag) {
			switch f.Name {
			case "hostname", "weight", "state", "region", "capacity":
				mask = append(mask, f.Name)
			case "hub-cluster":
				mask = append(mask, "hub_cluster")
			}
		})
		if len(mask) == 0 {
			return nil, usagef("give at least one of --hostname, --weight, --state, --region, --capacity, --hub-cluster")
		}
		cur, err := cl.GetShard(cmd.Context(), &pb.GetShardRequest{Id: args[0]})
		if err != nil {
			return nil, err
		}
		s.Etag = cur.Etag
		return cl.UpdateShard(cmd.Context(), &pb.UpdateShardRequest{Shard: &s, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	})
	fs := cmd.Flags()
	fs.StringVar(&s.Hostname, "hostname", "", "device-facing hostname")
	fs.IntVar(&weight, "weight", 100, "weight 1-1000")
	choiceVar(cmd, &state, "state", "active", "active, draining or disabled", "active", "draining", "disabled")
	fs.StringVar(&s.Region, "region", "", "region the shard runs in, for the geo policy")
	fs.IntVar(&capacity, "capacity", 0, "most devices the shard takes (0: unlimited)")
	fs.StringVar(&s.HubCluster, "hub-cluster", "", "the hub cluster that owns the shard")
	return cmd
}

var registrationTable = table[*pb.Registration]{
	id: (*pb.Registration).GetRegistrationId,
	cols: []column[*pb.Registration]{
		{"REGISTRATION ID", (*pb.Registration).GetRegistrationId},
		{"DEVICE ID", (*pb.Registration).GetDeviceId},
		{"STATUS", func(r *pb.Registration) string { return enum(r.GetStatus(), "REGISTRATION_STATUS_") }},
		{"HUB", (*pb.Registration).GetAssignedHub},
		{"SHARD", (*pb.Registration).GetShard},
		{"ENROLLMENT", func(r *pb.Registration) string {
			if r.GetIndividualEnrollment() {
				return "individual"
			}
			return "group " + r.GetEnrollmentGroupId()
		}},
		{"ATTESTATION", func(r *pb.Registration) string { return attestationCell(r.GetAttestationType()) }},
		{"UPDATED", func(r *pb.Registration) string { return when(r.GetUpdateTime()) }},
	},
}

func registrationCmd(env Env) *cobra.Command {
	var byGroup, byShard string
	r := resource[*pb.Registration]{
		noun: "registration", arg: "REGISTRATION_ID", table: registrationTable,
		get: func(ctx context.Context, cc *grpc.ClientConn, id string) (*pb.Registration, error) {
			return pb.NewRegistrationServiceClient(cc).GetRegistration(ctx, &pb.GetRegistrationRequest{RegistrationId: id})
		},
		list: func(ctx context.Context, cc *grpc.ClientConn, token string) ([]*pb.Registration, string, error) {
			p, err := pb.NewRegistrationServiceClient(cc).ListRegistrations(ctx,
				&pb.ListRegistrationsRequest{PageSize: 500, PageToken: token, EnrollmentGroupId: byGroup, Shard: byShard})
			return p.GetRegistrations(), p.GetNextPageToken(), err
		},
		listed: func(all []*pb.Registration) proto.Message { return &pb.ListRegistrationsResponse{Registrations: all} },
		delete: func(ctx context.Context, cc *grpc.ClientConn, id, etag string) error {
			_, err := pb.NewRegistrationServiceClient(cc).DeleteRegistration(ctx, &pb.DeleteRegistrationRequest{RegistrationId: id, Etag: etag})
			return err
		},
	}
	list := r.listCmd(env)
	list.Flags().StringVar(&byGroup, "group", "", "only this enrollment group's registrations")
	list.Flags().StringVar(&byShard, "shard", "", "only this shard's registrations")
	del := r.deleteCmd(env)
	del.Short = "delete a registration: its device provisions afresh next time (a new identity for its hub)"
	return group("registration", "registrations: get, list, disable, enable, delete",
		r.getCmd(env), list, registrationStatusCmd(env, r, "disable"), registrationStatusCmd(env, r, "enable"), del)
}

// registrationStatusCmd switches one device: a disabled registration's
// device is refused with REGISTRATION_DISABLED.
func registrationStatusCmd(env Env, r resource[*pb.Registration], verb string) *cobra.Command {
	var etag string
	cmd := r.writeCmd(env, verb+" REGISTRATION_ID", verb+" a registration (and its device's identity)", func(cmd *cobra.Command, args []string, c *conn) (*pb.Registration, error) {
		cc, err := c.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewRegistrationServiceClient(cc)
		if verb == "disable" {
			return cl.DisableRegistration(cmd.Context(), &pb.DisableRegistrationRequest{RegistrationId: args[0], Etag: etag})
		}
		return cl.EnableRegistration(cmd.Context(), &pb.EnableRegistrationRequest{RegistrationId: args[0], Etag: etag})
	})
	cmd.Flags().StringVar(&etag, "etag", "", "act only if the registration's etag is this")
	return cmd
}
