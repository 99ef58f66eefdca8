package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/zerotouch/zerotouch/internal/cli"
)

// secretEnv holds a sentinel for every environment variable that carries
// a secret the CLI reads.
var secretEnv = map[string]string{
	"ZEROTOUCH_ACCESS_KEY": "ztk.sentinel-access-key.c2VjcmV0",
	"ZEROTOUCH_DPS_FROM":   "HostName=src.example;SharedAccessKeyName=o;SharedAccessKey=sentinel-dps-from",
	"ZEROTOUCH_DPS_TO":     "HostName=dst.example;SharedAccessKeyName=o;SharedAccessKey=sentinel-dps-to",
}

// zt runs the CLI with the secret sentinels in its environment and returns
// its exit status, standard output and standard error.
func zt(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return secretEnv[k] }}
	code = cli.Main(t.Context(), args, env)
	return code, out.String(), errOut.String()
}

// walk calls fn for every command of the tree, the root first.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// commandArgs is the command line that names c.
func commandArgs(c *cobra.Command) []string {
	return strings.Fields(strings.TrimPrefix(c.CommandPath(), c.Root().Name()))
}

// TestHelpEverywhere walks the whole command tree: -h and --help on every
// command exit 0, print to standard output (nothing to standard error),
// and list every flag the command takes; with every secret-bearing
// environment variable set to a sentinel, no help shows one, and every
// --access-key help says where the key is read from instead (issue #18).
func TestHelpEverywhere(t *testing.T) {
	root := cli.NewRoot(cli.Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer), Getenv: func(string) string { return "" }})
	var commands, withKey int
	walk(root, func(c *cobra.Command) {
		if c.Hidden || c.Name() == "__complete" || c.Name() == "__completeNoDesc" {
			return
		}
		commands++
		for _, help := range []string{"-h", "--help"} {
			args := append(commandArgs(c), help)
			line := strings.Join(args, " ")
			code, out, errOut := zt(t, args...)
			if code != 0 || errOut != "" || !strings.Contains(out, "Usage:") {
				t.Errorf("zerotouch %s: exit %d\nstdout: %s\nstderr: %s", line, code, out, errOut)
				continue
			}
			for k, v := range secretEnv {
				if strings.Contains(out, v) {
					t.Errorf("zerotouch %s prints the value of %s:\n%s", line, k, out)
				}
			}
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if !f.Hidden && !strings.Contains(out, "--"+f.Name+" ") && !strings.Contains(out, "--"+f.Name+"\n") {
					t.Errorf("zerotouch %s does not list --%s:\n%s", line, f.Name, out)
				}
			})
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() && !strings.Contains(out, "  "+sub.Name()+" ") {
					t.Errorf("zerotouch %s does not list its command %s:\n%s", line, sub.Name(), out)
				}
			}
			if help == "-h" && strings.Contains(out, "--access-key") {
				withKey++
				if !strings.Contains(out, "ZEROTOUCH_ACCESS_KEY") {
					t.Errorf("zerotouch %s: the --access-key help does not name ZEROTOUCH_ACCESS_KEY:\n%s", line, out)
				}
			}
		}
	})
	// The walk covered the operator commands, not only the top level.
	if commands < 60 || withKey < 40 {
		t.Fatalf("%d commands, %d with --access-key: the walk missed some", commands, withKey)
	}
	// The top-level help documents the exit statuses.
	_, out, _ := zt(t, "--help")
	for _, want := range []string{"Exit status:", "0  success", "1  the server refused", "2  usage error"} {
		if !strings.Contains(out, want) {
			t.Errorf("zerotouch --help does not say %q", want)
		}
	}
}

