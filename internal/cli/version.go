package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what `zerotouch version` says of the binary, from the
// module and VCS information Go records in it.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := info.Main.Version; v != "" {
		b.Version = v
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionString is one line: "zerotouch v1.2.3 (revision abc123def456,
// 2026-01-02T03:04:05Z, modified) go1.26 linux/amd64".
func versionString() string {
	b := readBuildInfo()
	s := "zerotouch " + b.Version
	if b.Revision != "" {
		s += " (revision " + b.Revision[:min(12, len(b.Revision))]
		if b.Time != "" {
			s += ", " + b.Time
		}
		if b.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + b.GoVersion + " " + b.Platform
}

var versionTable = table[buildInfo]{
	id: func(b buildInfo) string { return b.Version },
	cols: []column[buildInfo]{
		{"VERSION", func(b buildInfo) string { return b.Version }},
		{"REVISION", func(b buildInfo) string { return b.Revision }},
		{"TIME", func(b buildInfo) string { return b.Time }},
		{"MODIFIED", func(b buildInfo) string { return yesNo(b.Modified) }},
		{"GO", func(b buildInfo) string { return b.GoVersion }},
		{"PLATFORM", func(b buildInfo) string { return b.Platform }},
	},
}

func versionCmd(env Env) *cobra.Command {
	var o *output
	cmd := leaf("version", "print the version: module version, VCS revision and time, Go version (also --version)", func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("output") && !o.quiet {
			_, err := fmt.Fprintln(env.Stdout, versionString())
			return err
		}
		b := readBuildInfo()
		return versionTable.one(env.Stdout, o, b)
	})
	o = addOutput(cmd, "", "the module version")
	cmd.Flags().Lookup("output").Usage = "output format: table, json or yaml (default: one line)"
	return cmd
}
