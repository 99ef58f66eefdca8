package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/zerotouch/zerotouch/internal/app"
)

// TestAccessKeySources: --access-key wins, then ZEROTOUCH_ACCESS_KEY (read
// when the key is needed, not as the flag's default), then the data
// directory's owner key; a conn whose environment is cut off (bench
// --spawn's, talking to its own server) reads only the data directory.
func TestAccessKeySources(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, app.OwnerKeyFile), []byte("ztk.owner.file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		env     string
		args    []string
		noEnv   bool
		want    string
		wantErr bool
	}{
		{name: "flag over env", env: "ztk.env", args: []string{"--access-key", "ztk.flag"}, want: "ztk.flag"},
		{name: "env over file", env: "ztk.env", want: "ztk.env"},
		{name: "env with spaces", env: " ztk.env\n", want: "ztk.env"},
		{name: "file", want: "ztk.owner.file"},
		{name: "environment cut off", env: "ztk.env", noEnv: true, want: "ztk.owner.file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer), Getenv: func(k string) string {
				switch k {
				case "ZEROTOUCH_ACCESS_KEY":
					return tc.env
				case "ZEROTOUCH_DATA_DIR":
					return dir
				}
				return ""
			}}
			fs, c := opFlags("test", env)
			if _, err := parse(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			if f := fs.Lookup("access-key"); f.DefValue != "" {
				t.Fatalf("--access-key has the default %q", f.DefValue)
			}
			if tc.noEnv {
				c.getenv = nil
			}
			got, err := c.key()
			if err != nil || got != tc.want {
				t.Fatalf("key() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
