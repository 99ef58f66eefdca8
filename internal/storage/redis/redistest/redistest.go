// Package redistest starts real redis-server processes for tests: a
// standalone server on a free loopback port (with or without AOF
// persistence) and a 3-master Redis Cluster. Tests can kill, pause and
// restart a server to inject faults. When redis-server is missing the test
// is skipped with the reason, except under CI=true, where it fails.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Require returns the path of redis-server, or skips (fails under CI).
func Require(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is required in CI (apt-get install -y redis-server): %v", err)
		}
		t.Skipf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	return path
}

// Server is one redis-server process.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	Port    int
	args    []string
	cmd     *exec.Cmd
	stopped bool
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// FreePort asks the kernel for an unused loopback port.
func FreePort(t testing.TB) int {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may hand a just-closed port out again: never give the
		// same one twice in a process.
		if !handed[port] {
			handed[port] = true
			return port
		}
	}
	t.Fatal("no fresh port")
	return 0
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// Options shape a server.
type Options struct {
	// AOF turns on append-only persistence with fsync on every write.
	AOF bool
	// Extra arguments for redis-server.
	Extra []string
}

// Start runs a standalone server in a fresh directory; the test's cleanup
// kills it.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, dir: dir, Port: FreePort(t)}
	s.args = []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
		"--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning", "--logfile", filepath.Join(dir, "redis.log")}
	if opt.AOF {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	s.args = append(s.args, opt.Extra...)
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.stopped = false
	if err := WaitPing(s.Addr(), 10*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		s.t.Fatalf("redis-server on %s: %v\n%s", s.Addr(), err, log)
	}
}

// WaitPing polls PING until it answers or the deadline passes.
func WaitPing(addr string, within time.Duration) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL, as a crash would; idempotent.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if s.stopped {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and directory (so an
// AOF is replayed).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Pause stops the process (SIGSTOP): the network to Redis looks cut.
func (s *Server) Pause() {
	s.cmd.Process.Signal(syscall.SIGSTOP)
	s.stopped = true
}

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() {
	s.cmd.Process.Signal(syscall.SIGCONT)
	s.stopped = false
}

// PID is the process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Cluster is a Redis Cluster of three masters.
type Cluster struct {
	Nodes []*Server
}

// Addrs lists the masters' addresses.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// StartCluster starts three cluster-enabled servers and joins them, each
// owning a third of the slots, and waits for cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	busPorts := make([]int, 3)
	for i := range 3 {
		busPorts[i] = FreePort(t)
		c.Nodes = append(c.Nodes, Start(t, Options{Extra: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i),
			"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(busPorts[i]),
		}}))
	}
	ctx := context.Background()
	ranges := [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}
	for i, n := range c.Nodes {
		cl := goredis.NewClient(&goredis.Options{Addr: n.Addr()})
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", ranges[i][0], ranges[i][1]).Err(); err != nil {
			t.Fatalf("ADDSLOTSRANGE: %v", err)
		}
		if i > 0 {
			if err := cl.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Nodes[0].Port, busPorts[0]).Err(); err != nil {
				t.Fatalf("MEET: %v", err)
			}
		}
		cl.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		cl := goredis.NewClient(&goredis.Options{Addr: n.Addr()})
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && clusterKnown(info) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster did not form: %v %s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
	return c
}

func clusterKnown(info string) int {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "cluster_known_nodes:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// StartSentinel runs a Sentinel that monitors master under the name
// "zerotouch" (quorum 1) and returns its address.
func StartSentinel(t testing.TB, master *Server) string {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	port := FreePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\nsentinel monitor zerotouch 127.0.0.1 %d 1\nsentinel down-after-milliseconds zerotouch 2000\n", port, master.Port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: dir, Port: port,
		args: []string{conf, "--sentinel", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")}}
	s.start()
	t.Cleanup(s.Kill)
	return s.Addr()
}
