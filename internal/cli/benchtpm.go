package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/zerotouch/zerotouch/internal/bench"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// timedTPM counts the time a device spends in its TPM.
type timedTPM struct {
	*tpmdevice.Device
	spent time.Duration
}

func (t *timedTPM) Activate(blob, secret []byte) ([]byte, error) {
	start := time.Now()
	defer func() { t.spent += time.Since(start) }()
	return t.Device.Activate(blob, secret)
}

// openSimTPM opens the in-process simulator with a seed (so the same EK
// comes back) and creates the device's keys.
func openSimTPM(seed int64, kt tpmdevice.KeyType) (*tpmdevice.Device, func(), error) {
	t, err := tpmdevice.Open("simulator", seed)
	if err != nil {
		return nil, nil, err
	}
	d, err := tpmdevice.New(t, kt, tpmdevice.Options{})
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return d, func() { d.Close(); t.Close() }, nil
}

// maxTPMWorkers bounds the worker processes of a TPM run.
const maxTPMWorkers = 64

// tpmFleet enrolls n simulated TPMs (one individual enrollment per EK, in
// batches) and returns a fleet whose devices register themselves with
// the two-step TPM exchange over a fresh TLS connection each. The
// go-tpm-tools simulator is one per process, so each device in flight
// runs in a worker process of its own (this binary with --tpm-worker and
// workerArgs); a device's TPM is the simulator opened with the device's
// seed, so the EK enrolled here is the one its worker presents. The
// returned func stops the workers.
func tpmFleet(ctx context.Context, cfg *bench.Config, n int, kt tpmdevice.KeyType, workerArgs []string, policy string) (*bench.Fleet, func(), error) {
	run := time.Now().UnixNano()
	regID := func(i int) string { return fmt.Sprintf("bench-tpm-%x-%07d", run, i) }
	seed := func(i int) int64 { return run + int64(i) }
	cc, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg.DeviceTLS())))
	if err != nil {
		return nil, nil, err
	}
	defer cc.Close()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cfg.AccessKey)
	enrollments := pb.NewEnrollmentServiceClient(cc)
	for start := 0; start < n; start += importBatch {
		var batch []*pb.Enrollment
		for i := start; i < min(n, start+importBatch); i++ {
			d, closeTPM, err := openSimTPM(seed(i), kt)
			if err != nil {
				return nil, nil, err
			}
			batch = append(batch, &pb.Enrollment{RegistrationId: regID(i), Tpm: &pb.TpmAttestation{EndorsementKey: d.EKPublic()}, CredentialPolicy: policy})
			closeTPM()
		}
		resp, err := enrollments.BatchCreateEnrollments(actx, &pb.BatchCreateEnrollmentsRequest{Enrollments: batch})
		if err != nil {
			return nil, nil, fmt.Errorf("enroll TPMs: %w", err)
		}
		for _, r := range resp.GetResults() {
			if e := r.GetError(); e != nil {
				return nil, nil, fmt.Errorf("enroll TPM: %s: %s", e.GetReason(), e.GetMessage())
			}
		}
	}

	pool, stop, pids, err := startTPMWorkers(ctx, cfg.Concurrency, workerArgs)
	if err != nil {
		return nil, nil, err
	}
	cfg.HelperPIDs = pids // the workers' CPU is the client's
	register := func(ctx context.Context, transport string, i int) (time.Duration, error) {
		var w *tpmWorker
		select {
		case w = <-pool:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		defer func() { pool <- w }()
		return w.register(transport, seed(i), regID(i))
	}
	return &bench.Fleet{Register: register, Count: n}, stop, nil
}

// tpmWorker is a `zerotouch bench --tpm-worker` process: it reads
// "<transport> <seed> <registration ID>" lines and answers each with
// "ok <TPM nanoseconds>" or "err <TPM nanoseconds> <reason> <message>".
type tpmWorker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startTPMWorkers(ctx context.Context, n int, args []string) (chan *tpmWorker, func(), []int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	pool := make(chan *tpmWorker, n)
	var all []*tpmWorker
	var pids []int
	stop := func() {
		for _, w := range all {
			w.in.Close() // the worker exits at end of input
			_ = w.cmd.Wait()
		}
	}
	for range n {
		cmd := exec.CommandContext(ctx, self, args...)
		in, err := cmd.StdinPipe()
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			stop()
			return nil, nil, nil, fmt.Errorf("start TPM worker: %w", err)
		}
		w := &tpmWorker{cmd: cmd, in: in, out: bufio.NewReader(out)}
		all = append(all, w)
		pids = append(pids, cmd.Process.Pid)
		pool <- w
	}
	return pool, stop, pids, nil
}

