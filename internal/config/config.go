// Package config loads Zerotouch's configuration from one YAML file,
// ZEROTOUCH_* environment variables and command-line flags (each overriding
// the one before), and validates it, reporting every problem at once.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/zerotouch/zerotouch/allocation"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the validated runtime configuration.
type Config struct {
	// Dev generates a development PKI when no TLS files are given.
	Dev     bool   `yaml:"dev"`
	DataDir string `yaml:"data_dir"`
	Listen  struct {
		GRPC string `yaml:"grpc"`
		HTTP string `yaml:"http"`
		// MQTT is DPS over MQTT (TLS); "" turns that listener off.
		MQTT string `yaml:"mqtt"`
		// Metrics serves Prometheus metrics on /metrics (plain HTTP, on a
		// port of its own so that it is never on a device-facing one by
		// accident); "" turns it off.
		Metrics string `yaml:"metrics"`
		// PKI serves the issuing CAs' CRLs and OCSP responder over plain
		// HTTP (/pki/, as relying parties fetch CRL distribution points;
		// ADR 22); "" (the default) serves them only on the REST listener.
		PKI string `yaml:"pki"`
	} `yaml:"listen"`
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Storage struct {
		// Backend is "embedded" (one node) or "redis" (replicas).
		Backend string `yaml:"backend"`
		// Path of the embedded store file; default DataDir/zerotouch.db.
		Path  string `yaml:"path"`
		Redis Redis  `yaml:"redis"`
	} `yaml:"storage"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	X509 struct {
		MaxChainLength int `yaml:"max_chain_length"`
	} `yaml:"x509"`
	Secrets struct {
		// DataKeyFile holds the data key that seals symmetric enrollment
		// keys and TPM challenges (base64 of 32 bytes); default
		// DataDir/data.key. The embedded store creates it; every Redis
		// replica needs the same file.
		DataKeyFile string `yaml:"data_key_file"`
	} `yaml:"secrets"`
	SymmetricKeys struct {
		// Enabled allows symmetric-key attestation (evaluation) service-wide.
		Enabled bool `yaml:"enabled"`
	} `yaml:"symmetric_keys"`
	// Geo locates clients for the geo allocation policy.
	Geo Geo `yaml:"geo"`
	// Hubs configures the assignment stream to hub clusters.
	Hubs struct {
		// EventRetention is how many events each shard's log keeps; a hub
		// further behind resyncs from a snapshot.
		EventRetention int `yaml:"event_retention"`
		// MaxStreams bounds the open streams of one hub cluster on one
		// replica.
		MaxStreams int `yaml:"max_streams"`
		// PollInterval is how often an idle stream looks for new events.
		PollInterval time.Duration `yaml:"poll_interval"`
	} `yaml:"hubs"`
	// IPFilter configures where the IP filter (ADR 21) finds a proxied
	// client's address; its rules are managed through the API.
	IPFilter struct {
		// TrustedProxies (CIDRs) are the only peers whose ClientIPHeader
		// is believed; their own connections are not filtered.
		TrustedProxies []string `yaml:"trusted_proxies"`
		// ClientIPHeader names the header (gRPC metadata) whose last
		// address is the client's, set by a trusted proxy.
		ClientIPHeader string `yaml:"client_ip_header"`
	} `yaml:"ip_filter"`
	// FailedAttempts configures the log of refused device requests (ADR
	// 20).
	FailedAttempts struct {
		// Retention is how long refusals are kept, by the hour.
		Retention time.Duration `yaml:"retention"`
	} `yaml:"failed_attempts"`
	// Audit configures the audit log of operator changes (ADR 19).
	Audit struct {
		// Retention is how long records are kept; older ones are pruned
		// (hourly) with the chain anchored across the pruning. 0 keeps
		// them forever.
		Retention time.Duration `yaml:"retention"`
	} `yaml:"audit"`
	// Issuance is certificate issuance to devices (ADR 22).
	Issuance struct {
		// PublicURL is the base URL relying parties reach this service's
		// CRLs and OCSP responder at (https://host:port, no path); issued
		// certificates carry {public_url}/pki/{issuing CA}/crl and /ocsp.
		// Default: https://{listen.http}.
		PublicURL string `yaml:"public_url"`
	} `yaml:"issuance"`
	// Revocation is the checking of manufacturer certificates against
	// CRLs and OCSP (ADR 23); each enrollment group says whether it
	// checks and what a missing answer means.
	Revocation struct {
		// FetchTimeout bounds one fetch of a CRL from a distribution point
		// or one OCSP request.
		FetchTimeout time.Duration `yaml:"fetch_timeout"`
		// RefreshInterval is how often a fetched CRL is fetched again
		// (sooner when three quarters of its validity have passed); it
		// bounds how long a revocation published at a distribution point
		// takes to reach registrations and the registered devices.
		RefreshInterval time.Duration `yaml:"refresh_interval"`
		// AllowPrivateNetworks lets CRL fetches and OCSP requests (at URLs
		// that devices' certificates name) connect to loopback, link-local
		// and private addresses; off, they are refused, so that a
		// certificate cannot point this service at its own network.
		AllowPrivateNetworks bool `yaml:"allow_private_networks"`
	} `yaml:"revocation"`
	Webhooks struct {
		// CAFile adds CA certificates (PEM) to trust for custom
		// allocation webhooks, beside the system's.
		CAFile string `yaml:"ca_file"`
		// SyncBudget is how long a DPS device's first registration waits
		// for a webhook before it is told to poll (ASSIGNING).
		SyncBudget time.Duration `yaml:"sync_budget"`
	} `yaml:"webhooks"`
	DPS struct {
		// IDScope is the DPS ID scope devices use in the DPS-compatible
		// API's paths; "" turns that API off.
		IDScope string `yaml:"id_scope"`
		// ServiceHostname is the host name DPS service SAS tokens must
		// name (their sr), and the HostName of connection strings; ""
		// means the server certificate's first DNS name.
		ServiceHostname string `yaml:"service_hostname"`
	} `yaml:"dps"`
	// MQTT configures DPS's device protocol over MQTT (listen.mqtt, and
	// WebSockets on the REST listener). Both need dps.id_scope.
	MQTT   MQTT `yaml:"mqtt"`
	Device struct {
		RateLimit struct {
			// PerIP bounds requests from one source address.
			PerIP RateRule `yaml:"per_ip"`
			// PerRegistration bounds registrations of one attested device.
			PerRegistration RateRule `yaml:"per_registration"`
			// TPMChallengesPerIP bounds TPM first steps (each a
			// public-key operation) from one source address.
			TPMChallengesPerIP RateRule `yaml:"tpm_challenges_per_ip"`
		} `yaml:"rate_limit"`
	} `yaml:"device"`
	// Console is the web console (docs/console.md), served under
	// /console/ on the REST listener.
	Console struct {
		// Enabled serves the console's (embedded) pages; they call the
		// REST API with the operator's access key, so they can do nothing
		// the key cannot.
		Enabled bool `yaml:"enabled"`
	} `yaml:"console"`
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	Debug         struct {
		// PprofListen, if set, serves net/http/pprof there (loopback only).
		PprofListen string `yaml:"pprof_listen"`
	} `yaml:"debug"`
}

// MQTT bounds what DPS-over-MQTT clients can make the server hold.
type MQTT struct {
	// WebSockets serves MQTT over WebSockets at
	// wss://{listen.http}/$iothub/websocket (subprotocol mqtt).
	WebSockets bool `yaml:"websockets"`
	// MaxPacketBytes bounds one MQTT packet from a client.
	MaxPacketBytes int `yaml:"max_packet_bytes"`
	// MaxInflight bounds the requests one connection has in progress.
	MaxInflight int `yaml:"max_inflight"`
	// IdleTimeout closes a connection silent this long (a shorter
	// keepalive × 1.5 applies).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxConnections bounds the open MQTT connections (both transports),
	// MaxConnectionsPerIP those from one source address.
	MaxConnections      int `yaml:"max_connections"`
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
}

// RateRule allows Limit events per Window; Limit 0 turns the rule off.
type RateRule struct {
	Limit  int64         `yaml:"limit"`
	Window time.Duration `yaml:"window"`
}

// Redis configures the Redis backend.
type Redis struct {
	// Addrs: one address (standalone), the cluster's nodes (with Cluster
	// or several addresses), or the sentinels (with MasterName).
	Addrs      []string `yaml:"addrs"`
	Cluster    bool     `yaml:"cluster"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	Password   string   `yaml:"password"`
	DB         int      `yaml:"db"`
	KeyPrefix  string   `yaml:"key_prefix"`
	PoolSize   int      `yaml:"pool_size"`
	// Timeouts keep a request from hanging on an unreachable Redis.
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	PoolTimeout  time.Duration `yaml:"pool_timeout"`
	TLS          struct {
		Enabled    bool   `yaml:"enabled"`
		CAFile     string `yaml:"ca_file"`
		CertFile   string `yaml:"cert_file"`
		KeyFile    string `yaml:"key_file"`
		ServerName string `yaml:"server_name"`
	} `yaml:"tls"`
}

