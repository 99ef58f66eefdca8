package provisioning

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	x509att "github.com/zerotouch/zerotouch/attestation/x509"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/ratelimit"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	"github.com/zerotouch/zerotouch/internal/storage/storagetest"
)

// faulty is a store whose named methods fail with the configured error:
// the registration use case must answer that failure's reason and leave
// nothing written.
type faulty struct {
	storagetest.Store
	mu   sync.Mutex
	fail map[string]error
}

func (f *faulty) err(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[method]
}

func (f *faulty) set(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = map[string]error{method: err}
}

func (f *faulty) GetRegistration(ctx context.Context, id string) (*registry.Registration, error) {
	if err := f.err("GetRegistration"); err != nil {
		return nil, err
	}
	return f.Store.GetRegistration(ctx, id)
}

func (f *faulty) CreateRegistration(ctx context.Context, r *registry.Registration, id *registry.Identity) (string, error) {
	if err := f.err("CreateRegistration"); err != nil {
		return "", err
	}
	return f.Store.CreateRegistration(ctx, r, id)
}

func (f *faulty) UpdateRegistration(ctx context.Context, r *registry.Registration, id *registry.Identity) (string, error) {
	if err := f.err("UpdateRegistration"); err != nil {
		return "", err
	}
	return f.Store.UpdateRegistration(ctx, r, id)
}

func (f *faulty) GetIdentity(ctx context.Context, id string) (*registry.Identity, error) {
	if err := f.err("GetIdentity"); err != nil {
		return nil, err
	}
	return f.Store.GetIdentity(ctx, id)
}

func (f *faulty) GetIndividual(ctx context.Context, id string) (*enrollment.Individual, error) {
	if err := f.err("GetIndividual"); err != nil {
		return nil, err
	}
	return f.Store.GetIndividual(ctx, id)
}

func (f *faulty) ReservedByIndividual(ctx context.Context, name string) (bool, error) {
	if err := f.err("ReservedByIndividual"); err != nil {
		return false, err
	}
	return f.Store.ReservedByIndividual(ctx, name)
}

func (f *faulty) FindIndividualByThumbprint(ctx context.Context, t string) (*enrollment.Individual, error) {
	if err := f.err("FindIndividualByThumbprint"); err != nil {
		return nil, err
	}
	return f.Store.FindIndividualByThumbprint(ctx, t)
}

func (f *faulty) AllShards(ctx context.Context) ([]*allocation.Shard, error) {
	if err := f.err("AllShards"); err != nil {
		return nil, err
	}
	return f.Store.AllShards(ctx)
}

func (f *faulty) GroupsVersion(ctx context.Context) (uint64, error) {
	if err := f.err("GroupsVersion"); err != nil {
		return 0, err
	}
	return f.Store.GroupsVersion(ctx)
}

// fixture is a registration service on the embedded store with a
// verified CA "acme" and its group, a symmetric-key individual enrollment
// "sym-1" and group "sym", and two active shards.
type fixture struct {
	t      *testing.T
	store  *faulty
	s      *Service
	root   *pki.Issued
	inter  *pki.Issued
	sealer *secrets.Sealer
	symInd *secrets.SymmetricKeys
	symGrp *secrets.SymmetricKeys
	rand   *recorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "data.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: &faulty{Store: st}, sealer: sealer, rand: &recorder{}}
	now := time.Now()
	if f.root, err = pki.NewCA("Acme Root", nil, now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if f.inter, err = pki.NewCA("Acme Issuing", f.root, now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	ca := enrollment.NewCA("acme-root", f.root.Cert, now)
	ca.Verified = true
	must(t)(st.CreateCA(ctx, ca))
	must(t)(st.CreateGroup(ctx, &enrollment.Group{ID: "acme", CAName: "acme-root"}))
	for _, id := range []string{"shard-a", "shard-b"} {
		must(t)(st.CreateShard(ctx, &allocation.Shard{ID: id, Hostname: id + ".example.com", Weight: 100, State: allocation.Active}))
	}
	f.symInd = &secrets.SymmetricKeys{Primary: []byte(strings.Repeat("p", 32)), Secondary: []byte(strings.Repeat("s", 32))}
	must(t)(st.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "sym-1", Mechanism: enrollment.MechanismSymmetricKey,
		Thumbprint: thumb("sym-1"), SealedKeys: f.seal(f.symInd, secrets.IndividualAAD("sym-1"))}))
	f.symGrp = &secrets.SymmetricKeys{Primary: []byte(strings.Repeat("g", 32))}
	must(t)(st.CreateGroup(ctx, &enrollment.Group{ID: "sym", Mechanism: enrollment.MechanismSymmetricKey, SealedKeys: f.seal(f.symGrp, secrets.GroupAAD("sym"))}))
	f.s = &Service{Enrollments: f.store, Shards: f.store, Registry: f.store, Challenges: f.store, Now: time.Now, Secrets: sealer,
		Paths: x509att.NewPathCache(10), Rand: f.rand}
	return f
}

