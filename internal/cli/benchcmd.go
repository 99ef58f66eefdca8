package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
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

	"github.com/zerotouch/zerotouch/internal/bench"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
)

// runBench is `zerotouch bench`: the load generator. With --spawn it
// starts its own `zerotouch serve` as a separate process (so that server
// CPU can be read from /proc) on a fresh data directory.
func runBench(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	c := &conn{}
	c.register(fs, env, defaultGRPCServer)
	httpServer := fs.String("http-server", defaultRESTServer, "REST address of the server")
	mqttServer := fs.String("mqtt-server", "127.0.0.1:8883", "DPS over MQTT (TLS) address of the server, for --transport mqtt")
	spawn := fs.Bool("spawn", false, "start a zerotouch server as a child process for the run")
	storage := fs.String("storage", "embedded", "with --spawn: embedded or redis")
	redisAddrs := fs.String("redis-addrs", "", "Redis addresses (comma-separated): the store for --spawn --storage redis, and measured for bytes per device")
	serverPIDs := fs.String("server-pid", "", "server process IDs (comma-separated, one per replica), for CPU per operation (set by --spawn)")
	storeFile := fs.String("store-file", "", "embedded store file, for bytes per device by the file's size (which grows in steps)")
	metricsURL := fs.String("metrics-url", "", "the server's metrics (http://host:port/metrics), for the embedded store's bytes per device (set by --spawn)")
	serverMetrics := fs.Bool("server-metrics", true, "with --spawn: the server serves metrics (listen.metrics); false turns them off, to measure what they cost")
	serverLog := fs.String("server-log", "warn", "with --spawn: the server's log level (JSON lines on this command's standard error); info logs a line per registration, to measure what logging costs")
	transport := fs.String("transport", "both", "grpc, rest, dps, mqtt (DPS over MQTT, and the DPS HTTPS API to compare), or both (grpc and rest)")
	attestation := fs.String("attestation", "x509", "x509 (a fresh TLS connection per device), symmetric (SAS tokens) or tpm (simulated TPMs: one worker process per device in flight)")
	tpmEK := fs.String("tpm-ek", "ecc", "with --attestation tpm: EK algorithm, rsa or ecc")
	reuse := fs.Bool("reuse", false, "symmetric keys: send each worker's devices over one TLS connection (a factory station or gateway)")
	idScope := fs.String("id-scope", "0ne00000001", "the server's DPS ID scope, for --transport dps and mqtt")
	mode := fs.String("mode", "both", "register, ceiling or both")
	devices := fs.Int("devices", 2000, "devices per measurement")
	concurrency := fs.Int("concurrency", 8, "devices in flight (closed loop)")
	rate := fs.Float64("rate", 0, "open-loop arrival rate in devices per second (0: closed loop)")
	rounds := fs.Int("rounds", 1, "interleaved repetitions; medians are reported")
	duration := fs.Duration("duration", 0, "end each measurement after this long, or when its devices are used up (with --rate and no --devices: rate × duration devices)")
	kex := fs.String("kex", "x25519", "key exchange devices offer: x25519, p256 or default")
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	tpmWorker := fs.Bool("tpm-worker", false, "internal: serve TPM registrations on stdin/stdout for a parent bench (one simulator per process)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *tpmWorker {
		return runTPMWorker(ctx, env, c, *httpServer, *kex, tpmdevice.KeyType(*tpmEK))
	}
	transports, err := choice("transport", *transport, "grpc", "rest")
	switch *transport {
	case "dps":
		transports, err = []string{"dps"}, nil
	case "mqtt":
		// DPS over MQTT, and the DPS HTTPS API in the same run to compare.
		transports, err = []string{"mqtt", "dps"}, nil
	}
	if err != nil {
		return err
	}
	if *attestation != "x509" && *attestation != "symmetric" && *attestation != "tpm" {
		return fmt.Errorf("%w: --attestation %q is not x509, symmetric or tpm", errUsage, *attestation)
	}
	if *reuse && *attestation != "symmetric" {
		return fmt.Errorf("%w: --reuse needs --attestation symmetric (an X.509 device's identity is its connection)", errUsage)
	}
	if *reuse && *transport == "mqtt" {
		return fmt.Errorf("%w: --transport mqtt uses a fresh TLS connection per device (no --reuse)", errUsage)
	}
	modes, err := choice("mode", *mode, "ceiling", "register")
	if err != nil {
		return err
	}
	if *attestation == "tpm" {
		// The go-tpm-tools simulator is one per process, so each device in
		// flight has a worker process of its own; the simulator's cost is
		// reported apart. The ceiling is X.509's.
		if *mode == "ceiling" || *transport == "dps" || *transport == "mqtt" || *rate > 0 || (*tpmEK != "rsa" && *tpmEK != "ecc") || *concurrency > maxTPMWorkers {
			return fmt.Errorf("%w: --attestation tpm runs --mode register over grpc or rest, closed loop, with --tpm-ek rsa or ecc and --concurrency up to %d", errUsage, maxTPMWorkers)
		}
		modes = []string{"register"}
	}
	if *duration < 0 || *duration > 24*time.Hour {
		return fmt.Errorf("%w: --duration must be between 0 and 24h", errUsage)
	}
	devicesSet := false
	fs.Visit(func(f *flag.Flag) { devicesSet = devicesSet || f.Name == "devices" })
	if *duration > 0 && *rate > 0 && !devicesSet {
		*devices = int(math.Ceil(*rate * duration.Seconds()))
	}
	if *devices < 1 || *devices > 1_000_000 || *concurrency < 1 || *concurrency > 10_000 || *rounds < 1 || *rounds > 100 || *rate < 0 {
		return fmt.Errorf("%w: --devices 1-1000000, --concurrency 1-10000, --rounds 1-100, --rate >= 0", errUsage)
	}
	if *kex != "x25519" && *kex != "p256" && *kex != "default" {
		return fmt.Errorf("%w: --kex %q is not x25519, p256 or default", errUsage, *kex)
	}

	var pids []int
	for _, p := range splitList(*serverPIDs) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: --server-pid %q is not a list of process IDs", errUsage, *serverPIDs)
		}
		pids = append(pids, n)
	}
	cfg := bench.Config{GRPCAddr: c.server, HTTPAddr: *httpServer, MQTTAddr: *mqttServer, Concurrency: *concurrency, Rate: *rate, KEX: *kex, Duration: *duration,
		ServerPIDs: pids, Attestation: *attestation, Reuse: *reuse, IDScope: *idScope}
	switch {
	case *metricsURL != "":
		cfg.StoreSize = scrapedStoreBytes(*metricsURL)
	case *storeFile != "":
		cfg.StoreSize = fileSize(*storeFile)
	case *redisAddrs != "" && (!*spawn || *storage == "redis"):
		size, closeRedis := redisMemory(splitList(*redisAddrs))
		defer closeRedis()
		cfg.StoreSize = size
	}
	if *spawn {
		switch *serverLog {
		case "debug", "info", "warn", "error":
		default:
			return fmt.Errorf("%w: --server-log must be debug, info, warn or error", errUsage)
		}
		stop, err := spawnServer(ctx, env, &cfg, c, *storage, *redisAddrs, *serverMetrics, *serverLog)
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

	needed := *devices * *rounds * len(transports)
	fmt.Fprintf(env.Stderr, "enrolling %d simulated devices...\n", needed)
	fleet, err := bench.Prepare(ctx, &cfg, needed)
	if err != nil {
		return err
	}
	if *attestation == "tpm" {
		workerArgs := []string{"bench", "--tpm-worker", "--server", cfg.GRPCAddr, "--http-server", cfg.HTTPAddr, "--ca-file", c.caFile, "--kex", *kex, "--tpm-ek", *tpmEK}
		var stopWorkers func()
		if fleet, stopWorkers, err = tpmFleet(ctx, &cfg, needed, tpmdevice.KeyType(*tpmEK), workerArgs); err != nil {
			return err
		}
		defer stopWorkers()
	}
	var reports []*bench.Report
	used := 0
	for range *rounds {
		for _, tr := range transports {
			slice := fleet.Slice(used, used+*devices)
			used += *devices
			for _, m := range modes {
				run := cfg
				run.Transport, run.Mode = tr, m
				r, err := bench.Run(ctx, &run, slice)
				if err != nil {
					return err
				}
				if !*asJSON {
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
		n := min(*devices, 1000)
		per, err := bench.MQTTIdle(ctx, &cfg, n)
		if err != nil {
			return err
		}
		idle = map[string]any{"connections": n, "server_bytes_per_connection": per}
		if !*asJSON {
			fmt.Fprintf(env.Stdout, "mqtt: server memory per idle connection %.1f KiB (%d connections held open)\n", per/1024, n)
		}
	}
	if *asJSON {
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

func choice(name, v string, all ...string) ([]string, error) {
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
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "zerotouch-bench-")
	if err != nil {
		return nil, err
	}
	grpcAddr, httpAddr, mqttAddr, metricsAddr := freeAddr(), freeAddr(), freeAddr(), ""
	if metrics {
		metricsAddr = freeAddr()
	}
	if grpcAddr == "" || httpAddr == "" || mqttAddr == "" || metrics && metricsAddr == "" {
		return nil, fmt.Errorf("no free port")
	}
	// Every simulated device connects from 127.0.0.1.
	conf := fmt.Sprintf("dev: true\ndata_dir: %s\nlisten: {grpc: %q, http: %q, mqtt: %q, metrics: %q}\nlog: {level: %s, format: json}\ndevice: {rate_limit: {per_ip: {limit: 0}, per_registration: {limit: 0}}}\nmqtt: {max_connections_per_ip: 100000}\ndps: {id_scope: %s}\nstorage:\n  backend: %s\n", dir, grpcAddr, httpAddr, mqttAddr, metricsAddr, logLevel, cfg.IDScope, storage)
	if storage == "redis" {
		conf += fmt.Sprintf("  redis: {addrs: [%s]}\n", redisAddrs)
	}
	if err := os.WriteFile(filepath.Join(dir, "zerotouch.yaml"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "serve", "--config", filepath.Join(dir, "zerotouch.yaml"))
	cmd.Stderr = env.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	// The spawned server's own owner key, not one from the environment.
	c.server, c.dataDir, c.accessKey, c.getenv = grpcAddr, dir, "", nil
	c.caFile = filepath.Join(dir, "pki", "ca.pem")
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.MQTTAddr, cfg.ServerPIDs = grpcAddr, httpAddr, mqttAddr, []int{cmd.Process.Pid}
	switch {
	case storage != "redis" && metrics:
		cfg.StoreSize = scrapedStoreBytes("http://" + metricsAddr + "/metrics")
	case storage != "redis":
		cfg.StoreSize = fileSize(filepath.Join(dir, "zerotouch.db"))
	}
	if err := waitReady(ctx, httpAddr, c.caFile, 30*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("spawned server: %w", err)
	}
	return stop, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(ctx context.Context, httpAddr, caFile string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := func() error {
			cas, err := pki.LoadCertificates(caFile)
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AddCert(cas[0])
			c := &conn{caFile: caFile}
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
