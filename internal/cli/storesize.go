package cli

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

// fileSize measures the embedded store by its file's size, which grows in
// steps and keeps freed pages.
func fileSize(path string) func(context.Context) (int64, error) {
	return func(context.Context) (int64, error) {
		st, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
}

// scrapedStoreBytes measures the embedded store by the bytes its records
// take (zerotouch_store_bytes, from the server's metrics at url), which,
// unlike the file's size, move with every write.
func scrapedStoreBytes(url string) func(context.Context) (int64, error) {
	client := &http.Client{Timeout: time.Minute}
	return func(ctx context.Context) (int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: %s", url, res.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(res.Body)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", url, err)
		}
		f := fams["zerotouch_store_bytes"]
		if f == nil || len(f.GetMetric()) != 1 {
			return 0, fmt.Errorf("%s reports no zerotouch_store_bytes (only the embedded store does)", url)
		}
		return int64(f.GetMetric()[0].GetGauge().GetValue()), nil
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
