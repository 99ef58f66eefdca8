package scale

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/revocation"
)

// Store is what seeding writes through: the stores' own methods, the
// ones the service's registrations and enrollment writes call.
type Store interface {
	enrollment.Store
	registry.Store
	CreateShard(ctx context.Context, sh *allocation.Shard) (string, error)
	CreateCluster(ctx context.Context, c *allocation.Cluster) (string, error)
}

// Names of what a seed creates.
const (
	SeedCA      = "scale-ca"
	SeedGroup   = "scale-x509"
	SeedCluster = "scale-hubs"
)

// ShardID is seed shard i.
func ShardID(i int) string { return fmt.Sprintf("scale-%d", i) }

// Mix is what a seed of n devices holds:
//   - X509 registered X.509 devices of one enrollment group, each with its
//     leaf and intermediate recorded (a 2-certificate chain below the
//     group's root CA, as ADR 23 records it);
//   - TPM registered TPM devices, each with its individual enrollment (EK
//     public area, ECC P-256) and its bound key;
//   - Enrolled TPM individual enrollments whose devices have not
//     registered yet (a factory's upload),
//
// so that n = X509 + TPM registrations and n = TPM + Enrolled individual
// enrollments. Devices go to the shards in turn (shard i mod shards).
type Mix struct {
	X509, TPM, Enrolled int
}

// MixFor splits n registered devices: half X.509 group devices, half TPM
// individual enrollments, and as many unregistered TPM enrollments again
// as make n individual enrollments.
func MixFor(n int) Mix {
	x := n / 2
	return Mix{X509: x, TPM: n - x, Enrolled: x}
}

// Fixture is the configuration a seed writes before its devices: the
// group's PKI (root CA, intermediate) and the hub cluster's node
// certificate, whose key the snapshot measurement uses.
type Fixture struct {
	Root, Inter *pki.Issued
	Node        *pki.Issued
	Shards      int
}

// NewFixture makes the PKI of a seed.
func NewFixture(shards int) (*Fixture, error) {
	now := time.Now()
	root, err := pki.NewCA("scale root", nil, now.Add(-time.Hour), 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	inter, err := pki.NewCA("scale issuing", root, now.Add(-time.Hour), 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	hubCA, err := pki.NewCA("scale hub nodes", nil, now.Add(-time.Hour), 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	node, err := pki.NewDevice(SeedCluster, hubCA, now.Add(-time.Hour), 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &Fixture{Root: root, Inter: inter, Node: node, Shards: max(1, shards)}, nil
}

// SeedConfig writes the shards, the hub cluster, the CA and the group.
func (f *Fixture) SeedConfig(ctx context.Context, st Store) error {
	now := time.Now()
	if _, err := st.CreateCluster(ctx, &allocation.Cluster{ID: SeedCluster, Certificates: []string{enrollment.Thumbprint(f.Node.Cert.Raw)}, Created: now, Updated: now}); err != nil {
		return fmt.Errorf("seed hub cluster: %w", err)
	}
	for i := range f.Shards {
		if _, err := st.CreateShard(ctx, &allocation.Shard{ID: ShardID(i), Hostname: fmt.Sprintf("hub-%d.scale.example.com", i), Weight: 100,
			State: allocation.Active, Cluster: SeedCluster, Created: now, Updated: now}); err != nil {
			return fmt.Errorf("seed shard: %w", err)
		}
	}
	if _, err := st.CreateCA(ctx, &enrollment.CA{Name: SeedCA, DER: f.Root.Cert.Raw, Thumbprint: enrollment.Thumbprint(f.Root.Cert.Raw),
		SubjectKey: enrollment.SubjectKey(f.Root.Cert.RawSubject), Verified: true, Meta: enrollment.Meta{Created: now, Updated: now}}); err != nil {
		return fmt.Errorf("seed CA: %w", err)
	}
	if _, err := st.CreateGroup(ctx, &enrollment.Group{ID: SeedGroup, CAName: SeedCA, Mechanism: enrollment.MechanismX509,
		Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}, Meta: enrollment.Meta{Created: now, Updated: now}}); err != nil {
		return fmt.Errorf("seed group: %w", err)
	}
	return nil
}

// SeedStats says what a seed wrote and how long it took.
type SeedStats struct {
	Mix      Mix
	Duration time.Duration
}

// Seed writes mix's devices with workers goroutines. Device records are
// what provisioning's write (internal/provisioning) builds for each kind,
// with the credential's values (leaf thumbprint and serial, EK) freshly
// random: same fields, same sizes. progress, if set, is called now and
// then with the devices written so far.
func (f *Fixture) Seed(ctx context.Context, st Store, mix Mix, workers int, progress func(done, total int)) (SeedStats, error) {
	start := time.Now()
	total := mix.X509 + mix.TPM + mix.Enrolled
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	interID, rootID := revocation.IssuerID(f.Inter.Cert), revocation.IssuerID(f.Root.Cert)
	interSerial := x509att.SerialHex(f.Inter.Cert.SerialNumber)
	rootThumb := enrollment.Thumbprint(f.Root.Cert.Raw)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				var err error
				switch {
				case i < mix.X509:
					err = f.seedX509(ctx, st, i, interID, rootID, interSerial, rootThumb)
				case i < mix.X509+mix.TPM:
					err = f.seedTPM(ctx, st, i-mix.X509, true)
				default:
					err = f.seedTPM(ctx, st, i-mix.X509-mix.TPM, false)
				}
				if err != nil {
					fail(fmt.Errorf("seed device %d: %w", i, err))
					return
				}
				if d := done.Add(1); progress != nil && d%50000 == 0 {
					progress(int(d), total)
				}
			}
		}()
	}
	wg.Wait()
	return SeedStats{Mix: mix, Duration: time.Since(start)}, firstErr
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomSerial is a serial as pki (and most CAs) draw them: 127 random bits.
func randomSerial() string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return x509att.SerialHex(n)
}