// must fails the test on a store write's error.
func must(t *testing.T) func(string, error) {
	return func(_ string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) seal(k *secrets.SymmetricKeys, aad string) []byte {
	sealed, err := f.sealer.SealKeys(k, aad)
	if err != nil {
		f.t.Fatal(err)
	}
	return sealed
}

// device is an X.509 request for a leaf of the acme group.
func (f *fixture) device(regID string) Request {
	d, err := pki.NewDevice(regID, f.inter, time.Now(), time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return Request{RegistrationID: regID, Evidence: X509Chain{Chain: []*x509.Certificate{d.Cert, f.inter.Cert}}, Transport: TransportGRPC, Peer: "127.0.0.1:1"}
}

func sasRequest(regID string, key []byte, expiry time.Time) Request {
	return Request{RegistrationID: regID, Evidence: SASToken{Token: symkey.Sign(key, "registrations/"+regID, expiry, ""), Resource: "registrations/" + regID},
		Transport: TransportREST, Peer: "127.0.0.1:2"}
}

// nothingWritten fails the test if regID has a registration or identity.
func (f *fixture) nothingWritten(regID string) {
	f.t.Helper()
	if _, err := f.store.Store.GetRegistration(context.Background(), regID); !errors.Is(err, fault.ErrNotFound) {
		f.t.Fatalf("a registration for %s exists (%v)", regID, err)
	}
	if _, err := f.store.Store.GetIdentity(context.Background(), regID); !errors.Is(err, fault.ErrNotFound) {
		f.t.Fatalf("an identity for %s exists (%v)", regID, err)
	}
}

func wantReason(t *testing.T, err error, reason fault.Reason) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if got := fault.ReasonOf(err); got != reason {
		t.Fatalf("reason %q (%v), want %q", got, err, reason)
	}
}

func TestRegisterX509(t *testing.T) {
	f := newFixture(t)
	req := f.device("sensor-1")
	res, err := f.s.Register(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	reg := res.Registration
	if reg.GroupID != "acme" || reg.Individual || reg.AttestationType != registry.X509 || reg.Status != registry.Assigned ||
		reg.Substatus != registry.InitialAssignment || reg.DeviceID != "sensor-1" || reg.Etag == "" {
		t.Fatalf("registration = %+v", reg)
	}
	// The same device again: idempotent. No registration ID: the CN.
	req.RegistrationID = ""
	again, err := f.s.Register(t.Context(), req)
	if err != nil || again.Registration.Etag != reg.Etag {
		t.Fatalf("again: %+v %v", again, err)
	}
	// Lookup sees it, writes nothing.
	got, err := f.s.Lookup(t.Context(), req)
	if err != nil || got.Etag != reg.Etag {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	_, err = f.s.Lookup(t.Context(), f.device("sensor-2"))
	wantReason(t, err, fault.ResourceNotFound)
	f.nothingWritten("sensor-2")
}

func TestRegisterRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	expired, _ := pki.NewDevice("old-1", f.inter, time.Now().Add(-2*time.Hour), time.Hour)
	stranger, _ := pki.NewCA("Stranger", nil, time.Now(), time.Hour)
	strangerLeaf, _ := pki.NewDevice("stray-1", stranger, time.Now(), time.Hour)
	cases := []struct {
		name   string
		regID  string
		req    func() Request
		reason fault.Reason
	}{
		{"no evidence", "none-1", func() Request { return Request{RegistrationID: "none-1"} }, fault.CertificateMissing},
		{"empty chain", "none-2", func() Request { return Request{RegistrationID: "none-2", Evidence: X509Chain{}} }, fault.CertificateMissing},
		{"ID is not the CN", "other-1", func() Request { r := f.device("cn-1"); r.RegistrationID = "other-1"; return r }, fault.RegistrationIDInvalid},
		{"invalid CN", "bad id", func() Request { return f.device("bad id") }, fault.RegistrationIDInvalid},
		{"expired leaf", "old-1", func() Request {
			return Request{RegistrationID: "old-1", Evidence: X509Chain{Chain: []*x509.Certificate{expired.Cert, f.inter.Cert}}}
		}, fault.CertificateExpired},
		{"unknown CA", "stray-1", func() Request {
			return Request{RegistrationID: "stray-1", Evidence: X509Chain{Chain: []*x509.Certificate{strangerLeaf.Cert}}}
		}, fault.CertificateUntrusted},
		{"payload too large", "big-1", func() Request {
			r := f.device("big-1")
			r.Payload = json.RawMessage(`"` + strings.Repeat("a", MaxPayload) + `"`)
			return r
		}, fault.FieldInvalid},
		{"first-step evidence", "tpm-x", func() Request { return Request{RegistrationID: "tpm-x", Evidence: TPMBegin{}} }, fault.FieldInvalid},
		{"SAS wrong key", "sym-1", func() Request { return sasRequest("sym-1", []byte(strings.Repeat("x", 32)), time.Now().Add(time.Hour)) }, fault.SASInvalid},
		{"SAS expired", "sym-1", func() Request { return sasRequest("sym-1", f.symInd.Primary, time.Now().Add(-time.Hour)) }, fault.SASExpired},
		{"SAS for another resource", "sym-1", func() Request {
			r := sasRequest("sym-1", f.symInd.Primary, time.Now().Add(time.Hour))
			r.Evidence = SASToken{Token: r.Evidence.(SASToken).Token, Resource: "registrations/sym-2"}
			return r
		}, fault.SASInvalid},
		{"SAS group key not derived", "grp-dev-1", func() Request { return sasRequest("grp-dev-1", f.symGrp.Primary, time.Now().Add(time.Hour)) }, fault.SASInvalid},
		{"TPM unknown challenge", "tpm-y", func() Request {
			return Request{RegistrationID: "tpm-y", Evidence: TPMAnswer{ChallengeID: strings.Repeat("a", 96), Secret: make([]byte, 32)}}
		}, fault.TPMChallengeFailed},
		{"TPM malformed challenge ID", "tpm-y", func() Request {
			return Request{RegistrationID: "tpm-y", Evidence: TPMAnswer{ChallengeID: "../../x", Secret: make([]byte, 32)}}
		}, fault.TPMChallengeFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.s.Register(ctx, tc.req())
			wantReason(t, err, tc.reason)
			f.nothingWritten(tc.regID)
		})
	}
	if _, err := f.s.BeginTPM(ctx, f.device("cn-2")); fault.ReasonOf(err) != fault.FieldInvalid {
		t.Fatalf("BeginTPM with X.509 evidence: %v", err)
	}
}

func TestRegisterSymmetricKeys(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	soon := time.Now().Add(time.Hour)
	for _, key := range [][]byte{f.symInd.Primary, f.symInd.Secondary} {
		res, err := f.s.Register(ctx, sasRequest("sym-1", key, soon))
		if err != nil || !res.Registration.Individual || res.Registration.AttestationType != registry.SymmetricKey {
			t.Fatalf("individual: %+v %v", res, err)
		}
	}
	res, err := f.s.Register(ctx, sasRequest("grp-dev-1", symkey.DeriveDeviceKey(f.symGrp.Primary, "grp-dev-1"), soon))
	if err != nil || res.Registration.GroupID != "sym" {
		t.Fatalf("group: %+v %v", res, err)
	}
	// Switched off per enrollment (disableDeviceSAS): a token signed by
	// the enrollment's key is refused naming the switch; one that is not
	// learns nothing about it.
	g, err := f.store.Store.GetGroup(ctx, "sym")
	if err != nil {
		t.Fatal(err)
	}
	g.DeviceSettings.DisableSAS = true
	must(t)(f.store.Store.UpdateGroup(ctx, g))
	ind, err := f.store.Store.GetIndividual(ctx, "sym-1")
	if err != nil {
		t.Fatal(err)
	}
	ind.DeviceSettings.DisableSAS = true
	must(t)(f.store.Store.UpdateIndividual(ctx, ind))
	_, err = f.s.Register(ctx, sasRequest("grp-dev-3", symkey.DeriveDeviceKey(f.symGrp.Primary, "grp-dev-3"), soon))
	wantReason(t, err, fault.EnrollmentSASDisabled)
	f.nothingWritten("grp-dev-3")
	_, err = f.s.Register(ctx, sasRequest("sym-1", f.symInd.Secondary, soon))
	wantReason(t, err, fault.EnrollmentSASDisabled)
	_, err = f.s.Register(ctx, sasRequest("sym-1", []byte(strings.Repeat("x", 32)), soon))
	wantReason(t, err, fault.SASInvalid)
	// Switched off service-wide.
	f.s.SymmetricKeysDisabled = true
	_, err = f.s.Register(ctx, sasRequest("grp-dev-2", symkey.DeriveDeviceKey(f.symGrp.Primary, "grp-dev-2"), soon))
	wantReason(t, err, fault.SASDisabled)
	f.nothingWritten("grp-dev-2")
}

// softwareTPM is an EK and a bound key made in software: enough for the
// server's side of the native TPM protocol, with the secret recovered from
// the randomness the server used (recorder, tpm_bench_test.go).
func softwareTPM(t *testing.T) (ek, bound []byte) {
	t.Helper()
	return softwareEK(t, false), boundKey()
}

func TestRegisterTPM(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	ek, bound := softwareTPM(t)
	regID := tpm.RegistrationID(ek)
	must(t)(f.store.Store.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: regID, Mechanism: enrollment.MechanismTPM,
		Thumbprint: tpm.EKHash(ek), EKPublic: ek}))
	begin := func() (*TPMChallenge, []byte) {
		t.Helper()
		f.rand.take()
		ch, err := f.s.BeginTPM(ctx, Request{Evidence: TPMBegin{EKPublic: ek, BoundKey: bound}})
		if err != nil {
			t.Fatal(err)
		}
		return ch, f.rand.take()[:tpm.SecretSize]
	}
	ch, secret := begin()
	if ch.RegistrationID != regID || ch.ID == "" || len(ch.ID) > maxChallengeIDLength || !ch.Expires.After(time.Now()) {
		t.Fatalf("challenge = %+v", ch)
	}
	answer := func(regID, id string, secret []byte) error {
		_, err := f.s.Register(ctx, Request{RegistrationID: regID, Evidence: TPMAnswer{ChallengeID: id, Secret: secret}})
		return err
	}
	// A wrong secret is refused and writes nothing; the challenge stays
	// its device's (only that TPM can recover the secret).
	wrong := append([]byte(nil), secret...)
	wrong[0] ^= 1
	wantReason(t, answer(regID, ch.ID, wrong), fault.TPMChallengeFailed)
	f.nothingWritten(regID)
	// Another registration's ID for this challenge.
	wantReason(t, answer("someone-else", ch.ID, secret), fault.TPMChallengeFailed)
	// Challenge IDs this service did not issue: tampered, truncated,
	// not base64, empty, oversized.
	tampered := []byte(ch.ID)
	tampered[len(tampered)/2] ^= 1
	for name, id := range map[string]string{"tampered": string(tampered), "truncated": ch.ID[:len(ch.ID)-4], "not base64": "!!" + ch.ID[2:],
		"empty": "", "oversized": strings.Repeat("A", maxChallengeIDLength+1)} {
		if err := answer(regID, id, secret); fault.ReasonOf(err) != fault.TPMChallengeFailed {
			t.Fatalf("%s challenge ID: %v", name, err)
		}
	}
	// Any number of first steps for the same (public) EK, by anyone,
	// leaves the device's open challenge as it was: nothing is stored.
	for range 20 {
		begin()
	}
	if n := f.store.Store.(interface{ ChallengeCount() int }).ChallengeCount(); n != 0 {
		t.Fatalf("%d challenges stored by first steps", n)
	}
	if err := answer(regID, ch.ID, secret); err != nil {
		t.Fatalf("register: %v", err)
	}
	reg, err := f.store.GetRegistration(ctx, regID)
	if err != nil || !reg.Individual || reg.CredentialThumbprint != tpm.EKHash(ek) {
		t.Fatalf("registration: %+v %v", reg, err)
	}
	ident, err := f.store.GetIdentity(ctx, reg.DeviceID)
	if err != nil || string(ident.Credential.TPMBoundKey) != string(bound) {
		t.Fatalf("identity: %+v %v", ident, err)
	}
	// Single use: the same answer again, even the right one.
	wantReason(t, answer(regID, ch.ID, secret), fault.TPMChallengeFailed)
	// Expired: answered after its five minutes.
	ch, secret = begin()
	f.s.Now = func() time.Time { return time.Now().Add(TPMChallengeLife + time.Second) }
	wantReason(t, answer(regID, ch.ID, secret), fault.TPMChallengeExpired)
	f.s.Now = time.Now
	if err := answer(regID, ch.ID, secret); err != nil {
		t.Fatalf("the same challenge, answered in time: %v", err)
	}
	// An EK nobody enrolled, without a certificate.
	other, _ := softwareTPM(t)
	_, err = f.s.BeginTPM(ctx, Request{Evidence: TPMBegin{EKPublic: other, BoundKey: bound}})
	wantReason(t, err, fault.TPMEKUnknown)
	// A bound key that is not a TPM structure.
	_, err = f.s.BeginTPM(ctx, Request{Evidence: TPMBegin{EKPublic: ek, BoundKey: []byte{1, 2, 3}}})
	wantReason(t, err, fault.TPMStructureInvalid)
}

