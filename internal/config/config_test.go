package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/config"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedenceFileEnvFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "zerotouch.yaml")
	os.WriteFile(file, []byte(`
dev: true
data_dir: /from/file
listen:
  grpc: 127.0.0.1:1001
  http: 127.0.0.1:1002
log:
  level: warn
x509:
  max_chain_length: 4
shutdown_grace: 5s
`), 0o600)
	cfg, err := config.Load(
		[]string{"--config", file, "--http-listen", "127.0.0.1:3002"},
		envOf(map[string]string{"ZEROTOUCH_LISTEN_GRPC": "127.0.0.1:2001", "ZEROTOUCH_HTTP": "ignored", "ZEROTOUCH_LISTEN_HTTP": "127.0.0.1:2002", "ZEROTOUCH_LOG_FORMAT": "json"}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Dev || cfg.DataDir != "/from/file" || cfg.Listen.GRPC != "127.0.0.1:2001" || cfg.Listen.HTTP != "127.0.0.1:3002" ||
		cfg.Log.Level != "warn" || cfg.Log.Format != "json" || cfg.X509.MaxChainLength != 4 || cfg.ShutdownGrace != 5*time.Second {
		t.Fatalf("config = %+v", cfg)
	}
	if cfg.StorePath() != "/from/file/zerotouch.db" {
		t.Fatalf("StorePath = %s", cfg.StorePath())
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte("log:\n  level: loud\n"), 0o600)
	_, err := config.Load(
		[]string{"--config", file, "--grpc-listen", "nonsense", "--log-format", "xml", "--tls-cert", "/nope.pem"},
		envOf(map[string]string{"ZEROTOUCH_STORAGE_BACKEND": "mysql", "ZEROTOUCH_X509_MAX_CHAIN_LENGTH": "lots", "ZEROTOUCH_SHUTDOWN_GRACE": "-1s", "ZEROTOUCH_DEV": "maybe"}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"listen.grpc", "log.level", "log.format", "tls.cert_file and tls.key_file must be given together",
		"storage.backend", "ZEROTOUCH_X509_MAX_CHAIN_LENGTH", "ZEROTOUCH_DEV", "shutdown_grace", "x509.max_chain_length",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestTLSRequiredOutsideDevMode(t *testing.T) {
	_, err := config.Load(nil, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "--dev") {
		t.Fatalf("err = %v", err)
	}
	if _, err := config.Load([]string{"--dev"}, envOf(nil)); err != nil {
		t.Fatalf("--dev: %v", err)
	}
}

func TestFileRejectsUnknownKeysAndHugeFiles(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("dev: true\nlisten:\n  grcp: 127.0.0.1:1\n"), 0o600)
	if _, err := config.Load([]string{"--config", typo}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "grcp") {
		t.Fatalf("typo: %v", err)
	}
	huge := filepath.Join(dir, "huge.yaml")
	os.WriteFile(huge, []byte("# "+strings.Repeat("x", config.MaxFileSize)), 0o600)
	if _, err := config.Load([]string{"--config", huge, "--dev"}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("huge: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if _, err := config.Load([]string{"--config", empty, "--dev"}, envOf(nil)); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := config.Load([]string{"--config", filepath.Join(dir, "missing.yaml"), "--dev"}, envOf(nil)); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := config.Load([]string{"--dev", "stray"}, envOf(nil)); err == nil {
		t.Fatal("stray argument accepted")
	}
	if _, err := config.Load([]string{"--dev", "--grpc-listen", "127.0.0.1:9", "--http-listen", "127.0.0.1:9"}, envOf(nil)); err == nil {
		t.Fatal("one address for both listeners accepted")
	}
}

func TestRedisBackend(t *testing.T) {
	cfg, err := config.Load([]string{"--dev", "--storage", "redis", "--redis-addrs", "r1:6379, r2:6379"},
		envOf(map[string]string{"ZEROTOUCH_REDIS_PASSWORD": "s3cret", "ZEROTOUCH_REDIS_CLUSTER": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Storage.Redis
	if cfg.Storage.Backend != "redis" || len(r.Addrs) != 2 || r.Addrs[1] != "r2:6379" || r.Password != "s3cret" || !r.Cluster || r.KeyPrefix != "zt" || r.ReadTimeout != 500*time.Millisecond {
		t.Fatalf("redis config = %+v", r)
	}
	// The example configuration in deploy/ is valid apart from its TLS paths.
	dir := t.TempDir()
	_, err = config.Load([]string{"--config", "../../deploy/zerotouch.yaml", "--tls-cert", filepath.Join(dir, "c"), "--tls-key", filepath.Join(dir, "k")}, envOf(nil))
	if err == nil || strings.Contains(err.Error(), "config file") || !strings.Contains(err.Error(), "tls:") {
		t.Fatalf("deploy/zerotouch.yaml: %v", err)
	}

	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte(`
dev: true
storage:
  backend: redis
  redis:
    addrs: [nohost, "a:1", "b:2"]
    cluster: true
    master_name: m
    db: 3
    key_prefix: "{x}"
    pool_size: -1
    read_timeout: 0s
    tls:
      cert_file: /nope.pem
`), 0o600)
	_, err = config.Load([]string{"--config", file}, envOf(nil))
	for _, want := range []string{"nohost", "exclude each other", "db must be 0", "key_prefix", "pool_size", "read_timeout", "cert_file and key_file", "tls.enabled is false"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if _, err := config.Load([]string{"--dev", "--storage", "redis"}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "addrs is required") {
		t.Errorf("redis without addrs: %v", err)
	}
}

// An ID scope may not shadow another path of the REST listener, in any case.
func TestIDScopeReserved(t *testing.T) {
	for _, scope := range []string{"v1", "Enrollments", "enrollmentGroups", "REGISTRATIONS", "healthz", "has-dash", strings.Repeat("a", 33)} {
		if _, err := config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_DPS_ID_SCOPE": scope})); err == nil || !strings.Contains(err.Error(), "dps.id_scope") {
			t.Errorf("id scope %q: err = %v", scope, err)
		}
	}
	if _, err := config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_DPS_ID_SCOPE": "0ne0000ABC"})); err != nil {
		t.Errorf("a valid scope: %v", err)
	}
}

func TestGeoValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "geo.yaml")
	os.WriteFile(file, []byte(`
dev: true
geo:
  networks:
    "10.0.0.0/8": eu-west
    "not-a-cidr": us-east
    "192.168.0.0/16": "US East"
  nearest:
    eu-west: [us-east, "Mars!"]
  proxy_header: "X Region"
`), 0o600)
	_, err := config.Load([]string{"--config", file}, envOf(nil))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`"not-a-cidr" is not a CIDR`, `"US East"`, `"Mars!"`, `geo.proxy_header "X Region"`, "needs geo.trusted_proxies"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	os.WriteFile(file, []byte(`
dev: true
geo:
  networks: {"10.1.0.0/16": eu-west, "10.2.0.0/16": us-east}
  nearest: {eu-west: [us-east]}
  proxy_header: X-Client-Region
  trusted_proxies: [127.0.0.1, "10.9.0.0/16"]
`), 0o600)
	cfg, err := config.Load([]string{"--config", file}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	nets, trusted := cfg.Geo.Prefixes()
	if len(nets) != 2 || len(trusted) != 2 || trusted[0].Bits() != 32 {
		t.Fatalf("prefixes: %v %v", nets, trusted)
	}
	os.WriteFile(file, []byte("dev: true\ngeo:\n  trusted_proxies: [nonsense]\n"), 0o600)
	if _, err := config.Load([]string{"--config", file}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "geo.trusted_proxies") {
		t.Fatalf("bad trusted proxy: %v", err)
	}
}

func TestHubsValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hubs.yaml")
	for body, want := range map[string]string{
		"hubs: {event_retention: 99}":                                       "hubs.event_retention 99",
		"hubs: {event_retention: 100000001}":                                "hubs.event_retention 100000001",
		"hubs: {max_streams: 0}":                                            "hubs.max_streams 0",
		"hubs: {max_streams: 1001}":                                         "hubs.max_streams 1001",
		"hubs: {poll_interval: 1ms}":                                        "hubs.poll_interval 1ms",
		"hubs: {poll_interval: 11s}":                                        "hubs.poll_interval 11s",
		"hubs: {poll_interval: soon}":                                       "hubs",
		"hubs: {event_retention: 100, x: 1}":                                "field x not found",
		"hubs: {max_streams: 1, poll_interval: 10ms, event_retention: 100}": "",
	} {
		os.WriteFile(file, []byte("dev: true\n"+body+"\n"), 0o600)
		cfg, err := config.Load([]string{"--config", file}, envOf(nil))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want == "" && (cfg.Hubs.MaxStreams != 1 || cfg.Hubs.PollInterval != 10*time.Millisecond || cfg.Hubs.EventRetention != 100):
			t.Errorf("%s: loaded %+v", body, cfg.Hubs)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error mentioning %q", body, err, want)
		}
	}
	cfg, err := config.Load(nil, envOf(map[string]string{"ZEROTOUCH_DEV": "true"}))
	if err != nil || cfg.Hubs.EventRetention != 100_000 || cfg.Hubs.MaxStreams != 16 || cfg.Hubs.PollInterval != 250*time.Millisecond {
		t.Fatalf("defaults: %+v %v", cfg.Hubs, err)
	}
}

func TestMQTT(t *testing.T) {
	cfg, err := config.Load([]string{"--dev"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.MQTT != "127.0.0.1:8883" || !cfg.MQTT.WebSockets || cfg.MQTT.MaxPacketBytes != 64<<10 || cfg.MQTT.MaxInflight != 4 ||
		cfg.MQTT.IdleTimeout != 4*time.Minute || cfg.MQTT.ConnectTimeout != 30*time.Second || cfg.MQTT.MaxConnections != 100_000 || cfg.MQTT.MaxConnectionsPerIP != 1_000 {
		t.Fatalf("defaults: listen %q, %+v", cfg.Listen.MQTT, cfg.MQTT)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "mqtt.yaml")
	os.WriteFile(file, []byte(`
dev: true
listen:
  mqtt: 0.0.0.0:18883
mqtt:
  websockets: true
  max_packet_bytes: 4096
  max_inflight: 2
  idle_timeout: 1m
  connect_timeout: 10s
  max_connections: 500
  max_connections_per_ip: 50
`), 0o600)
	cfg, err = config.Load([]string{"--config", file}, envOf(map[string]string{"ZEROTOUCH_MQTT_WEBSOCKETS": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.MQTT != "0.0.0.0:18883" || cfg.MQTT.WebSockets || cfg.MQTT.MaxPacketBytes != 4096 || cfg.MQTT.MaxInflight != 2 ||
		cfg.MQTT.IdleTimeout != time.Minute || cfg.MQTT.ConnectTimeout != 10*time.Second || cfg.MQTT.MaxConnections != 500 || cfg.MQTT.MaxConnectionsPerIP != 50 {
		t.Fatalf("file and env: listen %q, %+v", cfg.Listen.MQTT, cfg.MQTT)
	}

	// "off" (flag or variable) and "" (file) turn the TLS listener off.
	for _, load := range []func() (*config.Config, error){
		func() (*config.Config, error) {
			return config.Load([]string{"--dev", "--mqtt-listen", "off"}, envOf(nil))
		},
		func() (*config.Config, error) {
			return config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_LISTEN_MQTT": "OFF"}))
		},
		func() (*config.Config, error) {
			off := filepath.Join(dir, "off.yaml")
			os.WriteFile(off, []byte("dev: true\nlisten:\n  mqtt: \"\"\n"), 0o600)
			return config.Load([]string{"--config", off}, envOf(nil))
		},
	} {
		if cfg, err := load(); err != nil || cfg.Listen.MQTT != "" {
			t.Fatalf("off: %q %v", cfg.Listen.MQTT, err)
		}
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`
dev: true
listen:
  http: 127.0.0.1:9000
  mqtt: 127.0.0.1:9000
mqtt:
  max_packet_bytes: 10
  max_inflight: 0
  idle_timeout: 1s
  connect_timeout: 0s
  max_connections: 0
  max_connections_per_ip: 5
`), 0o600)
	_, err = config.Load([]string{"--config", bad}, envOf(map[string]string{"ZEROTOUCH_MQTT_WEBSOCKETS": "sometimes"}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"listen.mqtt and listen.http", "mqtt.max_packet_bytes", "mqtt.max_inflight", "mqtt.idle_timeout",
		"mqtt.connect_timeout", "mqtt.max_connections 0", "mqtt.max_connections_per_ip", "ZEROTOUCH_MQTT_WEBSOCKETS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := config.Load([]string{"--dev", "--mqtt-listen", "nonsense"}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "listen.mqtt") {
		t.Fatalf("bad address: %v", err)
	}
}

func TestMetricsListener(t *testing.T) {
	cfg, err := config.Load([]string{"--dev"}, envOf(nil))
	if err != nil || cfg.Listen.Metrics != "127.0.0.1:9464" {
		t.Fatalf("default: %q %v", cfg.Listen.Metrics, err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "metrics.yaml")
	os.WriteFile(file, []byte("dev: true\nlisten:\n  metrics: 0.0.0.0:19464\n"), 0o600)
	if cfg, err := config.Load([]string{"--config", file}, envOf(nil)); err != nil || cfg.Listen.Metrics != "0.0.0.0:19464" {
		t.Fatalf("file: %q %v", cfg.Listen.Metrics, err)
	}
	if cfg, err := config.Load([]string{"--config", file}, envOf(map[string]string{"ZEROTOUCH_LISTEN_METRICS": "127.0.0.1:1"})); err != nil || cfg.Listen.Metrics != "127.0.0.1:1" {
		t.Fatalf("env over file: %q %v", cfg.Listen.Metrics, err)
	}
	if cfg, err := config.Load([]string{"--config", file, "--metrics-listen", "127.0.0.1:2"}, envOf(map[string]string{"ZEROTOUCH_LISTEN_METRICS": "127.0.0.1:1"})); err != nil || cfg.Listen.Metrics != "127.0.0.1:2" {
		t.Fatalf("flag over env: %q %v", cfg.Listen.Metrics, err)
	}

	// "off" (flag or variable) and "" (file) turn it off.
	off := filepath.Join(dir, "off.yaml")
	os.WriteFile(off, []byte("dev: true\nlisten:\n  metrics: \"\"\n"), 0o600)
	for _, load := range []func() (*config.Config, error){
		func() (*config.Config, error) {
			return config.Load([]string{"--dev", "--metrics-listen", "off"}, envOf(nil))
		},
		func() (*config.Config, error) {
			return config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_LISTEN_METRICS": "Off"}))
		},
		func() (*config.Config, error) { return config.Load([]string{"--config", off}, envOf(nil)) },
	} {
		if cfg, err := load(); err != nil || cfg.Listen.Metrics != "" {
			t.Fatalf("off: %q %v", cfg.Listen.Metrics, err)
		}
	}

	// Never a device-facing listener's address; always host:port.
	for _, args := range [][]string{
		{"--dev", "--metrics-listen", "127.0.0.1:8443"},
		{"--dev", "--metrics-listen", "127.0.0.1:8444"},
		{"--dev", "--metrics-listen", "127.0.0.1:8883"},
	} {
		if _, err := config.Load(args, envOf(nil)); err == nil || !strings.Contains(err.Error(), "listen.metrics and listen.") {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := config.Load([]string{"--dev", "--metrics-listen", "9464"}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "listen.metrics") {
		t.Fatalf("bad address: %v", err)
	}
	// Port 0 (any free port) may repeat.
	if _, err := config.Load([]string{"--dev", "--metrics-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, envOf(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestConsole: the web console is on by default, off by file or variable,
// and its path cannot be shadowed by a DPS ID scope of the same name.
func TestConsole(t *testing.T) {
	cfg, err := config.Load([]string{"--dev"}, envOf(nil))
	if err != nil || !cfg.Console.Enabled {
		t.Fatalf("default: %v %v", cfg.Console.Enabled, err)
	}
	dir := t.TempDir()
	off := filepath.Join(dir, "off.yaml")
	os.WriteFile(off, []byte("dev: true\nconsole:\n  enabled: false\n"), 0o600)
	if cfg, err := config.Load([]string{"--config", off}, envOf(nil)); err != nil || cfg.Console.Enabled {
		t.Fatalf("file: %v %v", cfg.Console.Enabled, err)
	}
	if cfg, err := config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_CONSOLE_ENABLED": "false"})); err != nil || cfg.Console.Enabled {
		t.Fatalf("variable: %v %v", cfg.Console.Enabled, err)
	}
	if _, err := config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_CONSOLE_ENABLED": "maybe"})); err == nil || !strings.Contains(err.Error(), "ZEROTOUCH_CONSOLE_ENABLED") {
		t.Fatalf("bad variable: %v", err)
	}
	_, err = config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_DPS_ID_SCOPE": "console"}))
	if err == nil || !strings.Contains(err.Error(), "console") {
		t.Fatalf("scope console with the console on: %v", err)
	}
	if _, err := config.Load([]string{"--dev"}, envOf(map[string]string{"ZEROTOUCH_DPS_ID_SCOPE": "console", "ZEROTOUCH_CONSOLE_ENABLED": "false"})); err != nil {
		t.Fatalf("scope console with the console off: %v", err)
	}
}

func TestRevocationValidation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "revocation.yaml")
	for body, want := range map[string]string{
		"revocation: {fetch_timeout: 10ms}":                         "revocation.fetch_timeout 10ms",
		"revocation: {fetch_timeout: 2m}":                           "revocation.fetch_timeout 2m0s",
		"revocation: {refresh_interval: 30s}":                       "revocation.refresh_interval 30s",
		"revocation: {refresh_interval: 48h}":                       "revocation.refresh_interval 48h0m0s",
		"revocation: {fetch_timeout: 2s, refresh_interval: 15m}":    "",
		"revocation: {fetch_timeout: 2s, refresh_interval: 15m, x}": "revocation",
	} {
		os.WriteFile(file, []byte("dev: true\n"+body+"\n"), 0o600)
		cfg, err := config.Load([]string{"--config", file}, envOf(nil))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want == "" && (cfg.Revocation.FetchTimeout != 2*time.Second || cfg.Revocation.RefreshInterval != 15*time.Minute):
			t.Errorf("%s: loaded %+v", body, cfg.Revocation)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error mentioning %q", body, err, want)
		}
	}
	cfg, err := config.Load(nil, envOf(map[string]string{"ZEROTOUCH_DEV": "true"}))
	if err != nil || cfg.Revocation.FetchTimeout != 5*time.Second || cfg.Revocation.RefreshInterval != time.Hour {
		t.Fatalf("defaults: %+v %v", cfg.Revocation, err)
	}
}
