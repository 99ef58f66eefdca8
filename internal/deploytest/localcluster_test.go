package deploytest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// portsFree reports whether every port is free on loopback.
func portsFree(ports ...int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// running reports whether a process runs: it exists and is no zombie
// (exited, not yet reaped by its new parent).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndex(s, ") ")
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// clusterPorts are the ports deploy/local-cluster.sh takes from a base.
func clusterPorts(base int) []int {
	ports := []int{}
	for _, off := range []int{1, 2, 3, 10001, 10002, 10003, 11, 12, 13, 14, 21, 22, 23, 24} {
		ports = append(ports, base+off)
	}
	return ports
}

// TestLocalCluster runs deploy/local-cluster.sh: up (a 3-master Redis
// Cluster, two replicas, the hub agent, as real processes), status; then,
// with the CLI as an operator would, a verified CA and a group, and
// devices registered through each replica (gRPC and REST), each found
// through the other replica and delivered to the hub agent (following
// replica 2) in its replica file; then down, after which none of the
// processes is left and status says so.
func TestLocalCluster(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, pkg string }{{"redis-server", "redis-server"}, {"redis-cli", "redis-tools"}, {"openssl", "openssl"}, {"curl", "curl"}} {
		require(t, c.name, "apt-get install "+c.pkg)
	}
	repo := root(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "zerotouch")
	run(t, repo, nil, "go", "build", "-o", bin, "./cmd/zerotouch")
	base := 0
	for range 50 {
		b := 20000 + 100*rand.IntN(300)
		if portsFree(clusterPorts(b)...) {
			base = b
			break
		}
	}
	if base == 0 {
		t.Fatal("no free port range")
	}
	dir := filepath.Join(tmp, "cluster")
	env := []string{"ZT_CLUSTER_DIR=" + dir, "ZT_BIN=" + bin, "ZT_PORT_BASE=" + strconv.Itoa(base)}
	script := filepath.Join(repo, "deploy", "local-cluster.sh")

	// down runs whatever happens, and leaves nothing running.
	pids := map[string]int{}
	t.Cleanup(func() {
		if entries, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid")); len(entries) > 0 {
			for _, f := range entries {
				raw, _ := os.ReadFile(f)
				if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
					pids[filepath.Base(f)] = pid
				}
			}
		}
		start := time.Now()
		out, err := runErr(repo, env, "bash", script, "down")
		if err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
		t.Logf("down (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
		for name, pid := range pids {
			if running(pid) {
				t.Errorf("%s: process %d still runs after down", name, pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if !portsFree(clusterPorts(base)...) {
			t.Errorf("ports of %d+ are still taken after down", base)
		}
		if out, err := runErr(repo, env, "bash", script, "status"); err == nil {
			t.Errorf("status after down succeeds:\n%s", out)
		}
	})

	start := time.Now()
	out := run(t, repo, env, "bash", script, "up")
	t.Logf("up (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	out = run(t, repo, env, "bash", script, "status")
	for _, want := range []string{"redis cluster: ok", "replica 1: ready", "replica 2: ready", "hub agent: up"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}
	grpc := func(n int) string { return fmt.Sprintf("127.0.0.1:%d", base+10*n+1) }
	rest := func(n int) string { return fmt.Sprintf("127.0.0.1:%d", base+10*n+2) }

	// The CLI's environment, from the script.
	var cliEnv []string
	for _, line := range strings.Split(strings.TrimSpace(run(t, repo, env, "bash", script, "env")), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			t.Fatalf("env: %q", line)
		}
		cliEnv = append(cliEnv, kv)
	}
	work := filepath.Join(tmp, "operator")
	os.MkdirAll(work, 0o700)
	zt := func(args ...string) string { t.Helper(); return run(t, work, cliEnv, bin, args...) }
	zt("pki", "ca", "--cn", "Local Devices Root", "--out", "acme")
	zt("ca", "create", "acme-root", "--cert", "acme/ca.pem")
	code := regexp.MustCompile(`(?i)verification_?code"?\s*[:=]?\s*"?([0-9A-F]{8,})`).FindStringSubmatch(zt("ca", "verification-code", "acme-root"))
	if code == nil {
		t.Fatal("no verification code")
	}
	zt("pki", "proof", "--ca", "acme", "--code", code[1], "--out", "proof.pem")
	zt("ca", "verify", "acme-root", "--cert", "proof.pem")
	zt("group", "create", "acme", "--ca", "acme-root")

	// Devices through replica 1 and replica 2, each seen from the other.
	var devices []string
	for n := 1; n <= 2; n++ {
		for i, transport := range []string{"grpc", "rest", "grpc"} {
			id := fmt.Sprintf("dev-%d-%d", n, i)
			devices = append(devices, id)
			zt("pki", "device", "--ca", "acme", "--id", id, "--out", id)
			server := grpc(n)
			if transport == "rest" {
				server = rest(n)
			}
			if out := zt("device", "register", "--transport", transport, "--server", server, "--cert", id+"/device.pem", "--key", id+"/device-key.pem"); !strings.Contains(out, "local-1") {
				t.Errorf("%s through replica %d (%s): %s", id, n, transport, out)
			}
			other := 3 - n
			if out := zt("registration", "get", id, "--server", grpc(other)); !strings.Contains(out, id) || !strings.Contains(out, "local-1") {
				t.Errorf("%s (registered through replica %d) as replica %d has it: %s", id, n, other, out)
			}
		}
	}

	// The hub agent follows replica 2 and has every device, including
	// those registered through replica 1.
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, _ := os.ReadFile(filepath.Join(dir, "hub", "identities.json"))
		missing := []string{}
		for _, id := range devices {
			if !strings.Contains(string(raw), `"`+id+`"`) {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "hub", "hub.log"))
			t.Fatalf("the hub agent's replica lacks %v:\n%s", missing, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