// TestUsageErrors: an unknown command or flag, a wrong argument count or
// a malformed flag value exit 2 naming the problem, on standard error,
// without a secret, before anything is sent anywhere; a group named
// without a subcommand prints its help there and exits 2.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "Manage (the management API):"},
		{[]string{"nonsense"}, `unknown command "nonsense"`},
		{[]string{"ca"}, "verification-code"},
		{[]string{"ca", "creat", "x"}, `did you mean "create"?`},
		{[]string{"access-key", "create"}, "want NAME, got 0"},
		{[]string{"access-key", "delete", "a", "b"}, "want ID, got 2"},
		{[]string{"webhook-secret"}, "want URL"},
		{[]string{"registration", "list", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"dps-import", "--no-such-flag"}, "unknown flag"},
		{[]string{"ca", "create", "x", "-cert", "ca.pem"}, "long flags take two dashes, --cert"},
		{[]string{"ca", "list", "-o", "xml"}, `"xml" is not table, json, yaml`},
		{[]string{"shard", "create", "x", "--state", "sleepy"}, `"sleepy" is not active, draining, disabled`},
		{[]string{"version", "extra"}, "takes no arguments"},
		{[]string{"completion", "tcsh"}, `unknown command "tcsh"`},
	} {
		code, out, errOut := zt(t, tc.args...)
		line := strings.Join(tc.args, " ")
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("zerotouch %s: exit %d, want 2 and %q on stderr\nstdout: %s\nstderr: %s", line, code, tc.want, out, errOut)
		}
		for k, v := range secretEnv {
			if strings.Contains(errOut, v) {
				t.Errorf("zerotouch %s prints the value of %s:\n%s", line, k, errOut)
			}
		}
	}
}

// TestDPSImportReadsEnvAfterParsing: the connection strings still come from
// the environment (the sentinels are not valid ones, so the import stops
// at parsing them, before any connection), and the refusal does not echo
// them.
func TestDPSImportReadsEnvAfterParsing(t *testing.T) {
	code, _, out := zt(t, "dps-import")
	if code != 2 || !strings.Contains(out, "--from:") || strings.Contains(out, "is required") {
		t.Fatalf("exit %d, want the environment's --from parsed:\n%s", code, out)
	}
	for k, v := range secretEnv {
		if strings.Contains(out, v) {
			t.Errorf("dps-import prints the value of %s:\n%s", k, out)
		}
	}
}

// TestVersionAndCompletion: version (and --version) print the build's
// version on one line, -o json its parts; completion writes a script for
// each shell cobra supports.
func TestVersionAndCompletion(t *testing.T) {
	code, line, _ := zt(t, "version")
	if code != 0 || !strings.HasPrefix(line, "zerotouch ") || !strings.Contains(line, "go1.") || strings.Count(line, "\n") != 1 {
		t.Fatalf("version: exit %d: %q", code, line)
	}
	if code, out, _ := zt(t, "--version"); code != 0 || out != line {
		t.Fatalf("--version: exit %d: %q, want %q", code, out, line)
	}
	if code, out, _ := zt(t, "version", "-o", "json"); code != 0 || !strings.Contains(out, `"goVersion": "go1.`) || !strings.Contains(out, `"version": `) {
		t.Fatalf("version -o json: exit %d: %s", code, out)
	}
	for shell, want := range map[string]string{
		"bash": "complete -o default -F __start_zerotouch zerotouch", "zsh": "#compdef zerotouch",
		"fish": "complete -c zerotouch", "powershell": "Register-ArgumentCompleter",
	} {
		code, out, errOut := zt(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) || errOut != "" {
			t.Errorf("completion %s: exit %d, want %q in the script\nstderr: %s", shell, code, want, errOut)
		}
	}
	// The completion machinery itself: the commands, and a flag's values.
	if code, out, _ := zt(t, "__complete", "shard", "create", "x", "--state", ""); code != 0 || !strings.Contains(out, "draining") {
		t.Errorf("completing --state: exit %d: %s", code, out)
	}
	if code, out, _ := zt(t, "__complete", "c"); code != 0 || !strings.Contains(out, "context") || !strings.Contains(out, "ca") {
		t.Errorf("completing commands: exit %d: %s", code, out)
	}
}
