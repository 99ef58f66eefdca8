package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/zerotouch/zerotouch/attestation"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/attempts"
	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
)

// Store is what the service needs of a backend.
type Store interface {
	admin.Store
	audit.Store
	attempts.Store
	ipfilter.Store
	attestation.ChallengeStore
	access.Store
	docs.Docs
	Ping(ctx context.Context) error
	Close() error
	SetEventRetention(n int)
	GroupsVersion(ctx context.Context) (uint64, error)
	TrustVersion(ctx context.Context) (uint64, error)
}

// outboxSweeper is a store whose writes reach the assignment log through
// outboxes (Redis): something must relay the ones a stopped replica left.
type outboxSweeper interface {
	SweepOutboxes(ctx context.Context, olderThan time.Duration) (int, error)
}

// sweepOutboxes relays outboxes older than 10 seconds, every 5 seconds,
// until ctx is done. Every replica runs it; relaying twice is harmless
// (at-least-once delivery).
func sweepOutboxes(ctx context.Context, s outboxSweeper, log *slog.Logger) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if n, err := s.SweepOutboxes(ctx, 10*time.Second); err != nil && ctx.Err() == nil {
			log.Warn("relaying assignment outboxes", "err", err)
		} else if n > 0 {
			log.Info("relayed assignment outboxes left by a stopped write", "outboxes", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// openStore opens the configured backend.
func openStore(cfg *config.Config) (Store, error) {
	switch cfg.Storage.Backend {
	case "redis":
		r := cfg.Storage.Redis
		opt := redis.Options{
			Addrs: r.Addrs, Cluster: r.Cluster, MasterName: r.MasterName, Username: r.Username, Password: r.Password,
			DB: r.DB, KeyPrefix: r.KeyPrefix, PoolSize: r.PoolSize, DialTimeout: r.DialTimeout,
			ReadTimeout: r.ReadTimeout, WriteTimeout: r.WriteTimeout, PoolTimeout: r.PoolTimeout,
		}
		if r.TLS.Enabled {
			tc, err := redisTLS(r)
			if err != nil {
				return nil, err
			}
			opt.TLS = tc
		}
		return redis.Open(opt)
	default:
		return embedded.Open(cfg.StorePath())
	}
}

func redisTLS(r config.Redis) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLS.ServerName}
	if r.TLS.CAFile != "" {
		pem, err := os.ReadFile(r.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls: no certificate in %s", r.TLS.CAFile)
		}
	}
	if r.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(r.TLS.CertFile, r.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
