package cli

import (
	"context"
	"fmt"
	"net/http"
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

// tpmFleet enrolls n simulated TPMs (one individual enrollment per EK, in
// batches) and returns a fleet whose devices register themselves with
// the two-step TPM exchange over a fresh TLS connection each. The
// go-tpm-tools simulator is one per process, so devices run one at a time.
func tpmFleet(ctx context.Context, cfg *bench.Config, n int, kt tpmdevice.KeyType) (*bench.Fleet, error) {
	run := time.Now().UnixNano()
	regID := func(i int) string { return fmt.Sprintf("bench-tpm-%x-%07d", run, i) }
	seed := func(i int) int64 { return run + int64(i) }
	cc, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg.DeviceTLS())))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cfg.AccessKey)
	enrollments := pb.NewEnrollmentServiceClient(cc)
	for start := 0; start < n; start += importBatch {
		var batch []*pb.Enrollment
		for i := start; i < min(n, start+importBatch); i++ {
			d, closeTPM, err := openSimTPM(seed(i), kt)
			if err != nil {
				return nil, err
			}
			batch = append(batch, &pb.Enrollment{RegistrationId: regID(i), Tpm: &pb.TpmAttestation{EndorsementKey: d.EKPublic()}})
			closeTPM()
		}
		resp, err := enrollments.BatchCreateEnrollments(actx, &pb.BatchCreateEnrollmentsRequest{Enrollments: batch})
		if err != nil {
			return nil, fmt.Errorf("enroll TPMs: %w", err)
		}
		for _, r := range resp.GetResults() {
			if e := r.GetError(); e != nil {
				return nil, fmt.Errorf("enroll TPM: %s: %s", e.GetReason(), e.GetMessage())
			}
		}
	}

	register := func(ctx context.Context, transport string, i int) (time.Duration, error) {
		start := time.Now()
		d, closeTPM, err := openSimTPM(seed(i), kt)
		if err != nil {
			return time.Since(start), err
		}
		defer closeTPM()
		dev := &timedTPM{Device: d, spent: time.Since(start)}
		switch transport {
		case "grpc":
			conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg.DeviceTLS())))
			if err != nil {
				return dev.spent, err
			}
			defer conn.Close()
			_, err = RegisterTPMGRPC(ctx, pb.NewDeviceRegistrationServiceClient(conn), dev, regID(i))
			return dev.spent, err
		case "rest":
			tr := &http.Transport{TLSClientConfig: cfg.DeviceTLS()}
			defer tr.CloseIdleConnections()
			_, err = RegisterTPMREST(ctx, &http.Client{Transport: tr, Timeout: time.Minute}, cfg.HTTPAddr, dev, regID(i))
			return dev.spent, err
		default:
			return dev.spent, fmt.Errorf("bench: TPM devices register over grpc or rest, not %q", transport)
		}
	}
	return &bench.Fleet{Register: register, Count: n}, nil
}
