// Package bench is the load generator behind `zerotouch bench`: it
// enrolls simulated X.509 devices, registers each over a fresh TLS
// connection (gRPC or REST, no connection reuse, no session resumption),
// and reports throughput, latency, errors by reason, and the server's CPU
// per registration read from /proc. Its ceiling mode makes the same fresh
// mTLS handshakes followed by one trivial call (gRPC health check, HTTPS
// GET /healthz) so that registration cost can be stated as a ratio to the
// machine's own TLS ceiling.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Config is one benchmark run.
type Config struct {
	// GRPCAddr and HTTPAddr may list several replicas, comma-separated:
	// devices are spread over them in turn.
	GRPCAddr  string
	HTTPAddr  string
	RootCAs   *x509.CertPool
	AccessKey string
	// Transport is "grpc", "rest" (native REST), "dps" (the
	// DPS-compatible API over HTTPS) or "mqtt" (DPS over MQTT with TLS).
	Transport string
	// MQTTAddr is DPS over MQTT, for the mqtt transport (replicas
	// comma-separated, as above).
	MQTTAddr string
	// Attestation is "x509" (a fresh TLS connection per device, the
	// device's certificate in the handshake) or "symmetric" (SAS tokens).
	Attestation string
	// Reuse sends every device of a worker over one TLS connection, as a
	// factory station or gateway does (symmetric keys only: an X.509
	// device's identity is its connection).
	Reuse bool
	// IDScope is the DPS ID scope, for the dps and mqtt transports.
	IDScope string
	// Mode is "register" or "ceiling".
	Mode        string
	Devices     int
	Concurrency int
	// Rate, if positive, is an open-loop arrival rate (devices per second);
	// otherwise Concurrency devices run back to back (closed loop).
	Rate float64
	// KEX is the key exchange simulated devices offer: "x25519", "p256",
	// or "default" (Go's hybrid post-quantum preference).
	KEX string
	// ServerPIDs, if set, are read from /proc for CPU per operation (all
	// replicas' CPU summed).
	ServerPIDs []int
	// Duration, if set, ends a run early: no device starts after it (the
	// run also ends when its devices are used up).
	Duration time.Duration
	// HelperPIDs are client-side processes (TPM workers) whose CPU counts
	// as the client's.
	HelperPIDs []int
	// CSR makes every device send a CSR (a fresh P-256 key each) and
	// checks it gets a certificate back: the run's enrollment names a
	// credential policy on an issuing CA the run creates (ADR 22).
	CSR bool
	// StoreSize, if set, reports the store's size in bytes, for store
	// bytes per device: the embedded store's bytes in use (its server's
	// zerotouch_store_bytes) or its file's size, or Redis's used_memory.
	StoreSize func(context.Context) (int64, error)
}

