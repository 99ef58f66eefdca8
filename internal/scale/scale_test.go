package scale_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/scale"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// asZerotouch makes this test binary act as the zerotouch command when
// set: `bench scale` spawns itself (os.Executable) as `zerotouch serve`
// and as TPM workers.
const asZerotouch = "ZT_SCALE_TEST_AS_ZEROTOUCH"

func TestMain(m *testing.M) {
	if os.Getenv(asZerotouch) == "1" {
		os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Stdin: os.Stdin}))
	}
	os.Exit(m.Run())
}

// runScale runs `zerotouch bench scale` with args in this process (its
// children are this binary acting as zerotouch) and returns its output.
func runScale(t *testing.T, args ...string) string {
	t.Helper()
	t.Setenv(asZerotouch, "1")
	var out, errOut bytes.Buffer
	code := cli.Main(t.Context(), append([]string{"bench", "scale", "--work-dir", t.TempDir()}, args...), cli.Env{Stdout: &out, Stderr: &errOut, Getenv: os.Getenv})
	if code != 0 {
		t.Fatalf("bench scale %v: exit %d\n%s\n%s", args, code, errOut.String(), out.String())
	}
	return out.String()
}

// checkTables checks that every metric's table came out with a row per
// size (per list for pages), and that the figures are whole: every device
// seeded, every registration succeeded, every list walked to its end with
// every item, the snapshot holding the shard's devices in pages of at
// most the server's page bound.
func checkTables(t *testing.T, out string, cluster bool) {
	t.Helper()
	for _, title := range scale.Tables {
		if want := title != "Redis Cluster balance" || cluster; strings.Contains(out, "### "+title) != want {
			t.Errorf("table %q present: %t, want %t\n%s", title, !want, want, out)
		}
	}
	for _, line := range []string{"| 200 | 200 | 200 |", "| X.509 group device | 12 / 12 |", "| TPM individual enrollment | 2 / 2 |"} {
		if !strings.Contains(out, line) {
			t.Errorf("no %q in\n%s", line, out)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestScaleEmbedded runs the scale command at CI size on the embedded
// store, and checks the figures are whole through its JSON.
func TestScaleEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns servers")
	}
	args := []string{"--sizes", "200,800", "--x509-devices", "12", "--tpm-devices", "2", "--tpm-concurrency", "2", "--page-size", "50"}
	checkTables(t, runScale(t, args...), false)

	var points []*scale.Point
	if err := json.Unmarshal([]byte(runScale(t, "--sizes", "400", "--x509-devices", "0", "--tpm-devices", "0", "--shards", "2", "--page-size", "50", "--json")), &points); err != nil {
		t.Fatal(err)
	}
	checkPoint(t, points[0], 400, 2, 50)
}

// checkPoint checks one size's figures are whole.
func checkPoint(t *testing.T, p *scale.Point, n, shards, pageSize int) {
	t.Helper()
	if m := p.Seed.Mix; m.X509+m.TPM != n || m.TPM+m.Enrolled != n {
		t.Errorf("seeded %+v, want %d registrations and %d individual enrollments", m, n, n)
	}
	if p.Bytes.Total <= 0 || p.Bytes.Log <= 0 || p.Bytes.LogEvents != int64(n) {
		t.Errorf("bytes %+v: want a positive total and log, and %d events (one per registration)", p.Bytes, n)
	}
	want := map[string]int{"enrollments, native list": n, "enrollments, DPS query": n, "registrations, native list": n,
		"registrations of a shard, native list": n / shards, "registrations of a group, native list": n / 2, "registrations of a group, DPS query": n / 2}
	for _, pg := range p.Pages {
		if pg.Items != want[pg.Name] || pg.Pages < pg.Items/pageSize || pg.P50 <= 0 || pg.P50 > pg.P99 {
			t.Errorf("%s: %+v, want %d items in pages of %d", pg.Name, pg, want[pg.Name], pageSize)
		}
		delete(want, pg.Name)
	}
	if len(want) > 0 {
		t.Errorf("lists not walked: %v", want)
	}
	// The server answers a snapshot page with at most 500 identities
	// (maxPageSize), whatever the hub asks (1,000): it holds one page.
	if s := p.Snapshot; s.Identities != n/shards || s.Pages < (s.Identities+499)/500 || s.Peak <= 0 || p.Startup <= 0 || p.StartupMem.RSS <= 0 {
		t.Errorf("snapshot %+v, start-up %s %+v", s, p.Startup, p.StartupMem)
	}
}

// TestScaleRedis runs it on a standalone Redis and on a 3-master Redis
// Cluster (whose balance table it checks).
func TestScaleRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns servers")
	}
	srv := redistest.Start(t, redistest.Options{})
	// Interleaved rounds: both sizes' servers run at once on one Redis,
	// each size under its own key prefix.
	out := runScale(t, "--storage", "redis", "--redis-addrs", srv.Addr(), "--redis-flush", "--sizes", "200,800", "--rounds", "3",
		"--x509-devices", "12", "--tpm-devices", "2", "--tpm-concurrency", "2", "--page-size", "50")
	if !strings.Contains(out, "median of 3 interleaved rounds") {
		t.Error("the rate table does not say it is the median of the rounds")
	}
	checkTables(t, out, false)

	cl := redistest.StartCluster(t)
	var points []*scale.Point
	js := runScale(t, "--storage", "redis", "--redis-addrs", strings.Join(cl.Addrs(), ","), "--sizes", "400", "--x509-devices", "0", "--tpm-devices", "0",
		"--page-size", "50", "--json")
	if err := json.Unmarshal([]byte(js), &points); err != nil {
		t.Fatal(err)
	}
	p := points[0]
	checkPoint(t, p, 400, 4, 50)
	if len(p.Masters) != 3 {
		t.Fatalf("%d masters measured, want 3: %+v", len(p.Masters), p.Masters)
	}
	for _, m := range p.Masters {
		if m.Keys == 0 || m.UsedMemory <= 0 {
			t.Errorf("master %+v holds nothing: the devices are not spread", m)
		}
	}
}
