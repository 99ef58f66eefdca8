package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// gatedRegistry holds CreateRegistration until released.
type gatedRegistry struct {
	registry.Store
	entered chan struct{}
	release chan struct{}
}

func (g *gatedRegistry) CreateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (string, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Store.CreateRegistration(ctx, reg, id)
}

// TestGracefulShutdownFinishesInFlightRegistrations: a registration that
// is mid-flight when shutdown begins completes and is recorded; the server
// then stops taking connections.
func TestGracefulShutdownFinishesInFlightRegistrations(t *testing.T) {
	gate := &gatedRegistry{entered: make(chan struct{}, 2), release: make(chan struct{})}
	e := startWith(t, options{wrap: func(s registry.Store) registry.Store { gate.Store = s; return gate }})
	f := e.newFleet()
	type result struct {
		reg *pb.Registration
		err error
	}
	grpcDone, restDone := make(chan result, 1), make(chan result, 1)
	dev1, dev2 := f.device(t, "dev-inflight-1"), f.device(t, "dev-inflight-2")
	go func() {
		r, err := e.registerGRPC("dev-inflight-1", dev1, f.inter.Cert)
		grpcDone <- result{r, err}
	}()
	go func() {
		r, err := e.registerREST("dev-inflight-2", dev2, f.inter.Cert)
		restDone <- result{r, err}
	}()
	<-gate.entered
	<-gate.entered
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	close(gate.release)
	for name, ch := range map[string]chan result{"grpc": grpcDone, "rest": restDone} {
		r := <-ch
		if r.err != nil || r.reg.GetStatus() != pb.RegistrationStatus_REGISTRATION_STATUS_ASSIGNED {
			t.Errorf("in-flight %s registration: %v %v", name, r.reg, r.err)
		}
	}
	<-stopped
	for _, id := range []string{"dev-inflight-1", "dev-inflight-2"} {
		if _, err := e.store.GetRegistration(t.Context(), id); err != nil {
			t.Errorf("%s not recorded: %v", id, err)
		}
	}
	if _, err := e.registerGRPC("dev-late", f.device(t, "dev-late"), f.inter.Cert); err == nil {
		t.Error("a registration after shutdown succeeded")
	}
}

// failingRegistry fails every registration write as an unreachable store does.
type failingRegistry struct{ registry.Store }

func (failingRegistry) CreateRegistration(context.Context, *registry.Registration, *registry.Identity) (string, error) {
	return "", fault.New(fault.Unavailable, fault.StoreUnavailable, "the store is unavailable; retry shortly")
}

// TestUnavailableCarriesRetryHint: a store outage answers devices with
// STORE_UNAVAILABLE and a retry hint, RetryInfo over gRPC and Retry-After
// over REST, and writes nothing.
func TestUnavailableCarriesRetryHint(t *testing.T) {
	e := startWith(t, options{wrap: func(s registry.Store) registry.Store { return failingRegistry{s} }})
	f := e.newFleet()
	dev := f.device(t, "dev-retry")
	_, err := e.registerGRPC("dev-retry", dev, f.inter.Cert)
	if codeOf(err) != codes.Unavailable || reasonOf(t, err) != "STORE_UNAVAILABLE" {
		t.Fatalf("gRPC: %v", err)
	}
	hasRetry := false
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			hasRetry = true
		}
	}
	if !hasRetry {
		t.Fatalf("gRPC error without RetryInfo: %v", status.Convert(err).Details())
	}
	tr := &http.Transport{TLSClientConfig: e.clientTLS(dev, f.inter.Cert)}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Post("https://"+e.httpAddr+"/v1/registrations/dev-retry:register", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("REST: %s, Retry-After %q", res.Status, res.Header.Get("Retry-After"))
	}
	e.assertNoRegistration("dev-retry")
}
