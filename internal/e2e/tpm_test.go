package e2e

import (
	"context"
	"crypto/rand"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

var tpmSeed atomic.Int64

// withTPM runs fn with a fresh simulated TPM (a new seed, so a new EK) and
// a device of the given EK type. The simulator is one per process, so TPM
// tests run one after another.
func withTPM(t *testing.T, kt tpmdevice.KeyType, opt tpmdevice.Options, fn func(d *tpmdevice.Device)) {
	t.Helper()
	tp, err := tpmdevice.Open("simulator", 1000+tpmSeed.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	d, err := tpmdevice.New(tp, kt, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fn(d)
}

// enrollTPM creates an individual TPM enrollment for the device's EK.
func (e *env) enrollTPM(regID string, ek []byte, status pb.ProvisioningStatus) *pb.Enrollment {
	e.t.Helper()
	en, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
		RegistrationId: regID, ProvisioningStatus: status, Tpm: &pb.TpmAttestation{EndorsementKey: ek}}})
	if err != nil {
		e.t.Fatalf("enroll TPM: %v", err)
	}
	return en
}

func (e *env) tpmGRPC(d cli.TPMDevice, regID string) (*pb.Registration, error) {
	cc := e.dial(nil)
	defer cc.Close()
	resp, err := cli.RegisterTPMGRPC(e.t.Context(), pb.NewDeviceRegistrationServiceClient(cc), d, regID)
	return resp.GetRegistration(), err
}

func (e *env) tpmREST(d cli.TPMDevice, regID string) (*pb.Registration, error) {
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	resp, err := cli.RegisterTPMREST(e.t.Context(), &http.Client{Transport: tr}, e.httpAddr, d, regID)
	return resp.GetRegistration(), err
}

// TestTPMRegistration registers simulated TPMs with RSA and ECC EKs, over
// gRPC and REST, on the embedded store and on Redis.
func TestTPMRegistration(t *testing.T) {
	stores := map[string]func(t *testing.T) options{
		"embedded": func(*testing.T) options { return options{} },
		"redis": func(t *testing.T) options {
			srv := redistest.Start(t, redistest.Options{})
			s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}})
			if err != nil {
				t.Fatal(err)
			}
			return options{store: s}
		},
	}
	for _, storeName := range []string{"embedded", "redis"} {
		t.Run(storeName, func(t *testing.T) {
			e := startWith(t, stores[storeName](t))
			e.createShard("shard-a", 1)
			for _, kt := range []tpmdevice.KeyType{tpmdevice.RSA, tpmdevice.ECC} {
				for _, tr := range []string{"grpc", "rest"} {
					t.Run(string(kt)+"/"+tr, func(t *testing.T) {
						withTPM(t, kt, tpmdevice.Options{}, func(d *tpmdevice.Device) {
							regID := tpm.RegistrationID(d.EKPublic())
							en := e.enrollTPM("", d.EKPublic(), 0)
							if en.GetRegistrationId() != regID || en.GetAttestationType() != pb.AttestationType_ATTESTATION_TYPE_TPM {
								t.Fatalf("enrollment = %v, want registration ID %s", en, regID)
							}
							register := e.tpmGRPC
							if tr == "rest" {
								register = e.tpmREST
							}
							reg, err := register(d, "")
							if err != nil {
								t.Fatalf("register: %v", err)
							}
							if reg.GetStatus() != pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNED || reg.GetRegistrationId() != regID ||
								reg.GetAttestationType() != pb.AttestationType_ATTESTATION_TYPE_TPM || reg.GetCredentialThumbprint() != tpm.EKHash(d.EKPublic()) ||
								string(reg.GetTpmBoundKey()) != string(d.BoundKeyPublic()) || reg.GetAssignedHub() == "" {
								t.Fatalf("registration = %v", reg)
							}
							id, err := e.store.GetIdentity(context.Background(), regID)
							if err != nil || id.Credential.Type != registry.TPM || string(id.Credential.TPMBoundKey) != string(d.BoundKeyPublic()) {
								t.Fatalf("identity = %+v, %v", id, err)
							}
							// Registering again is idempotent.
							again, err := register(d, regID)
							if err != nil || again.GetEtag() != reg.GetEtag() {
								t.Fatalf("second registration: %v, %v", again, err)
							}
						})
					})
				}
			}
		})
	}
}

