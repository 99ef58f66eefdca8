package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zerotouch/zerotouch/internal/bench"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
)

// benchOpts are bench's flags.
type benchOpts struct {
	mqttServer, storage, redisAddrs, serverPIDs, storeFile, metricsURL, serverLog string
	transport, attestation, tpmEK, idScope, mode, kex                             string
	serverMetrics, spawn, reuse, asJSON, tpmWorker, csr                           bool
	devices, concurrency, rounds                                                  int
	rate                                                                          float64
	duration                                                                      time.Duration
}

// benchCmd is `zerotouch bench`: the load generator. With --spawn it
// starts its own `zerotouch serve` as a separate process (so that server
// CPU can be read from /proc) on a fresh data directory.
func benchCmd(env Env) *cobra.Command {
	var b benchOpts
	var c *conn
	cmd := leaf("bench", "load generator: registrations and the TLS ceiling, over fresh connections", func(cmd *cobra.Command, _ []string) error {
		return runBench(cmd.Context(), env, c, cmd.Flags().Changed("devices"), &b)
	})
	c = addConn(cmd, env)
	c.addHTTPServer(cmd)
	fs := cmd.Flags()
	fs.StringVar(&b.mqttServer, "mqtt-server", "127.0.0.1:8883", "DPS over MQTT (TLS) address of the server, for --transport mqtt")
	fs.BoolVar(&b.spawn, "spawn", false, "start a zerotouch server as a child process for the run")
	choiceVar(cmd, &b.storage, "storage", "embedded", "with --spawn: embedded or redis", "embedded", "redis")
	fs.StringVar(&b.redisAddrs, "redis-addrs", "", "Redis addresses (comma-separated): the store for --spawn --storage redis, and measured for bytes per device")
	fs.StringVar(&b.serverPIDs, "server-pid", "", "server process IDs (comma-separated, one per replica), for CPU per operation (set by --spawn)")
	fs.StringVar(&b.storeFile, "store-file", "", "embedded store file, for bytes per device by the file's size (which grows in steps)")
	fs.StringVar(&b.metricsURL, "metrics-url", "", "the server's metrics (http://host:port/metrics), for the embedded store's bytes per device (set by --spawn)")
	fs.BoolVar(&b.serverMetrics, "server-metrics", true, "with --spawn: the server serves metrics (listen.metrics); false turns them off, to measure what they cost")
	choiceVar(cmd, &b.serverLog, "server-log", "warn", "with --spawn: the server's log level (JSON lines on this command's standard error); info logs a line per registration, to measure what logging costs",
		"debug", "info", "warn", "error")
	choiceVar(cmd, &b.transport, "transport", "both", "grpc, rest, dps, mqtt (DPS over MQTT, and the DPS HTTPS API to compare), or both (grpc and rest)",
		"grpc", "rest", "dps", "mqtt", "both")
	choiceVar(cmd, &b.attestation, "attestation", "x509", "x509 (a fresh TLS connection per device), symmetric (SAS tokens) or tpm (simulated TPMs: one worker process per device in flight)",
		"x509", "symmetric", "tpm")
	choiceVar(cmd, &b.tpmEK, "tpm-ek", "ecc", "with --attestation tpm: EK algorithm, rsa or ecc", "rsa", "ecc")
	fs.BoolVar(&b.reuse, "reuse", false, "symmetric keys: send each worker's devices over one TLS connection (a factory station or gateway)")
	fs.BoolVar(&b.csr, "csr", false, "every device sends a CSR and must get a certificate (the run makes an issuing CA and a credential policy; grpc, rest or dps; a TPM's CSR is for its bound key, signed in the TPM)")
	fs.StringVar(&b.idScope, "id-scope", "0ne00000001", "the server's DPS ID scope, for --transport dps and mqtt")
	choiceVar(cmd, &b.mode, "mode", "both", "register, ceiling or both", "register", "ceiling", "both")
	fs.IntVar(&b.devices, "devices", 2000, "devices per measurement")
	fs.IntVar(&b.concurrency, "concurrency", 8, "devices in flight (closed loop)")
	fs.Float64Var(&b.rate, "rate", 0, "open-loop arrival rate in devices per second (0: closed loop)")
	fs.IntVar(&b.rounds, "rounds", 1, "interleaved repetitions; medians are reported")
	fs.DurationVar(&b.duration, "duration", 0, "end each measurement after this long, or when its devices are used up (with --rate and no --devices: rate × duration devices)")
	choiceVar(cmd, &b.kex, "kex", "x25519", "key exchange devices offer: x25519, p256 or default", "x25519", "p256", "default")
	fs.BoolVar(&b.asJSON, "json", false, "print the reports as JSON")
	fs.BoolVar(&b.tpmWorker, "tpm-worker", false, "internal: serve TPM registrations on stdin/stdout for a parent bench (one simulator per process)")
	_ = fs.MarkHidden("tpm-worker")
	return cmd
}

