package e2e

import (
	"context"
	"testing"

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
	e := startWith(t, func(s registry.Store) registry.Store { gate.Store = s; return gate })
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
