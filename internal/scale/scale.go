package scale

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/zerotouch/zerotouch/internal/bench"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
)

// Options is one `zerotouch bench scale` run.
type Options struct {
	Sizes []int
	// Storage is "embedded" or "redis".
	Storage    string
	RedisAddrs []string
	// RedisCluster: the addresses are a Redis Cluster (implied by several
	// addresses).
	RedisCluster bool
	// RedisFlush empties every master before each size; without it a
	// Redis that holds keys is refused.
	RedisFlush bool
	KeyPrefix  string
	// redisNotEmpty: the Redis holds earlier sizes' keys (interleaved
	// rounds), so it is neither checked empty nor flushed.
	redisNotEmpty bool
	Shards        int
	// SeedWorkers write concurrently (default 64).
	SeedWorkers int
	// X509Devices and TPMDevices register on fresh TLS at each size (0
	// skips); Concurrency and TPMConcurrency are in flight.
	X509Devices, TPMDevices     int
	Concurrency, TPMConcurrency int
	// Rounds > 1 keeps every size's server running and measures the
	// registration rates in that many interleaved rounds (each round
	// every size in turn), reporting each kind's median round: ratios
	// between sizes measured in one run, not skewed by the machine's load
	// drifting between sizes. On Redis each size then has its own key
	// prefix in the one Redis (emptied before the first size only).
	Rounds int
	// PageSize items per page; MaxPages bounds each list's walk (0: every
	// page).
	PageSize, MaxPages int
	// Binary is the zerotouch executable spawned (`serve`), with
	// BinaryEnv added to its environment.
	Binary    string
	BinaryEnv []string
	// WorkDir holds each size's data directory (default the system's
	// temporary directory); Keep leaves them.
	WorkDir string
	Keep    bool
	// TPMFleet enrolls n simulated TPM devices on the server cfg names and
	// returns them with a func that stops their worker processes (the
	// CLI's bench machinery); nil skips TPM registrations.
	TPMFleet func(ctx context.Context, cfg *bench.Config, caFile string, n int) (*bench.Fleet, func(), error)
	// Log receives progress lines; ServerLog the servers' standard error.
	Log, ServerLog io.Writer
	// StartTimeout bounds a server's start (default 10 minutes).
	StartTimeout time.Duration
}

func (o *Options) redisCluster() bool { return o.RedisCluster || len(o.RedisAddrs) > 1 }

func (o *Options) keyPrefix() string {
	if o.KeyPrefix == "" {
		return "zt"
	}
	return o.KeyPrefix
}

func (o *Options) serverLog() io.Writer {
	if o.ServerLog == nil {
		return io.Discard
	}
	return o.ServerLog
}