func runBench(ctx context.Context, env Env, c *conn, devicesSet bool, b *benchOpts) error {
	if err := c.resolve(); err != nil {
		return err
	}
	if b.tpmWorker {
		return runTPMWorker(ctx, env, c, c.httpServer, b.kex, tpmdevice.KeyType(b.tpmEK), b.csr)
	}
	transports, err := benchChoice("transport", b.transport, "grpc", "rest")
	switch b.transport {
	case "dps":
		transports, err = []string{"dps"}, nil
	case "mqtt":
		// DPS over MQTT, and the DPS HTTPS API in the same run to compare.
		transports, err = []string{"mqtt", "dps"}, nil
	}
	if err != nil {
		return err
	}
	if b.attestation != "x509" && b.attestation != "symmetric" && b.attestation != "tpm" {
		return fmt.Errorf("%w: --attestation %q is not x509, symmetric or tpm", errUsage, b.attestation)
	}
	if b.reuse && b.attestation != "symmetric" {
		return fmt.Errorf("%w: --reuse needs --attestation symmetric (an X.509 device's identity is its connection)", errUsage)
	}
	if b.csr && (b.transport == "mqtt" || b.attestation == "tpm" && b.transport == "dps") {
		return fmt.Errorf("%w: --csr is for grpc, rest or dps (TPM devices: grpc or rest, their bound key's CSR signed in the TPM)", errUsage)
	}
	if b.reuse && b.transport == "mqtt" {
		return fmt.Errorf("%w: --transport mqtt uses a fresh TLS connection per device (no --reuse)", errUsage)
	}
	modes, err := benchChoice("mode", b.mode, "ceiling", "register")
	if err != nil {
		return err
	}
	if b.attestation == "tpm" {
		// The go-tpm-tools simulator is one per process, so each device in
		// flight has a worker process of its own; the simulator's cost is
		// reported apart. The ceiling is X.509's.
		if b.mode == "ceiling" || b.transport == "dps" || b.transport == "mqtt" || b.rate > 0 || (b.tpmEK != "rsa" && b.tpmEK != "ecc") || b.concurrency > maxTPMWorkers {
			return fmt.Errorf("%w: --attestation tpm runs --mode register over grpc or rest, closed loop, with --tpm-ek rsa or ecc and --concurrency up to %d", errUsage, maxTPMWorkers)
		}
		modes = []string{"register"}
	}
	if b.duration < 0 || b.duration > 24*time.Hour {
		return fmt.Errorf("%w: --duration must be between 0 and 24h", errUsage)
	}
	if b.duration > 0 && b.rate > 0 && !devicesSet {
		b.devices = int(math.Ceil(b.rate * b.duration.Seconds()))
	}
	if b.devices < 1 || b.devices > 1_000_000 || b.concurrency < 1 || b.concurrency > 10_000 || b.rounds < 1 || b.rounds > 100 || b.rate < 0 {
		return fmt.Errorf("%w: --devices 1-1000000, --concurrency 1-10000, --rounds 1-100, --rate >= 0", errUsage)
	}
	if b.kex != "x25519" && b.kex != "p256" && b.kex != "default" {
		return fmt.Errorf("%w: --kex %q is not x25519, p256 or default", errUsage, b.kex)
	}

	var pids []int
	for _, p := range splitList(b.serverPIDs) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: --server-pid %q is not a list of process IDs", errUsage, b.serverPIDs)
		}
		pids = append(pids, n)
	}
	cfg := bench.Config{GRPCAddr: c.server, HTTPAddr: c.httpServer, MQTTAddr: b.mqttServer, Concurrency: b.concurrency, Rate: b.rate, KEX: b.kex, Duration: b.duration,
		ServerPIDs: pids, Attestation: b.attestation, Reuse: b.reuse, IDScope: b.idScope, CSR: b.csr}
	switch {
	case b.metricsURL != "":
		cfg.StoreSize = scrapedStoreBytes(b.metricsURL)
	case b.storeFile != "":
		cfg.StoreSize = fileSize(b.storeFile)
	case b.redisAddrs != "" && (!b.spawn || b.storage == "redis"):
		size, closeRedis := redisMemory(splitList(b.redisAddrs))
		defer closeRedis()
		cfg.StoreSize = size
	}
	if b.spawn {
		switch b.serverLog {
		case "debug", "info", "warn", "error":
		default:
			return fmt.Errorf("%w: --server-log must be debug, info, warn or error", errUsage)
		}
		stop, err := spawnServer(ctx, env, &cfg, c, b.storage, b.redisAddrs, b.serverMetrics, b.serverLog)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.AccessKey, err = c.key(); err != nil {
		return err
	}
	tc, err := c.tlsConfig(nil)
	if err != nil {
		return err
	}
	cfg.RootCAs = tc.RootCAs

	needed := b.devices * b.rounds * len(transports)
	fmt.Fprintf(env.Stderr, "enrolling %d simulated devices...\n", needed)
	fleet, err := bench.Prepare(ctx, &cfg, needed)
	if err != nil {
		return err
	}
	if b.attestation == "tpm" {
		workerArgs := []string{"bench", "--tpm-worker", "--server", cfg.GRPCAddr, "--http-server", cfg.HTTPAddr, "--ca-file", c.caFile, "--kex", b.kex, "--tpm-ek", b.tpmEK}
		if b.csr {
			workerArgs = append(workerArgs, "--csr")
		}
		var stopWorkers func()
		if fleet, stopWorkers, err = tpmFleet(ctx, &cfg, needed, tpmdevice.KeyType(b.tpmEK), workerArgs, fleet.Policy); err != nil {
			return err
		}
		defer stopWorkers()
	}
	var reports []*bench.Report
	used := 0
	for range b.rounds {
		for _, tr := range transports {
			slice := fleet.Slice(used, used+b.devices)
			used += b.devices
			for _, m := range modes {
				run := cfg
				run.Transport, run.Mode = tr, m
				r, err := bench.Run(ctx, &run, slice)
				if err != nil {
					return err
				}
				if !b.asJSON {
					r.Print(env.Stdout)
				}
				reports = append(reports, r)
			}
		}
	}
	// The server's memory per idle MQTT connection (it needs the server's
	// process: --spawn or --server-pid).
	var idle map[string]any
	if slices.Contains(transports, "mqtt") && len(cfg.ServerPIDs) > 0 {
		n := min(b.devices, 1000)
		per, err := bench.MQTTIdle(ctx, &cfg, n)
		if err != nil {
			return err
		}
		idle = map[string]any{"connections": n, "server_bytes_per_connection": per}
		if !b.asJSON {
			fmt.Fprintf(env.Stdout, "mqtt: server memory per idle connection %.1f KiB (%d connections held open)\n", per/1024, n)
		}
	}
	if b.asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		out := map[string]any{"reports": reports, "ratios": ratios(reports)}
		if idle != nil {
			out["mqtt_idle"] = idle
		}
		return enc.Encode(out)
	}
	for _, line := range ratios(reports) {
		fmt.Fprintln(env.Stdout, line)
	}
	return nil
}

