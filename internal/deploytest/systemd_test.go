package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit runs systemd-analyze verify on deploy/systemd/zerotouch.service
// in a root of its own (the unit, the zerotouch binary it starts, and this
// machine's system units, which verify loads the unit's dependencies from):
// any complaint fails, an unknown key or a bad value among them. Then
// systemd-analyze security scores the unit's sandbox offline, and the score
// must stay at "OK" (at most 2.0 of 10). This container has no systemd
// running: the unit is checked, not started.
func TestSystemdUnit(t *testing.T) {
	analyze := require(t, "systemd-analyze", "apt-get install systemd")
	repo := root(t)
	unit := filepath.Join(repo, "deploy", "systemd", "zerotouch.service")
	body, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=zerotouch", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"ExecStart=/usr/local/bin/zerotouch serve --config /etc/zerotouch/zerotouch.yaml"} {
		if !strings.Contains(string(body), "\n"+want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	units := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(units, "multi-user.target")); err != nil {
		units = "/lib/systemd/system"
	}
	sysroot := t.TempDir()
	for _, d := range []string{"usr/local/bin", "etc/systemd/system", "usr/lib/systemd"} {
		os.MkdirAll(filepath.Join(sysroot, d), 0o755)
	}
	run(t, repo, nil, "cp", "-a", units, filepath.Join(sysroot, "usr/lib/systemd/system"))
	run(t, repo, nil, "cp", unit, filepath.Join(sysroot, "etc/systemd/system/zerotouch.service"))
	// verify checks that ExecStart names an executable; which one does
	// not matter to it (this test's own binary stands in).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run(t, repo, nil, "cp", self, filepath.Join(sysroot, "usr/local/bin/zerotouch"))

	// A warning (an unknown key, a value it ignores) is not an error to
	// verify, only a line on standard error: any output fails.
	if out, err := runCombined(repo, analyze, "verify", "--root="+sysroot, "/etc/systemd/system/zerotouch.service"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify says:\n%s (%v)", out, err)
	}
	out, err := runCombined(repo, analyze, "security", "--offline=true", "--threshold=20", "--no-pager", "--root="+sysroot, "/etc/systemd/system/zerotouch.service")
	if err != nil {
		t.Errorf("systemd-analyze security: the sandbox scores above 2.0: %v\n%s", err, out)
	}
	if i := strings.Index(out, "Overall exposure level"); i >= 0 {
		t.Log(strings.TrimSpace(out[i:]))
	}
}
