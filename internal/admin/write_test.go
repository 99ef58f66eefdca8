package admin

import (
	"context"
	"crypto/elliptic"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
)

func TestActor(t *testing.T) {
	if got := ActorOf(context.Background()); got != "" {
		t.Fatalf("no actor: %q", got)
	}
	ctx := WithCaller(context.Background(), &Caller{KeyID: "k1"})
	if got := ActorOf(WithCaller(ctx, &Caller{KeyID: "k2"})); got != "k2" {
		t.Fatalf("actor: %q", got)
	}
}

var changeLine = regexp.MustCompile(`level=(\w+) msg="operator change" action=(\S+) resource=(\S+) actor=(\S*) outcome=(\w+)(?: reason=(\S+))?`)

// changes are the operator changes logged since offset, as "action
// resource actor outcome [reason]".
func changes(t *testing.T, log string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		m := changeLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not an operator change: %s", line)
		}
		rec := strings.Join(m[2:6], " ")
		if m[6] != "" {
			rec += " " + m[6]
		}
		if want := map[string]string{"done": "INFO", "refused": "WARN"}[m[5]]; m[1] != want {
			t.Fatalf("%s logged at %s", rec, m[1])
		}
		out = append(out, rec)
	}
	return out
}

// TestEveryMutationIsRecorded walks every operator write and checks that
// each store write it makes is logged once, by mutate, with the actor and
// the outcome.
func TestEveryMutationIsRecorded(t *testing.T) {
	s, logs := newAdmin(t)
	ctx := WithCaller(t.Context(), &Caller{KeyID: "ops"})
	caller, _ := key(t, s, "owner", access.All...)
	var ca *pki.Issued
	var code string
	var g *enrollment.Group
	var e *enrollment.Individual
	var newKey string
	steps := []struct {
		name string
		do   func() error
		want []string // action resource
	}{
		{"CreateCA", func() (err error) {
			ca = mintCA(t, "Acme Root")
			_, err = s.CreateCA(ctx, "acme", certPEM(ca.Cert))
			return err
		}, []string{"CreateCA acme"}},
		{"GenerateVerificationCode", func() (err error) { _, code, err = s.GenerateVerificationCode(ctx, "acme", ""); return err }, []string{"UpdateCA acme"}},
		{"VerifyCA", func() error {
			proof, err := pki.NewProof(ca, code, time.Now())
			if err != nil {
				return err
			}
			_, err = s.VerifyCA(ctx, "acme", "", certPEM(proof.Cert))
			return err
		}, []string{"UpdateCA acme"}},
		{"CreateCluster", func() error { _, err := s.CreateCluster(ctx, &allocation.Cluster{ID: "c1"}); return err }, []string{"CreateCluster c1"}},
		{"UpdateCluster", func() error {
			c, err := s.GetCluster(ctx, "c1")
			if err == nil {
				c.Certificates = []string{strings.Repeat("f", 64)}
				_, err = s.UpdateCluster(ctx, c)
			}
			return err
		}, []string{"UpdateCluster c1"}},
		{"IssueHubCertificate", func() error {
			_, err := s.IssueHubCertificate(ctx, "c1", csrPEM(t, elliptic.P256(), "n"), time.Hour)
			return err
		}, []string{"UpdateCluster c1"}},
		{"CreateShard", func() error {
			_, err := s.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "hub.example.com", Weight: 1, State: allocation.Active, Cluster: "c1"})
			return err
		}, []string{"CreateShard s1"}},
		{"UpdateShard", func() error {
			sh, err := s.GetShard(ctx, "s1")
			if err == nil {
				sh.Weight = 2
				_, err = s.UpdateShard(ctx, sh)
			}
			return err
		}, []string{"UpdateShard s1"}},
		{"CreateGroup", func() (err error) {
			g, err = s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "acme", Allocation: hashedOn("s1")})
			return err
		}, []string{"CreateGroup g"}},
		{"CreateSymmetricGroup", func() error {
			_, _, err := s.CreateSymmetricGroup(ctx, &enrollment.Group{ID: "sym", Allocation: hashedOn()}, nil, nil)
			return err
		}, []string{"CreateGroup sym"}},
		{"CreateIndividual", func() (err error) {
			e, err = s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "x1", Thumbprint: strings.Repeat("1", 64), Allocation: hashedOn()}, "")
			return err
		}, []string{"CreateIndividual x1"}},
		{"CreateTPMIndividual", func() error {
			_, err := s.CreateTPMIndividual(ctx, &enrollment.Individual{RegistrationID: "t1", Allocation: hashedOn()}, nil, ekPEM(t))
			return err
		}, []string{"CreateIndividual t1"}},
		{"CreateSymmetricIndividual", func() error {
			_, _, err := s.CreateSymmetricIndividual(ctx, &enrollment.Individual{RegistrationID: "k1", Allocation: hashedOn()}, nil, nil)
			return err
		}, []string{"CreateIndividual k1"}},
		{"UpdateGroup", func() (err error) {
			registerDevice(t, s, "g-1", "s1", "g")
			g.Disabled = true
			g, err = s.UpdateGroup(ctx, g)
			return err
		}, []string{"UpdateGroup g", "UpdateRegistration g-1"}},
		{"UpdateIndividual", func() (err error) {
			e.DeviceID = "d1"
			e, err = s.UpdateIndividual(ctx, e)
			return err
		}, []string{"UpdateIndividual x1"}},
		{"SetRegistrationEnabled", func() error { _, err := s.SetRegistrationEnabled(ctx, "g-1", "", false); return err }, []string{"UpdateRegistration g-1"}},
		{"DeleteRegistration", func() error { return s.DeleteRegistration(ctx, "g-1", "") }, []string{"DeleteRegistration g-1"}},
		{"DeleteIndividual", func() error { return s.DeleteIndividual(ctx, "x1", "") }, []string{"DeleteIndividual x1"}},
		{"DeleteGroup", func() error { return s.DeleteGroup(ctx, "g", "") }, []string{"DeleteGroup g"}},
		{"DeleteCA", func() error { return s.DeleteCA(ctx, "acme", "") }, []string{"DeleteCA acme"}},
		{"DeleteShard", func() error { return s.DeleteShard(ctx, "s1", "") }, []string{"DeleteShard s1"}},
		{"DeleteCluster", func() error { return s.DeleteCluster(ctx, "c1", "") }, []string{"DeleteCluster c1"}},
		{"CreateAccessKey", func() error {
			k, err := s.CreateAccessKey(ctx, caller, "reader", []string{"EnrollmentRead"}, false, time.Time{})
			if err == nil {
				newKey = k.Key.ID
			}
			return err
		}, []string{"accessKeys.create {key}"}},
		{"RotateAccessKey", func() error { _, err := s.RotateAccessKey(ctx, caller, newKey, access.Primary); return err }, []string{"accessKeys.rotate {key}"}},
		{"DeleteAccessKey", func() error { return s.DeleteAccessKey(ctx, caller, newKey) }, []string{"accessKeys.delete {key}"}},
	}
	for _, step := range steps {
		logs.Reset()
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		var want []string
		for _, w := range step.want {
			want = append(want, strings.ReplaceAll(w, "{key}", newKey)+" ops done")
		}
		if got := changes(t, logs.String()); !slices.Equal(got, want) {
			t.Fatalf("%s recorded %q, want %q", step.name, got, want)
		}
	}
}

