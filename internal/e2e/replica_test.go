package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// zerotouchBinary builds cmd/zerotouch once per test run.
func zerotouchBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "zerotouch-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "zerotouch")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/zerotouch/zerotouch/cmd/zerotouch").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// replica is one `zerotouch serve` process.
type replica struct {
	t        *testing.T
	cmd      *exec.Cmd
	dataDir  string
	grpcAddr string
	httpAddr string
	out      *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cluster is a Redis server, a server certificate, and replicas on them.
type cluster struct {
	t        *testing.T
	redis    *redistest.Server
	dir      string
	certFile string
	keyFile  string
	roots    *pkiRoots
	replicas []*replica
}

type pkiRoots struct{ ca *pki.Issued }

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	bin := zerotouchBinary(t)
	c := &cluster{t: t, redis: redistest.Start(t, redistest.Options{AOF: true}), dir: t.TempDir()}
	ca, err := pki.NewCA("replica test CA", nil, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.NewServer([]string{"localhost", "127.0.0.1"}, ca, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c.roots = &pkiRoots{ca: ca}
	if _, err := secrets.LoadOrCreate(filepath.Join(c.dir, "data.key"), true); err != nil {
		t.Fatal(err)
	}
	c.certFile, c.keyFile = filepath.Join(c.dir, "server.pem"), filepath.Join(c.dir, "server-key.pem")
	if err := srv.WriteFiles(c.certFile, c.keyFile); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c.replicas = append(c.replicas, c.start(bin, i))
	}
	return c
}

func (c *cluster) start(bin string, i int) *replica {
	return c.startAt(bin, i, fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(c.t)), fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(c.t)))
}

// restart kills replica i (SIGKILL: no graceful stop) and starts it again
// on the same addresses.
func (c *cluster) restart(i int) {
	old := c.replicas[i]
	old.cmd.Process.Kill()
	old.cmd.Wait()
	c.replicas[i] = c.startAt(zerotouchBinary(c.t), i, old.grpcAddr, old.httpAddr)
}

func (c *cluster) startAt(bin string, i int, grpcAddr, httpAddr string) *replica {
	t := c.t
	t.Helper()
	r := &replica{t: t, dataDir: filepath.Join(c.dir, fmt.Sprintf("replica-%d", i)), out: &syncBuf{}, grpcAddr: grpcAddr, httpAddr: httpAddr}
	cfg := fmt.Sprintf(`data_dir: %s
listen:
  grpc: %s
  http: %s
  mqtt: 127.0.0.1:0
  metrics: 127.0.0.1:0
tls:
  cert_file: %s
  key_file: %s
storage:
  backend: redis
  redis:
    addrs: [%s]
secrets:
  data_key_file: %s
log:
  level: warn
device:
  rate_limit:
    per_ip: {limit: 0}   # every test device comes from 127.0.0.1
shutdown_grace: 5s
dps:
  id_scope: `+idScope+`
hubs:
  poll_interval: 50ms
`, r.dataDir, r.grpcAddr, r.httpAddr, c.certFile, c.keyFile, c.redis.Addr(), filepath.Join(c.dir, "data.key"))
	cfgFile := filepath.Join(c.dir, fmt.Sprintf("replica-%d.yaml", i))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "serve", "--config", cfgFile)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		if t.Failed() {
			t.Logf("replica %d output:\n%s", i, r.out.String())
		}
	})
	if err := c.waitReady(r, 30*time.Second); err != nil {
		t.Fatalf("replica %d: %v\n%s", i, err, r.out.String())
	}
	return r
}

func (c *cluster) tlsConfig() *tls.Config {
	roots := newPool(c.roots.ca)
	return &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// waitReady polls /readyz until it answers 200.
func (c *cluster) waitReady(r *replica, within time.Duration) error {
	tr := &http.Transport{TLSClientConfig: c.tlsConfig()}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for {
		res, err := client.Get("https://" + r.httpAddr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: %s", res.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// env returns a test environment talking to replica i, authenticated with
// the owner key that the first replica created.
func (c *cluster) env(i int) *env {
	t := c.t
	raw, err := os.ReadFile(filepath.Join(c.replicas[0].dataDir, "owner.key"))
	if err != nil {
		t.Fatalf("owner key: %v", err)
	}
	e := &env{t: t, grpcAddr: c.replicas[i].grpcAddr, httpAddr: c.replicas[i].httpAddr, roots: newPool(c.roots.ca),
		ownerKey: strings.TrimSpace(string(raw)), now: time.Now()}
	e.admin = e.dial(nil)
	t.Cleanup(func() { e.admin.Close() })
	return e
}
