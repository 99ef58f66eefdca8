// Package cli implements the zerotouch command: `serve`, the operator
// subcommands over the management API, `device register`, and the `pki`
// helpers that mint CA, proof and device certificates for evaluation.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// Env is what a command sees of its process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Stdin feeds commands that read input (a TPM bench worker); nil
	// reads nothing.
	Stdin io.Reader
}

type command struct {
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

// errUsage marks a usage error (exit status 2).
var errUsage = errors.New("usage")

func commands() map[string]command {
	return map[string]command{
		"serve":           {"run the service", runServe},
		"device":          {"device-side commands: register, tpm-ek", runDevice},
		"ca":              {"CA certificates: create, get, list, delete, verification-code, verify", runCA},
		"group":           {"enrollment groups: create, get, list, update, enable, disable, delete", runGroup},
		"enrollment":      {"individual enrollments: create, get, list, update, enable, disable, delete", runEnrollment},
		"shard":           {"hub shards: create, get, list, update, delete", runShard},
		"hub-cluster":     {"hub clusters and their pinned client certificates: create, get, list, update, delete, issue-cert", runHubCluster},
		"hub":             {"reference hub agent: keep a file replica of a hub cluster's shards from the assignment stream", runHub},
		"registration":    {"registrations: get, list, disable, enable, delete", runRegistration},
		"access-key":      {"access keys (and their DPS connection strings): create, list, delete, rotate", runAccessKey},
		"audit":           {"the audit log of operator changes: list, verify (the hash chain)", runAudit},
		"ip-filter":       {"IP filter rules (accept/reject by CIDR, first match wins): get, set FILE", runIPFilter},
		"failed-attempts": {"refused device requests: list (filters), summary (per device, source or reason per hour)", runFailedAttempts},
		"dps-import":      {"copy enrollment groups and enrollments from Azure DPS (its service API)", runDPSImport},
		"webhook-secret":  {"the secret that signs requests to a custom allocation webhook URL", runWebhookSecret},
		"pki":             {"mint evaluation certificates and keys: ca, proof, device, tpm-ek-cert (a TPM's EK certificate), hub-node (a hub node's key and CSR)", runPKI},
		"bench":           {"load generator: registrations and the TLS ceiling, over fresh connections", runBench},
	}
}

// Main runs the command line and returns the process exit status.
func Main(ctx context.Context, args []string, env Env) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stderr, cmds)
		return 2
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "zerotouch: unknown command %q\n", args[0])
		usage(env.Stderr, cmds)
		return 2
	}
	if err := cmd.run(ctx, env, args[1:]); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(env.Stderr, "zerotouch %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(env.Stderr, "zerotouch %s: %s\n", args[0], describe(err))
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: zerotouch <command> [arguments]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'zerotouch <command> <subcommand> -h' for a command's flags.")
}

// describe renders an error, with the stable reason of API errors.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return fmt.Sprintf("%s (%s): %s", st.Code(), info.GetReason(), st.Message())
		}
	}
	return fmt.Sprintf("%s: %s%s", st.Code(), st.Message(), grpcHint(st))
}

// parse parses flags that may come before, between or after positional
// arguments, and checks the positional count.
func parse(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, fmt.Errorf("%w: %s %s\n%s", errUsage, fs.Name(), strings.Join(positional, " "), flagHelp(fs))
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != len(positional) {
		return nil, fmt.Errorf("%w: %s %s\n%s", errUsage, fs.Name(), strings.Join(positional, " "), flagHelp(fs))
	}
	return pos, nil
}

func flagHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "  --%s\t%s", f.Name, f.Usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		}
		b.WriteByte('\n')
	})
	return b.String()
}

func subcommand(args []string, names ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("%w: want one of %s", errUsage, strings.Join(names, ", "))
	}
	for _, n := range names {
		if args[0] == n {
			return n, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("%w: unknown subcommand %q; want one of %s", errUsage, args[0], strings.Join(names, ", "))
}

func runServe(ctx context.Context, env Env, args []string) error {
	cfg, err := config.Load(args, env.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := app.NewLogger(cfg, env.Stderr)
	return app.Run(ctx, cfg, app.Options{Stdout: env.Stdout, Log: log})
}

// conn holds the flags every client command shares.
type conn struct {
	server, caFile, accessKey, dataDir string
	// getenv reads ZEROTOUCH_ACCESS_KEY when the key is needed, after
	// parsing: a secret is never a flag default, which help would print.
	// nil reads no environment.
	getenv func(string) string
}

// accessKeyEnv names the environment variable that holds an access key.
const accessKeyEnv = "ZEROTOUCH_ACCESS_KEY"

func (c *conn) register(fs *flag.FlagSet, env Env, defaultServer string) {
	dataDir := or(env.Getenv("ZEROTOUCH_DATA_DIR"), ".zerotouch")
	fs.StringVar(&c.server, "server", or(env.Getenv("ZEROTOUCH_SERVER"), defaultServer), "server address host:port")
	fs.StringVar(&c.caFile, "ca-file", or(env.Getenv("ZEROTOUCH_CA_FILE"), filepath.Join(dataDir, "pki", "ca.pem")), "CA certificate(s) to trust for the server (PEM)")
	fs.StringVar(&c.accessKey, "access-key", "", "access key (default: read from "+accessKeyEnv+" if set, else the data directory's owner.key)")
	c.dataDir, c.getenv = dataDir, env.Getenv
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *conn) tlsConfig(clientCert *tls.Certificate) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if c.caFile != "" {
		certs, err := pki.LoadCertificates(c.caFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
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

func (c *conn) key() (string, error) {
	if c.accessKey != "" {
		return c.accessKey, nil
	}
	if c.getenv != nil {
		if k := strings.TrimSpace(c.getenv(accessKeyEnv)); k != "" {
			return k, nil
		}
	}
	raw, err := os.ReadFile(filepath.Join(c.dataDir, app.OwnerKeyFile))
	if err != nil {
		return "", fmt.Errorf("no access key: pass --access-key, set "+accessKeyEnv+", or run next to the data directory (%w)", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// dial opens an authenticated gRPC connection for operator commands.
func (c *conn) dial() (*grpc.ClientConn, error) {
	key, err := c.key()
	if err != nil {
		return nil, err
	}
	cfg, err := c.tlsConfig(nil)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(c.server,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithPerRPCCredentials(bearer(key)))
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
