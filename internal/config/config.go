// Package config loads Zerotouch's configuration from one YAML file,
// ZEROTOUCH_* environment variables and command-line flags (each overriding
// the one before), and validates it, reporting every problem at once.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
	} `yaml:"listen"`
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Storage struct {
		Backend string `yaml:"backend"`
		// Path of the embedded store file; default DataDir/zerotouch.db.
		Path string `yaml:"path"`
	} `yaml:"storage"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	X509 struct {
		MaxChainLength int `yaml:"max_chain_length"`
	} `yaml:"x509"`
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// Default returns the configuration used where nothing else is said.
func Default() Config {
	var c Config
	c.DataDir = ".zerotouch"
	c.Listen.GRPC = "127.0.0.1:8444"
	c.Listen.HTTP = "127.0.0.1:8443"
	c.Storage.Backend = "embedded"
	c.Log.Level = "info"
	c.Log.Format = "text"
	c.X509.MaxChainLength = 5
	c.ShutdownGrace = 20 * time.Second
	return c
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

// Load builds the configuration for `zerotouch serve`: defaults, then the
// YAML file named by --config (or ZEROTOUCH_CONFIG), then ZEROTOUCH_*
// variables from env, then flags in args. It returns every problem found.
func Load(args []string, env func(string) string) (*Config, error) {
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	configFile := fs.String("config", env("ZEROTOUCH_CONFIG"), "YAML configuration file")
	flagDev := fs.Bool("dev", false, "development mode: generate a PKI and owner key in the data directory")
	flagDataDir := fs.String("data-dir", "", "data directory")
	flagGRPC := fs.String("grpc-listen", "", "gRPC listen address")
	flagHTTP := fs.String("http-listen", "", "REST (HTTPS) listen address")
	flagCert := fs.String("tls-cert", "", "server certificate chain (PEM)")
	flagKey := fs.String("tls-key", "", "server private key (PEM)")
	flagLevel := fs.String("log-level", "", "debug, info, warn or error")
	flagFormat := fs.String("log-format", "", "text or json")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("flags: unexpected arguments %q", fs.Args())
	}

	var problems []error
	if *configFile != "" {
		if err := loadFile(&c, *configFile); err != nil {
			problems = append(problems, err)
		}
	}
	problems = append(problems, applyEnv(&c, env)...)
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "dev":
			c.Dev = *flagDev
		case "data-dir":
			c.DataDir = *flagDataDir
		case "grpc-listen":
			c.Listen.GRPC = *flagGRPC
		case "http-listen":
			c.Listen.HTTP = *flagHTTP
		case "tls-cert":
			c.TLS.CertFile = *flagCert
		case "tls-key":
			c.TLS.KeyFile = *flagKey
		case "log-level":
			c.Log.Level = *flagLevel
		case "log-format":
			c.Log.Format = *flagFormat
		}
	})
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
		"ZEROTOUCH_DATA_DIR":        &c.DataDir,
		"ZEROTOUCH_LISTEN_GRPC":     &c.Listen.GRPC,
		"ZEROTOUCH_LISTEN_HTTP":     &c.Listen.HTTP,
		"ZEROTOUCH_TLS_CERT_FILE":   &c.TLS.CertFile,
		"ZEROTOUCH_TLS_KEY_FILE":    &c.TLS.KeyFile,
		"ZEROTOUCH_STORAGE_BACKEND": &c.Storage.Backend,
		"ZEROTOUCH_STORAGE_PATH":    &c.Storage.Path,
		"ZEROTOUCH_LOG_LEVEL":       &c.Log.Level,
		"ZEROTOUCH_LOG_FORMAT":      &c.Log.Format,
	}
	for name, p := range str {
		if v := env(name); v != "" {
			*p = v
		}
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

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var p []error
	if c.DataDir == "" {
		p = append(p, errors.New("data_dir is required"))
	}
	for name, addr := range map[string]string{"listen.grpc": c.Listen.GRPC, "listen.http": c.Listen.HTTP} {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			p = append(p, fmt.Errorf("%s %q is not host:port: %v", name, addr, err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			p = append(p, fmt.Errorf("%s %q has an invalid port", name, addr))
		}
	}
	if c.Listen.GRPC == c.Listen.HTTP && c.Listen.GRPC != "" && !hasZeroPort(c.Listen.GRPC) {
		p = append(p, fmt.Errorf("listen.grpc and listen.http are both %q; they need separate addresses", c.Listen.GRPC))
	}
	switch {
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		p = append(p, errors.New("tls.cert_file and tls.key_file must be given together"))
	case c.TLS.CertFile == "" && !c.Dev:
		p = append(p, errors.New("tls.cert_file and tls.key_file are required (or run with --dev to generate a development PKI)"))
	case c.TLS.CertFile != "":
		for _, f := range []string{c.TLS.CertFile, c.TLS.KeyFile} {
			if _, err := os.Stat(f); err != nil {
				p = append(p, fmt.Errorf("tls: %v", err))
			}
		}
	}
	if c.Storage.Backend != "embedded" {
		p = append(p, fmt.Errorf("storage.backend %q is not supported (embedded)", c.Storage.Backend))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p = append(p, fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p = append(p, fmt.Errorf("log.format %q is not one of text, json", c.Log.Format))
	}
	if c.X509.MaxChainLength < 1 || c.X509.MaxChainLength > 10 {
		p = append(p, fmt.Errorf("x509.max_chain_length %d is outside 1-10", c.X509.MaxChainLength))
	}
	if c.ShutdownGrace <= 0 || c.ShutdownGrace > 10*time.Minute {
		p = append(p, fmt.Errorf("shutdown_grace %s is outside (0, 10m]", c.ShutdownGrace))
	}
	return errors.Join(p...)
}

func hasZeroPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}
