package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// tpmFlags select a TPM.
type tpmFlags struct {
	path, kind, cert string
	seed             int64
}

func addTPMFlags(cmd *cobra.Command) *tpmFlags {
	f := &tpmFlags{}
	fs := cmd.Flags()
	fs.StringVar(&f.path, "tpm-path", "simulator", "TPM character device (e.g. /dev/tpmrm0), or simulator for the in-process TPM simulator")
	fs.Int64Var(&f.seed, "tpm-seed", 1, "with the simulator: its seed, so the same EK comes back every run")
	choiceVar(cmd, &f.kind, "tpm-ek", "ecc", "EK algorithm: rsa or ecc", "rsa", "ecc")
	fs.StringVar(&f.cert, "tpm-ek-cert", "", "EK certificate (DER or PEM) to present instead of the TPM's NV copy")
	return f
}

func (f *tpmFlags) open() (*tpmdevice.Device, func(), error) {
	t, err := tpmdevice.Open(f.path, f.seed)
	if err != nil {
		return nil, nil, err
	}
	var opt tpmdevice.Options
	if f.cert != "" {
		raw, err := os.ReadFile(f.cert)
		if err != nil {
			t.Close()
			return nil, nil, err
		}
		if certs, err := pki.LoadCertificates(f.cert); err == nil {
			for _, c := range certs {
				opt.EKCertificates = append(opt.EKCertificates, c.Raw)
			}
		} else {
			opt.EKCertificates = [][]byte{raw}
		}
	}
	d, err := tpmdevice.New(t, tpmdevice.KeyType(f.kind), opt)
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return d, func() { d.Close(); t.Close() }, nil
}

var registerTable = table[*pb.RegisterResponse]{
	id: func(r *pb.RegisterResponse) string { return r.GetRegistration().GetAssignedHub() },
	cols: []column[*pb.RegisterResponse]{
		{"REGISTRATION ID", func(r *pb.RegisterResponse) string { return r.GetRegistration().GetRegistrationId() }},
		{"STATUS", func(r *pb.RegisterResponse) string {
			return enum(r.GetRegistration().GetStatus(), "REGISTRATION_STATUS_")
		}},
		{"HUB", func(r *pb.RegisterResponse) string { return r.GetRegistration().GetAssignedHub() }},
		{"DEVICE ID", func(r *pb.RegisterResponse) string { return r.GetRegistration().GetDeviceId() }},
		{"SHARD", func(r *pb.RegisterResponse) string { return r.GetRegistration().GetShard() }},
	},
}

func deviceCmd(env Env) *cobra.Command {
	return group("device", "device-side commands: register, tpm-ek", deviceRegisterCmd(env), deviceTPMEKCmd(env))
}

// tpmEK is what device tpm-ek prints with -o.
type tpmEK struct {
	RegistrationID string `json:"registrationId"`
	EndorsementKey string `json:"endorsementKey"`
}

var tpmEKTable = table[tpmEK]{
	cols: []column[tpmEK]{
		{"REGISTRATION ID", func(e tpmEK) string { return e.RegistrationID }},
		{"ENDORSEMENT KEY", func(e tpmEK) string { return e.EndorsementKey }},
	},
}

func deviceTPMEKCmd(env Env) *cobra.Command {
	var tf *tpmFlags
	var out string
	var o *output
	cmd := leaf("tpm-ek", "print a TPM's EK (base64 TPM2B_PUBLIC) and the registration ID derived from it", func(cmd *cobra.Command, _ []string) error {
		d, closeTPM, err := tf.open()
		if err != nil {
			return err
		}
		defer closeTPM()
		if out != "" {
			if err := os.WriteFile(out, d.EKPublic(), 0o644); err != nil {
				return err
			}
		}
		ek := tpmEK{RegistrationID: tpm.RegistrationID(d.EKPublic()), EndorsementKey: base64.StdEncoding.EncodeToString(d.EKPublic())}
		if o.format != "" {
			return tpmEKTable.one(env.Stdout, o, ek)
		}
		_, err = fmt.Fprintf(env.Stdout, "registration ID: %s\nendorsement key (TPM2B_PUBLIC, base64): %s\n", ek.RegistrationID, ek.EndorsementKey)
		return err
	})
	tf = addTPMFlags(cmd)
	cmd.Flags().StringVar(&out, "out", "", "also write the EK's TPM2B_PUBLIC to this file (for pki tpm-ek-cert --ek)")
	o = addOutput(cmd, "", "")
	cmd.Flags().Lookup("output").Usage = "output format: table, json or yaml (default: two labelled lines)"
	return cmd
}