// Default returns the configuration used where nothing else is said.
func Default() Config {
	var c Config
	c.DataDir = ".zerotouch"
	c.Listen.GRPC = "127.0.0.1:8444"
	c.Listen.HTTP = "127.0.0.1:8443"
	c.Listen.MQTT = "127.0.0.1:8883"
	c.Listen.Metrics = "127.0.0.1:9464"
	c.MQTT = MQTT{WebSockets: true, MaxPacketBytes: 64 << 10, MaxInflight: 4, IdleTimeout: 4 * time.Minute,
		ConnectTimeout: 30 * time.Second, MaxConnections: 100_000, MaxConnectionsPerIP: 1_000}
	c.Storage.Backend = "embedded"
	c.Storage.Redis.KeyPrefix = "zt"
	c.Storage.Redis.DialTimeout = time.Second
	c.Storage.Redis.ReadTimeout = 500 * time.Millisecond
	c.Storage.Redis.WriteTimeout = 500 * time.Millisecond
	c.Storage.Redis.PoolTimeout = time.Second
	c.Log.Level = "info"
	c.X509.MaxChainLength = 5
	c.SymmetricKeys.Enabled = true
	c.DPS.IDScope = "0ne00000001"
	c.Webhooks.SyncBudget = 2 * time.Second
	c.Hubs.EventRetention, c.Hubs.MaxStreams, c.Hubs.PollInterval = 100_000, 16, 250*time.Millisecond
	c.Audit.Retention = 400 * 24 * time.Hour
	c.FailedAttempts.Retention = 7 * 24 * time.Hour
	c.IPFilter.ClientIPHeader = "X-Forwarded-For"
	c.Device.RateLimit.PerIP = RateRule{Limit: 6000, Window: time.Minute}
	c.Device.RateLimit.PerRegistration = RateRule{Limit: 60, Window: time.Minute}
	c.Device.RateLimit.TPMChallengesPerIP = RateRule{Limit: 3000, Window: 5 * time.Minute}
	c.Console.Enabled = true
	c.ShutdownGrace = 20 * time.Second
	c.Revocation.FetchTimeout, c.Revocation.RefreshInterval = 5*time.Second, time.Hour
	return c
}

