package provisioning

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// recorder is crypto/rand that remembers what it handed out since reset:
// the credential secret is the first tpm.SecretSize bytes MakeCredential
// draws, which lets the benchmark answer the challenge without a TPM.
type recorder struct {
	mu  sync.Mutex
	got []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := rand.Read(p)
	r.mu.Lock()
	r.got = append(r.got, p[:n]...)
	r.mu.Unlock()
	return n, err
}

func (r *recorder) reset() { r.mu.Lock(); r.got = r.got[:0]; r.mu.Unlock() }

// take returns what was handed out since the last reset, and resets.
func (r *recorder) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]byte(nil), r.got...)
	r.got = r.got[:0]
	return out
}

func softwareEK(b testing.TB, isRSA bool) []byte {
	var pub any
	if isRSA {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		pub = &k.PublicKey
	} else {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = &k.PublicKey
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	ek, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		b.Fatal(err)
	}
	return ek
}

func boundKey() []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := k.PublicKey.ECDH()
	pt := raw.Bytes()
	pub := tpm2.TPMTPublic{Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: pt[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: pt[33:]}})}
	return tpm.MarshalPublic(&pub)
}

// BenchmarkTPMRegistration is the server's cost of one TPM registration,
// both steps, on the embedded store, without the device's TPM work: each
// iteration enrolls nothing new, but registers a new EK.
func BenchmarkTPMRegistration(b *testing.B) {
	for _, kind := range []string{"RSA", "ECC"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			store, err := embedded.Open(filepath.Join(b.TempDir(), "zerotouch.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			if _, err := store.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "hub.example.com", Weight: 1, State: allocation.Active}); err != nil {
				b.Fatal(err)
			}
			// Enrol enough EKs up front, outside the timed loop.
			const pool = 64
			eks := make([][]byte, pool)
			for i := range eks {
				eks[i] = softwareEK(b, kind == "RSA")
				if _, err := store.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: tpm.RegistrationID(eks[i]), Mechanism: enrollment.MechanismTPM,
					EKPublic: eks[i], Thumbprint: tpm.EKHash(eks[i]), Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}}); err != nil {
					b.Fatal(err)
				}
			}
			bk := boundKey()
			rec := &recorder{}
			sealer, err := secrets.LoadOrCreate(filepath.Join(b.TempDir(), "data.key"), true)
			if err != nil {
				b.Fatal(err)
			}
			svc := &Service{Enrollments: store, Shards: store, Registry: store, Challenges: store, Now: time.Now, Rand: rec, Secrets: sealer}
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				ek := eks[i%pool]
				regID := tpm.RegistrationID(ek)
				if i >= pool { // registered already: start that device afresh
					b.StopTimer()
					if err := store.DeleteRegistration(ctx, regID, ""); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				rec.reset()
				ch, err := svc.BeginTPM(ctx, Request{Evidence: TPMBegin{EKPublic: ek, BoundKey: bk}})
				if err != nil {
					b.Fatal(err)
				}
				secret := append([]byte(nil), rec.got[:tpm.SecretSize]...)
				if _, err := svc.Register(ctx, Request{RegistrationID: ch.RegistrationID,
					Evidence: TPMAnswer{ChallengeID: ch.ID, Secret: secret}}); err != nil {
					b.Fatal(fmt.Errorf("complete: %w", err))
				}
				i++
			}
			// Wall time is dominated by the embedded store's fsyncs; CPU is
			// the server's cost.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
