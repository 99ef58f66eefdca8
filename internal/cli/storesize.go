package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// fileSize measures the embedded store: its file's size.
func fileSize(path string) func(context.Context) (int64, error) {
	return func(context.Context) (int64, error) {
		st, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
}

// redisMemory measures a Redis deployment: used_memory summed over its
// masters (one address is a standalone server, several a cluster's nodes,
// as the server's own storage configuration reads them). It counts the
// whole instance, so other tenants of the same Redis add noise.
func redisMemory(addrs []string) (func(context.Context) (int64, error), func()) {
	if len(addrs) == 1 {
		c := redis.NewClient(&redis.Options{Addr: addrs[0]})
		return func(ctx context.Context) (int64, error) { return usedMemory(ctx, c) }, func() { c.Close() }
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	return func(ctx context.Context) (int64, error) {
		var total atomic.Int64 // ForEachMaster runs concurrently
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := usedMemory(ctx, m)
			total.Add(n)
			return err
		})
		return total.Load(), err
	}, func() { c.Close() }
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO memory has no used_memory")
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