// DataKeyPath is the data key file.
func (c *Config) DataKeyPath() string {
	if c.Secrets.DataKeyFile != "" {
		return c.Secrets.DataKeyFile
	}
	return filepath.Join(c.DataDir, "data.key")
}

// StorePath is the embedded store's file.
func (c *Config) StorePath() string {
	if c.Storage.Path != "" {
		return c.Storage.Path
	}
	return filepath.Join(c.DataDir, "zerotouch.db")
}

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Flag is one of `zerotouch serve`'s command-line flags. Load parses
// them; the CLI declares the same ones so that its help lists them.
type Flag struct {
	Name, Usage string
	// Bool flags take no value.
	Bool bool
	// set applies the flag's value ("true" or "false" for a Bool) over
	// the file and the environment; nil for --config, which names the
	// file.
	set func(c *Config, v string)
}

// Flags lists serve's flags, in the order its help shows them.
func Flags() []Flag {
	return []Flag{
		{Name: "config", Usage: "YAML configuration file (default: $ZEROTOUCH_CONFIG)"},
		{Name: "dev", Bool: true, Usage: "development mode: generate a PKI and owner key in the data directory",
			set: func(c *Config, v string) { c.Dev = v == "true" }},
		{Name: "data-dir", Usage: "data directory", set: func(c *Config, v string) { c.DataDir = v }},
		{Name: "grpc-listen", Usage: "gRPC listen address", set: func(c *Config, v string) { c.Listen.GRPC = v }},
		{Name: "http-listen", Usage: "REST (HTTPS) listen address", set: func(c *Config, v string) { c.Listen.HTTP = v }},
		{Name: "mqtt-listen", Usage: `DPS over MQTT (TLS) listen address; "off" turns it off`, set: func(c *Config, v string) { c.Listen.MQTT = offOr(v) }},
		{Name: "metrics-listen", Usage: `Prometheus metrics (plain HTTP, /metrics) listen address; "off" turns it off`,
			set: func(c *Config, v string) { c.Listen.Metrics = offOr(v) }},
		{Name: "pki-listen", Usage: `plain-HTTP listen address for the issuing CAs' CRLs and OCSP (/pki/); "off" (the default) serves them on the REST listener only`,
			set: func(c *Config, v string) { c.Listen.PKI = offOr(v) }},
		{Name: "tls-cert", Usage: "server certificate chain (PEM)", set: func(c *Config, v string) { c.TLS.CertFile = v }},
		{Name: "tls-key", Usage: "server private key (PEM)", set: func(c *Config, v string) { c.TLS.KeyFile = v }},
		{Name: "log-level", Usage: "debug, info, warn or error", set: func(c *Config, v string) { c.Log.Level = v }},
		{Name: "log-format", Usage: "text or json", set: func(c *Config, v string) { c.Log.Format = v }},
		{Name: "storage", Usage: "embedded or redis", set: func(c *Config, v string) { c.Storage.Backend = v }},
		{Name: "redis-addrs", Usage: "comma-separated Redis addresses", set: func(c *Config, v string) { c.Storage.Redis.Addrs = splitList(v) }},
	}
}