// TestRegisterStoreFailures injects a failure into each store call a
// registration makes: the use case answers the failure's reason (a
// classified store error keeps its reason; an unclassified one stays
// unclassified for the error boundary to log and answer INTERNAL) and
// leaves nothing written.
func TestRegisterStoreFailures(t *testing.T) {
	unavailable := fault.New(fault.Unavailable, fault.StoreUnavailable, "the store is down")
	broken := errors.New("disk on fire")
	methods := []string{"GetRegistration", "CreateRegistration", "ReservedByIndividual", "FindIndividualByThumbprint", "AllShards"}
	for _, m := range methods {
		for _, injected := range []error{unavailable, broken} {
			t.Run(fmt.Sprintf("%s/%v", m, injected), func(t *testing.T) {
				f := newFixture(t)
				f.store.set(m, injected)
				_, err := f.s.Register(t.Context(), f.device("fail-1"))
				if !errors.Is(err, injected) && fault.ReasonOf(err) != fault.ReasonOf(injected) {
					t.Fatalf("%v, want %v", err, injected)
				}
				if _, ok := fault.As(injected); !ok {
					if _, classified := fault.As(err); classified {
						t.Fatalf("an unclassified store failure came back classified: %v", err)
					}
				}
				f.store.set("", nil)
				f.nothingWritten("fail-1")
			})
		}
	}
	// Re-registration: a failed update leaves the registration as it was.
	for _, m := range []string{"UpdateRegistration", "GetIdentity"} {
		t.Run(m, func(t *testing.T) {
			f := newFixture(t)
			first, err := f.s.Register(t.Context(), f.device("fail-2"))
			if err != nil {
				t.Fatal(err)
			}
			f.store.set(m, unavailable)
			if _, err := f.s.Register(t.Context(), f.device("fail-2")); fault.ReasonOf(err) != fault.StoreUnavailable {
				t.Fatalf("renewal with %s failing: %v", m, err)
			}
			f.store.set("", nil)
			now, err := f.store.GetRegistration(t.Context(), "fail-2")
			if err != nil || now.Etag != first.Registration.Etag || now.CredentialThumbprint != first.Registration.CredentialThumbprint {
				t.Fatalf("after a failed renewal: %+v %v", now, err)
			}
		})
	}
	// Symmetric keys read the individual enrollment, then the groups
	// version.
	for _, m := range []string{"GetIndividual", "GroupsVersion", "ReservedByIndividual"} {
		f := newFixture(t)
		f.store.set(m, unavailable)
		_, err := f.s.Register(t.Context(), sasRequest("grp-dev-9", symkey.DeriveDeviceKey(f.symGrp.Primary, "grp-dev-9"), time.Now().Add(time.Hour)))
		if fault.ReasonOf(err) != fault.StoreUnavailable {
			t.Fatalf("symmetric key with %s failing: %v", m, err)
		}
		f.nothingWritten("grp-dev-9")
	}
}