func benchChoice(name, v string, all ...string) ([]string, error) {
	if v == "both" {
		return all, nil
	}
	for _, a := range all {
		if v == a {
			return []string{v}, nil
		}
	}
	return nil, fmt.Errorf("%w: --%s %q is not one of %s or both", errUsage, name, v, strings.Join(all, ", "))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// ratios states registration against the ceiling, per transport, as
// medians over rounds: the machine-independent figures.
func ratios(reports []*bench.Report) []string {
	var out []string
	for _, tr := range []string{"grpc", "rest", "dps", "mqtt"} {
		var regRate, ceilRate, regCPU, ceilCPU []float64
		for _, r := range reports {
			if r.Transport != tr {
				continue
			}
			if r.Mode == "register" {
				regRate, regCPU = append(regRate, r.PerSecond), append(regCPU, r.ServerCPUPerOpUs)
			} else {
				ceilRate, ceilCPU = append(ceilRate, r.PerSecond), append(ceilCPU, r.ServerCPUPerOpUs)
			}
		}
		if len(regRate) == 0 || len(ceilRate) == 0 {
			continue
		}
		line := fmt.Sprintf("%s: registration rate %.0f/s is %.0f%% of the ceiling's %.0f/s", tr, median(regRate), 100*median(regRate)/median(ceilRate), median(ceilRate))
		if c := median(ceilCPU); c > 0 {
			line += fmt.Sprintf("; server CPU %.0f µs per registration is %.2fx the ceiling's %.0f µs per handshake", median(regCPU), median(regCPU)/c, c)
		}
		out = append(out, line)
	}
	// DPS over MQTT against the DPS HTTPS API, in the same run.
	var mqttRate, dpsRate []float64
	for _, r := range reports {
		if r.Mode == "register" && r.Transport == "mqtt" {
			mqttRate = append(mqttRate, r.PerSecond)
		} else if r.Mode == "register" && r.Transport == "dps" {
			dpsRate = append(dpsRate, r.PerSecond)
		}
	}
	if len(mqttRate) > 0 && len(dpsRate) > 0 && median(dpsRate) > 0 {
		out = append(out, fmt.Sprintf("mqtt: registration rate %.0f/s is %.0f%% of the DPS HTTPS API's %.0f/s", median(mqttRate), 100*median(mqttRate)/median(dpsRate), median(dpsRate)))
	}
	return out
}

// spawnServer starts `zerotouch serve` (this binary) with a fresh data
// directory on free loopback ports, rate limits off, and points cfg and c
// at it. With metrics, the embedded store's bytes per device are its
// zerotouch_store_bytes (bytes in use, which move with every write);
// without, its file's size (which grows in steps, so a short run can
// measure 0).
func spawnServer(ctx context.Context, env Env, cfg *bench.Config, c *conn, storage, redisAddrs string, metrics bool, logLevel string) (func(), error) {
	// Ports are picked free and then bound by the server: another process
	// may take one in between, and the server then exits at once. Such a
	// start is retried on other ports.
	var err error
	for range 3 {
		var stop func()
		var exited bool
		if stop, exited, err = spawnOnce(ctx, env, cfg, c, storage, redisAddrs, metrics, logLevel); err == nil || !exited {
			return stop, err
		}
	}
	return nil, err
}

// spawnOnce is one start of spawnServer's; exited reports that the server
// stopped before it was ready.
func spawnOnce(ctx context.Context, env Env, cfg *bench.Config, c *conn, storage, redisAddrs string, metrics bool, logLevel string) (stop func(), exited bool, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, false, err
	}
	dir, err := os.MkdirTemp("", "zerotouch-bench-")
	if err != nil {
		return nil, false, err
	}
	grpcAddr, httpAddr, mqttAddr, metricsAddr := freeAddr(), freeAddr(), freeAddr(), ""
	if metrics {
		metricsAddr = freeAddr()
	}
	if grpcAddr == "" || httpAddr == "" || mqttAddr == "" || metrics && metricsAddr == "" {
		os.RemoveAll(dir)
		return nil, false, fmt.Errorf("no free port")
	}
	// Every simulated device connects from 127.0.0.1.
	conf := fmt.Sprintf("dev: true\ndata_dir: %s\nlisten: {grpc: %q, http: %q, mqtt: %q, metrics: %q}\nlog: {level: %s, format: json}\ndevice: {rate_limit: {per_ip: {limit: 0}, per_registration: {limit: 0}}}\nmqtt: {max_connections_per_ip: 100000}\ndps: {id_scope: %s}\nstorage:\n  backend: %s\n", dir, grpcAddr, httpAddr, mqttAddr, metricsAddr, logLevel, cfg.IDScope, storage)
	if storage == "redis" {
		conf += fmt.Sprintf("  redis: {addrs: [%s]}\n", redisAddrs)
	}
	if err := os.WriteFile(filepath.Join(dir, "zerotouch.yaml"), []byte(conf), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, false, err
	}
	cmd := exec.Command(self, "serve", "--config", filepath.Join(dir, "zerotouch.yaml"))
	cmd.Stderr = env.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, false, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		os.RemoveAll(dir)
	}
	// The spawned server's own owner key, not one from the environment.
	c.server, c.dataDir, c.accessKey, c.keyFile, c.getenv = grpcAddr, dir, "", "", nil
	c.caFile, c.caDefault = filepath.Join(dir, "pki", "ca.pem"), false
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.MQTTAddr, cfg.ServerPIDs = grpcAddr, httpAddr, mqttAddr, []int{cmd.Process.Pid}
	switch {
	case storage != "redis" && metrics:
		cfg.StoreSize = scrapedStoreBytes("http://" + metricsAddr + "/metrics")
	case storage != "redis":
		cfg.StoreSize = fileSize(filepath.Join(dir, "zerotouch.db"))
	}
	if err := waitReady(ctx, httpAddr, c.caFile, 30*time.Second, done); err != nil {
		select {
		case <-done:
			exited = true
		default:
		}
		stop()
		return nil, exited, fmt.Errorf("spawned server: %w", err)
	}
	return stop, false, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls /readyz until it answers 200, within, or the server
// exits (done closed).
func waitReady(ctx context.Context, httpAddr, caFile string, within time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-done:
			return fmt.Errorf("the server exited before it was ready (see its log above)")
		default:
		}
		err := func() error {
			cas, err := pki.LoadCertificates(caFile)
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AddCert(cas[0])
			c := &conn{caFile: caFile, resolved: true}
			tc, err := c.tlsConfig(nil)
			if err != nil {
				return err
			}
			tc.RootCAs = roots
			tr := &http.Transport{TLSClientConfig: tc}
			defer tr.CloseIdleConnections()
			res, err := (&http.Client{Transport: tr, Timeout: time.Second}).Get("https://" + httpAddr + "/readyz")
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz: %s", res.Status)
			}
			return nil
		}()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
