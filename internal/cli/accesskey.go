package cli

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zerotouch/zerotouch/internal/access"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

func runAccessKey(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "create", "list", "delete", "rotate")
	if err != nil {
		return err
	}
	fs, c := opFlags("access-key "+sub, env)
	perms := fs.String("permissions", "", "comma-separated: "+joinPerms()+" (create)")
	noDPS := fs.Bool("no-dps", false, "make no DPS shared access key, only the bearer token (create)")
	dpsHost := fs.String("dps-host", "", "HostName for the DPS connection string (default: the server's dps.service_hostname, which SAS tokens must name) (create, rotate)")
	expires := fs.String("expires", "", "when the key stops working: RFC 3339, or a duration from now such as 720h (create; default never)")
	secret := fs.String("secret", "primary", "which secret to replace: primary or secondary; the other keeps working (rotate)")
	want := []string{"NAME"}
	switch sub {
	case "list":
		want = nil
	case "delete", "rotate":
		want = []string{"ID"}
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	if sub == "create" && *perms == "" {
		return fmt.Errorf("%w: --permissions is required", errUsage)
	}
	var expireTime *timestamppb.Timestamp
	if *expires != "" {
		at, err := parseUntil(*expires, time.Now())
		if err != nil {
			return fmt.Errorf("%w: --expires: %v", errUsage, err)
		}
		expireTime = timestamppb.New(at)
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewAccessKeyServiceClient(cc)
		switch sub {
		case "create", "rotate":
			var res *pb.CreateAccessKeyResponse
			var err error
			what := "created"
			if sub == "create" {
				res, err = cl.CreateAccessKey(ctx, &pb.CreateAccessKeyRequest{Name: pos[0], Permissions: strings.Split(*perms, ","), NoSharedAccessKey: *noDPS,
					ExpireTime: expireTime})
			} else {
				res, err = cl.RotateAccessKey(ctx, &pb.RotateAccessKeyRequest{Id: pos[0], Secret: *secret})
				what = "rotated: its new " + *secret + " secret is below; the old " + *secret + " secret no longer works, the other one still does"
			}
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(env.Stdout, "access key %s %s; its secrets are shown once.\nbearer token: %s\n", res.GetAccessKey().GetId(), what, res.GetToken())
			if len(res.GetSharedAccessKey()) > 0 {
				// The server says which host name its SAS tokens must
				// name; an older server does not, so the --server host.
				host := or(*dpsHost, res.GetServiceHostName())
				if host == "" {
					if host, _, err = net.SplitHostPort(c.server); err != nil {
						host = c.server
					}
				}
				fmt.Fprintf(env.Stdout, "DPS connection string: %s\n", access.ConnectionString(host, res.GetAccessKey().GetId(), res.GetSharedAccessKey()))
			}
			return res.GetAccessKey(), nil
		case "delete":
			_, err := cl.DeleteAccessKey(ctx, &pb.DeleteAccessKeyRequest{Id: pos[0]})
			return nil, err
		}
		all, err := allPages(func(token string) ([]*pb.AccessKey, string, error) {
			p, err := cl.ListAccessKeys(ctx, &pb.ListAccessKeysRequest{PageSize: 500, PageToken: token})
			return p.GetAccessKeys(), p.GetNextPageToken(), err
		})
		return &pb.ListAccessKeysResponse{AccessKeys: all}, err
	})
}

func joinPerms() string {
	var s []string
	for _, p := range access.All {
		s = append(s, string(p))
	}
	return strings.Join(s, ",")
}