// X509ID is seeded X.509 device i's registration ID.
func X509ID(i int) string { return fmt.Sprintf("scale-x-%08d", i) }

// TPMID is seeded TPM device i's registration ID; registered says
// whether it registered.
func TPMID(i int, registered bool) string {
	if registered {
		return fmt.Sprintf("scale-t-%08d", i)
	}
	return fmt.Sprintf("scale-e-%08d", i)
}

func (f *Fixture) shardOf(i int) (string, string) {
	s := i % f.Shards
	return ShardID(s), fmt.Sprintf("hub-%d.scale.example.com", s)
}

// seedX509 writes what a new X.509 group device's registration writes.
func (f *Fixture) seedX509(ctx context.Context, st Store, i int, interID, rootID, interSerial, rootThumb string) error {
	now := time.Now()
	id := X509ID(i)
	shard, hub := f.shardOf(i)
	leaf := randomHex(32)
	cred := registry.Credential{Type: registry.X509, X509Thumbprint: leaf, CAThumbprint: rootThumb,
		X509Chain: []registry.CertRef{{Issuer: interID, Serial: randomSerial()}, {Issuer: rootID, Serial: interSerial}}}
	return f.write(ctx, st, id, id, shard, hub, registry.X509, SeedGroup, false, leaf, cred, now)
}

// seedTPM writes a TPM individual enrollment and, if registered, what its
// device's registration writes.
func (f *Fixture) seedTPM(ctx context.Context, st Store, i int, registered bool) error {
	now := time.Now()
	ek, err := eccEK()
	if err != nil {
		return err
	}
	id := TPMID(i, registered)
	ekHash := tpm.EKHash(ek)
	if _, err := st.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: id, Mechanism: enrollment.MechanismTPM, Thumbprint: ekHash, EKPublic: ek,
		Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}, Meta: enrollment.Meta{Created: now, Updated: now}}); err != nil {
		return err
	}
	if !registered {
		return nil
	}
	bound, err := boundKey()
	if err != nil {
		return err
	}
	shard, hub := f.shardOf(i)
	cred := registry.Credential{Type: registry.TPM, TPMEKHash: ekHash, TPMBoundKey: bound}
	return f.write(ctx, st, id, id, shard, hub, registry.TPM, "", true, ekHash, cred, now)
}

// write is provisioning's write of a new registration and its identity.
func (f *Fixture) write(ctx context.Context, st Store, regID, deviceID, shard, hub string, att registry.AttestationType, group string, individual bool,
	thumb string, cred registry.Credential, now time.Time) error {
	reg := &registry.Registration{
		RegistrationID: regID, DeviceID: deviceID, Shard: shard, AssignedHub: hub,
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: att,
		GroupID: group, Individual: individual, CredentialThumbprint: thumb, InitialShard: shard, Created: now, Updated: now,
	}
	ident := &registry.Identity{
		DeviceID: deviceID, RegistrationID: regID, Shard: shard, Status: registry.IdentityEnabled,
		Credential: cred, Version: registry.NextVersion(0, now), Created: now, Updated: now,
	}
	_, err := st.CreateRegistration(ctx, reg, ident)
	return err
}

// eccEK is a fresh ECC P-256 EK's TPM2B_PUBLIC in the TCG default
// template, as a vendor's export (or a TPM) gives it.
func eccEK() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

// boundKey is a fresh bound key's TPM2B_PUBLIC.
func boundKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	raw, err := k.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	b := raw.Bytes()
	t := tpmdevice.BoundKeyTemplate
	t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: b[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: b[33:]}})
	return tpm.MarshalPublic(&t), nil
}
