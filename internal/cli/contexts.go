package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/pki"
)

// Contexts are named servers the CLI talks to (as kubectl's and step's
// are): their gRPC and REST addresses, the CA they are trusted by
// (fetched once and pinned by its fingerprint) and, optionally, the file
// holding the access key. They live in the user's configuration
// directory (ZEROTOUCH_CONFIG_DIR, else os.UserConfigDir()/zerotouch):
// contexts.yaml and ca/NAME.pem, files 0600 in directories 0700. The
// key itself is never copied there.

const (
	configDirEnv = "ZEROTOUCH_CONFIG_DIR"
	contextsFile = "contexts.yaml"
)

// errNoConfigDir: the environment names no configuration directory.
var errNoConfigDir = errors.New("no configuration directory: set " + configDirEnv + " or HOME")

// contextEntry is one context.
type contextEntry struct {
	Name          string `yaml:"name" json:"name"`
	Server        string `yaml:"server" json:"server"`
	HTTPServer    string `yaml:"http_server,omitempty" json:"httpServer,omitempty"`
	CAFingerprint string `yaml:"ca_fingerprint" json:"caFingerprint"`
	KeyFile       string `yaml:"key_file,omitempty" json:"keyFile,omitempty"`
	// caFile is ca/NAME.pem in the directory.
	caFile string
}

// contextStore is contexts.yaml.
type contextStore struct {
	Current  string         `yaml:"current,omitempty"`
	Contexts []contextEntry `yaml:"contexts"`
	dir      string
}

var contextName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// configDir is the contexts' directory: ZEROTOUCH_CONFIG_DIR, else what
// os.UserConfigDir answers, read through getenv (so that a test's
// environment decides, not the process's).
func configDir(getenv func(string) string) (string, error) {
	if d := getenv(configDirEnv); d != "" {
		return d, nil
	}
	var base string
	switch runtime.GOOS {
	case "windows":
		base = getenv("AppData")
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			base = filepath.Join(h, "Library", "Application Support")
		}
	default:
		base = getenv("XDG_CONFIG_HOME")
		if !filepath.IsAbs(base) {
			base = ""
			if h := getenv("HOME"); h != "" {
				base = filepath.Join(h, ".config")
			}
		}
	}
	if base == "" {
		return "", errNoConfigDir
	}
	return filepath.Join(base, "zerotouch"), nil
}

// loadContexts reads the contexts (none when the file does not exist).
func loadContexts(getenv func(string) string) (*contextStore, error) {
	dir, err := configDir(getenv)
	if err != nil {
		return nil, err
	}
	s := &contextStore{dir: dir}
	raw, err := os.ReadFile(filepath.Join(dir, contextsFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("contexts: %w", err)
	}
	if err := yaml.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("contexts: %s: %w", filepath.Join(dir, contextsFile), err)
	}
	for i := range s.Contexts {
		s.Contexts[i].caFile = s.caFile(s.Contexts[i].Name)
	}
	return s, nil
}

func (s *contextStore) caFile(name string) string { return filepath.Join(s.dir, "ca", name+".pem") }

func (s *contextStore) find(name string) *contextEntry {
	for i := range s.Contexts {
		if s.Contexts[i].Name == name {
			return &s.Contexts[i]
		}
	}
	return nil
}

// save writes contexts.yaml, readable only by the user.
func (s *contextStore) save() error {
	raw, err := yaml.Marshal(s)
	if err != nil {
		return err
	}
	return writePrivate(filepath.Join(s.dir, contextsFile), raw)
}

// writePrivate writes a file 0600 in directories 0700 (made if absent),
// through a temporary file so that a reader never sees half of it.
func writePrivate(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// normalizeFingerprint reads a SHA-256 fingerprint: hex, with or without
// colons (as openssl prints it) and a "SHA256:" prefix.
func normalizeFingerprint(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "sha256:"), "sha256 fingerprint=")
	s = strings.NewReplacer(":", "", " ", "").Replace(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", usagef("--ca-fingerprint %q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	return s, nil
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// fetchChain is the certificate chain addr presents, unverified: trust
// on first use checks it by fingerprint instead.
func fetchChain(ctx context.Context, addr string) ([]*x509.Certificate, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("%q is not host:port", addr)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{
		InsecureSkipVerify: true, // trust on first use: the caller matches the chain against a fingerprint
		ServerName:         host, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12,
	}}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates, nil
}

// verifyChain checks that chain (as addr presented it) leads to ca for
// addr's host.
func verifyChain(addr string, chain []*x509.Certificate, ca *x509.Certificate) error {
	if len(chain) == 0 {
		return fmt.Errorf("%s presented no certificate", addr)
	}
	host, _, _ := net.SplitHostPort(addr)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
		return fmt.Errorf("%s: its certificate does not chain to the CA for %q: %w", addr, host, err)
	}
	return nil
}