func deviceRegisterCmd(env Env) *cobra.Command {
	var useTPM bool
	var certFile, keyFile, chainFile, regID, transport string
	var iss issueFlags
	var timeout time.Duration
	var tf *tpmFlags
	var c *conn
	var o *output
	cmd := leaf("register", "register as a device: X.509 (--cert, --key) or TPM (--tpm), over gRPC or REST", func(cmd *cobra.Command, _ []string) error {
		if err := c.resolve(); err != nil {
			return err
		}
		server := c.server
		if transport == "rest" {
			server = c.restServer
		}
		if err := iss.check(useTPM); err != nil {
			return err
		}
		var resp *pb.RegisterResponse
		var err error
		if useTPM {
			resp, err = registerTPM(cmd.Context(), c, tf, server, regID, transport, timeout, &iss)
		} else {
			resp, err = registerX509(cmd.Context(), c, server, certFile, keyFile, chainFile, regID, transport, timeout, &iss)
		}
		if err != nil {
			return err
		}
		if err := iss.save(resp); err != nil {
			return err
		}
		return registerTable.one(env.Stdout, o, resp)
	})
	c = addConn(cmd, env)
	cmd.Flags().Lookup("server").Usage = "server address host:port (default: $" + serverEnv + ", else the context's server (http server with --transport rest), else " +
		defaultGRPCServer + " (" + defaultRESTServer + " with --transport rest))"
	fs := cmd.Flags()
	fs.BoolVar(&useTPM, "tpm", false, "attest with the TPM (two steps) instead of a certificate")
	tf = addTPMFlags(cmd)
	fs.StringVar(&certFile, "cert", "", "the device certificate, PEM; may also hold the chain")
	fs.StringVar(&keyFile, "key", "", "the device private key, PEM")
	fs.StringVar(&chainFile, "chain", "", "intermediate certificates to present after the leaf, PEM")
	fs.StringVar(&regID, "registration-id", "", "registration ID (default: the certificate's CN)")
	choiceVar(cmd, &transport, "transport", "grpc", "grpc or rest", "grpc", "rest")
	fs.StringVar(&iss.certOut, "new-cert", "", "ask for an operational certificate (a CSR under the enrollment's credential policy) and write the issued chain here, PEM; with --cert being an issued certificate, this renews it")
	fs.StringVar(&iss.keyOut, "new-key", "", "with --new-cert: write the new certificate's private key here (PEM, 0600); a TPM device's key stays in the TPM")
	choiceVar(cmd, &iss.keyType, "new-key-type", "ecdsa-p256", "with --new-cert: the new key, ecdsa-p256 or ecdsa-p384", "ecdsa-p256", "ecdsa-p384")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	o = addOutput(cmd, formatJSON, "the assigned hub")
	return cmd
}

