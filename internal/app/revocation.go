package app

import (
	"context"

	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/provisioning"
	"github.com/zerotouch/zerotouch/internal/revocation"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
)

// checkRevocation wires the revocation of manufacturer certificates (ADR
// 23): CRLs kept as documents in the store, checked at registration, and
// a refresher on every replica that reloads them when they change and
// fetches distribution points again before their nextUpdate; a new CRL
// disables the registrations it revokes. Close stops the refresher and
// waits for it before the store closes.
func (a *App) checkRevocation(ctx context.Context, cfg *config.Config, store Store, prov *provisioning.Service, adm *admin.Service, opt Options) {
	rev := &revocation.Checker{
		Store:   docs.Revocations{D: store},
		Client:  revocation.NewClient(cfg.Revocation.FetchTimeout, cfg.Revocation.AllowPrivateNetworks),
		Refresh: cfg.Revocation.RefreshInterval,
		Now:     opt.Now,
		Log:     opt.Log,
		Revoked: adm.DisableRevoked,
	}
	prov.Revocation, adm.Revocation = rev, rev
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		rev.Run(bg)
	}()
	a.closers = append(a.closers, func() {
		stop()
		<-done
		rev.Close()
	})
}
