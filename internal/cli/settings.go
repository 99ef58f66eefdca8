package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// settingsFlags are the device settings of groups and enrollments: what
// their devices get besides a shard.
type settingsFlags struct {
	reprovision, twin, adoptFrom, credPolicy *string
	edge, noSAS                              *bool
	fs                                       *pflag.FlagSet
}

func addSettingsFlags(cmd *cobra.Command) settingsFlags {
	fs := cmd.Flags()
	return settingsFlags{
		reprovision: choice(cmd, "reprovision", "", "when a registered device registers again after an allocation change: migrate (move, keep its data; the default), reset (move, reset its twin and IoT Edge flag) or never (stay)",
			"", "migrate", "reset", "never"),
		twin:       fs.String("initial-twin", "", `the devices' initial twin, JSON {"tags": {...}, "properties": {"desired": {...}}} or @FILE, at most 32 KiB; "" for none`),
		edge:       fs.Bool("iot-edge", false, "the devices are IoT Edge devices (--iot-edge=false to clear)"),
		adoptFrom:  fs.String("adopt-from", "", `comma-separated enrollment group IDs whose registrations the enrollment's devices may take over ("" for none); needs the RegistrationStatusWrite permission`),
		noSAS:      fs.Bool("disable-device-sas", false, "refuse the enrollment's SAS tokens while keeping its keys (--disable-device-sas=false to allow them again)"),
		credPolicy: fs.String("credential-policy", "", `the credential policy under which the devices may ask for an operational certificate (device register --new-cert; "" for none)`),
		fs:         fs,
	}
}

var reprovisionNames = map[string]pb.ReprovisionPolicy{
	"":        pb.ReprovisionPolicy_REPROVISION_POLICY_UNSPECIFIED,
	"migrate": pb.ReprovisionPolicy_REPROVISION_POLICY_MIGRATE,
	"reset":   pb.ReprovisionPolicy_REPROVISION_POLICY_RESET,
	"never":   pb.ReprovisionPolicy_REPROVISION_POLICY_NEVER,
}

// settingsValues are the settings the flags give, and the update_mask
// paths of the flags that were given.
type settingsValues struct {
	reprovision pb.ReprovisionPolicy
	twin        string
	edge, noSAS bool
	adoptFrom   []string
	credPolicy  string
	paths       []string
}

// values reads the flags; the server validates what they hold.
func (s settingsFlags) values() (settingsValues, error) {
	v := settingsValues{edge: *s.edge, noSAS: *s.noSAS, credPolicy: *s.credPolicy}
	var ok bool
	if v.reprovision, ok = reprovisionNames[*s.reprovision]; !ok {
		return v, fmt.Errorf("%w: --reprovision %q is not migrate, reset or never", errUsage, *s.reprovision)
	}
	v.twin = *s.twin
	if file, isFile := strings.CutPrefix(v.twin, "@"); isFile {
		text, err := readFile("initial-twin", file)
		if err != nil {
			return v, err
		}
		v.twin = text
	}
	if *s.adoptFrom != "" {
		v.adoptFrom = strings.Split(*s.adoptFrom, ",")
	}
	s.fs.Visit(func(f *pflag.Flag) {
		if p, ok := settingsPaths[f.Name]; ok {
			v.paths = append(v.paths, p)
		}
	})
	return v, nil
}

// settingsPaths maps the settings flags to their update_mask paths.
var settingsPaths = map[string]string{
	"reprovision": "reprovision_policy", "initial-twin": "initial_twin", "iot-edge": "iot_edge",
	"adopt-from": "adopt_from", "disable-device-sas": "disable_device_sas", "credential-policy": "credential_policy",
}

func (v settingsValues) group(g *pb.EnrollmentGroup) {
	g.ReprovisionPolicy, g.InitialTwin, g.IotEdge, g.AdoptFrom, g.DisableDeviceSas = v.reprovision, v.twin, v.edge, v.adoptFrom, v.noSAS
	g.CredentialPolicy = v.credPolicy
}

func (v settingsValues) enrollment(e *pb.Enrollment) {
	e.ReprovisionPolicy, e.InitialTwin, e.IotEdge, e.AdoptFrom, e.DisableDeviceSas = v.reprovision, v.twin, v.edge, v.adoptFrom, v.noSAS
	e.CredentialPolicy = v.credPolicy
}

// allocationFlagNames are the flags of addAllocFlags that shape an
// allocation.
var allocationFlagNames = []string{"shards", "policy", "static-shard", "webhook-url", "webhook-timeout", "webhook-fallback"}

// update applies the allocation flags that were given to cur (an update
// changes only what its flags name): nil when none was given.
func (a *allocFlags) update(cur *pb.Allocation) (*pb.Allocation, error) {
	given := map[string]bool{}
	a.fs.Visit(func(f *pflag.Flag) {
		if slices.Contains(allocationFlagNames, f.Name) {
			given[f.Name] = true
		}
	})
	if len(given) == 0 {
		return nil, nil
	}
	out := proto.Clone(cur).(*pb.Allocation)
	if out == nil {
		out = &pb.Allocation{}
	}
	if given["shards"] {
		out.Shards = nil
		if a.shards != "" {
			out.Shards = strings.Split(a.shards, ",")
		}
	}
	if given["policy"] {
		p, ok := policyNames[a.policy]
		if !ok || a.policy == "" {
			return nil, fmt.Errorf("%w: --policy %q is not hashed, static, geo or custom", errUsage, a.policy)
		}
		out.Policy = p
		if p != pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM {
			out.Webhook = nil
		}
		if (p == pb.AllocationPolicy_ALLOCATION_POLICY_HASHED || p == pb.AllocationPolicy_ALLOCATION_POLICY_GEO) && !given["static-shard"] {
			out.StaticShard = ""
		}
	}
	if given["static-shard"] {
		out.StaticShard = a.static
	}
	if given["webhook-url"] || given["webhook-timeout"] || given["webhook-fallback"] {
		if out.Webhook == nil {
			out.Webhook = &pb.Webhook{}
		}
		if given["webhook-url"] {
			out.Webhook.Url = a.webhook
		}
		if given["webhook-timeout"] {
			out.Webhook.TimeoutSeconds = int32(a.timeout.Seconds())
		}
		if given["webhook-fallback"] {
			fb, ok := policyNames[a.fallback]
			if !ok || fb == pb.AllocationPolicy_ALLOCATION_POLICY_CUSTOM {
				return nil, fmt.Errorf("%w: --webhook-fallback %q is not hashed, geo, static or empty", errUsage, a.fallback)
			}
			out.Webhook.FallbackPolicy = fb
		}
	}
	return out, nil
}
