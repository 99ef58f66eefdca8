package cli_test

import (
	"bytes"
	"strings"
	"testing"

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
// its exit status and everything it printed.
func zt(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	env := cli.Env{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return secretEnv[k] }}
	code := cli.Main(t.Context(), args, env)
	return code, out.String()
}

// commandNames lists the commands from the top-level usage.
func commandNames(t *testing.T) []string {
	t.Helper()
	_, out := zt(t, "help")
	_, list, ok := strings.Cut(out, "commands:\n")
	if !ok {
		t.Fatalf("no command list in %q", out)
	}
	var names []string
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		names = append(names, strings.Fields(line)[0])
	}
	return names
}

// subcommands lists a command's subcommands from its refusal of "-h" as a
// subcommand ("want one of a, b, c"); nil for a command without any.
func subcommands(t *testing.T, name string) []string {
	t.Helper()
	_, out := zt(t, name, "-h")
	_, list, ok := strings.Cut(out, "want one of ")
	if !ok {
		return nil
	}
	return strings.Split(strings.TrimSpace(list), ", ")
}

// TestHelpShowsNoSecret: with every secret-bearing environment variable set
// to a sentinel, the help of every command and subcommand (including each
// one with --access-key) shows none of them, and says where the access key
// is read from instead (issue #18).
func TestHelpShowsNoSecret(t *testing.T) {
	names := commandNames(t)
	if len(names) < 10 {
		t.Fatalf("only %d commands in the usage: %v", len(names), names)
	}
	var helps, withKey int
	for _, name := range names {
		invocations := [][]string{{name, "-h"}}
		for _, sub := range subcommands(t, name) {
			invocations = append(invocations, []string{name, sub, "-h"}, []string{name, sub, "--help"})
		}
		for _, args := range invocations {
			code, out := zt(t, args...)
			cmd := strings.Join(args, " ")
			if code == 0 {
				t.Errorf("zerotouch %s: exit 0, want a usage status", cmd)
			}
			for k, v := range secretEnv {
				if strings.Contains(out, v) {
					t.Errorf("zerotouch %s prints the value of %s:\n%s", cmd, k, out)
				}
			}
			if strings.Contains(out, "--") {
				helps++
			}
			if strings.Contains(out, "--access-key") {
				withKey++
				if !strings.Contains(out, "ZEROTOUCH_ACCESS_KEY") {
					t.Errorf("zerotouch %s: the --access-key help does not name ZEROTOUCH_ACCESS_KEY:\n%s", cmd, out)
				}
			}
		}
	}
	// The walk covered the operator commands, not only the top level.
	if withKey < 20 || helps < withKey {
		t.Fatalf("%d helps, %d with --access-key: the walk missed the subcommands", helps, withKey)
	}
}

// TestHelpAfterParseError: a usage error (which prints the flags for a
// wrong argument count) shows no secret either.
func TestHelpAfterParseError(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		withHelp bool
	}{
		{[]string{"access-key", "create"}, true},
		{[]string{"access-key", "delete", "a", "b"}, true},
		{[]string{"webhook-secret"}, true},
		{[]string{"registration", "list", "--no-such-flag"}, false},
		{[]string{"dps-import", "--no-such-flag"}, false},
	} {
		args := tc.args
		code, out := zt(t, args...)
		if code != 2 || tc.withHelp != strings.Contains(out, "--access-key") {
			t.Fatalf("zerotouch %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		for k, v := range secretEnv {
			if strings.Contains(out, v) {
				t.Errorf("zerotouch %s prints the value of %s:\n%s", strings.Join(args, " "), k, out)
			}
		}
	}
}

// TestDPSImportReadsEnvAfterParsing: the connection strings still come from
// the environment (the sentinels are not valid ones, so the import stops
// at parsing them, before any connection), and the refusal does not echo
// them.
func TestDPSImportReadsEnvAfterParsing(t *testing.T) {
	code, out := zt(t, "dps-import")
	if code != 2 || !strings.Contains(out, "--from:") || strings.Contains(out, "is required") {
		t.Fatalf("exit %d, want the environment's --from parsed:\n%s", code, out)
	}
	for k, v := range secretEnv {
		if strings.Contains(out, v) {
			t.Errorf("dps-import prints the value of %s:\n%s", k, out)
		}
	}
}