// Load builds the configuration for `zerotouch serve`: defaults, then the
// YAML file named by --config (or ZEROTOUCH_CONFIG), then ZEROTOUCH_*
// variables from env, then flags in args. It returns every problem found.
func Load(args []string, env func(string) string) (*Config, error) {
	c := Default()
	flags := Flags()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	for _, f := range flags {
		if f.Bool {
			fs.Bool(f.Name, false, f.Usage)
		} else {
			fs.String(f.Name, "", f.Usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("flags: unexpected arguments %q", fs.Args())
	}

	var problems []error
	configFile := env("ZEROTOUCH_CONFIG")
	fs.Visit(func(given *flag.Flag) {
		if given.Name == "config" {
			configFile = given.Value.String()
		}
	})
	if configFile != "" {
		if err := loadFile(&c, configFile); err != nil {
			problems = append(problems, err)
		}
	}
	problems = append(problems, applyEnv(&c, env)...)
	fs.Visit(func(given *flag.Flag) {
		for _, f := range flags {
			if f.Name == given.Name && f.set != nil {
				f.set(&c, given.Value.String())
			}
		}
	})
	if c.Log.Format == "" {
		// JSON for log collectors; text for a person at a terminal.
		c.Log.Format = "json"
		if c.Dev {
			c.Log.Format = "text"
		}
	}
	if err := c.Validate(); err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return &c, nil
}

func loadFile(c *Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(raw) > MaxFileSize {
		return fmt.Errorf("config file %s is larger than %d bytes", path, MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// applyEnv overrides fields from ZEROTOUCH_* variables.
func applyEnv(c *Config, env func(string) string) []error {
	var problems []error
	str := map[string]*string{
		"ZEROTOUCH_DATA_DIR":             &c.DataDir,
		"ZEROTOUCH_LISTEN_GRPC":          &c.Listen.GRPC,
		"ZEROTOUCH_LISTEN_HTTP":          &c.Listen.HTTP,
		"ZEROTOUCH_TLS_CERT_FILE":        &c.TLS.CertFile,
		"ZEROTOUCH_TLS_KEY_FILE":         &c.TLS.KeyFile,
		"ZEROTOUCH_STORAGE_BACKEND":      &c.Storage.Backend,
		"ZEROTOUCH_STORAGE_PATH":         &c.Storage.Path,
		"ZEROTOUCH_LOG_LEVEL":            &c.Log.Level,
		"ZEROTOUCH_LOG_FORMAT":           &c.Log.Format,
		"ZEROTOUCH_REDIS_USERNAME":       &c.Storage.Redis.Username,
		"ZEROTOUCH_REDIS_PASSWORD":       &c.Storage.Redis.Password,
		"ZEROTOUCH_REDIS_MASTER":         &c.Storage.Redis.MasterName,
		"ZEROTOUCH_REDIS_PREFIX":         &c.Storage.Redis.KeyPrefix,
		"ZEROTOUCH_PPROF_LISTEN":         &c.Debug.PprofListen,
		"ZEROTOUCH_ISSUANCE_PUBLIC_URL":  &c.Issuance.PublicURL,
		"ZEROTOUCH_DATA_KEY_FILE":        &c.Secrets.DataKeyFile,
		"ZEROTOUCH_DPS_ID_SCOPE":         &c.DPS.IDScope,
		"ZEROTOUCH_DPS_SERVICE_HOSTNAME": &c.DPS.ServiceHostname,
	}
	for name, p := range str {
		if v := env(name); v != "" {
			*p = v
		}
	}
	if v := env("ZEROTOUCH_LISTEN_MQTT"); v != "" {
		c.Listen.MQTT = offOr(v)
	}
	if v := env("ZEROTOUCH_LISTEN_METRICS"); v != "" {
		c.Listen.Metrics = offOr(v)
	}
	if v := env("ZEROTOUCH_LISTEN_PKI"); v != "" {
		c.Listen.PKI = offOr(v)
	}
	if v := env("ZEROTOUCH_MQTT_WEBSOCKETS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("ZEROTOUCH_MQTT_WEBSOCKETS=%q is not a boolean", v))
		}
		c.MQTT.WebSockets = b
	}
	if v := env("ZEROTOUCH_CONSOLE_ENABLED"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("ZEROTOUCH_CONSOLE_ENABLED=%q is not a boolean", v))
		}
		c.Console.Enabled = b
	}
	if v := env("ZEROTOUCH_REDIS_ADDRS"); v != "" {
		c.Storage.Redis.Addrs = splitList(v)
	}
	if v := env("ZEROTOUCH_REDIS_CLUSTER"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("ZEROTOUCH_REDIS_CLUSTER=%q is not a boolean", v))
		}
		c.Storage.Redis.Cluster = b
	}
	if v := env("ZEROTOUCH_DEV"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("ZEROTOUCH_DEV=%q is not a boolean", v))
		}
		c.Dev = b
	}
	if v := env("ZEROTOUCH_X509_MAX_CHAIN_LENGTH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("ZEROTOUCH_X509_MAX_CHAIN_LENGTH=%q is not an integer", v))
		}
		c.X509.MaxChainLength = n
	}
	if v := env("ZEROTOUCH_SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("ZEROTOUCH_SHUTDOWN_GRACE=%q is not a duration", v))
		}
		c.ShutdownGrace = d
	}
	return problems
}

