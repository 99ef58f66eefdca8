package dpsclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

func TestNew(t *testing.T) {
	c, err := New("HostName=dps.example.com:8443;SharedAccessKeyName=k1;SharedAccessKey=AAAA", http.DefaultClient)
	if err != nil || c.Host != "dps.example.com:8443" || c.KeyName != "k1" || len(c.Key) != 3 {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := New(" HostName=h ; SharedAccessKeyName=k;SharedAccessKey=AAAA; ", http.DefaultClient); err != nil {
		t.Fatalf("spaces and an empty part: %v", err)
	}
	for _, bad := range []string{"", "HostName=x", "HostName=x;SharedAccessKeyName=k;SharedAccessKey=%%%", "HostName=x;junk;SharedAccessKeyName=k;SharedAccessKey=AAAA",
		"SharedAccessKeyName=k;SharedAccessKey=AAAA", "HostName=x;SharedAccessKey=AAAA"} {
		if _, err := New(bad, http.DefaultClient); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestAPIError(t *testing.T) {
	for _, tc := range []struct {
		e    APIError
		want string
	}{
		{APIError{Status: 400, Body: apierr.DPSErrorBody{ErrorCode: 400004, Message: "bad", Info: map[string]string{"reason": "FIELD_INVALID"}}}, "400 FIELD_INVALID: bad"},
		{APIError{Status: 404, Body: apierr.DPSErrorBody{ErrorCode: 404201, Message: "gone"}}, "404 (404201): gone"},
		{APIError{Status: 502, Raw: "<html>"}, "502: <html>"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

// service is a Zerotouch DPS service API on the embedded store, served
// over TLS on loopback, with a connection string for a key with every
// permission.
type service struct {
	adm  *admin.Service
	conn string
	hc   *http.Client
}

func newService(t *testing.T) *service {
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
	adm := &admin.Service{Store: st, Now: time.Now, Rand: rand.Reader, Secrets: sealer}
	// The SAS resource is the host without the port.
	srv := httptest.NewTLSServer(&dpsservice.Service{HostName: "127.0.0.1", Admin: adm})
	t.Cleanup(srv.Close)
	_, k, err := access.Generate(rand.Reader, "import", access.All, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sas, err := access.AddSASKey(rand.Reader, sealer, k, access.Primary)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateShard(t.Context(), &allocation.Shard{ID: "hub", Hostname: "hub.example.com", Weight: 1, State: allocation.Active}); err != nil {
		t.Fatal(err)
	}
	return &service{adm: adm, conn: access.ConnectionString(strings.TrimPrefix(srv.URL, "https://"), k.ID, sas), hc: srv.Client()}
}

func (s *service) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(s.conn, s.hc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDo: requests are signed for the host, JSON both ways, errors are
// APIErrors with DPS's body.
func TestDo(t *testing.T) {
	s := newService(t)
	c := s.client(t)
	ctx := t.Context()
	var e dpsservice.IndividualEnrollment
	if _, err := c.Do(ctx, "PUT", "/enrollments/do-1", map[string]any{"attestation": map[string]string{"type": "symmetricKey"}}, &e); err != nil || e.RegistrationID != "do-1" {
		t.Fatalf("PUT: %+v %v", e, err)
	}
	var items []dpsservice.IndividualEnrollment
	h, err := c.Do(ctx, "POST", "/enrollments/query", map[string]string{"query": "SELECT * FROM enrollments"}, &items, "x-ms-max-item-count", "1")
	if err != nil || len(items) != 1 || h.Get("x-ms-item-type") != "Enrollment" {
		t.Fatalf("query: %v %v %v", items, h, err)
	}
	_, err = c.Do(ctx, "GET", "/enrollments/nobody", nil, &e)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Body.Info["reason"] != "RESOURCE_NOT_FOUND" || !strings.HasPrefix(err.Error(), "404 RESOURCE_NOT_FOUND: ") {
		t.Fatalf("404: %v", err)
	}
	bad := *c
	bad.Key = make([]byte, 32)
	if _, err := bad.Do(ctx, "GET", "/enrollments/do-1", nil, nil); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("wrong key: %v", err)
	}
	// An answer that is not the JSON asked for.
	var n int
	if _, err := c.Do(ctx, "GET", "/enrollments/do-1", nil, &n); err == nil || !strings.Contains(err.Error(), "not the expected JSON") {
		t.Fatalf("decode: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Do(canceled, "GET", "/enrollments/do-1", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

// TestImport copies every group and enrollment, over more than one page,
// keeping symmetric keys; what the target cannot take is reported and the
// rest goes through; a second run changes nothing.
func TestImport(t *testing.T) {
	src, dst := newService(t), newService(t)
	ctx := t.Context()
	root, _ := pki.NewCA("Import Root", nil, time.Now(), 24*time.Hour)
	other, _ := pki.NewCA("Other Root", nil, time.Now(), 24*time.Hour)
	for _, s := range []*service{src, dst} {
		if _, err := s.adm.CreateCA(ctx, "root", string(pki.CertPEM(root.Cert))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.adm.CreateCA(ctx, "other", string(pki.CertPEM(other.Cert))); err != nil {
		t.Fatal(err)
	}
	hashed := enrollment.Allocation{Policy: enrollment.PolicyHashed}
	for _, g := range []*enrollment.Group{{ID: "g-root", CAName: "root", Allocation: hashed}, {ID: "g-other", CAName: "other", Allocation: hashed}} {
		if _, err := src.adm.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := src.adm.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "g-sym", Disabled: true, Allocation: hashed}, nil, nil); err != nil {
		t.Fatal(err)
	}
	const n = 105 // more than one page of 100
	for i := range n {
		e := &enrollment.Individual{RegistrationID: fmt.Sprintf("dev-%03d", i), Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed, Shards: []string{"hub"}}}
		if _, _, err := src.adm.CreateSymmetricIndividual(ctx, e, bytes.Repeat([]byte{byte(i)}, 32), nil); err != nil {
			t.Fatal(err)
		}
	}
	dev, _ := pki.NewDevice("x-1", root, time.Now(), time.Hour)
	if _, err := src.adm.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "x-1", Allocation: hashed}, string(pki.CertPEM(dev.Cert))); err != nil {
		t.Fatal(err)
	}

	run := func() (ok int, refused []string) {
		t.Helper()
		err := Import(ctx, src.client(t), dst.client(t), func(r ImportResult) {
			if r.Err != nil {
				refused = append(refused, r.Kind+" "+r.ID+": "+r.Err.Error())
				return
			}
			ok++
		})
		if err != nil {
			t.Fatal(err)
		}
		return ok, refused
	}
	ok, refused := run()
	if ok != n+3 || len(refused) != 1 || !strings.HasPrefix(refused[0], "enrollment group g-other: 400 RESOURCE_NOT_FOUND") {
		t.Fatalf("imported %d, refused %v", ok, refused)
	}
	if ok2, refused2 := run(); ok2 != ok || len(refused2) != 1 {
		t.Fatalf("second run: %d %v", ok2, refused2)
	}
	e, err := dst.adm.GetIndividual(ctx, "dev-104")
	if err != nil || len(e.Allocation.Shards) != 1 {
		t.Fatalf("dev-104 on the target: %+v %v", e, err)
	}
	keys, err := dst.adm.IndividualKeys(ctx, e)
	if err != nil || !bytes.Equal(keys.Primary, bytes.Repeat([]byte{104}, 32)) {
		t.Fatalf("keys: %v", err)
	}
	if x, err := dst.adm.GetIndividual(ctx, "x-1"); err != nil || x.Mechanism != enrollment.MechanismX509 {
		t.Fatalf("x-1 on the target: %+v %v", x, err)
	}
	g, err := dst.adm.GetGroup(ctx, "g-sym")
	if err != nil || !g.Disabled {
		t.Fatalf("g-sym on the target: %+v %v", g, err)
	}
	sg, _ := src.adm.GetGroup(ctx, "g-sym")
	want, _ := src.adm.GroupKeys(ctx, sg)
	if got, err := dst.adm.GroupKeys(ctx, g); err != nil || !bytes.Equal(got.Primary, want.Primary) || !bytes.Equal(got.Secondary, want.Secondary) {
		t.Fatal("the group's keys did not come over")
	}
	// A source that cannot be listed is an error.
	bad := src.client(t)
	bad.Key = make([]byte, 32)
	if err := Import(ctx, bad, dst.client(t), func(ImportResult) {}); err == nil || !strings.Contains(err.Error(), "list the source's enrollment groups") {
		t.Fatalf("unlistable source: %v", err)
	}
}
