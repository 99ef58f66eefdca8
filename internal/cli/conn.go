package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/pki"
)

const (
	defaultGRPCServer = "localhost:8444"
	defaultRESTServer = "localhost:8443"
)

// Environment variables of the client commands.
const (
	accessKeyEnv  = "ZEROTOUCH_ACCESS_KEY"
	serverEnv     = "ZEROTOUCH_SERVER"
	httpServerEnv = "ZEROTOUCH_HTTP_SERVER"
	caFileEnv     = "ZEROTOUCH_CA_FILE"
	dataDirEnv    = "ZEROTOUCH_DATA_DIR"
	contextEnv    = "ZEROTOUCH_CONTEXT"
)

// conn is the connection of a client command: its flags, and what they
// resolve to. Each setting is the first of: its flag, its ZEROTOUCH_*
// variable, the context (--context, ZEROTOUCH_CONTEXT or the current
// one), and the data directory next to the server (.zerotouch, or
// ZEROTOUCH_DATA_DIR) or the default address.
type conn struct {
	env Env
	// The flags, as given ("" when not).
	flagServer, flagHTTPServer, flagCAFile, flagAccessKey, flagContext string

	// Resolved by resolve.
	resolved bool
	// server is the gRPC address; restServer the REST one for a command
	// whose --server names either (device register --transport rest);
	// httpServer the REST one of --http-server.
	server, restServer, httpServer string
	caFile                         string
	// caDefault: caFile is the data directory's, which may be absent
	// (then the system roots are trusted).
	caDefault bool
	// accessKey is --access-key or ZEROTOUCH_ACCESS_KEY; keyFile the
	// context's key file; else the data directory's owner key.
	accessKey, keyFile, dataDir string
	// context is the context in use, or nil.
	context *contextEntry
	// getenv reads the environment; nil reads none (bench --spawn's
	// connection, to the server it started).
	getenv func(string) string

	cc *grpc.ClientConn
}

// addConn gives cmd the connection flags. Their help shows no value from
// the environment or a context: a secret is never a flag default.
func addConn(cmd *cobra.Command, env Env) *conn {
	c := &conn{env: env, getenv: env.Getenv}
	fs := cmd.Flags()
	fs.StringVar(&c.flagServer, "server", "", "server address host:port (default: $"+serverEnv+", else the context's server, else "+defaultGRPCServer+")")
	fs.StringVar(&c.flagCAFile, "ca-file", "", "CA certificate(s) to trust for the server, PEM (default: $"+caFileEnv+", else the context's CA, else .zerotouch/pki/ca.pem)")
	fs.StringVar(&c.flagAccessKey, "access-key", "", "access key (default: read from "+accessKeyEnv+" if set, else the context's key file, else the data directory's owner.key)")
	fs.StringVar(&c.flagContext, "context", "", "the context to use (default: $"+contextEnv+", else the current one; see zerotouch context)")
	_ = cmd.RegisterFlagCompletionFunc("context", c.completeContexts)
	return c
}

// addHTTPServer gives cmd --http-server, the REST address.
func (c *conn) addHTTPServer(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.flagHTTPServer, "http-server", "", "REST (HTTPS) address host:port (default: $"+httpServerEnv+", else the context's http server, else "+defaultRESTServer+")")
}

