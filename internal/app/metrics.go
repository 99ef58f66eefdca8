package app

import (
	"context"
	"net"

	"github.com/zerotouch/zerotouch/internal/metrics"
)

// fleet is the collector of the fleet's gauges, read from the store when
// scraped.
func (a *App) fleet() *metrics.Fleet {
	f := &metrics.Fleet{Store: a.Store, HubStreams: a.server.HubStreams}
	if sized, ok := a.Store.(interface {
		BytesInUse(context.Context) (int64, error)
	}); ok {
		f.StoreBytes = sized.BytesInUse // the embedded store; Redis has exporters of its own
	}
	return f
}

// serveMetrics serves the metrics on l.Metrics, if given, until the
// function it returns is called (which waits for that server to stop). A
// metrics listener that fails is logged and stops nothing else: devices
// keep registering.
func (a *App) serveMetrics(l Listeners) (stop func()) {
	if l.Metrics == nil {
		return func() {}
	}
	for name, lis := range map[string]net.Listener{metrics.ListenerGRPC: l.GRPC, metrics.ListenerHTTP: l.HTTP, metrics.ListenerMQTT: l.MQTT} {
		if lis != nil {
			a.Metrics.Listener(name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Metrics.Serve(ctx, l.Metrics); err != nil {
			a.opt.Log.Error("metrics listener failed", "err", err)
		}
	}()
	a.opt.Log.Info("serving metrics", "addr", l.Metrics.Addr().String())
	return func() { cancel(); <-done }
}
