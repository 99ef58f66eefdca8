package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/zerotouch/zerotouch/internal/bench"
	"github.com/zerotouch/zerotouch/internal/scale"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
)

// withScale adds `bench scale` to the bench command.
func withScale(bench *cobra.Command, env Env) *cobra.Command {
	bench.AddCommand(benchScaleCmd(env))
	return bench
}

const benchScaleLong = `For each size, seeds a fresh store (embedded, or an empty Redis or Redis Cluster) with that
many registered devices (half X.509 group devices with their 2-certificate chain recorded,
half TPM devices with their individual enrollments, plus as many unregistered TPM enrollments
again: as many individual enrollments as devices), written through the store's own methods,
then starts a zerotouch serve on it and measures: registrations on fresh TLS (X.509 group
devices and TPM individual enrollments), store bytes per device (the assignment log apart),
the latency of every page of the native lists and DPS queries, a hub's snapshot of one shard
with the server's peak memory, the start-up of a replica on the store, and on Redis Cluster
each master's keys and memory. Prints one markdown table per metric (docs/performance.md).

  zerotouch bench scale --sizes 10000,100000
  zerotouch bench scale --storage redis --redis-addrs 127.0.0.1:6379 --redis-flush --sizes 10000,100000`

func benchScaleCmd(env Env) *cobra.Command {
	var sizes, storage, redisAddrs, workDir string
	var o scale.Options
	var asJSON bool
	cmd := leaf("scale", "how per-device costs grow with the fleet: seeds N devices and measures at each size", func(cmd *cobra.Command, _ []string) error {
		var err error
		if o.Sizes, err = parseSizes(sizes); err != nil {
			return err
		}
		o.Storage, o.RedisAddrs, o.WorkDir = storage, splitList(redisAddrs), workDir
		return runBenchScale(cmd.Context(), env, &o, asJSON)
	})
	cmd.Long = benchScaleLong
	fs := cmd.Flags()
	fs.StringVar(&sizes, "sizes", "10000,100000,1000000", "registered devices at each point (comma-separated)")
	choiceVar(cmd, &storage, "storage", "embedded", "embedded or redis", "embedded", "redis")
	fs.StringVar(&redisAddrs, "redis-addrs", "", "Redis addresses (comma-separated; several are a Redis Cluster)")
	fs.BoolVar(&o.RedisCluster, "redis-cluster", false, "the Redis address is a Redis Cluster node (implied by several addresses)")
	fs.BoolVar(&o.RedisFlush, "redis-flush", false, "empty every Redis master before each size (FLUSHALL: deletes everything in it)")
	fs.StringVar(&o.KeyPrefix, "redis-key-prefix", "zt", "Redis key prefix of the store")
	fs.IntVar(&o.Shards, "shards", 4, "shards the devices are spread over")
	fs.IntVar(&o.SeedWorkers, "seed-workers", 64, "concurrent writers while seeding")
	fs.IntVar(&o.X509Devices, "x509-devices", 3000, "new X.509 group devices registered at each size (0: none)")
	fs.IntVar(&o.TPMDevices, "tpm-devices", 400, "new TPM devices (simulated, individual enrollments) registered at each size (0: none)")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "X.509 devices in flight")
	fs.IntVar(&o.TPMConcurrency, "tpm-concurrency", 4, "TPM devices in flight (one simulator worker process each)")
	fs.IntVar(&o.Rounds, "rounds", 1, "with more than 1: keep every size's server running and measure the registration rates in this many interleaved rounds, reporting medians (ratios between sizes from one run)")
	fs.IntVar(&o.PageSize, "page-size", 100, "items per page of the lists and queries")
	fs.IntVar(&o.MaxPages, "max-pages", 0, "pages walked per list (0: every page)")
	fs.StringVar(&workDir, "work-dir", "", "where each size's data directory is made (default: the temporary directory)")
	fs.BoolVar(&o.Keep, "keep", false, "keep each size's data directory")
	fs.BoolVar(&asJSON, "json", false, "print the points as JSON instead of tables")
	return cmd
}

func parseSizes(v string) ([]int, error) {
	var out []int
	for _, s := range splitList(v) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10_000_000 {
			return nil, fmt.Errorf("%w: --sizes %q is not a list of device counts (1-10000000)", errUsage, v)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --sizes is empty", errUsage)
	}
	return out, nil
}

func runBenchScale(ctx context.Context, env Env, o *scale.Options, asJSON bool) error {
	if o.Storage == "redis" && len(o.RedisAddrs) == 0 {
		return fmt.Errorf("%w: --storage redis needs --redis-addrs", errUsage)
	}
	if o.X509Devices < 0 || o.TPMDevices < 0 || o.TPMConcurrency > maxTPMWorkers || o.PageSize < 1 || o.PageSize > 500 || o.Shards < 1 {
		return fmt.Errorf("%w: --x509-devices and --tpm-devices >= 0, --tpm-concurrency up to %d, --page-size 1-500, --shards >= 1", errUsage, maxTPMWorkers)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Binary, o.Log = self, env.Stderr
	o.TPMFleet = func(ctx context.Context, cfg *bench.Config, caFile string, n int) (*bench.Fleet, func(), error) {
		args := []string{"bench", "--tpm-worker", "--server", cfg.GRPCAddr, "--http-server", cfg.HTTPAddr, "--ca-file", caFile, "--kex", cfg.KEX, "--tpm-ek", "ecc"}
		return tpmFleet(ctx, cfg, n, tpmdevice.ECC, args, "")
	}
	start := time.Now()
	points, err := scale.Run(ctx, o)
	if asJSON && err == nil {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(points)
	}
	scale.Print(env.Stdout, points)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "bench scale: done in %s\n", time.Since(start).Round(time.Second))
	return nil
}
