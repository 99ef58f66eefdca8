package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"

	"github.com/zerotouch/zerotouch/internal/app"
)

// TestConnectionPrecedence: every connection setting is the first of its
// flag, its ZEROTOUCH_* variable, the context (--context, then
// ZEROTOUCH_CONTEXT, then the current one) and the data directory next
// to the server (or the default address). The access key is read from
// the environment when it is needed, never as a flag's default; a conn
// whose environment is cut off (bench --spawn's, talking to its own
// server) reads only the data directory.
func TestConnectionPrecedence(t *testing.T) {
	dir, cfgDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, app.OwnerKeyFile), []byte("ztk.owner.file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxKey := filepath.Join(t.TempDir(), "ctx.key")
	os.WriteFile(ctxKey, []byte("ztk.context.file\n"), 0o600)
	s := &contextStore{dir: cfgDir, Current: "cur", Contexts: []contextEntry{
		{Name: "cur", Server: "cur.example:8444", HTTPServer: "cur.example:8443", KeyFile: ctxKey},
		{Name: "other", Server: "other.example:8444"},
	}}
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	type want struct{ server, rest, http, ca, key string }
	defaultCA := filepath.Join(dir, "pki", "ca.pem")
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		noEnv bool
		want  want
	}{
		{name: "flags over everything", env: map[string]string{"ZEROTOUCH_ACCESS_KEY": "ztk.env", "ZEROTOUCH_SERVER": "env:1", "ZEROTOUCH_CA_FILE": "env.pem"},
			args: []string{"--access-key", "ztk.flag", "--server", "flag:1", "--ca-file", "flag.pem", "--http-server", "flag:2"},
			want: want{"flag:1", "flag:1", "flag:2", "flag.pem", "ztk.flag"}},
		{name: "env over the context", env: map[string]string{"ZEROTOUCH_ACCESS_KEY": " ztk.env\n", "ZEROTOUCH_SERVER": "env:1", "ZEROTOUCH_HTTP_SERVER": "env:2", "ZEROTOUCH_CA_FILE": "env.pem"},
			want: want{"env:1", "env:1", "env:2", "env.pem", "ztk.env"}},
		{name: "the current context over the data directory",
			want: want{"cur.example:8444", "cur.example:8443", "cur.example:8443", filepath.Join(cfgDir, "ca", "cur.pem"), "ztk.context.file"}},
		{name: "--context over the current one", args: []string{"--context", "other"}, env: map[string]string{"ZEROTOUCH_CONTEXT": "cur"},
			want: want{"other.example:8444", defaultRESTServer, defaultRESTServer, filepath.Join(cfgDir, "ca", "other.pem"), "ztk.owner.file"}},
		{name: "ZEROTOUCH_CONTEXT over the current one", env: map[string]string{"ZEROTOUCH_CONTEXT": "other"},
			want: want{"other.example:8444", defaultRESTServer, defaultRESTServer, filepath.Join(cfgDir, "ca", "other.pem"), "ztk.owner.file"}},
		{name: "no context: the data directory", env: map[string]string{"ZEROTOUCH_CONFIG_DIR": t.TempDir()},
			want: want{defaultGRPCServer, defaultRESTServer, defaultRESTServer, defaultCA, "ztk.owner.file"}},
		{name: "environment cut off", env: map[string]string{"ZEROTOUCH_ACCESS_KEY": "ztk.env"}, noEnv: true,
			want: want{defaultGRPCServer, defaultRESTServer, defaultRESTServer, filepath.Join(".zerotouch", "pki", "ca.pem"), "ztk.owner.file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer), Getenv: func(k string) string {
				if v, ok := tc.env[k]; ok {
					return v
				}
				switch k {
				case "ZEROTOUCH_DATA_DIR":
					return dir
				case "ZEROTOUCH_CONFIG_DIR":
					return cfgDir
				}
				return ""
			}}
			cmd := &cobra.Command{Use: "test"}
			c := addConn(cmd, env)
			c.addHTTPServer(cmd)
			if err := cmd.Flags().Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if f := cmd.Flags().Lookup("access-key"); f.DefValue != "" {
				t.Fatalf("--access-key has the default %q", f.DefValue)
			}
			if tc.noEnv {
				c.getenv = nil
			}
			if err := c.resolve(); err != nil {
				t.Fatal(err)
			}
			got := want{c.server, c.restServer, c.httpServer, c.caFile, ""}
			if tc.noEnv {
				c.dataDir = dir // as bench --spawn points it at its server's
			}
			key, err := c.key()
			if err != nil {
				t.Fatal(err)
			}
			got.key = key
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	// A context that does not exist is an error, not a silent default.
	env := Env{Getenv: func(k string) string {
		if k == "ZEROTOUCH_CONFIG_DIR" {
			return cfgDir
		}
		return ""
	}}
	cmd := &cobra.Command{Use: "test"}
	c := addConn(cmd, env)
	cmd.Flags().Parse([]string{"--context", "nowhere"})
	if err := c.resolve(); err == nil {
		t.Fatal("an unknown --context resolved")
	}
}