func registerX509(ctx context.Context, c *conn, server, certFile, keyFile, chainFile, regID, transport string, timeout time.Duration, iss *issueFlags) (*pb.RegisterResponse, error) {
	if certFile == "" || keyFile == "" {
		return nil, usagef("--cert and --key are required")
	}
	dev, err := pki.Load(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	chain, err := pki.LoadCertificates(certFile)
	if err != nil {
		return nil, err
	}
	if chainFile != "" {
		more, err := pki.LoadCertificates(chainFile)
		if err != nil {
			return nil, err
		}
		chain = append(chain, more...)
	}
	cert := &tls.Certificate{PrivateKey: dev.Key, Leaf: dev.Cert}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	if regID == "" {
		if regID, err = x509att.CommonName(dev.Cert); err != nil {
			return nil, err
		}
	}
	cfg, err := c.tlsConfig(cert)
	if err != nil {
		return nil, err
	}
	csr, err := iss.csr(regID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if transport == "rest" {
		resp, err := registerREST(ctx, &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, server, regID, csr)
		return resp, restHint(err, server)
	}
	cc, err := grpc.NewClient(server, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	return pb.NewDeviceRegistrationServiceClient(cc).Register(ctx, &pb.RegisterRequest{RegistrationId: regID, Csr: csr})
}

func registerTPM(ctx context.Context, c *conn, tf *tpmFlags, server, regID, transport string, timeout time.Duration, iss *issueFlags) (*pb.RegisterResponse, error) {
	d, closeTPM, err := tf.open()
	if err != nil {
		return nil, err
	}
	defer closeTPM()
	var csrFor makeCSR
	if iss.certOut != "" {
		// The certificate is for the bound key the TPM proves: the CSR is
		// signed inside the TPM.
		key, err := d.Signer()
		if err != nil {
			return nil, err
		}
		csrFor = func(id string) ([]byte, error) {
			return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
		}
	}
	cfg, err := c.tlsConfig(nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if transport == "rest" {
		resp, err := registerTPMREST(ctx, &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, server, d, regID, csrFor)
		return resp, restHint(err, server)
	}
	cc, err := grpc.NewClient(server, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	return registerTPMGRPC(ctx, pb.NewDeviceRegistrationServiceClient(cc), d, regID, csrFor)
}

// issueFlags ask for an operational certificate at registration (ADR 22).
type issueFlags struct {
	certOut, keyOut, keyType string
	key                      crypto.Signer
}

func (f *issueFlags) check(tpm bool) error {
	switch {
	case f.keyOut != "" && f.certOut == "":
		return usagef("--new-key needs --new-cert")
	case f.certOut != "" && !tpm && f.keyOut == "":
		return usagef("--new-cert needs --new-key (where the new certificate's key goes)")
	case tpm && f.keyOut != "":
		return usagef("a TPM device's new key stays in the TPM: drop --new-key")
	}
	return nil
}

// csr makes a fresh key and a CSR for it (nil without --new-cert).
func (f *issueFlags) csr(regID string) ([]byte, error) {
	if f.certOut == "" {
		return nil, nil
	}
	curve := elliptic.P256()
	if f.keyType == "ecdsa-p384" {
		curve = elliptic.P384()
	}
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, err
	}
	f.key = key
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: regID}}, key)
}

// save writes the issued chain and the new key.
func (f *issueFlags) save(resp *pb.RegisterResponse) error {
	if f.certOut == "" {
		return nil
	}
	ders := resp.GetRegistration().GetIssuedCertificateChain()
	if len(ders) == 0 {
		return errors.New("the server issued no certificate")
	}
	var out []byte
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if f.key != nil {
		keyPEM, err := pki.KeyPEM(f.key)
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.keyOut, keyPEM, 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(f.certOut, out, 0o644)
}

// RESTError is a non-2xx answer of the REST API.
type RESTError struct {
	StatusCode int
	Body       string
}

func (e *RESTError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Body) }

// RegisterREST registers over the REST API with the client's TLS identity.
func RegisterREST(ctx context.Context, client *http.Client, server, registrationID string) (*pb.RegisterResponse, error) {
	return registerREST(ctx, client, server, registrationID, nil)
}

func registerREST(ctx context.Context, client *http.Client, server, registrationID string, csr []byte) (*pb.RegisterResponse, error) {
	u := "https://" + server + "/v1/registrations/" + url.PathEscape(registrationID) + ":register"
	body, err := protojson.Marshal(&pb.RegisterRequest{Csr: csr})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err = io.ReadAll(io.LimitReader(res.Body, 1<<20))
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
