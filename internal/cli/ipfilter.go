package cli

import (
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// maxRulesFile bounds an ip-filter set file.
const maxRulesFile = 1 << 20

// ipFilterTable prints the rules in order, then the default action.
var ipFilterTable = table[*pb.IPFilterRule]{
	cols: []column[*pb.IPFilterRule]{
		{"NAME", (*pb.IPFilterRule).GetName},
		{"ACTION", (*pb.IPFilterRule).GetAction},
		{"PREFIX", (*pb.IPFilterRule).GetPrefix},
		{"TARGET", (*pb.IPFilterRule).GetTarget},
	},
}

// printIPFilter prints the filter: JSON or YAML as the API has it, or a
// table of its rules.
func printIPFilter(w io.Writer, o *output, m *pb.IPFilter) error {
	rows := append(slices.Clip(m.GetRules()), &pb.IPFilterRule{Name: "(default)", Action: m.GetDefaultAction(), Prefix: "any", Target: "all"})
	return ipFilterTable.print(w, o, m, rows)
}

func ipFilterCmd(env Env) *cobra.Command {
	var getOut, setOut *output
	get := opCmd(env, "get", "print the rules (JSON by default: the file set takes, edited)", func(cmd *cobra.Command, _ []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		res, err := pb.NewIPFilterServiceClient(cc).GetIPFilter(cmd.Context(), &pb.GetIPFilterRequest{})
		if err != nil {
			return err
		}
		return printIPFilter(env.Stdout, getOut, res)
	})
	getOut = addOutput(get, formatJSON, "")

	var selfLockout bool
	set := opCmd(env, "set FILE", "replace the rules with FILE's (what get prints, edited; - reads standard input)", func(cmd *cobra.Command, args []string, c *conn) error {
		// FILE is what `ip-filter get` prints, edited: {"rules": [{"name",
		// "action", "prefix", "target"}], "defaultAction", "etag"}.
		var r io.Reader = env.Stdin
		if args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		if r == nil {
			return usagef("no standard input")
		}
		raw, err := io.ReadAll(io.LimitReader(r, maxRulesFile+1))
		if err != nil {
			return err
		}
		if len(raw) > maxRulesFile {
			return usagef("%s is larger than %d bytes", args[0], maxRulesFile)
		}
		in := &pb.IPFilter{}
		if err := protojson.Unmarshal(raw, in); err != nil {
			return usagef("%s is not an IP filter (JSON as `ip-filter get` prints it): %v", args[0], err)
		}
		cc, err := c.dial()
		if err != nil {
			return err
		}
		res, err := pb.NewIPFilterServiceClient(cc).SetIPFilter(cmd.Context(), &pb.SetIPFilterRequest{IpFilter: in, AllowSelfLockout: selfLockout})
		if err != nil {
			return err
		}
		return printIPFilter(env.Stdout, setOut, res)
	})
	set.Flags().BoolVar(&selfLockout, "allow-self-lockout", false, "apply rules that refuse this client's own address on the management API")
	setOut = addOutput(set, formatJSON, "")
	return group("ip-filter", "IP filter rules (accept/reject by CIDR, first match wins): get, set FILE", get, set)
}