// TestTPMStepsOnDifferentReplicas: the first step on one replica, the
// second on another, sharing one Redis and one data key (the challenge is
// sealed under it).
func TestTPMStepsOnDifferentReplicas(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	keyFile := filepath.Join(t.TempDir(), "data.key")
	if _, err := secrets.LoadOrCreate(keyFile, true); err != nil {
		t.Fatal(err)
	}
	open := func() *redis.Store {
		s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := startWith(t, options{store: open(), dataKeyFile: keyFile}), startWith(t, options{store: open(), dataKeyFile: keyFile})
	a.createShard("shard-a", 1)
	withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
		regID := tpm.RegistrationID(d.EKPublic())
		a.enrollTPM(regID, d.EKPublic(), 0)
		cc := a.dial(nil)
		defer cc.Close()
		ch, err := pb.NewDeviceRegistrationServiceClient(cc).BeginTpmAttestation(t.Context(), &pb.BeginTpmAttestationRequest{
			RegistrationId: regID, EndorsementKey: d.EKPublic(), BoundKey: d.BoundKeyPublic()})
		if err != nil {
			t.Fatal(err)
		}
		secret, err := d.Activate(ch.GetCredentialBlob(), ch.GetEncryptedSecret())
		if err != nil {
			t.Fatal(err)
		}
		cc2 := b.dial(nil)
		defer cc2.Close()
		resp, err := pb.NewDeviceRegistrationServiceClient(cc2).CompleteTpmAttestation(t.Context(), &pb.CompleteTpmAttestationRequest{
			RegistrationId: regID, ChallengeId: ch.GetChallengeId(), Secret: secret})
		if err != nil || resp.GetRegistration().GetStatus() != pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNED {
			t.Fatalf("second step on the other replica: %v, %v", resp, err)
		}
	})
}