// trustOnFirstUse fetches addr's chain and returns its CA certificate
// whose SHA-256 is want.
func trustOnFirstUse(ctx context.Context, addr, want string) (*x509.Certificate, error) {
	chain, err := fetchChain(ctx, addr)
	if err != nil {
		return nil, err
	}
	var seen []string
	for i, c := range chain {
		fp := fingerprint(c)
		if fp != want {
			seen = append(seen, fmt.Sprintf("  %s  %q", fp, c.Subject.String()))
			continue
		}
		if !c.IsCA || i == 0 {
			return nil, fmt.Errorf("the certificate of %s with that fingerprint (%q) is the server's own, not a CA: "+
				"give the CA's fingerprint (openssl x509 -noout -fingerprint -sha256 -in ca.pem, or zerotouch pki fingerprint ca.pem)", addr, c.Subject.String())
		}
		return c, nil
	}
	if len(chain) == 1 {
		return nil, fmt.Errorf("%s presented only its own certificate (%q, SHA-256 %s), not its CA's, so there is nothing to match the fingerprint: "+
			"serve --dev does that; a production server should present its full chain (the CA after its certificate in tls.cert_file). "+
			"Or give the CA file with --ca-file, which is checked against the fingerprint", addr, chain[0].Subject.String(), fingerprint(chain[0]))
	}
	return nil, fmt.Errorf("none of the %d certificates %s presented has the SHA-256 fingerprint %s (a wrong fingerprint, or someone between you and the server); it presented:\n%s",
		len(chain), addr, want, strings.Join(seen, "\n"))
}

// checkGRPC tells a gRPC address from a REST one (both present the same
// certificate): the REST port answers a gRPC call with plain HTTP.
func checkGRPC(ctx context.Context, addr string, ca *x509.Certificate) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if st, ok := status.FromError(err); ok && grpcHint(st) != "" {
		return fmt.Errorf("--server %s: %s%s", addr, st.Message(), grpcHint(st))
	}
	return nil
}

func contextCmd(env Env) *cobra.Command {
	return group("context", "named servers to talk to (address, pinned CA, access key file): add, use, list, current, remove",
		contextAddCmd(env), contextUseCmd(env), contextListCmd(env), contextCurrentCmd(env), contextRemoveCmd(env))
}

func contextAddCmd(env Env) *cobra.Command {
	var e contextEntry
	var fp, caFile string
	var use, overwrite bool
	cmd := leaf("add NAME", "add a context, trusting the server's CA by its SHA-256 fingerprint (trust on first use)", func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if !contextName.MatchString(name) {
			return usagef("context name %q: want letters, digits, '.', '_' or '-' (at most 63)", name)
		}
		if e.Server == "" || (fp == "" && caFile == "") {
			return usagef("--server and --ca-fingerprint (or --ca-file) are required")
		}
		s, err := loadContexts(env.Getenv)
		if err != nil {
			return err
		}
		if s.find(name) != nil && !overwrite {
			return usagef("context %q exists; remove it first, or pass --overwrite", name)
		}
		if e.KeyFile != "" {
			if e.KeyFile, err = filepath.Abs(e.KeyFile); err != nil {
				return err
			}
			if _, err := os.ReadFile(e.KeyFile); err != nil {
				return fmt.Errorf("--key-file: %w", err)
			}
		}
		var want string
		if fp != "" {
			if want, err = normalizeFingerprint(fp); err != nil {
				return err
			}
		}
		ctx := cmd.Context()
		var ca *x509.Certificate
		if caFile != "" {
			certs, err := pki.LoadCertificates(caFile)
			if err != nil {
				return fmt.Errorf("--ca-file: %w", err)
			}
			ca = certs[0]
			if want != "" && fingerprint(ca) != want {
				return fmt.Errorf("--ca-file %s has the SHA-256 fingerprint %s, not %s", caFile, fingerprint(ca), want)
			}
		} else if ca, err = trustOnFirstUse(ctx, e.Server, want); err != nil {
			return err
		}
		// Both addresses must present certificates the CA issued for them.
		for _, addr := range []string{e.Server, e.HTTPServer} {
			if addr == "" {
				continue
			}
			chain, err := fetchChain(ctx, addr)
			if err != nil {
				return err
			}
			if err := verifyChain(addr, chain, ca); err != nil {
				return err
			}
		}
		if err := checkGRPC(ctx, e.Server, ca); err != nil {
			return err
		}
		e.Name, e.CAFingerprint = name, fingerprint(ca)
		if err := writePrivate(s.caFile(name), pki.CertPEM(ca)); err != nil {
			return err
		}
		if cur := s.find(name); cur != nil {
			*cur = e
		} else {
			s.Contexts = append(s.Contexts, e)
		}
		if use || s.Current == "" {
			s.Current = name
		}
		if err := s.save(); err != nil {
			return err
		}
		what := ""
		if s.Current == name {
			what = ", now the current context"
		}
		fmt.Fprintf(env.Stdout, "added context %s: %s trusted by %q (SHA-256 %s)%s\n", name, e.Server, ca.Subject.String(), e.CAFingerprint, what)
		return nil
	})
	fs := cmd.Flags()
	fs.StringVar(&e.Server, "server", "", "the server's gRPC address host:port (required)")
	fs.StringVar(&e.HTTPServer, "http-server", "", "the server's REST (HTTPS) address host:port, for device register --transport rest and bench")
	fs.StringVar(&fp, "ca-fingerprint", "", "SHA-256 fingerprint of the server's CA certificate (hex, colons allowed): the CA the server presents with it is trusted")
	fs.StringVar(&caFile, "ca-file", "", "trust this CA file instead of fetching the CA (checked against --ca-fingerprint if given); for a server that sends only its own certificate")
	fs.StringVar(&e.KeyFile, "key-file", "", "file holding the access key to use (its path is stored, not the key)")
	fs.BoolVar(&use, "use", false, "make it the current context (the first context always is)")
	fs.BoolVar(&overwrite, "overwrite", false, "replace a context of the same name")
	return cmd
}

