// Package cli implements the zerotouch command on spf13/cobra: `serve`,
// the operator commands over the management API, `device register`, the
// `pki` helpers that mint CA, proof and device certificates for
// evaluation, and the CLI's own `context`, `version` and `completion`.
//
// Every command is built fresh for each run (NewRoot), so flags never
// carry over. Read commands print through output.go (-o table|json|yaml,
// -q); resource groups follow resource.go's pattern; the connection
// flags, environment and contexts are resolved in conn.go.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/config"
)

// Env is what a command sees of its process.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment: ZEROTOUCH_* variables, and HOME,
	// XDG_CONFIG_HOME (or AppData) for the contexts' directory. A test
	// that returns "" for them touches no user's configuration.
	Getenv func(string) string
	// Stdin feeds commands that read input (ip-filter set -, a TPM bench
	// worker); nil reads nothing.
	Stdin io.Reader
}

// Exit statuses; the root help documents them.
const (
	exitOK      = 0
	exitFailure = 1 // the server refused, or something failed at run time
	exitUsage   = 2 // the command line is wrong
)

// errUsage marks a usage error (exit status 2).
var errUsage = errors.New("usage")

// errHelpShown is a usage error whose help has been printed already.
var errHelpShown = fmt.Errorf("%w: help shown", errUsage)

// usagef is a usage error.
func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

const rootLong = `Zerotouch: zero-touch device provisioning. ` + "`zerotouch serve`" + ` runs the service; the
other commands manage it over its gRPC management API, register devices and mint evaluation
certificates.

Connection (operator commands): --server, --ca-file and --access-key, else ZEROTOUCH_SERVER,
ZEROTOUCH_CA_FILE and ZEROTOUCH_ACCESS_KEY, else the context (--context, ZEROTOUCH_CONTEXT or
the current one; see zerotouch context, kept in ZEROTOUCH_CONFIG_DIR or the user's config
directory), else the server's data directory next to you (.zerotouch, or ZEROTOUCH_DATA_DIR):
its pki/ca.pem and owner.key.

Output: read commands take -o table|json|yaml (lists and gets print a table by default,
json is the API's JSON, as scripts have it) and -q, which prints only the IDs (or the one
value a script wants, such as ca verification-code's code).

Exit status:
  0  success
  1  the server refused the request, or something failed at run time (the message names
     the reason); enrollment import: some lines failed; audit verify: the log is not intact
  2  usage error: an unknown command or flag, a missing or malformed argument`

// NewRoot builds the zerotouch command tree for one run.
func NewRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "zerotouch",
		Short:         "zero-touch device provisioning service and its operator CLI",
		Long:          rootLong,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.AddGroup(
		&cobra.Group{ID: "server", Title: "Server:"},
		&cobra.Group{ID: "manage", Title: "Manage (the management API):"},
		&cobra.Group{ID: "device", Title: "Devices and certificates:"},
		&cobra.Group{ID: "cli", Title: "This CLI:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("server", serveCmd(env), hubCmd(env), withScale(benchCmd(env), env))
	add("manage", caCmd(env), groupCmd(env), enrollmentCmd(env), shardCmd(env), hubClusterCmd(env), registrationCmd(env),
		accessKeyCmd(env), auditCmd(env), failedAttemptsCmd(env), ipFilterCmd(env), webhookSecretCmd(env), dpsImportCmd(env),
		issuingCACmd(env), credentialPolicyCmd(env), certificateCmd(env))
	add("device", deviceCmd(env), pkiCmd(env))
	add("cli", contextCmd(env), versionCmd(env))
	root.SetHelpCommandGroupID("cli")
	root.SetCompletionCommandGroupID("cli")
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	finish(root)
	return root
}

// finish makes every command in the tree behave alike: a group refuses
// an unknown or missing subcommand as a usage error (cobra would print
// help and succeed), argument errors are usage errors, and the usage
// line of a group shows its subcommands only.
func finish(c *cobra.Command) {
	if c.HasSubCommands() && c.RunE == nil && c.Run == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = runGroup
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			if err != nil && !errors.Is(err, errUsage) {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			return err
		}
	}
	if !c.HasParent() {
		c.SetUsageTemplate(strings.Replace(c.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	}
	for _, sub := range c.Commands() {
		finish(sub)
	}
}

// runGroup runs for a group named without a known subcommand.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		return errHelpShown
	}
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usagef("%s (want one of %s)", msg, strings.Join(names, ", "))
}