// failing is the embedded store with a write that fails.
type failing struct {
	Store
	method string
	err    error
}

func (f *failing) fail(method string) error {
	if f.method == method {
		return f.err
	}
	return nil
}

func (f *failing) CreateCA(ctx context.Context, ca *enrollment.CA) (string, error) {
	if err := f.fail("CreateCA"); err != nil {
		return "", err
	}
	return f.Store.CreateCA(ctx, ca)
}

func (f *failing) CreateGroup(ctx context.Context, g *enrollment.Group) (string, error) {
	if err := f.fail("CreateGroup"); err != nil {
		return "", err
	}
	return f.Store.CreateGroup(ctx, g)
}

func (f *failing) GetShard(ctx context.Context, id string) (*allocation.Shard, error) {
	if err := f.fail("GetShard"); err != nil {
		return nil, err
	}
	return f.Store.GetShard(ctx, id)
}

func (f *failing) UpdateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (string, error) {
	if err := f.fail("UpdateRegistration"); err != nil {
		return "", err
	}
	return f.Store.UpdateRegistration(ctx, reg, id)
}

func (f *failing) DeleteRegistration(ctx context.Context, regID, etag string) error {
	if err := f.fail("DeleteRegistration"); err != nil {
		return err
	}
	return f.Store.DeleteRegistration(ctx, regID, etag)
}