func (r *Redis) validate() []error {
	var p []error
	if len(r.Addrs) == 0 {
		p = append(p, errors.New("storage.redis.addrs is required for the redis backend"))
	}
	for _, a := range r.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			p = append(p, fmt.Errorf("storage.redis.addrs: %q is not host:port", a))
		}
	}
	if r.Cluster && r.MasterName != "" {
		p = append(p, errors.New("storage.redis: cluster and master_name (Sentinel) exclude each other"))
	}
	if r.DB != 0 && (r.Cluster || len(r.Addrs) > 1 && r.MasterName == "") {
		p = append(p, errors.New("storage.redis.db must be 0 with Redis Cluster"))
	}
	if r.DB < 0 || r.DB > 15 {
		p = append(p, fmt.Errorf("storage.redis.db %d is outside 0-15", r.DB))
	}
	if r.KeyPrefix == "" || strings.ContainsAny(r.KeyPrefix, "{}: ") {
		p = append(p, fmt.Errorf("storage.redis.key_prefix %q must be non-empty without braces, colons or spaces", r.KeyPrefix))
	}
	if r.PoolSize < 0 || r.PoolSize > 10000 {
		p = append(p, fmt.Errorf("storage.redis.pool_size %d is outside 0-10000", r.PoolSize))
	}
	for name, d := range map[string]time.Duration{"dial_timeout": r.DialTimeout, "read_timeout": r.ReadTimeout, "write_timeout": r.WriteTimeout, "pool_timeout": r.PoolTimeout} {
		if d <= 0 || d > time.Minute {
			p = append(p, fmt.Errorf("storage.redis.%s %s is outside (0, 1m]", name, d))
		}
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		p = append(p, errors.New("storage.redis.tls.cert_file and key_file must be given together"))
	}
	for _, f := range []string{r.TLS.CAFile, r.TLS.CertFile, r.TLS.KeyFile} {
		if f == "" {
			continue
		}
		if !r.TLS.Enabled {
			p = append(p, errors.New("storage.redis.tls files are given but tls.enabled is false"))
			break
		}
		if _, err := os.Stat(f); err != nil {
			p = append(p, fmt.Errorf("storage.redis.tls: %v", err))
		}
	}
	return p
}

