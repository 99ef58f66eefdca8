package dpsdevice

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

const scope = "0ne00000001"

// recorder is crypto/rand that remembers what it handed out: the first 32
// bytes a DPS TPM challenge draws are the key it delivers into the TPM,
// which lets a test answer the challenge without a TPM.
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

// take returns what was handed out since the last take.
func (r *recorder) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// faultyRegistry is the store's registry with an injected failure.
type faultyRegistry struct {
	registry.Store
	mu  sync.Mutex
	err error
}

func (f *faultyRegistry) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

func (f *faultyRegistry) GetRegistration(ctx context.Context, id string) (*registry.Registration, error) {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.Store.GetRegistration(ctx, id)
}

// fixture is the device API over the real registration use case on the
// embedded store, with a data key and two shards (hub-a in region eu,
// hub-b in region us); adm sets enrollments up.
type fixture struct {
	t     *testing.T
	st    *embedded.Store
	reg   *faultyRegistry
	adm   *admin.Service
	prov  *provisioning.Service
	h     *Handler
	rand  *recorder
	logs  *bytes.Buffer
	keyOf map[string][]byte
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
	f := &fixture{t: t, st: st, reg: &faultyRegistry{Store: st}, rand: &recorder{}, logs: &bytes.Buffer{}, keyOf: map[string][]byte{}}
	log := slog.New(slog.NewTextHandler(f.logs, nil))
	f.adm = &admin.Service{Store: st, Now: time.Now, Rand: rand.Reader, Secrets: sealer}
	f.prov = &provisioning.Service{Enrollments: st, Shards: st, Registry: f.reg, Challenges: st, Now: time.Now,
		Secrets: sealer, Rand: f.rand, Log: log}
	t.Cleanup(func() { _ = f.prov.Wait(context.Background()) })
	f.h = &Handler{Prov: f.prov, IDScope: scope, Log: log, Locate: func(r *http.Request) string { return r.Header.Get("X-Test-Region") }}
	for _, sh := range []*allocation.Shard{
		{ID: "hub-a", Hostname: "hub-a.example.com", Weight: 1, State: allocation.Active, Region: "eu"},
		{ID: "hub-b", Hostname: "hub-b.example.com", Weight: 1, State: allocation.Active, Region: "us"},
	} {
		if _, err := f.adm.CreateShard(t.Context(), sh); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// symmetric enrolls regID with a symmetric key (its settings set by
// change) and remembers the key.
func (f *fixture) symmetric(regID string, change func(e *enrollment.Individual)) []byte {
	f.t.Helper()
	e := &enrollment.Individual{RegistrationID: regID, Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}}
	if change != nil {
		change(e)
	}
	_, keys, err := f.adm.CreateSymmetricIndividual(f.t.Context(), e, nil, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.keyOf[regID] = keys.Primary
	return keys.Primary
}

// sas is a device's SAS token for its registration.
func sas(key []byte, regID string) string {
	return symkey.Sign(key, scope+"/registrations/"+regID, time.Now().Add(time.Hour), "registration")
}

// request is one device request; hdr is name, value pairs.
type request struct {
	method, path, auth, body string
	// certs is the TLS client certificate chain, leaf first.
	certs []*x509.Certificate
	hdr   []string
}

func (f *fixture) do(r request) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd io.Reader
	if r.body != "" {
		rd = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, "https://dps.test"+r.path, rd)
	req.Header.Set("X-Request-Id", "trk-1")
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.certs != nil {
		req.TLS = &tls.ConnectionState{PeerCertificates: r.certs}
	}
	for i := 0; i+1 < len(r.hdr); i += 2 {
		req.Header.Set(r.hdr[i], r.hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// register is a symmetric-key device's PUT …/register.
func (f *fixture) register(regID, body string, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(request{method: "PUT", path: "/" + scope + "/registrations/" + regID + "/register", auth: sas(f.keyOf[regID], regID), body: body, hdr: hdr})
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder, status int) T {
	t.Helper()
	var v T
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer %s: %v", rec.Body, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	return v
}

// refused checks an error answer: status, DPS's error body with the
// tracking ID and reason; a refusal (not a malformed request) says only
// its reason.
func refused(t *testing.T, rec *httptest.ResponseRecorder, status int, reason fault.Reason) apierr.DPSErrorBody {
	t.Helper()
	eb := decode[apierr.DPSErrorBody](t, rec, status)
	if eb.Info["reason"] != string(reason) || eb.ErrorCode/1000 != status || eb.TrackingID != "trk-1" || !strings.HasSuffix(eb.TimestampUTC, "Z") {
		t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, status, reason)
	}
	if status != 400 && status != 404 && eb.Message != "registration refused: "+string(reason) {
		t.Fatalf("a refusal says more than its reason: %q", eb.Message)
	}
	return eb
}

// registered reports whether a registration exists.
func (f *fixture) registered(regID string) bool {
	f.t.Helper()
	_, err := f.st.GetRegistration(f.t.Context(), regID)
	return err == nil
}