// TestStoreFailures: a store failure reaches the caller as it is (never
// turned into a refusal of the input), is recorded as a refused change
// with its reason, and leaves nothing written.
func TestStoreFailures(t *testing.T) {
	s, logs := newAdmin(t)
	ctx := WithCaller(t.Context(), &Caller{KeyID: "ops"})
	verifiedCA(t, s, "spare")
	addShard(t, s, "s1", "")
	registerDevice(t, s, "dev-1", "s1", "")
	down := fault.New(fault.Unavailable, fault.StoreUnavailable, "the store is down")
	f := &failing{Store: s.Store, err: down}
	s.Store = f
	cases := []struct {
		method string
		do     func() error
		logged string
	}{
		{"CreateCA", func() error { _, err := s.CreateCA(ctx, "acme", certPEM(mintCA(t, "Acme").Cert)); return err }, "CreateCA acme"},
		{"CreateGroup", func() error {
			_, err := s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "spare", Allocation: hashedOn()})
			return err
		}, "CreateGroup g"},
		{"GetShard", func() error {
			_, err := s.CreateGroup(ctx, &enrollment.Group{ID: "g", CAName: "spare", Allocation: hashedOn("s1")})
			return err
		}, ""},
		{"UpdateRegistration", func() error { _, err := s.SetRegistrationEnabled(ctx, "dev-1", "", false); return err }, "UpdateRegistration dev-1"},
		{"DeleteRegistration", func() error { return s.DeleteRegistration(ctx, "dev-1", "") }, "DeleteRegistration dev-1"},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			f.method = tc.method
			defer func() { f.method = "" }()
			before := snapshot(t, s)
			logs.Reset()
			err := tc.do()
			if fault.KindOf(err) != fault.Unavailable || fault.ReasonOf(err) != fault.StoreUnavailable {
				t.Fatalf("error: %v", err)
			}
			var want []string
			if tc.logged != "" {
				want = []string{tc.logged + " ops refused STORE_UNAVAILABLE"}
			}
			if got := changes(t, logs.String()); !slices.Equal(got, want) {
				t.Fatalf("recorded %q, want %q", got, want)
			}
			f.method = ""
			unchanged(t, s, before, tc.method)
		})
	}
}

// TestRefusedInputIsNotAChange: input refused before the store is asked
// records nothing; a refusal by the store is recorded with its reason.
func TestRefusedInputIsNotAChange(t *testing.T) {
	s, logs := newAdmin(t)
	ctx := WithCaller(t.Context(), &Caller{KeyID: "ops"})
	if _, err := s.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "bad_host", Weight: 1, State: allocation.Active}); fault.ReasonOf(err) != fault.FieldInvalid {
		t.Fatalf("bad hostname: %v", err)
	}
	if got := changes(t, logs.String()); len(got) != 0 {
		t.Fatalf("recorded %q", got)
	}
	addShard(t, s, "s1", "")
	logs.Reset()
	_, err := s.CreateShard(ctx, &allocation.Shard{ID: "s1", Hostname: "hub.example.com", Weight: 1, State: allocation.Active})
	reason(t, err, fault.ResourceExists)
	if got := changes(t, logs.String()); !slices.Equal(got, []string{"CreateShard s1 ops refused RESOURCE_ALREADY_EXISTS"}) {
		t.Fatalf("recorded %q", got)
	}
	// Without a logger, changes are made and recorded nowhere.
	s.Log = nil
	if err := s.DeleteShard(ctx, "s1", ""); err != nil {
		t.Fatal(err)
	}
}
