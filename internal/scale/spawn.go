package scale

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zerotouch/zerotouch/internal/pki"
)

// Server is a spawned `zerotouch serve` on a seeded store.
type Server struct {
	GRPC, HTTP string
	PID        int
	Dir        string
	RootCAs    *x509.CertPool
	CAFile     string
	AccessKey  string
	// Ready is how long it took from exec to /readyz answering 200.
	Ready time.Duration
	cmd   *exec.Cmd
	stop  func() error
}

// serverConfig is the spawned server's zerotouch.yaml: dev mode (its own
// PKI and owner key in dir), rate limits off (every device connects from
// 127.0.0.1), metrics off.
func serverConfig(dir, grpcAddr, httpAddr, mqttAddr string, o *Options) string {
	conf := fmt.Sprintf("dev: true\ndata_dir: %s\nlisten: {grpc: %q, http: %q, mqtt: %q, metrics: \"\"}\nlog: {level: warn, format: json}\n"+
		"device: {rate_limit: {per_ip: {limit: 0}, per_registration: {limit: 0}}}\nstorage:\n  backend: %s\n", dir, grpcAddr, httpAddr, mqttAddr, o.Storage)
	if o.Storage == "redis" {
		conf += fmt.Sprintf("  redis: {addrs: [%s], cluster: %t, key_prefix: %q}\n", strings.Join(o.RedisAddrs, ", "), o.redisCluster(), o.keyPrefix())
	}
	return conf
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Spawn starts o.Binary serve on dir (the store seeded there, or Redis)
// and waits until it is ready. A server that exits before it is ready is
// started again on other ports, twice at most: a port found free can be
// taken by another process before the server binds it.
func Spawn(ctx context.Context, o *Options, dir string) (*Server, error) {
	var err error
	for range 3 {
		var s *Server
		if s, err = spawnOnce(ctx, o, dir); err == nil || !errors.Is(err, errExited) {
			return s, err
		}
	}
	return nil, err
}

var errExited = errors.New("spawned server exited before it was ready")

func spawnOnce(ctx context.Context, o *Options, dir string) (*Server, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	conf := filepath.Join(dir, "zerotouch.yaml")
	if err := os.WriteFile(conf, []byte(serverConfig(dir, addrs[0], addrs[1], addrs[2], o)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "serve", "--config", conf)
	cmd.Env = append(os.Environ(), o.BinaryEnv...)
	cmd.Stdout, cmd.Stderr = io.Discard, o.serverLog()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn server: %w", err)
	}
	s := &Server{GRPC: addrs[0], HTTP: addrs[1], PID: cmd.Process.Pid, Dir: dir, CAFile: filepath.Join(dir, "pki", "ca.pem"), cmd: cmd}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.cmd = cmd
	deadline := time.Now().Add(o.startTimeout())
	for {
		err := s.ready(ctx)
		if err == nil {
			s.Ready = time.Since(start)
			break
		}
		select {
		case werr := <-exited:
			return nil, fmt.Errorf("%w: %v (%v)", errExited, werr, err)
		case <-ctx.Done():
			s.kill(exited)
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill(exited)
			return nil, fmt.Errorf("spawned server not ready after %s: %w", o.startTimeout(), err)
		}
	}
	key, err := os.ReadFile(filepath.Join(dir, "owner.key"))
	if err != nil {
		s.kill(exited)
		return nil, fmt.Errorf("spawned server's owner key: %w", err)
	}
	s.AccessKey = strings.TrimSpace(string(key))
	s.stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return nil
	}
	return s, nil
}

func (s *Server) kill(exited chan error) {
	_ = s.cmd.Process.Kill()
	<-exited
}

// ready asks /readyz once (the dev PKI's CA appears when the server made it).
func (s *Server) ready(ctx context.Context) error {
	if s.RootCAs == nil {
		cas, err := pki.LoadCertificates(s.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		for _, c := range cas {
			pool.AddCert(c)
		}
		s.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: s.TLS()}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.HTTP+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		s.RootCAs = nil // the CA may not have been complete yet
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", res.Status)
	}
	return nil
}

// TLS is a client's view of the server.
func (s *Server) TLS() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Stop ends the server (SIGTERM, then waits).
func (s *Server) Stop() error {
	if s.stop == nil {
		return nil
	}
	err := s.stop()
	s.stop = nil
	return err
}

// Memory is a process's resident memory from /proc/<pid>/status.
type Memory struct {
	RSS, HWM int64 // bytes
	// Anon is the resident anonymous memory (the heap, stacks): RSS less
	// the mapped files' pages (the embedded store's mmap'd file), which
	// the kernel can drop.
	Anon int64
}

// ReadMemory reads VmRSS and VmHWM (peak resident) of pid.
func ReadMemory(pid int) (Memory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb * 1024
		case "VmHWM:":
			m.HWM = kb * 1024
		case "RssAnon:":
			m.Anon = kb * 1024
		}
	}
	if m.RSS == 0 {
		return m, errors.New("no VmRSS in /proc status")
	}
	return m, nil
}

// ResetPeak resets pid's VmHWM to its current RSS (Linux 4.0+: writing 5
// to clear_refs), so the next ReadMemory's HWM is the peak since now.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0o600)
}
