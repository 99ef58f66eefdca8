package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/cli/dpsclient"
)

// dpsImportCmd copies enrollment groups and individual enrollments from
// a DPS service API (Azure DPS) into Zerotouch's.
func dpsImportCmd(env Env) *cobra.Command {
	var from, to string
	var c *conn
	cmd := leaf("dps-import", "copy enrollment groups and enrollments from Azure DPS (its service API)", func(cmd *cobra.Command, _ []string) error {
		return runDPSImport(cmd.Context(), env, c, from, to)
	})
	c = addConn(cmd, env)
	// Connection strings hold secrets: read from the environment after
	// parsing, never flag defaults (which help prints).
	cmd.Flags().StringVar(&from, "from", "", "the source DPS's service connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…) (default: read from ZEROTOUCH_DPS_FROM)")
	cmd.Flags().StringVar(&to, "to", "", "Zerotouch's DPS connection string (default: read from ZEROTOUCH_DPS_TO if set, else the data directory's owner.dps)")
	return cmd
}

func runDPSImport(ctx context.Context, env Env, c *conn, from, to string) error {
	if err := c.resolve(); err != nil {
		return err
	}
	from, to = or(from, env.Getenv("ZEROTOUCH_DPS_FROM")), or(to, env.Getenv("ZEROTOUCH_DPS_TO"))
	if from == "" {
		return usagef("--from (or ZEROTOUCH_DPS_FROM) is required")
	}
	if to == "" {
		raw, err := os.ReadFile(filepath.Join(c.dataDir, app.OwnerDPSFile))
		if err != nil {
			return fmt.Errorf("no target: pass --to or run next to the data directory (%w)", err)
		}
		to = strings.TrimSpace(string(raw))
	}
	cfg, err := c.tlsConfig(nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	src, err := dpsclient.New(from, hc)
	if err != nil {
		return usagef("--from: %v", err)
	}
	dst, err := dpsclient.New(to, hc)
	if err != nil {
		return usagef("--to: %v", err)
	}
	var ok, refused int
	err = dpsclient.Import(ctx, src, dst, func(r dpsclient.ImportResult) {
		if r.Err != nil {
			refused++
			fmt.Fprintf(env.Stdout, "REFUSED %s %s: %v\n", r.Kind, r.ID, r.Err)
			return
		}
		ok++
		fmt.Fprintf(env.Stdout, "imported %s %s\n", r.Kind, r.ID)
		for _, n := range r.Notes {
			fmt.Fprintf(env.Stdout, "  note: %s\n", n)
		}
	})
	fmt.Fprintf(env.Stdout, "%d imported, %d refused\n", ok, refused)
	if err != nil {
		return err
	}
	if refused > 0 {
		return fmt.Errorf("%d enrollments were refused (see above); fix them and run again (imports are idempotent)", refused)
	}
	return nil
}