func (c *conn) completeContexts(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	s, err := loadContexts(c.env.Getenv)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []cobra.Completion
	for _, e := range s.Contexts {
		names = append(names, e.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func (c *conn) lookupEnv(k string) string {
	if c.getenv == nil {
		return ""
	}
	return strings.TrimSpace(c.getenv(k))
}

// first is the first of values that is not "".
func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func or(a, b string) string { return first(a, b) }

// resolve settles every setting (once).
func (c *conn) resolve() error {
	if c.resolved {
		return nil
	}
	c.dataDir = first(c.lookupEnv(dataDirEnv), ".zerotouch")
	ctxName := first(c.flagContext, c.lookupEnv(contextEnv))
	if c.getenv != nil {
		store, err := loadContexts(c.getenv)
		switch {
		case err != nil && (ctxName != "" || !errors.Is(err, errNoConfigDir)):
			return err
		case err == nil && ctxName != "":
			if c.context = store.find(ctxName); c.context == nil {
				return fmt.Errorf("no context %q (zerotouch context list shows them; context add makes one)", ctxName)
			}
		case err == nil && store.Current != "":
			c.context = store.find(store.Current)
		}
	}
	var fromCtx contextEntry
	if c.context != nil {
		fromCtx = *c.context
	}
	c.server = first(c.flagServer, c.lookupEnv(serverEnv), fromCtx.Server, defaultGRPCServer)
	c.restServer = first(c.flagServer, c.lookupEnv(serverEnv), fromCtx.HTTPServer, defaultRESTServer)
	c.httpServer = first(c.flagHTTPServer, c.lookupEnv(httpServerEnv), fromCtx.HTTPServer, defaultRESTServer)
	c.caFile = first(c.flagCAFile, c.lookupEnv(caFileEnv), fromCtx.caFile)
	if c.caDefault = c.caFile == ""; c.caDefault {
		c.caFile = filepath.Join(c.dataDir, "pki", "ca.pem")
	}
	c.accessKey = first(c.flagAccessKey, c.lookupEnv(accessKeyEnv))
	c.keyFile = fromCtx.KeyFile
	c.resolved = true
	return nil
}

// tlsConfig trusts the system roots and the CA file.
func (c *conn) tlsConfig(clientCert *tls.Certificate) (*tls.Config, error) {
	if err := c.resolve(); err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if c.caFile != "" {
		certs, err := pki.LoadCertificates(c.caFile)
		if err != nil && !(c.caDefault && errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("ca-file: %w", err)
		}
		for _, ca := range certs {
			roots.AddCert(ca)
		}
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	return cfg, nil
}

// key is the access key.
func (c *conn) key() (string, error) {
	if err := c.resolve(); err != nil {
		return "", err
	}
	if c.accessKey != "" {
		return c.accessKey, nil
	}
	if c.keyFile != "" {
		raw, err := os.ReadFile(c.keyFile)
		if err != nil {
			return "", fmt.Errorf("the access key of context %q: %w", c.context.Name, err)
		}
		return strings.TrimSpace(string(raw)), nil
	}
	raw, err := os.ReadFile(filepath.Join(c.dataDir, app.OwnerKeyFile))
	if err != nil {
		return "", fmt.Errorf("no access key: pass --access-key, set "+accessKeyEnv+", use a context with a key file (zerotouch context add --key-file), "+
			"or run next to the server's data directory (%w)", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// dial opens (once) an authenticated gRPC connection to the management
// API; close closes it.
func (c *conn) dial() (*grpc.ClientConn, error) {
	if c.cc != nil {
		return c.cc, nil
	}
	key, err := c.key()
	if err != nil {
		return nil, err
	}
	cfg, err := c.tlsConfig(nil)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(c.server, grpc.WithTransportCredentials(credentials.NewTLS(cfg)), grpc.WithPerRPCCredentials(bearer(key)))
	if err != nil {
		return nil, err
	}
	c.cc = cc
	return cc, nil
}

func (c *conn) close() {
	if c.cc != nil {
		c.cc.Close()
		c.cc = nil
	}
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// opCmd is a leaf command of the management API: the connection flags,
// and run, which dials with c.dial() when it is ready to call (after
// checking its flags, so that a usage error needs no server).
func opCmd(env Env, use, short string, run func(cmd *cobra.Command, args []string, c *conn) error) *cobra.Command {
	var c *conn
	cmd := leaf(use, short, func(cmd *cobra.Command, args []string) error {
		defer c.close()
		return run(cmd, args, c)
	})
	c = addConn(cmd, env)
	return cmd
}
