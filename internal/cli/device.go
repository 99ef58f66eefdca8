package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

const defaultRESTServer = "localhost:8443"

// tpmFlags select a TPM.
type tpmFlags struct {
	path *string
	seed *int64
	kind *string
	cert *string
}

func addTPMFlags(fs *flag.FlagSet) tpmFlags {
	return tpmFlags{
		path: fs.String("tpm-path", "simulator", "TPM character device (e.g. /dev/tpmrm0), or simulator for the in-process TPM simulator"),
		seed: fs.Int64("tpm-seed", 1, "with the simulator: its seed, so the same EK comes back every run"),
		kind: fs.String("tpm-ek", "ecc", "EK algorithm: rsa or ecc"),
		cert: fs.String("tpm-ek-cert", "", "EK certificate (DER or PEM) to present instead of the TPM's NV copy"),
	}
}

func (f tpmFlags) open() (*tpmdevice.Device, func(), error) {
	if *f.kind != "rsa" && *f.kind != "ecc" {
		return nil, nil, fmt.Errorf("%w: --tpm-ek %q is not rsa or ecc", errUsage, *f.kind)
	}
	t, err := tpmdevice.Open(*f.path, *f.seed)
	if err != nil {
		return nil, nil, err
	}
	var opt tpmdevice.Options
	if *f.cert != "" {
		raw, err := os.ReadFile(*f.cert)
		if err != nil {
			t.Close()
			return nil, nil, err
		}
		if certs, err := pki.LoadCertificates(*f.cert); err == nil {
			for _, c := range certs {
				opt.EKCertificates = append(opt.EKCertificates, c.Raw)
			}
		} else {
			opt.EKCertificates = [][]byte{raw}
		}
	}
	d, err := tpmdevice.New(t, tpmdevice.KeyType(*f.kind), opt)
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return d, func() { d.Close(); t.Close() }, nil
}

func runDevice(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "register", "tpm-ek")
	if err != nil {
		return err
	}
	if sub == "tpm-ek" {
		fs := flag.NewFlagSet("device tpm-ek", flag.ContinueOnError)
		tf := addTPMFlags(fs)
		out := fs.String("out", "", "also write the EK's TPM2B_PUBLIC to this file (for pki tpm-ek-cert --ek)")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		d, closeTPM, err := tf.open()
		if err != nil {
			return err
		}
		defer closeTPM()
		if *out != "" {
			if err := os.WriteFile(*out, d.EKPublic(), 0o644); err != nil {
				return err
			}
		}
		fmt.Fprintf(env.Stdout, "registration ID: %s\nendorsement key (TPM2B_PUBLIC, base64): %s\n",
			tpm.RegistrationID(d.EKPublic()), base64.StdEncoding.EncodeToString(d.EKPublic()))
		return nil
	}
	fs := flag.NewFlagSet("device register", flag.ContinueOnError)
	c := &conn{}
	c.register(fs, env, "")
	useTPM := fs.Bool("tpm", false, "attest with the TPM (two steps) instead of a certificate")
	tf := addTPMFlags(fs)
	certFile := fs.String("cert", "", "the device certificate, PEM; may also hold the chain")
	keyFile := fs.String("key", "", "the device private key, PEM")
	chainFile := fs.String("chain", "", "intermediate certificates to present after the leaf, PEM")
	regID := fs.String("registration-id", "", "registration ID (default: the certificate's CN)")
	transport := fs.String("transport", "grpc", "grpc or rest")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *useTPM {
		return registerTPM(ctx, env, c, tf, *regID, *transport, *timeout)
	}
	if *certFile == "" || *keyFile == "" {
		return fmt.Errorf("%w: --cert and --key are required", errUsage)
	}
	dev, err := pki.Load(*certFile, *keyFile)
	if err != nil {
		return err
	}
	chain, err := pki.LoadCertificates(*certFile)
	if err != nil {
		return err
	}
	if *chainFile != "" {
		more, err := pki.LoadCertificates(*chainFile)
		if err != nil {
			return err
		}
		chain = append(chain, more...)
	}
	cert := &tls.Certificate{PrivateKey: dev.Key, Leaf: dev.Cert}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	if *regID == "" {
		if *regID, err = x509att.CommonName(dev.Cert); err != nil {
			return err
		}
	}
	cfg, err := c.tlsConfig(cert)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	switch *transport {
	case "grpc":
		cc, err := grpc.NewClient(or(c.server, defaultGRPCServer), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer cc.Close()
		resp, err := pb.NewDeviceRegistrationServiceClient(cc).Register(ctx, &pb.RegisterRequest{RegistrationId: *regID})
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, resp)
	case "rest":
		server := or(c.server, defaultRESTServer)
		resp, err := RegisterREST(ctx, &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, server, *regID)
		if err != nil {
			return restHint(err, server)
		}
		return printJSON(env.Stdout, resp)
	}
	return fmt.Errorf("%w: --transport %q is not grpc or rest", errUsage, *transport)
}

func registerTPM(ctx context.Context, env Env, c *conn, tf tpmFlags, regID, transport string, timeout time.Duration) error {
	d, closeTPM, err := tf.open()
	if err != nil {
		return err
	}
	defer closeTPM()
	cfg, err := c.tlsConfig(nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var resp *pb.RegisterResponse
	switch transport {
	case "grpc":
		cc, err := grpc.NewClient(or(c.server, defaultGRPCServer), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer cc.Close()
		resp, err = RegisterTPMGRPC(ctx, pb.NewDeviceRegistrationServiceClient(cc), d, regID)
		if err != nil {
			return err
		}
	case "rest":
		server := or(c.server, defaultRESTServer)
		resp, err = RegisterTPMREST(ctx, &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, server, d, regID)
		if err != nil {
			return restHint(err, server)
		}
	default:
		return fmt.Errorf("%w: --transport %q is not grpc or rest", errUsage, transport)
	}
	return printJSON(env.Stdout, resp)
}

// RESTError is a non-2xx answer of the REST API.
type RESTError struct {
	StatusCode int
	Body       string
}

func (e *RESTError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Body) }

// RegisterREST registers over the REST API with the client's TLS identity.
func RegisterREST(ctx context.Context, client *http.Client, server, registrationID string) (*pb.RegisterResponse, error) {
	u := "https://" + server + "/v1/registrations/" + url.PathEscape(registrationID) + ":register"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader([]byte("{}")))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, &RESTError{StatusCode: res.StatusCode, Body: string(body)}
	}
	out := &pb.RegisterResponse{}
	if err := protojson.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return out, nil
}