// TestTPMRefusals: every refusal has its reason and leaves no
// registration behind; a refused challenge is spent.
func TestTPMRefusals(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := startWith(t, options{now: clock})
	e.createShard("shard-a", 1)
	conn := e.dial(nil)
	defer conn.Close()
	dev := pb.NewDeviceRegistrationServiceClient(conn)
	ctx := t.Context()

	begin := func(d *tpmdevice.Device, regID string) *pb.BeginTpmAttestationResponse {
		t.Helper()
		ch, err := dev.BeginTpmAttestation(ctx, &pb.BeginTpmAttestationRequest{RegistrationId: regID, EndorsementKey: d.EKPublic(), BoundKey: d.BoundKeyPublic()})
		if err != nil {
			t.Fatalf("begin: %v", err)
		}
		return ch
	}
	complete := func(regID, challenge string, secret []byte) error {
		_, err := dev.CompleteTpmAttestation(ctx, &pb.CompleteTpmAttestationRequest{RegistrationId: regID, ChallengeId: challenge, Secret: secret})
		return err
	}
	want := func(name string, err error, reason string) {
		t.Helper()
		if got := reasonOf(t, err); got != reason {
			t.Errorf("%s: %s (%v), want %s", name, got, err, reason)
		}
	}

	t.Run("EKNotEnrolled", func(t *testing.T) {
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
			_, err := e.tpmGRPC(d, "")
			want("unenrolled EK", err, "TPM_EK_UNKNOWN")
			e.assertNoRegistration(tpm.RegistrationID(d.EKPublic()))
		})
	})
	t.Run("WrongSecretReplayedAndExpired", func(t *testing.T) {
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
			regID := "tpm-refusals"
			e.enrollTPM(regID, d.EKPublic(), 0)
			ch := begin(d, regID)
			wrong := make([]byte, tpm.SecretSize)
			rand.Read(wrong)
			want("wrong secret", complete(regID, ch.GetChallengeId(), wrong), "TPM_CHALLENGE_FAILED")
			secret, err := d.Activate(ch.GetCredentialBlob(), ch.GetEncryptedSecret())
			if err != nil {
				t.Fatal(err)
			}
			e.assertNoRegistration(regID)
			first, firstSecret := ch, secret

			ch = begin(d, regID)
			secret, _ = d.Activate(ch.GetCredentialBlob(), ch.GetEncryptedSecret())
			want("another registration's challenge", complete("someone-else", ch.GetChallengeId(), secret), "TPM_CHALLENGE_FAILED")
			e.assertNoRegistration("someone-else")

			offset.Store(int64(6 * time.Minute))
			want("expired challenge", complete(regID, ch.GetChallengeId(), secret), "TPM_CHALLENGE_EXPIRED")
			offset.Store(0)
			e.assertNoRegistration(regID)

			// A wrong secret wrote nothing and spent nothing: only the TPM
			// can recover the secret, and it still answers its challenge.
			if err := complete(regID, first.GetChallengeId(), firstSecret); err != nil {
				t.Fatalf("genuine answer after a wrong one: %v", err)
			}
			secret = firstSecret
			want("replayed answer", complete(regID, first.GetChallengeId(), secret), "TPM_CHALLENGE_FAILED")
			want("unknown challenge", complete(regID, "no-such-challenge", secret), "TPM_CHALLENGE_FAILED")
		})
	})
	t.Run("DifferentEKForExistingRegistration", func(t *testing.T) {
		var first *pb.Enrollment
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
			first = e.enrollTPM("tpm-cloned", d.EKPublic(), 0)
			if _, err := e.tpmGRPC(d, "tpm-cloned"); err != nil {
				t.Fatal(err)
			}
		})
		// The operator re-enrolls the registration ID with another TPM; the
		// registration still belongs to the first.
		if _, err := pb.NewEnrollmentServiceClient(e.admin).DeleteEnrollment(e.owner(), &pb.DeleteEnrollmentRequest{RegistrationId: "tpm-cloned", Etag: first.GetEtag()}); err != nil {
			t.Fatal(err)
		}
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
			e.enrollTPM("tpm-cloned", d.EKPublic(), 0)
			_, err := e.tpmGRPC(d, "tpm-cloned")
			want("different EK", err, "TPM_EK_MISMATCH")
			reg, _ := e.store.GetRegistration(ctx, "tpm-cloned")
			if reg == nil || reg.CredentialThumbprint != first.GetSha256Thumbprint() {
				t.Fatalf("the registration changed: %+v", reg)
			}
		})
	})
	t.Run("DisabledEnrollment", func(t *testing.T) {
		withTPM(t, tpmdevice.RSA, tpmdevice.Options{}, func(d *tpmdevice.Device) {
			e.enrollTPM("tpm-disabled", d.EKPublic(), pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED)
			_, err := e.tpmREST(d, "tpm-disabled")
			want("disabled enrollment", err, "ENROLLMENT_DISABLED")
			e.assertNoRegistration("tpm-disabled")
		})
	})
	t.Run("ExportableBoundKey", func(t *testing.T) {
		exportable := tpm2.TPMTPublic{Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{SensitiveDataOrigin: true, UserWithAuth: true, SignEncrypt: true},
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
				CurveID: tpm2.TPMECCNistP256})}
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{BoundKey: &exportable}, func(d *tpmdevice.Device) {
			e.enrollTPM("tpm-export", d.EKPublic(), 0)
			_, err := e.tpmGRPC(d, "tpm-export")
			want("exportable key", err, "TPM_KEY_ATTRIBUTES_INVALID")
			e.assertNoRegistration("tpm-export")
		})
	})
	t.Run("MalformedStructures", func(t *testing.T) {
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
			e.enrollTPM("tpm-malformed", d.EKPublic(), 0)
			ek, bk := d.EKPublic(), d.BoundKeyPublic()
			for name, c := range map[string][2][]byte{
				"empty EK":            {nil, bk},
				"oversized EK":        {make([]byte, 4096), bk},
				"EK size lies":        {append([]byte{0xff, 0xff}, ek[2:]...), bk},
				"EK trailing bytes":   {append(append([]byte{}, ek[:2]...), append(ek[2:], 0)...), bk},
				"EK garbage":          {[]byte{0, 4, 1, 2, 3, 4}, bk},
				"bound key garbage":   {ek, []byte{0, 3, 9, 9, 9}},
				"bound key is the EK": {ek, ek},
				"bound key truncated": {ek, bk[:len(bk)-3]},
				"bound key oversized": {ek, make([]byte, 2000)},
			} {
				_, err := dev.BeginTpmAttestation(ctx, &pb.BeginTpmAttestationRequest{RegistrationId: "tpm-malformed", EndorsementKey: c[0], BoundKey: c[1]})
				if r := reasonOf(t, err); r != "TPM_STRUCTURE_INVALID" && r != "TPM_KEY_ATTRIBUTES_INVALID" && r != "TPM_EK_UNKNOWN" {
					t.Errorf("%s: %s (%v)", name, r, err)
				}
			}
			e.assertNoRegistration("tpm-malformed")
		})
	})
}