func TestRegisterRateLimited(t *testing.T) {
	f := newFixture(t)
	f.s.Limiter = &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now,
		PerRegistration: ratelimit.Rule{Limit: 2, Window: time.Hour}, PerIP: ratelimit.Rule{Limit: 5, Window: time.Hour}}
	for range 2 {
		if _, err := f.s.Register(t.Context(), f.device("busy-1")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.s.Register(t.Context(), f.device("busy-1"))
	wantReason(t, err, fault.RateLimited)
	if fe, _ := fault.As(err); fe.RetryAfter <= 0 {
		t.Fatalf("no retry hint: %+v", fe)
	}
	// Per address: 3 used, 2 left, then refused before any attestation.
	for range 2 {
		_, _ = f.s.Register(t.Context(), f.device("busy-2"))
	}
	_, err = f.s.Register(t.Context(), f.device("busy-3"))
	wantReason(t, err, fault.RateLimited)
	f.nothingWritten("busy-3")
}

// TestRequestCarriesWhatDrivesAllocation: the region and the payload come
// from the request, not the context.
func TestRequestCarriesWhatDrivesAllocation(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, sh := range []*allocation.Shard{{ID: "eu-1", Hostname: "eu-1.example.com", Weight: 1, State: allocation.Active, Region: "eu"},
		{ID: "us-1", Hostname: "us-1.example.com", Weight: 1, State: allocation.Active, Region: "us"}} {
		must(t)(f.store.Store.CreateShard(ctx, sh))
	}
	g, err := f.store.Store.GetGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	g.Allocation = enrollment.Allocation{Policy: enrollment.PolicyGeo, Shards: []string{"eu-1", "us-1"}}
	must(t)(f.store.Store.UpdateGroup(ctx, g))
	for i, region := range []string{"eu", "us", "eu"} {
		req := f.device(fmt.Sprintf("geo-%d", i))
		req.Region = region
		res, err := f.s.Register(ctx, req)
		if err != nil || res.Registration.Shard != region+"-1" {
			t.Fatalf("region %s: %+v %v", region, res, err)
		}
	}
}

// TestOneLogLinePerRegistration: a registration logs one line at info with
// what an operator needs to find it (the request ID is the one the device
// got as its tracking ID); a refusal one line at warn with its reason.
func TestOneLogLinePerRegistration(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	f.s.Log = slog.New(slog.NewTextHandler(&buf, nil))
	req := f.device("logged-1")
	req.RequestID, req.Transport = "req-123", TransportREST
	if _, err := f.s.Register(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"level=INFO", "msg=registration", "registration_id=logged-1", "attestation=x509", "transport=rest",
		"outcome=assigned", "shard=shard-", "peer=127.0.0.1:1", "duration=", "request_id=req-123", "enrollment_group=acme"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the line lacks %q: %s", want, lines[0])
		}
	}
	buf.Reset()
	req = f.device("logged-2")
	req.RegistrationID, req.RequestID = "someone-else", "req-124"
	if _, err := f.s.Register(t.Context(), req); err == nil {
		t.Fatal("registered under another ID")
	}
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "outcome=refused") ||
		!strings.Contains(lines[0], "reason=REGISTRATION_ID_INVALID") || !strings.Contains(lines[0], "request_id=req-124") {
		t.Fatalf("refusal:\n%s", buf.String())
	}
}