func (o *Options) startTimeout() time.Duration {
	if o.StartTimeout > 0 {
		return o.StartTimeout
	}
	return 10 * time.Minute
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// Point is every figure at one size.
type Point struct {
	Size    int
	Storage string
	Seed    SeedStats
	// Bytes is what the devices added (the store after seeding less the
	// store with only the configuration).
	Bytes Bytes
	// Startup is a server's start on the seeded store: the time until
	// /readyz answered and its memory then.
	Startup    time.Duration
	StartupMem Memory
	Pages      []PageStats
	PageSize   int
	Snapshot   SnapshotStats
	// Registrations are the load generator's reports (X.509 group devices,
	// TPM individual enrollments), on fresh TLS per device: with Rounds,
	// each kind's median round.
	Registrations []*bench.Report
	Rounds        int
	// Masters is the Redis Cluster's balance after seeding.
	Masters []Master
}

// Run measures every size in turn, each on a fresh store.
func Run(ctx context.Context, o *Options) ([]*Point, error) {
	if o.Storage != "embedded" && o.Storage != "redis" {
		return nil, fmt.Errorf("storage %q is not embedded or redis", o.Storage)
	}
	if o.Storage == "redis" && len(o.RedisAddrs) == 0 {
		return nil, errors.New("redis storage needs its addresses")
	}
	if o.Binary == "" {
		return nil, errors.New("no zerotouch binary to spawn")
	}
	o.Shards = max(1, o.Shards)
	o.PageSize = max(1, o.PageSize)
	if o.SeedWorkers <= 0 {
		o.SeedWorkers = 64
	}
	var out []*Point
	if o.Rounds <= 1 {
		for _, n := range o.Sizes {
			p, _, err := runSize(ctx, o, n, false)
			if err != nil {
				return out, fmt.Errorf("%d devices: %w", n, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	// Interleaved: every size seeded and measured (but for the rates)
	// with its server left running, then the rounds.
	var servers []*Server
	defer func() {
		for _, s := range servers {
			_ = s.Stop()
			if !o.Keep {
				_ = os.RemoveAll(s.Dir)
			}
		}
	}()
	for i, n := range o.Sizes {
		so := *o
		so.RedisFlush = o.RedisFlush && i == 0
		so.redisNotEmpty = i > 0
		if o.Storage == "redis" {
			so.KeyPrefix = fmt.Sprintf("%s%d", o.keyPrefix(), n)
		}
		p, s, err := runSize(ctx, &so, n, true)
		if err != nil {
			return out, fmt.Errorf("%d devices: %w", n, err)
		}
		out, servers = append(out, p), append(servers, s)
	}
	rounds := make([][][]*bench.Report, len(out)) // size, round, kind
	for r := range o.Rounds {
		for i, s := range servers {
			o.logf("round %d of %d, %d devices:", r+1, o.Rounds, out[i].Size)
			reps, err := measureRegistrations(ctx, o, s)
			if err != nil {
				return out, fmt.Errorf("%d devices, round %d: %w", out[i].Size, r+1, err)
			}
			rounds[i] = append(rounds[i], reps)
		}
	}
	for i, p := range out {
		p.Rounds = len(rounds[i])
		for k := range rounds[i][0] {
			var reps []*bench.Report
			for _, rr := range rounds[i] {
				reps = append(reps, rr[k])
			}
			slices.SortFunc(reps, func(a, b *bench.Report) int { return cmp.Compare(a.PerSecond, b.PerSecond) })
			p.Registrations = append(p.Registrations, reps[len(reps)/2])
		}
	}
	return out, nil
}

// runSize seeds a fresh store with n devices and measures it; with
// keep, it measures no registrations and returns the server running.
func runSize(ctx context.Context, o *Options, n int, keep bool) (_ *Point, _ *Server, rerr error) {
	dir, err := os.MkdirTemp(o.WorkDir, fmt.Sprintf("zerotouch-scale-%d-", n))
	if err != nil {
		return nil, nil, err
	}
	if !o.Keep {
		// Kept running, the directory goes when Run stops the server;
		// on an error here, at once.
		defer func() {
			if !keep || rerr != nil {
				os.RemoveAll(dir)
			}
		}()
	}
	p := &Point{Size: n, Storage: o.Storage, PageSize: o.PageSize}
	f, err := NewFixture(o.Shards)
	if err != nil {
		return nil, nil, err
	}
	o.logf("%d devices, %s store: seeding (%s)", n, o.Storage, dir)
	if err := seedStore(ctx, o, f, dir, n, p); err != nil {
		return nil, nil, err
	}
	o.logf("seeded %d registrations and %d individual enrollments in %s", p.Seed.Mix.X509+p.Seed.Mix.TPM, p.Seed.Mix.TPM+p.Seed.Mix.Enrolled, p.Seed.Duration.Round(time.Millisecond))
	if o.Storage == "redis" && o.redisCluster() {
		if p.Masters, err = RedisMasters(ctx, o); err != nil {
			return nil, nil, err
		}
	}

	// The first start makes the dev PKI and owner key; the second is the
	// replica start measured.
	s, err := Spawn(ctx, o, dir)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Stop(); err != nil {
		return nil, nil, err
	}
	if s, err = Spawn(ctx, o, dir); err != nil {
		return nil, nil, err
	}
	defer func() {
		if !keep || rerr != nil { // kept running only when handed to Run
			_ = s.Stop()
		}
	}()
	p.Startup = s.Ready
	if p.StartupMem, err = ReadMemory(s.PID); err != nil {
		return nil, nil, err
	}
	o.logf("server ready in %s, %d MiB resident", s.Ready.Round(time.Millisecond), p.StartupMem.RSS>>20)

	if p.Pages, err = MeasurePages(ctx, s, o.PageSize, o.MaxPages); err != nil {
		return nil, nil, err
	}
	o.logf("pages walked")
	if p.Snapshot, err = MeasureSnapshot(ctx, s, f, ShardID(0)); err != nil {
		return nil, nil, err
	}
	o.logf("snapshot of %s: %d identities in %s", p.Snapshot.Shard, p.Snapshot.Identities, p.Snapshot.Duration.Round(time.Millisecond))
	if keep {
		return p, s, nil
	}
	if p.Registrations, err = measureRegistrations(ctx, o, s); err != nil {
		return nil, nil, err
	}
	return p, nil, s.Stop()
}

// seedStore opens the store, writes the configuration and the devices,
// and measures what the devices added.
func seedStore(ctx context.Context, o *Options, f *Fixture, dir string, n int, p *Point) error {
	mix := MixFor(n)
	progress := func(done, total int) { o.logf("  %d of %d written", done, total) }
	switch o.Storage {
	case "embedded":
		path := filepath.Join(dir, "zerotouch.db")
		st, err := embedded.Open(path)
		if err != nil {
			return err
		}
		if err := f.SeedConfig(ctx, st); err != nil {
			st.Close()
			return err
		}
		if err := st.Close(); err != nil {
			return err
		}
		base, err := EmbeddedBytes(path)
		if err != nil {
			return err
		}
		if st, err = embedded.Open(path); err != nil {
			return err
		}
		if err := st.SetNoSync(true); err != nil {
			st.Close()
			return err
		}
		p.Seed, err = f.Seed(ctx, st, mix, o.SeedWorkers, progress)
		if err == nil {
			err = st.SetNoSync(false)
		}
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		after, err := EmbeddedBytes(path)
		if err != nil {
			return err
		}
		p.Bytes = after.Sub(base)
		p.Bytes.File = after.File
		return nil
	default:
		if !o.redisNotEmpty {
			if err := redisEmpty(ctx, o, o.RedisFlush); err != nil {
				return err
			}
		}
		st, err := redis.Open(redis.Options{Addrs: o.RedisAddrs, Cluster: o.redisCluster(), KeyPrefix: o.keyPrefix(), PoolSize: o.SeedWorkers + 8})
		if err != nil {
			return err
		}
		defer st.Close()
		if err := f.SeedConfig(ctx, st); err != nil {
			return err
		}
		base, err := RedisBytes(ctx, o, o.Shards)
		if err != nil {
			return err
		}
		if p.Seed, err = f.Seed(ctx, st, mix, o.SeedWorkers, progress); err != nil {
			return err
		}
		// Every outbox relayed into its shard's stream before measuring.
		for {
			k, err := st.SweepOutboxes(ctx, 0)
			if err != nil {
				return err
			}
			if k == 0 {
				break
			}
		}
		after, err := RedisBytes(ctx, o, o.Shards)
		if err != nil {
			return err
		}
		p.Bytes = after.Sub(base)
		return nil
	}
}

// measureRegistrations registers new X.509 group devices and TPM
// individual enrollments, each on a fresh TLS connection, with
// internal/bench's load generator.
func measureRegistrations(ctx context.Context, o *Options, s *Server) ([]*bench.Report, error) {
	cfg := bench.Config{GRPCAddr: s.GRPC, HTTPAddr: s.HTTP, RootCAs: s.RootCAs, AccessKey: s.AccessKey, Transport: "grpc", Attestation: "x509",
		Mode: "register", Concurrency: max(1, o.Concurrency), KEX: "x25519", ServerPIDs: []int{s.PID}}
	var out []*bench.Report
	if o.X509Devices > 0 {
		fleet, err := bench.Prepare(ctx, &cfg, o.X509Devices)
		if err != nil {
			return nil, err
		}
		r, err := bench.Run(ctx, &cfg, fleet)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		o.logf("X.509 registrations: %.0f/s, %d of %d", r.PerSecond, r.Succeeded, r.Attempted)
	}
	if o.TPMDevices > 0 && o.TPMFleet != nil {
		tcfg := cfg
		tcfg.Attestation, tcfg.Concurrency = "tpm", max(1, o.TPMConcurrency)
		fleet, stop, err := o.TPMFleet(ctx, &tcfg, s.CAFile, o.TPMDevices)
		if err != nil {
			return nil, err
		}
		r, err := bench.Run(ctx, &tcfg, fleet)
		stop()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		o.logf("TPM registrations: %.0f/s, %d of %d", r.PerSecond, r.Succeeded, r.Attempted)
	}
	return out, nil
}
