package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// maxRulesFile bounds an ip-filter set file.
const maxRulesFile = 1 << 20

func runIPFilter(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "get", "set")
	if err != nil {
		return err
	}
	fs, c := opFlags("ip-filter "+sub, env)
	selfLockout := fs.Bool("allow-self-lockout", false, "apply rules that refuse this client's own address on the management API (set)")
	var want []string
	if sub == "set" {
		want = []string{"FILE"}
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	in := &pb.IPFilter{}
	if sub == "set" {
		// FILE is what `ip-filter get` prints, edited: {"rules": [{"name",
		// "action", "prefix", "target"}], "defaultAction", "etag"}; "-"
		// reads standard input.
		var r io.Reader = env.Stdin
		if pos[0] != "-" {
			f, err := os.Open(pos[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		if r == nil {
			return fmt.Errorf("%w: no standard input", errUsage)
		}
		raw, err := io.ReadAll(io.LimitReader(r, maxRulesFile+1))
		if err != nil {
			return err
		}
		if len(raw) > maxRulesFile {
			return fmt.Errorf("%w: %s is larger than %d bytes", errUsage, pos[0], maxRulesFile)
		}
		if err := protojson.Unmarshal(raw, in); err != nil {
			return fmt.Errorf("%w: %s is not an IP filter (JSON as `ip-filter get` prints it): %v", errUsage, pos[0], err)
		}
	}
	return withConn(ctx, env, c, func(cc *grpc.ClientConn) (proto.Message, error) {
		cl := pb.NewIPFilterServiceClient(cc)
		if sub == "get" {
			return cl.GetIPFilter(ctx, &pb.GetIPFilterRequest{})
		}
		return cl.SetIPFilter(ctx, &pb.SetIPFilterRequest{IpFilter: in, AllowSelfLockout: *selfLockout})
	})
}