// TestTPMAnswerMarkersAreBounded: a device can make any number of answers
// to its own DPS TPM key (a SAS with another expiry is another answer);
// each counts against the registration's rate limit before it may leave a
// single-use marker, so one TPM cannot fill the challenge store.
func TestTPMAnswerMarkersAreBounded(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.s.Limiter = &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now, PerRegistration: ratelimit.Rule{Limit: 5, Window: time.Hour}}
	ek, srk := softwareEK(t, false), softwareEK(t, false)
	must(t)(f.store.Store.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dps-tpm-1", Mechanism: enrollment.MechanismTPM,
		Thumbprint: tpm.EKHash(ek), EKPublic: ek}))
	const resource = "0ne00000001/registrations/dps-tpm-1"
	if _, err := f.s.BeginTPM(ctx, Request{RegistrationID: "dps-tpm-1", Evidence: DPSTPMBegin{EKPublic: ek, SRKPublic: srk}}); err != nil {
		t.Fatal(err)
	}
	key := f.s.DPSDeliveredKey(ek, srk, "dps-tpm-1", time.Now())
	limited := 0
	for i := range 30 {
		tok := symkey.Sign(key, resource, time.Now().Add(time.Hour+time.Duration(i)*time.Second), "registration")
		_, err := f.s.Register(ctx, Request{RegistrationID: "dps-tpm-1", Evidence: DPSTPMAnswer{EKPublic: ek, SRKPublic: srk, Token: tok, Resource: resource}})
		if fault.ReasonOf(err) == fault.RateLimited {
			limited++
		} else if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
	if n := f.store.Store.(interface{ ChallengeCount() int }).ChallengeCount(); limited != 25 || n != 5 {
		t.Fatalf("%d answers rate limited, %d markers stored; want 25 and 5", limited, n)
	}
}

// TestRefusalLogIsBounded: a claimed registration ID is the caller's, so a
// refusal logs at most 128 bytes of it and its length (found by review: a
// 1 MB ID made a 1 MB log line).
func TestRefusalLogIsBounded(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	f.s.Log = slog.New(slog.NewTextHandler(&buf, nil))
	huge := strings.Repeat("a", 1<<20)
	if _, err := f.s.Register(t.Context(), Request{RegistrationID: huge, Evidence: X509Chain{}}); err == nil {
		t.Fatal("registered without a credential")
	}
	if out := buf.String(); len(out) > 4096 || !strings.Contains(out, "registration_id_len=1048576") {
		t.Fatalf("%d bytes logged:\n%.300s", len(out), out)
	}
}