func contextUseCmd(env Env) *cobra.Command {
	cmd := leaf("use NAME", "make a context the current one", func(cmd *cobra.Command, args []string) error {
		s, err := loadContexts(env.Getenv)
		if err != nil {
			return err
		}
		if s.find(args[0]) == nil {
			return fmt.Errorf("no context %q (zerotouch context list shows them)", args[0])
		}
		s.Current = args[0]
		if err := s.save(); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "current context: %s\n", args[0])
		return nil
	})
	cmd.ValidArgsFunction = completeContextArg(env)
	return cmd
}

func completeContextArg(env Env) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return (&conn{env: env}).completeContexts(cmd, args, "")
	}
}

// contextRow is a context as list prints it.
type contextRow struct {
	Current bool `json:"current" yaml:"current"`
	contextEntry
}

var contextTable = table[contextRow]{
	id: func(r contextRow) string { return r.Name },
	cols: []column[contextRow]{
		{"CURRENT", func(r contextRow) string {
			if r.Current {
				return "*"
			}
			return " "
		}},
		{"NAME", func(r contextRow) string { return r.Name }},
		{"SERVER", func(r contextRow) string { return r.Server }},
		{"HTTP SERVER", func(r contextRow) string { return r.HTTPServer }},
		{"CA SHA-256", func(r contextRow) string { return r.CAFingerprint[:min(16, len(r.CAFingerprint))] + "…" }},
		{"KEY FILE", func(r contextRow) string { return r.KeyFile }},
	},
}

func contextListCmd(env Env) *cobra.Command {
	var o *output
	cmd := leaf("list", "list the contexts", func(cmd *cobra.Command, _ []string) error {
		s, err := loadContexts(env.Getenv)
		if err != nil {
			return err
		}
		rows := []contextRow{}
		for _, e := range s.Contexts {
			rows = append(rows, contextRow{Current: e.Name == s.Current, contextEntry: e})
		}
		return contextTable.print(env.Stdout, o, map[string]any{"current": s.Current, "contexts": rows}, rows)
	})
	o = addOutput(cmd, formatTable, "the names")
	return cmd
}

func contextCurrentCmd(env Env) *cobra.Command {
	return leaf("current", "print the current context's name", func(cmd *cobra.Command, _ []string) error {
		s, err := loadContexts(env.Getenv)
		if err != nil {
			return err
		}
		if s.Current == "" || s.find(s.Current) == nil {
			return errors.New("no current context (zerotouch context use NAME)")
		}
		fmt.Fprintln(env.Stdout, s.Current)
		return nil
	})
}

func contextRemoveCmd(env Env) *cobra.Command {
	cmd := leaf("remove NAME", "remove a context and its pinned CA", func(cmd *cobra.Command, args []string) error {
		s, err := loadContexts(env.Getenv)
		if err != nil {
			return err
		}
		if s.find(args[0]) == nil {
			return fmt.Errorf("no context %q", args[0])
		}
		var keep []contextEntry
		for _, e := range s.Contexts {
			if e.Name != args[0] {
				keep = append(keep, e)
			}
		}
		s.Contexts = keep
		if s.Current == args[0] {
			s.Current = ""
		}
		if err := s.save(); err != nil {
			return err
		}
		if err := os.Remove(s.caFile(args[0])); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fmt.Fprintf(env.Stdout, "removed context %s\n", args[0])
		return nil
	})
	cmd.Aliases = []string{"rm", "delete"}
	cmd.ValidArgsFunction = completeContextArg(env)
	return cmd
}
