package dpsservice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// host is the service host name SAS tokens must name.
const host = "dps.test"

// faulty is the embedded store with injected failures: a named method
// fails with the configured error.
type faulty struct {
	admin.Store
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

func (f *faulty) AllShards(ctx context.Context) ([]*allocation.Shard, error) {
	if err := f.err("AllShards"); err != nil {
		return nil, err
	}
	return f.Store.AllShards(ctx)
}

func (f *faulty) GetIndividual(ctx context.Context, id string) (*enrollment.Individual, error) {
	if err := f.err("GetIndividual"); err != nil {
		return nil, err
	}
	return f.Store.GetIndividual(ctx, id)
}

func (f *faulty) ListIndividuals(ctx context.Context, p enrollment.Page) ([]*enrollment.Individual, string, error) {
	if err := f.err("ListIndividuals"); err != nil {
		return nil, "", err
	}
	return f.Store.ListIndividuals(ctx, p)
}

func (f *faulty) CreateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	if err := f.err("CreateIndividual"); err != nil {
		return "", err
	}
	return f.Store.CreateIndividual(ctx, e)
}

func (f *faulty) UpdateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	if err := f.err("UpdateIndividual"); err != nil {
		return "", err
	}
	return f.Store.UpdateIndividual(ctx, e)
}

func (f *faulty) GetRegistration(ctx context.Context, id string) (*registry.Registration, error) {
	if err := f.err("GetRegistration"); err != nil {
		return nil, err
	}
	return f.Store.GetRegistration(ctx, id)
}

func (f *faulty) GetKey(ctx context.Context, id string) (*access.Key, error) {
	if err := f.err("GetKey"); err != nil {
		return nil, err
	}
	return f.Store.GetKey(ctx, id)
}

// syncBuffer is a log destination the bulk goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is the service API over real admin use cases on the embedded
// store, with a data key, two shards (hub-a, hub-b), and access keys:
// owner (every permission, SAS and bearer) and reader (read only).
type fixture struct {
	t      *testing.T
	store  *faulty
	adm    *admin.Service
	s      *Service
	log    *syncBuffer
	owner  *access.Key
	ownSAS []byte
	bearer string
	reader *access.Key
	rdSAS  []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "data.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: &faulty{Store: st}, log: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(f.log, nil))
	f.adm = &admin.Service{Store: f.store, Now: time.Now, Rand: rand.Reader, Secrets: sealer, Log: log, Issuance: docs.Issuance{D: st}}
	f.s = &Service{HostName: host, Admin: f.adm, Now: time.Now, Log: log}
	f.owner, f.ownSAS, f.bearer = f.newKey("owner", access.All...)
	f.reader, f.rdSAS, _ = f.newKey("reader", access.EnrollmentRead, access.RegistrationRead)
	for _, id := range []string{"hub-a", "hub-b"} {
		if _, err := f.adm.CreateShard(t.Context(), &allocation.Shard{ID: id, Hostname: id + ".example.com", Weight: 1, State: allocation.Active}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// newKey stores an access key with a shared access key.
func (f *fixture) newKey(name string, perms ...access.Permission) (*access.Key, []byte, string) {
	f.t.Helper()
	token, k, err := access.Generate(rand.Reader, name, perms, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	sas, err := access.AddSASKey(rand.Reader, f.adm.Secrets, k, access.Primary)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.CreateKey(f.t.Context(), k); err != nil {
		f.t.Fatal(err)
	}
	return k, sas, token
}

// ownerSAS is a SAS token of the owner key for the whole service.
func (f *fixture) ownerSAS() string {
	return symkey.Sign(f.ownSAS, host, time.Now().Add(time.Hour), f.owner.ID)
}

// call sends a request as the owner; hdr is name, value pairs
// ("Authorization" among them replaces the owner's token).
func (f *fixture) call(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.callAs(f.ownerSAS(), method, path, body, hdr...)
}

func (f *fixture) callAs(auth, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "https://"+host+path, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("X-Request-Id", "req-1")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.s.ServeHTTP(rec, req)
	return rec
}

// ok checks the status of an answer and decodes its body into v (if not
// nil).
func (f *fixture) ok(rec *httptest.ResponseRecorder, status int, v any) {
	f.t.Helper()
	if rec.Code != status {
		f.t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	if v != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			f.t.Fatalf("answer %s: %v", rec.Body, err)
		}
	}
}

// refused checks an error answer: its status, DPS's error body, and the
// stable reason in info.reason.
func refused(t *testing.T, rec *httptest.ResponseRecorder, status int, reason string) apierr.DPSErrorBody {
	t.Helper()
	var eb apierr.DPSErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatalf("not a DPS error body (%d): %s", rec.Code, rec.Body)
	}
	if rec.Code != status || eb.Info["reason"] != reason || eb.ErrorCode/1000 != status || eb.TrackingID != "req-1" || eb.TimestampUTC == "" || eb.Message == "" {
		t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, status, reason)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	return eb
}

// snapshot lists every enrollment, group and registration with its etag:
// equal snapshots around a refused request show it wrote nothing.
func (f *fixture) snapshot() string {
	f.t.Helper()
	ctx := f.t.Context()
	var b strings.Builder
	es, _, err := f.store.Store.ListIndividuals(ctx, enrollment.Page{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range es {
		fmt.Fprintf(&b, "enrollment %s %s\n", e.RegistrationID, e.Etag)
	}
	gs, _, err := f.store.Store.ListGroups(ctx, enrollment.Page{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, g := range gs {
		fmt.Fprintf(&b, "group %s %s\n", g.ID, g.Etag)
	}
	regs, _, err := f.store.Store.ListRegistrations(ctx, registry.Filter{}, "", 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range regs {
		fmt.Fprintf(&b, "registration %s %s\n", r.RegistrationID, r.Etag)
	}
	return b.String()
}

// verifiedCA uploads a CA under name and proves possession of its key.
func (f *fixture) verifiedCA(name string) *pki.Issued {
	f.t.Helper()
	ctx := f.t.Context()
	ca, err := pki.NewCA(name+" CA", nil, time.Now(), 24*time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.adm.CreateCA(ctx, name, string(pki.CertPEM(ca.Cert))); err != nil {
		f.t.Fatal(err)
	}
	_, code, err := f.adm.GenerateVerificationCode(ctx, name, "")
	if err != nil {
		f.t.Fatal(err)
	}
	proof, err := pki.NewProof(ca, code, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.adm.VerifyCA(ctx, name, "", string(pki.CertPEM(proof.Cert))); err != nil {
		f.t.Fatal(err)
	}
	return ca
}

// register writes a registration of a device as provisioning does.
func (f *fixture) register(regID, groupID string) *registry.Registration {
	f.t.Helper()
	now := time.Now()
	reg := &registry.Registration{RegistrationID: regID, DeviceID: regID, Shard: "hub-a", AssignedHub: "hub-a.example.com",
		Status: registry.Assigned, AttestationType: registry.SymmetricKey, GroupID: groupID, Individual: groupID == "", Created: now, Updated: now,
		Payload: json.RawMessage(`{"site":"s1"}`)}
	id := &registry.Identity{DeviceID: regID, RegistrationID: regID, Shard: "hub-a", Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.SymmetricKey, SymmetricKeyHash: strings.Repeat("ab", 32)}, Version: registry.NextVersion(0, now), Created: now, Updated: now}
	etag, err := f.store.CreateRegistration(f.t.Context(), reg, id)
	if err != nil {
		f.t.Fatal(err)
	}
	reg.Etag = etag
	return reg
}
