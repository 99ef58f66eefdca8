package cli

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// allocFlags are the allocation flags of groups and enrollments.
type allocFlags struct {
	shards, policy, static, webhook, fallback string
	timeout                                   time.Duration
	fs                                        *pflag.FlagSet
}

func addAllocFlags(cmd *cobra.Command) *allocFlags {
	a := &allocFlags{fs: cmd.Flags()}
	a.fs.StringVar(&a.shards, "shards", "", "comma-separated shard IDs the enrollment may use (default: all)")
	choiceVar(cmd, &a.policy, "policy", "hashed", "allocation policy: hashed, static, geo or custom", "hashed", "static", "geo", "custom")
	a.fs.StringVar(&a.static, "static-shard", "", "the shard for the static policy (or a static fallback)")
	a.fs.StringVar(&a.webhook, "webhook-url", "", "the custom policy's webhook (https://)")
	a.fs.DurationVar(&a.timeout, "webhook-timeout", 0, "how long to wait for the webhook (default 5s, at most 30s)")
	choiceVar(cmd, &a.fallback, "webhook-fallback", "", "when the webhook fails: hashed, geo, static, or empty to refuse the device", "", "hashed", "geo", "static")
	return a
}

var policyNames = map[string]pb.AllocationPolicy{
	"": pb.AllocationPolicy_ALLOCATION_POLICY_UNSPECIFIED, "hashed": pb.AllocationPolicy_ALLOCATION_POLICY_HASHED,
	"static": pb.AllocationPolicy_ALLOCATION_POLICY_STATIC, "geo": pb.AllocationPolicy_ALLOCATION_POLICY_GEO,
	"custom": pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM,
}

func (a *allocFlags) allocation() (*pb.Allocation, error) {
	out := &pb.Allocation{StaticShard: a.static}
	if a.shards != "" {
		out.Shards = strings.Split(a.shards, ",")
	}
	p, ok := policyNames[a.policy]
	if !ok || a.policy == "" {
		return nil, usagef("--policy %q is not hashed, static, geo or custom", a.policy)
	}
	out.Policy = p
	if a.webhook != "" {
		fb, ok := policyNames[a.fallback]
		if !ok || fb == pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM {
			return nil, usagef("--webhook-fallback %q is not hashed, geo, static or empty", a.fallback)
		}
		out.Webhook = &pb.Webhook{Url: a.webhook, TimeoutSeconds: int32(a.timeout.Seconds()), FallbackPolicy: fb}
	}
	return out, nil
}

// provisioningStatus is the status --disabled asks for.
func provisioningStatus(disabled bool) pb.ProvisioningStatus {
	if disabled {
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
			return nil, usagef("a symmetric key is not base64: %v", err)
		}
		*k.out = b
	}
	return out, nil
}

// quietLosesSecrets refuses -q on a create whose answer holds secrets
// shown only once (symmetric keys the server generates): -q would print
// the ID and drop them.
func quietLosesSecrets(cmd *cobra.Command, what string) error {
	if q, _ := cmd.Flags().GetBool("quiet"); q {
		return usagef("-q would print only the ID, and the %s the server generates are shown only this once: use -o json or -o yaml", what)
	}
	return nil
}

// Table cells shared by groups and enrollments.

func statusCell(s pb.ProvisioningStatus) string { return enum(s, "PROVISIONING_STATUS_") }

func attestationCell(a pb.AttestationType) string { return enum(a, "ATTESTATION_TYPE_") }

func policyCell(a *pb.Allocation) string {
	p := enum(a.GetPolicy(), "ALLOCATION_POLICY_")
	if a.GetStaticShard() != "" {
		p += " (" + a.GetStaticShard() + ")"
	}
	return p
}