// Report is a run's result.
type Report struct {
	Mode             string         `json:"mode"`
	Transport        string         `json:"transport"`
	Attestation      string         `json:"attestation"`
	Reuse            bool           `json:"reuse,omitempty"`
	KEX              string         `json:"kex"`
	Concurrency      int            `json:"concurrency"`
	Rate             float64        `json:"target_rate,omitempty"`
	Attempted        int            `json:"attempted"`
	Succeeded        int            `json:"succeeded"`
	Errors           map[string]int `json:"errors"`
	Seconds          float64        `json:"seconds"`
	PerSecond        float64        `json:"per_second"`
	LatencyMs        Latency        `json:"latency_ms"`
	ServerCPUPerOpUs float64        `json:"server_cpu_per_op_us,omitempty"`
	ClientCPUPerOpUs float64        `json:"client_cpu_per_op_us"`
	StoreBytesPerOp  float64        `json:"store_bytes_per_device,omitempty"`
	// DeviceMsPerOp is the simulated TPM's time per registration (opening
	// it, creating its keys, ActivateCredential), outside LatencyMs.
	DeviceMsPerOp     float64 `json:"device_ms_per_op,omitempty"`
	ServerCPUMeasured bool    `json:"server_cpu_measured"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Fleet is the enrolled simulated devices.
type Fleet struct {
	Inter   *pki.Issued
	Devices []*pki.Issued
	// GroupKey is the symmetric-key group's key (symmetric attestation);
	// device i registers as DeviceIDs[i].
	GroupKey  []byte
	DeviceIDs []string
	// Register, if set, registers device Offset+i itself over a transport (TPM devices,
	// whose simulator the caller owns) over a fresh connection, and says
	// how long the device side (the simulated TPM) took: that time is
	// reported apart and left out of the latency.
	Register func(ctx context.Context, transport string, i int) (device time.Duration, err error)
	Count    int
	Offset   int
	// CSRs are the devices' CSRs (DER), with Config.CSR.
	CSRs [][]byte
	// Policy is the credential policy the run made (Config.CSR), for the
	// caller's own enrollments (TPM devices).
	Policy string
}

func (f *Fleet) size() int { return max(len(f.Devices), len(f.DeviceIDs), f.Count) }

// Slice is devices [from, to) of the fleet.
func (f *Fleet) Slice(from, to int) *Fleet {
	out := &Fleet{Inter: f.Inter, GroupKey: f.GroupKey, Register: f.Register}
	if f.Register != nil {
		out.Count, out.Offset = to-from, f.Offset+from
	}
	if len(f.Devices) > 0 {
		out.Devices = f.Devices[from:to]
	}
	if len(f.DeviceIDs) > 0 {
		out.DeviceIDs = f.DeviceIDs[from:to]
	}
	if len(f.CSRs) > 0 {
		out.CSRs = f.CSRs[from:to]
	}
	return out
}

func (c *Config) authCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.AccessKey)
}

func (c *Config) serverTLS() *tls.Config {
	return &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12, ServerName: "localhost"}
}

// Prepare enrolls a fresh CA (uploaded and verified by proof of
// possession), an enrollment group on it and, if the service has no shard,
// one shard; then it mints n device certificates. Nothing here is timed.
func Prepare(ctx context.Context, c *Config, n int) (*Fleet, error) {
	cc, err := grpc.NewClient(strings.Split(c.GRPCAddr, ",")[0], grpc.WithTransportCredentials(credentials.NewTLS(c.serverTLS())))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	actx := c.authCtx(ctx)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	now := time.Now()
	if err := ensureShard(actx, cc); err != nil {
		return nil, err
	}
	policy := ""
	if c.CSR {
		policy = "bench-" + run
		iss := pb.NewIssuanceServiceClient(cc)
		if _, err := iss.CreateIssuingCa(actx, &pb.CreateIssuingCaRequest{Name: policy}); err != nil {
			return nil, fmt.Errorf("create issuing CA: %w", err)
		}
		if _, err := iss.CreateCredentialPolicy(actx, &pb.CreateCredentialPolicyRequest{CredentialPolicy: &pb.CredentialPolicy{Name: policy, IssuingCa: policy}}); err != nil {
			return nil, fmt.Errorf("create credential policy: %w", err)
		}
	}
	if c.Attestation == "tpm" {
		// The caller enrolls TPM devices (under Fleet.Policy) and registers
		// them (Fleet.Register): it owns the simulator.
		return &Fleet{Policy: policy}, nil
	}
	if c.Attestation == "symmetric" {
		g, err := pb.NewEnrollmentServiceClient(cc).CreateEnrollmentGroup(actx, &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
			Id: "bench-sym-" + run, AttestationType: pb.AttestationType_ATTESTATION_TYPE_SYMMETRIC_KEY, CredentialPolicy: policy}})
		if err != nil {
			return nil, fmt.Errorf("create symmetric-key group: %w", err)
		}
		f := &Fleet{GroupKey: g.GetSymmetricKey().GetPrimaryKey(), DeviceIDs: make([]string, n)}
		for i := range f.DeviceIDs {
			f.DeviceIDs[i] = fmt.Sprintf("bench-%s-%07d", run, i)
		}
		return f, f.makeCSRs(c.CSR, f.DeviceIDs)
	}
	root, err := pki.NewCA("bench root "+run, nil, now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	inter, err := pki.NewCA("bench issuing "+run, root, now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	cas := pb.NewCertificateAuthorityServiceClient(cc)
	name := "bench-" + run
	if _, err := cas.CreateCaCertificate(actx, &pb.CreateCaCertificateRequest{CaCertificate: &pb.CaCertificate{Name: name, CertificatePem: string(pki.CertPEM(root.Cert))}}); err != nil {
		return nil, fmt.Errorf("upload CA: %w", err)
	}
	code, err := cas.GenerateVerificationCode(actx, &pb.GenerateVerificationCodeRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("verification code: %w", err)
	}
	proof, err := pki.NewProof(root, code.GetVerificationCode(), now)
	if err != nil {
		return nil, err
	}
	if _, err := cas.VerifyCaCertificate(actx, &pb.VerifyCaCertificateRequest{Name: name, CertificatePem: string(pki.CertPEM(proof.Cert))}); err != nil {
		return nil, fmt.Errorf("verify CA: %w", err)
	}
	if _, err := pb.NewEnrollmentServiceClient(cc).CreateEnrollmentGroup(actx, &pb.CreateEnrollmentGroupRequest{
		EnrollmentGroup: &pb.EnrollmentGroup{Id: name, CaCertificate: name, CredentialPolicy: policy}}); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	f := &Fleet{Inter: inter, Devices: make([]*pki.Issued, n)}
	ids := make([]string, n)
	for i := range f.Devices {
		ids[i] = fmt.Sprintf("bench-%s-%07d", run, i)
		if f.Devices[i], err = pki.NewDevice(ids[i], inter, now, 24*time.Hour); err != nil {
			return nil, err
		}
	}
	return f, f.makeCSRs(c.CSR, ids)
}

// makeCSRs makes each device's CSR ahead of the run (a device makes its
// key and CSR before it boots into provisioning: not the service's cost).
func (f *Fleet) makeCSRs(on bool, ids []string) error {
	if !on {
		return nil
	}
	f.CSRs = make([][]byte, len(ids))
	for i, id := range ids {
		key, err := pki.NewKey()
		if err != nil {
			return err
		}
		if f.CSRs[i], err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key); err != nil {
			return err
		}
	}
	return nil
}

// csr is device i's CSR, or nil.
func (f *Fleet) csr(i int) []byte {
	if i < len(f.CSRs) {
		return f.CSRs[i]
	}
	return nil
}

// ensureShard creates a shard when the service has none.
func ensureShard(actx context.Context, cc *grpc.ClientConn) error {
	hubs := pb.NewHubServiceClient(cc)
	shards, err := hubs.ListShards(actx, &pb.ListShardsRequest{PageSize: 1})
	if err != nil {
		return fmt.Errorf("list shards: %w", err)
	}
	if len(shards.GetShards()) == 0 {
		if _, err := hubs.CreateShard(actx, &pb.CreateShardRequest{Shard: &pb.Shard{Id: "bench-shard", Hostname: "hub.bench.example.com", Weight: 100}}); err != nil {
			return fmt.Errorf("create shard: %w", err)
		}
	}
	return nil
}

// DeviceTLS is what a device without a client certificate (a TPM or
// symmetric-key device) offers: the configured key exchange, no resumption.
func (c *Config) DeviceTLS() *tls.Config { return c.deviceTLS(nil, nil) }

func (c *Config) deviceTLS(f *Fleet, dev *pki.Issued) *tls.Config {
	cfg := c.serverTLS()
	if dev != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{dev.Cert.Raw, f.Inter.Cert.Raw}, PrivateKey: dev.Key, Leaf: dev.Cert}}
	}
	cfg.ClientSessionCache = nil // no resumption: every device is a first boot
	switch c.KEX {
	case "x25519":
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	case "p256":
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	}
	return cfg
}

// session is a device's (or, with Reuse, a worker's) connection.
type session struct {
	cc       *grpc.ClientConn
	tr       *http.Transport
	client   *http.Client
	httpAddr string
}

// turn spreads sessions over the replicas.
var turn atomic.Uint64

func pickAddr(list string) string {
	addrs := strings.Split(list, ",")
	return addrs[int(turn.Add(1)-1)%len(addrs)]
}

func (c *Config) newSession(f *Fleet, dev *pki.Issued) (*session, error) {
	tc := c.deviceTLS(f, dev)
	if c.Transport == "grpc" {
		cc, err := grpc.NewClient(pickAddr(c.GRPCAddr), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			return nil, err
		}
		return &session{cc: cc}, nil
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: !c.Reuse, MaxIdleConnsPerHost: 1}
	return &session{tr: tr, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, httpAddr: pickAddr(c.HTTPAddr)}, nil
}

func (s *session) close() {
	if s.cc != nil {
		s.cc.Close()
	}
	if s.tr != nil {
		s.tr.CloseIdleConnections()
	}
}

// identity is device i's registration ID, certificate (X.509) and SAS
// token for resource (symmetric keys).
func (c *Config) identity(f *Fleet, i int, resource func(regID string) string) (string, *pki.Issued, string) {
	if c.Attestation == "symmetric" {
		id := f.DeviceIDs[i]
		return id, nil, symkey.Sign(symkey.DeriveDeviceKey(f.GroupKey, id), resource(id), time.Now().Add(time.Hour), "registration")
	}
	d := f.Devices[i]
	return d.Cert.Subject.CommonName, d, ""
}

// one runs device i's operation on session s.
func (c *Config) one(ctx context.Context, s *session, f *Fleet, i int) error {
	if c.Transport == "grpc" {
		if c.Mode == "ceiling" {
			_, err := healthpb.NewHealthClient(s.cc).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}
		regID, _, token := c.identity(f, i, func(id string) string { return "registrations/" + id })
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", token)
		}
		resp, err := pb.NewDeviceRegistrationServiceClient(s.cc).Register(ctx, &pb.RegisterRequest{RegistrationId: regID, Csr: f.csr(i)})
		if err == nil && resp.GetRegistration().GetStatus() != pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNED {
			return fmt.Errorf("status %s", resp.GetRegistration().GetStatus())
		}
		if err == nil && c.CSR && len(resp.GetRegistration().GetIssuedCertificateChain()) == 0 {
			return errors.New("no certificate issued")
		}
		return err
	}
	var req *http.Request
	var err error
	switch {
	case c.Mode == "ceiling":
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.httpAddr+"/healthz", nil)
	case c.Transport == "dps":
		regID, _, token := c.identity(f, i, func(id string) string { return c.IDScope + "/registrations/" + id })
		body, version := `{"registrationId":"`+regID+`"}`, "2021-06-01"
		if csr := f.csr(i); csr != nil {
			body, version = `{"registrationId":"`+regID+`","csr":"`+base64.StdEncoding.EncodeToString(csr)+`"}`, "2025-07-01-preview"
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, "https://"+s.httpAddr+"/"+c.IDScope+"/registrations/"+regID+"/register?api-version="+version,
			strings.NewReader(body))
		if err == nil && token != "" {
			req.Header.Set("Authorization", token)
		}
	default:
		regID, _, token := c.identity(f, i, func(id string) string { return "registrations/" + id })
		body := "{}"
		if csr := f.csr(i); csr != nil {
			body = `{"csr":"` + base64.StdEncoding.EncodeToString(csr) + `"}`
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, "https://"+s.httpAddr+"/v1/registrations/"+regID+":register", strings.NewReader(body))
		if err == nil && token != "" {
			req.Header.Set("Authorization", token)
		}
	}
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return &httpError{status: res.StatusCode, body: body}
	}
	if c.Transport == "dps" && c.Mode != "ceiling" && !strings.Contains(string(body), `"status":"assigned"`) {
		return fmt.Errorf("DPS answered %s", body)
	}
	if c.CSR && c.Mode != "ceiling" && !strings.Contains(string(body), "ssuedCertificateChain") {
		return fmt.Errorf("no certificate issued: %s", body)
	}
	return nil
}

type httpError struct {
	status int
	body   []byte
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// ReasonError is an error classified elsewhere (a TPM worker process).
type ReasonError struct{ Reason, Msg string }

func (e *ReasonError) Error() string { return e.Reason + ": " + e.Msg }

// Reason names an error for the report: the API's stable reason where
// there is one.
func Reason(err error) string { return reason(err) }

func reason(err error) string {
	var re *ReasonError
	if errors.As(err, &re) {
		return re.Reason
	}
	var he *httpError
	if errors.As(err, &he) {
		var dpsErr struct {
			Info map[string]string `json:"info"`
		}
		if json.Unmarshal(he.body, &dpsErr) == nil && dpsErr.Info["reason"] != "" {
			return dpsErr.Info["reason"]
		}
		var st spb.Status
		if protojson.Unmarshal(he.body, &st) == nil {
			for _, d := range st.GetDetails() {
				info := &errdetails.ErrorInfo{}
				if d.UnmarshalTo(info) == nil && info.GetReason() != "" {
					return info.GetReason()
				}
			}
		}
		return "HTTP_" + strconv.Itoa(he.status)
	}
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				return info.GetReason()
			}
		}
		return st.Code().String()
	}
	return "TRANSPORT"
}

// Run drives the fleet and reports.
func Run(ctx context.Context, c *Config, f *Fleet) (*Report, error) {
	n := f.size()
	if n == 0 {
		return nil, errors.New("bench: no devices")
	}
	if c.Reuse && (c.Attestation != "symmetric" || c.Rate > 0 || c.Transport == "mqtt") {
		return nil, errors.New("bench: connection reuse needs symmetric keys, a closed loop and an HTTP or gRPC transport")
	}
	conc := max(1, c.Concurrency)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	// The store is measured before the server's CPU is read: measuring
	// can cost the server (a scrape of its metrics walks the store).
	var store0 int64
	if c.StoreSize != nil && c.Mode == "register" {
		var err error
		if store0, err = c.StoreSize(ctx); err != nil {
			return nil, fmt.Errorf("bench: store size: %w", err)
		}
	}
	cpu0, err := processCPU(c.ServerPIDs)
	if err != nil {
		return nil, err
	}
	self0 := c.clientCPU()
	start := time.Now()

	// do runs device i on s, or on a fresh connection of its own.
	var deviceTime atomic.Int64
	do := func(i int, s *session) {
		t := time.Now()
		if f.Register != nil {
			dev, err := f.Register(ctx, c.Transport, f.Offset+i)
			errs[i], lat[i] = err, time.Since(t)-dev
			deviceTime.Add(int64(dev))
			return
		}
		if c.Transport == "mqtt" {
			errs[i] = c.mqttOne(ctx, f, i) // a fresh TLS connection per device
			lat[i] = time.Since(t)
			return
		}
		if s == nil {
			var dev *pki.Issued
			if len(f.Devices) > 0 {
				dev = f.Devices[i]
			}
			fresh, err := c.newSession(f, dev)
			if err != nil {
				errs[i], lat[i] = err, time.Since(t)
				return
			}
			defer fresh.close()
			s = fresh
		}
		errs[i] = c.one(ctx, s, f, i)
		lat[i] = time.Since(t)
	}
	var wg sync.WaitGroup
	// over reports that the run's duration has passed.
	over := func() bool { return c.Duration > 0 && time.Since(start) >= c.Duration }
	var started atomic.Int64
	if c.Rate > 0 {
		interval := time.Duration(float64(time.Second) / c.Rate)
		inflight := make(chan struct{}, 10000) // bounds memory, not the rate
		for i := range n {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			if over() || ctx.Err() != nil {
				break
			}
			started.Add(1)
			inflight <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				do(i, nil)
				<-inflight
			}()
		}
	} else {
		var next atomic.Int64
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var shared *session
				if c.Reuse {
					s, err := c.newSession(f, nil)
					if err != nil {
						return
					}
					defer s.close()
					shared = s
				}
				for {
					if over() || ctx.Err() != nil {
						return
					}
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					started.Add(1)
					do(i, shared)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := processCPU(c.ServerPIDs)
	if err != nil {
		return nil, err
	}
	self1 := c.clientCPU()

	n = int(started.Load())
	if n == 0 {
		return nil, errors.New("bench: no device started (the duration passed or the run was cancelled)")
	}
	errs, lat = errs[:n], lat[:n]
	r := &Report{Mode: c.Mode, Transport: c.Transport, Attestation: c.Attestation, Reuse: c.Reuse, KEX: c.KEX, Concurrency: conc, Rate: c.Rate,
		Attempted: n, Errors: map[string]int{}, Seconds: elapsed.Seconds()}
	var ok []time.Duration
	for i, e := range errs {
		if e != nil {
			r.Errors[reason(e)]++
			continue
		}
		ok = append(ok, lat[i])
	}
	r.Succeeded = len(ok)
	r.PerSecond = float64(r.Succeeded) / elapsed.Seconds()
	sort.Slice(ok, func(a, b int) bool { return ok[a] < ok[b] })
	if len(ok) > 0 {
		pct := func(p float64) float64 { return ms(ok[min(len(ok)-1, int(p*float64(len(ok))))]) }
		r.LatencyMs = Latency{P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: ms(ok[len(ok)-1])}
	}
	if len(c.ServerPIDs) > 0 && n > 0 {
		r.ServerCPUMeasured = true
		r.ServerCPUPerOpUs = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	}
	r.ClientCPUPerOpUs = float64((self1 - self0).Microseconds()) / float64(n)
	r.DeviceMsPerOp = ms(time.Duration(deviceTime.Load())) / float64(n)
	if c.StoreSize != nil && c.Mode == "register" && r.Succeeded > 0 {
		store1, err := c.StoreSize(ctx)
		if err != nil {
			return nil, fmt.Errorf("bench: store size: %w", err)
		}
		r.StoreBytesPerOp = float64(store1-store0) / float64(r.Succeeded)
	}
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTicks = 100

// processCPU sums processes' user+system CPU time from /proc.
func processCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := oneProcessCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// oneProcessCPU reads a process's user+system CPU time from /proc.
func oneProcessCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the line.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("server CPU: short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// clientCPU is this process's CPU and its helpers'.
func (c *Config) clientCPU() time.Duration {
	helpers, _ := processCPU(c.HelperPIDs)
	return selfCPU() + helpers
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Print writes a human-readable report.
func (r *Report) Print(w io.Writer) {
	conn := "fresh"
	if r.Reuse {
		conn = "reused"
	}
	fmt.Fprintf(w, "%-8s %-4s %-9s %-6s kex=%-7s c=%-3d  %6d/%-6d ok  %8.1f/s  p50 %6.1f ms  p90 %6.1f  p99 %6.1f  max %6.1f",
		r.Mode, r.Transport, r.Attestation, conn, r.KEX, r.Concurrency, r.Succeeded, r.Attempted, r.PerSecond, r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
	if r.ServerCPUMeasured {
		fmt.Fprintf(w, "  server %5.0f µs/op", r.ServerCPUPerOpUs)
	}
	fmt.Fprintf(w, "  client %5.0f µs/op", r.ClientCPUPerOpUs)
	if r.DeviceMsPerOp > 0 {
		fmt.Fprintf(w, "  TPM simulator %5.1f ms/device (not in latency)", r.DeviceMsPerOp)
	}
	if r.StoreBytesPerOp != 0 {
		fmt.Fprintf(w, "  store %5.0f B/device", r.StoreBytesPerOp)
	}
	if len(r.Errors) > 0 {
		b, _ := json.Marshal(r.Errors)
		fmt.Fprintf(w, "  errors %s", b)
	}
	fmt.Fprintln(w)
}
