package app

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/attempts"
	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	"github.com/zerotouch/zerotouch/internal/provisioning"
)

// keepRecords wires the audit log (ADR 19) and the failed-attempt log
// (ADR 20), and starts what writes and prunes them; Close stops it.
func (a *App) keepRecords(ctx context.Context, cfg *config.Config, store Store, prov *provisioning.Service, adm *admin.Service, opt Options) (err error) {
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.closers = append(a.closers, stop)

	adm.Audit = &audit.Log{Store: store, Chain: audit.NewChain(a.Sealer.AuditKey()), Now: opt.Now}
	if r := cfg.Audit.Retention; r > 0 {
		go every(bg, time.Hour, func() {
			for {
				n, err := adm.Audit.Prune(bg, opt.Now().Add(-r))
				if err != nil {
					warn(bg, opt.Log, "audit log pruning failed; retrying in an hour", err)
					return
				}
				if n == 0 {
					return
				}
				opt.Log.Info("audit log pruned", "records", n)
			}
		})
	}

	r := cfg.FailedAttempts.Retention
	if rs, ok := store.(interface{ SetAttemptsRetention(time.Duration) }); ok {
		rs.SetAttemptsRetention(r)
	}
	rec := &attempts.Recorder{Store: store, Now: opt.Now, Log: opt.Log}
	rec.Start(bg)
	a.closers = append(a.closers, rec.Close) // before stop: Close flushes
	if a.Metrics != nil {
		if err := a.Metrics.FailedAttemptsDropped(rec.Dropped); err != nil {
			return err
		}
	}
	prov.Attempts = rec
	adm.Attempts = &attempts.Log{Store: store, Now: opt.Now, Retention: r}

	// The IP filter (ADR 21): loaded now, reloaded every second; what it
	// refuses goes to the failed-attempt log.
	a.ipFilter = &ipfilter.Filter{Store: store, Log: opt.Log, Refused: func(addr netip.Addr, transport, requestID string, err error) {
		rec.Record(attempts.Attempt{Source: addr.String(), Transport: transport, Reason: string(fault.IPFiltered), RequestID: requestID})
	}}
	a.ipFilter.ClientIPHeader = cfg.IPFilter.ClientIPHeader
	if a.ipFilter.TrustedProxies, err = cfg.IPFilterProxies(); err != nil {
		return err
	}
	if err := a.ipFilter.Load(ctx); err != nil {
		return err
	}
	go a.ipFilter.Run(bg)
	go every(bg, time.Hour, func() {
		if err := store.PruneAttempts(bg, opt.Now().Add(-r)); err != nil {
			warn(bg, opt.Log, "failed-attempt log pruning failed; retrying in an hour", err)
		}
	})
	return nil
}

// every runs fn now and then every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func warn(ctx context.Context, log *slog.Logger, msg string, err error) {
	if ctx.Err() == nil {
		log.Warn(msg, "err", err)
	}
}