func (m *MQTT) validate() []error {
	var p []error
	if m.MaxPacketBytes < 1<<10 || m.MaxPacketBytes > 1<<20 {
		p = append(p, fmt.Errorf("mqtt.max_packet_bytes %d is outside 1024-1048576", m.MaxPacketBytes))
	}
	if m.MaxInflight < 1 || m.MaxInflight > 64 {
		p = append(p, fmt.Errorf("mqtt.max_inflight %d is outside 1-64", m.MaxInflight))
	}
	if m.IdleTimeout < 10*time.Second || m.IdleTimeout > time.Hour {
		p = append(p, fmt.Errorf("mqtt.idle_timeout %s is outside 10s-1h", m.IdleTimeout))
	}
	if m.ConnectTimeout < time.Second || m.ConnectTimeout > 5*time.Minute {
		p = append(p, fmt.Errorf("mqtt.connect_timeout %s is outside 1s-5m", m.ConnectTimeout))
	}
	if m.MaxConnections < 1 || m.MaxConnections > 10_000_000 {
		p = append(p, fmt.Errorf("mqtt.max_connections %d is outside 1-10000000", m.MaxConnections))
	}
	if m.MaxConnectionsPerIP < 1 || m.MaxConnectionsPerIP > m.MaxConnections {
		p = append(p, fmt.Errorf("mqtt.max_connections_per_ip %d is outside 1-max_connections (%d)", m.MaxConnectionsPerIP, m.MaxConnections))
	}
	return p
}

// offOr is a listen address from a flag or variable, where "off" turns
// the listener off ("" there means "not given").
func offOr(v string) string {
	if strings.EqualFold(v, "off") {
		return ""
	}
	return v
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func hasZeroPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// Geo is the geo policy's view of the network.
type Geo struct {
	// Networks maps address ranges (CIDR) to region names.
	Networks map[string]string `yaml:"networks"`
	// Nearest lists, per region, the other regions in order of preference.
	Nearest map[string][]string `yaml:"nearest"`
	// ProxyHeader names a header carrying the client's region, believed
	// only from TrustedProxies (an edge proxy that located the client).
	ProxyHeader    string   `yaml:"proxy_header"`
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Prefixes parses Networks and TrustedProxies (Validate reports entries
// that do not parse; they are left out here).
func (g Geo) Prefixes() (map[netip.Prefix]string, []netip.Prefix) {
	nets := map[netip.Prefix]string{}
	for cidr, region := range g.Networks {
		if p, err := netip.ParsePrefix(cidr); err == nil {
			nets[p.Masked()] = region
		}
	}
	var trusted []netip.Prefix
	for _, t := range g.TrustedProxies {
		if p, err := parsePrefixOrAddr(t); err == nil {
			trusted = append(trusted, p)
		}
	}
	return nets, trusted
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

func validRegion(r string) bool { return allocation.ValidateRegion(r) == nil }

func (g Geo) validate() []error {
	var p []error
	for cidr, region := range g.Networks {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			p = append(p, fmt.Errorf("geo.networks: %q is not a CIDR", cidr))
		}
		if !validRegion(region) {
			p = append(p, fmt.Errorf("geo.networks[%s]: region %q must be 1-64 of a-z, 0-9, -", cidr, region))
		}
	}
	for region, near := range g.Nearest {
		for _, r := range append([]string{region}, near...) {
			if !validRegion(r) {
				p = append(p, fmt.Errorf("geo.nearest: region %q must be 1-64 of a-z, 0-9, -", r))
			}
		}
	}
	for _, t := range g.TrustedProxies {
		if _, err := parsePrefixOrAddr(t); err != nil {
			p = append(p, fmt.Errorf("geo.trusted_proxies: %q is not an address or CIDR", t))
		}
	}
	if h := g.ProxyHeader; h != "" {
		for i := 0; i < len(h); i++ {
			if c := h[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				p = append(p, fmt.Errorf("geo.proxy_header %q is not a header name", h))
				break
			}
		}
		if len(g.TrustedProxies) == 0 {
			p = append(p, errors.New("geo.proxy_header needs geo.trusted_proxies: a header from any client would let it choose its region"))
		}
	}
	return p
}
