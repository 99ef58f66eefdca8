package cli

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zerotouch/zerotouch/internal/access"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var accessKeyTable = table[*pb.AccessKey]{
	id: (*pb.AccessKey).GetId,
	cols: []column[*pb.AccessKey]{
		{"ID", (*pb.AccessKey).GetId},
		{"NAME", (*pb.AccessKey).GetName},
		{"PERMISSIONS", func(k *pb.AccessKey) string { return joined(k.GetPermissions()) }},
		{"DPS", func(k *pb.AccessKey) string { return yesNo(k.GetHasSharedAccessKey()) }},
		{"CREATED", func(k *pb.AccessKey) string { return when(k.GetCreateTime()) }},
		{"EXPIRES", func(k *pb.AccessKey) string { return when(k.GetExpireTime()) }},
		{"LAST USED", func(k *pb.AccessKey) string { return when(k.GetLastUsedTime()) }},
	},
}

func accessKeyCmd(env Env) *cobra.Command {
	r := resource[*pb.AccessKey]{
		noun: "access key", arg: "ID", table: accessKeyTable,
		list: func(ctx context.Context, cc *grpc.ClientConn, token string) ([]*pb.AccessKey, string, error) {
			p, err := pb.NewAccessKeyServiceClient(cc).ListAccessKeys(ctx, &pb.ListAccessKeysRequest{PageSize: 500, PageToken: token})
			return p.GetAccessKeys(), p.GetNextPageToken(), err
		},
		listed: func(all []*pb.AccessKey) proto.Message { return &pb.ListAccessKeysResponse{AccessKeys: all} },
		delete: func(ctx context.Context, cc *grpc.ClientConn, id, _ string) error {
			_, err := pb.NewAccessKeyServiceClient(cc).DeleteAccessKey(ctx, &pb.DeleteAccessKeyRequest{Id: id})
			return err
		},
	}
	del := r.deleteCmd(env)
	del.Flags().MarkHidden("etag") //nolint:errcheck // access keys have no etag
	return group("access-key", "access keys (and their DPS connection strings): create, list, delete, rotate",
		accessKeyWriteCmd(env, "create NAME"), r.listCmd(env), del, accessKeyWriteCmd(env, "rotate ID"))
}

// accessKeyWriteCmd is create or rotate: both answer with secrets shown
// once. By default they print them as text, then the key as JSON (as
// before -o); -o json or yaml prints the answer (token, shared access
// key) with the DPS connection string; -q prints only the bearer token.
func accessKeyWriteCmd(env Env, use string) *cobra.Command {
	var perms, dpsHost, expires, secret string
	var noDPS bool
	var o *output
	verb := strings.Fields(use)[0]
	short := "create an access key: its bearer token and DPS connection string are shown once"
	if verb == "rotate" {
		short = "replace one of an access key's secrets; the other keeps working"
	}
	cmd := opCmd(env, use, short, func(cmd *cobra.Command, args []string, c *conn) error {
		if verb == "create" && perms == "" {
			return usagef("--permissions is required")
		}
		var expireTime *timestamppb.Timestamp
		if expires != "" {
			at, err := parseUntil(expires, time.Now())
			if err != nil {
				return usagef("--expires: %v", err)
			}
			expireTime = timestamppb.New(at)
		}
		cc, err := c.dial()
		if err != nil {
			return err
		}
		cl := pb.NewAccessKeyServiceClient(cc)
		var res *pb.CreateAccessKeyResponse
		what := "created"
		if verb == "create" {
			res, err = cl.CreateAccessKey(cmd.Context(), &pb.CreateAccessKeyRequest{Name: args[0], Permissions: strings.Split(perms, ","), NoSharedAccessKey: noDPS,
				ExpireTime: expireTime})
		} else {
			res, err = cl.RotateAccessKey(cmd.Context(), &pb.RotateAccessKeyRequest{Id: args[0], Secret: secret})
			what = "rotated: its new " + secret + " secret is below; the old " + secret + " secret no longer works, the other one still does"
		}
		if err != nil {
			return err
		}
		connString := ""
		if len(res.GetSharedAccessKey()) > 0 {
			// The server says which host name its SAS tokens must name; an
			// older server does not, so the --server host.
			host := or(dpsHost, res.GetServiceHostName())
			if host == "" {
				if host, _, err = net.SplitHostPort(c.server); err != nil {
					host = c.server
				}
			}
			connString = access.ConnectionString(host, res.GetAccessKey().GetId(), res.GetSharedAccessKey())
		}
		switch {
		case o.quiet:
			_, err := fmt.Fprintln(env.Stdout, res.GetToken())
			return err
		case o.format != "":
			return accessKeySecretsTable.one(env.Stdout, o, &accessKeySecrets{res: res, connString: connString})
		}
		fmt.Fprintf(env.Stdout, "access key %s %s; its secrets are shown once.\nbearer token: %s\n", res.GetAccessKey().GetId(), what, res.GetToken())
		if connString != "" {
			fmt.Fprintf(env.Stdout, "DPS connection string: %s\n", connString)
		}
		return printJSON(env.Stdout, res.GetAccessKey())
	})
	fs := cmd.Flags()
	if verb == "create" {
		fs.StringVar(&perms, "permissions", "", "comma-separated: "+joinPerms()+" (required)")
		fs.BoolVar(&noDPS, "no-dps", false, "make no DPS shared access key, only the bearer token")
		fs.StringVar(&expires, "expires", "", "when the key stops working: RFC 3339, or a duration from now such as 720h (default never)")
	} else {
		choiceVar(cmd, &secret, "secret", "primary", "which secret to replace: primary or secondary; the other keeps working", "primary", "secondary")
	}
	fs.StringVar(&dpsHost, "dps-host", "", "HostName for the DPS connection string (default: the server's dps.service_hostname, which SAS tokens must name)")
	o = addOutput(cmd, "", "the bearer token")
	cmd.Flags().Lookup("output").Usage = "output format: table, json or yaml (default: the secrets as text, then the key as JSON)"
	return cmd
}

// accessKeySecrets is what create and rotate print with -o: the answer,
// and the DPS connection string made from it.
type accessKeySecrets struct {
	res        *pb.CreateAccessKeyResponse
	connString string
}

var accessKeySecretsTable = table[*accessKeySecrets]{
	id: func(s *accessKeySecrets) string { return s.res.GetToken() },
	cols: []column[*accessKeySecrets]{
		{"ID", func(s *accessKeySecrets) string { return s.res.GetAccessKey().GetId() }},
		{"NAME", func(s *accessKeySecrets) string { return s.res.GetAccessKey().GetName() }},
		{"BEARER TOKEN", func(s *accessKeySecrets) string { return s.res.GetToken() }},
		{"DPS CONNECTION STRING", func(s *accessKeySecrets) string { return s.connString }},
	},
}

// MarshalJSON is the answer's API JSON with dpsConnectionString added.
func (s *accessKeySecrets) MarshalJSON() ([]byte, error) {
	raw, err := toJSON(s.res, false)
	if err != nil || s.connString == "" {
		return raw, err
	}
	conn, err := toJSON(map[string]string{"dpsConnectionString": s.connString}, false)
	if err != nil {
		return nil, err
	}
	if string(raw) == "{}" {
		return conn, nil
	}
	return append(append(raw[:len(raw)-1], ','), conn[1:]...), nil
}

func joinPerms() string {
	var s []string
	for _, p := range access.All {
		s = append(s, string(p))
	}
	return strings.Join(s, ",")
}