func (w *tpmWorker) register(transport string, seed int64, regID string) (time.Duration, error) {
	if _, err := fmt.Fprintf(w.in, "%s %d %s\n", transport, seed, regID); err != nil {
		return 0, fmt.Errorf("TPM worker: %w", err)
	}
	line, err := w.out.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("TPM worker: %w", err)
	}
	f := strings.SplitN(strings.TrimSpace(line), " ", 4)
	if len(f) < 2 {
		return 0, fmt.Errorf("TPM worker: malformed answer %q", line)
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	switch {
	case f[0] == "ok":
		return time.Duration(ns), nil
	case f[0] == "err" && len(f) == 4:
		return time.Duration(ns), &bench.ReasonError{Reason: f[2], Msg: f[3]}
	}
	return 0, fmt.Errorf("TPM worker: malformed answer %q", line)
}

// runTPMWorker is the worker side: one simulator, one device at a time.
func runTPMWorker(ctx context.Context, env Env, c *conn, httpAddr, kex string, kt tpmdevice.KeyType, csr bool) error {
	tc, err := c.tlsConfig(nil)
	if err != nil {
		return err
	}
	cfg := &bench.Config{GRPCAddr: c.server, HTTPAddr: httpAddr, KEX: kex, RootCAs: tc.RootCAs, CSR: csr}
	if env.Stdin == nil {
		return fmt.Errorf("%w: --tpm-worker reads its requests from standard input", errUsage)
	}
	in := bufio.NewScanner(env.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 3 {
			return fmt.Errorf("TPM worker: malformed request %q", in.Text())
		}
		seed, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("TPM worker: malformed seed %q", f[1])
		}
		spent, err := registerSimTPM(ctx, cfg, f[0], seed, f[2], kt)
		if err != nil {
			msg := strings.ReplaceAll(err.Error(), "\n", " ")
			fmt.Fprintf(env.Stdout, "err %d %s %s\n", spent, bench.Reason(err), msg)
			continue
		}
		fmt.Fprintf(env.Stdout, "ok %d\n", spent)
	}
	return in.Err()
}

// registerSimTPM registers the device whose TPM is the simulator opened
// with seed, over a fresh connection, and says how long the TPM took.
func registerSimTPM(ctx context.Context, cfg *bench.Config, transport string, seed int64, regID string, kt tpmdevice.KeyType) (time.Duration, error) {
	start := time.Now()
	d, closeTPM, err := openSimTPM(seed, kt)
	if err != nil {
		return time.Since(start), err
	}
	defer closeTPM()
	dev := &timedTPM{Device: d, spent: time.Since(start)}
	var csrFor makeCSR
	if cfg.CSR {
		// A CSR for the bound key, signed in the TPM (its time is the
		// device's, as the key's creation is).
		key, err := d.Signer()
		if err != nil {
			return dev.spent, err
		}
		csrFor = func(id string) ([]byte, error) {
			t0 := time.Now()
			defer func() { dev.spent += time.Since(t0) }()
			return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
		}
	}
	issued := func(resp *pb.RegisterResponse, err error) error {
		if err == nil && cfg.CSR && len(resp.GetRegistration().GetIssuedCertificateChain()) == 0 {
			return errors.New("no certificate issued")
		}
		return err
	}
	switch transport {
	case "grpc":
		conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg.DeviceTLS())))
		if err != nil {
			return dev.spent, err
		}
		defer conn.Close()
		return dev.spent, issued(registerTPMGRPC(ctx, pb.NewDeviceRegistrationServiceClient(conn), dev, regID, csrFor))
	case "rest":
		tr := &http.Transport{TLSClientConfig: cfg.DeviceTLS()}
		defer tr.CloseIdleConnections()
		return dev.spent, issued(registerTPMREST(ctx, &http.Client{Transport: tr, Timeout: time.Minute}, cfg.HTTPAddr, dev, regID, csrFor))
	}
	return dev.spent, fmt.Errorf("bench: TPM devices register over grpc or rest, not %q", transport)
}