// flagError makes a flag parsing error a usage error, and names the
// likely cause of a Go-style single-dash long flag (-cert for --cert).
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if _, bad, ok := strings.Cut(msg, " in -"); ok {
		name, _, _ := strings.Cut(bad, "=")
		if cmd.Flags().Lookup(name) != nil {
			msg += fmt.Sprintf(": long flags take two dashes, --%s", name)
		}
	}
	return usagef("%s", msg)
}

// Main runs the command line and returns the process exit status.
func Main(ctx context.Context, args []string, env Env) int {
	root := NewRoot(env)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	path := "zerotouch"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	switch {
	case errors.Is(err, errHelpShown):
		return exitUsage
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.Stderr, "%s: %v\n", path, err)
		if cmd != nil {
			use := cmd.UseLine()
			if cmd.HasAvailableSubCommands() {
				use = path + " [command]"
			}
			fmt.Fprintf(env.Stderr, "Usage: %s\nRun '%s --help' for more.\n", use, path)
		}
		return exitUsage
	case isCobraUsage(err):
		fmt.Fprintf(env.Stderr, "%s: usage: %v\nRun '%s --help' for usage.\n", path, err, path)
		return exitUsage
	}
	fmt.Fprintf(env.Stderr, "%s: %s\n", path, describe(err))
	return exitFailure
}

// isCobraUsage reports the usage errors cobra makes itself (before any
// command runs), which carry no errUsage.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command ") || strings.HasPrefix(msg, "required flag") ||
		strings.HasPrefix(msg, "if any flags in the group")
}

// describe renders an error, with the stable reason of API errors.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return fmt.Sprintf("%s (%s): %s", st.Code(), info.GetReason(), st.Message())
		}
	}
	return fmt.Sprintf("%s: %s%s", st.Code(), st.Message(), grpcHint(st))
}

// positional checks a command's arguments against the upper-case words
// of its Use line: "create NAME" takes exactly one.
func positional(cmd *cobra.Command, args []string) error {
	want := argNames(cmd.Use)
	if len(args) == len(want) {
		return nil
	}
	if len(want) == 0 {
		return usagef("takes no arguments, got %q", args)
	}
	return usagef("want %s, got %d argument(s)", strings.Join(want, " "), len(args))
}

// argNames are the positional argument names of a Use line.
func argNames(use string) []string {
	var names []string
	for _, w := range strings.Fields(use)[1:] {
		if w == strings.ToUpper(w) && !strings.HasPrefix(w, "[") {
			names = append(names, w)
		}
	}
	return names
}

// leaf is a command that runs: its Use line names its arguments.
func leaf(use, short string, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: positional, RunE: run}
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short}
	c.AddCommand(subs...)
	return c
}

// changed reports whether any of the named flags was given.
func changed(fs *pflag.FlagSet, names ...string) bool {
	for _, n := range names {
		if fs.Changed(n) {
			return true
		}
	}
	return false
}

// serveCmd runs the service. Its flags are config.Flags, declared here
// for help and completion and handed to config.Load as given, so the
// file < environment < flags precedence stays config's.
func serveCmd(env Env) *cobra.Command {
	cmd := leaf("serve", "run the service", func(cmd *cobra.Command, _ []string) error {
		var args []string
		cmd.Flags().Visit(func(f *pflag.Flag) {
			if f.Name != "help" {
				args = append(args, "--"+f.Name+"="+f.Value.String())
			}
		})
		cfg, err := config.Load(args, env.Getenv)
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		log := app.NewLogger(cfg, env.Stderr)
		return app.Run(cmd.Context(), cfg, app.Options{Stdout: env.Stdout, Log: log})
	})
	cmd.Long = "Run the service: a YAML file (--config or ZEROTOUCH_CONFIG), then ZEROTOUCH_* variables, then these flags; see deploy/zerotouch.yaml for every key."
	for _, f := range config.Flags() {
		if f.Bool {
			cmd.Flags().Bool(f.Name, false, f.Usage)
		} else {
			cmd.Flags().String(f.Name, "", f.Usage)
		}
	}
	return cmd
}
