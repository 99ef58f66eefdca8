package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
)

// FleetSource is what the fleet gauges read of the store when scraped:
// the shards (with their device counts, which both stores keep as
// counters), the head of each shard's assignment log and what its cluster
// acknowledged, and the CAs and enrollment groups (configuration records
// an operator creates: tens to thousands, never one per device).
type FleetSource interface {
	ListShards(ctx context.Context, token string, limit int) ([]*allocation.Shard, string, error)
	LogHeads(ctx context.Context, shards []string) ([]uint64, error)
	AckedEvent(ctx context.Context, cluster, shard string) (uint64, error)
	ListCAs(ctx context.Context, p enrollment.Page) ([]*enrollment.CA, string, error)
	ListGroups(ctx context.Context, p enrollment.Page) ([]*enrollment.Group, string, error)
}

// Fleet is a collector that reads the fleet's gauges at scrape time. A
// scrape costs a page read per 500 shards, CAs and groups, one read of
// every shard's log head, and one read per shard that belongs to a hub
// cluster; nothing proportional to the number of devices, except
// StoreBytes (see embedded.Store.BytesInUse).
type Fleet struct {
	// Store is read at every scrape.
	Store FleetSource
	// HubStreams, if set, returns the assignment streams open on this
	// replica, per hub cluster.
	HubStreams func() map[string]int
	// StoreBytes, if set, returns the bytes the store holds
	// (zerotouch_store_bytes; the embedded store only).
	StoreBytes func(ctx context.Context) (int64, error)
	// Timeout bounds the reads of one scrape (10 s when zero).
	Timeout time.Duration
}

// fleetPage is how many shards, CAs or groups one read returns.
const fleetPage = 500

var (
	descHubStreams = prometheus.NewDesc("zerotouch_hub_streams",
		"Assignment streams (WatchAssignments) open on this replica, by hub cluster.", []string{"cluster"}, nil)
	descHubLag = prometheus.NewDesc("zerotouch_hub_stream_lag_events",
		"Events of a shard's assignment log that its hub cluster has not acknowledged (head minus the acknowledged cursor), by cluster and shard.",
		[]string{"cluster", "shard"}, nil)
	descShardDevices = prometheus.NewDesc("zerotouch_shard_devices",
		"Devices registered on a shard.", []string{"shard"}, nil)
	descCAs = prometheus.NewDesc("zerotouch_ca_certificates",
		"CA certificates uploaded, and how many of them are verified by proof of possession.", []string{"verified"}, nil)
	descGroups = prometheus.NewDesc("zerotouch_enrollment_groups",
		"Enrollment groups, by whether they are enabled.", []string{"enabled"}, nil)
	descStoreBytes = prometheus.NewDesc("zerotouch_store_bytes",
		"Bytes of records in the embedded store (bbolt pages in use: leaf and branch bytes of every bucket), not the file's size.", nil, nil)
)

// Describe implements prometheus.Collector.
func (f *Fleet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHubLag, descShardDevices, descCAs, descGroups} {
		ch <- d
	}
	if f.HubStreams != nil {
		ch <- descHubStreams
	}
	if f.StoreBytes != nil {
		ch <- descStoreBytes
	}
}

// Collect implements prometheus.Collector. A read that fails makes its
// metrics invalid (the scrape serves the rest and logs the error).
func (f *Fleet) Collect(ch chan<- prometheus.Metric) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Every cluster that owns a shard has a stream count, 0 when none is
	// open here.
	var streams map[string]int
	if f.HubStreams != nil {
		streams = f.HubStreams()
	}
	if streams == nil {
		streams = map[string]int{}
	}
	if err := f.shards(ctx, ch, streams); err != nil {
		ch <- prometheus.NewInvalidMetric(descHubLag, fmt.Errorf("shards: %w", err))
	}
	if f.HubStreams != nil {
		for cluster, n := range streams {
			ch <- prometheus.MustNewConstMetric(descHubStreams, prometheus.GaugeValue, float64(n), cluster)
		}
	}
	if err := f.configuration(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(descCAs, fmt.Errorf("CAs and groups: %w", err))
	}
	if f.StoreBytes != nil {
		if n, err := f.StoreBytes(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(descStoreBytes, err)
		} else {
			ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(n))
		}
	}
}

// shards reports each shard's devices and, for a shard of a hub cluster,
// how far the cluster's acknowledgements trail its log; it adds the
// clusters that own shards to streams.
func (f *Fleet) shards(ctx context.Context, ch chan<- prometheus.Metric, streams map[string]int) error {
	var all []*allocation.Shard
	for token := ""; ; {
		page, next, err := f.Store.ListShards(ctx, token, fleetPage)
		if err != nil {
			return err
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		token = next
	}
	var owned []*allocation.Shard
	for _, sh := range all {
		ch <- prometheus.MustNewConstMetric(descShardDevices, prometheus.GaugeValue, float64(sh.Devices), sh.ID)
		if sh.Cluster != "" {
			owned = append(owned, sh)
			streams[sh.Cluster] += 0
		}
	}
	if len(owned) == 0 {
		return nil
	}
	names := make([]string, len(owned))
	for i, sh := range owned {
		names[i] = sh.ID
	}
	heads, err := f.Store.LogHeads(ctx, names)
	if err != nil {
		return err
	}
	for i, sh := range owned {
		acked, err := f.Store.AckedEvent(ctx, sh.Cluster, sh.ID)
		if err != nil {
			return err
		}
		lag := uint64(0)
		if heads[i] > acked {
			lag = heads[i] - acked
		}
		ch <- prometheus.MustNewConstMetric(descHubLag, prometheus.GaugeValue, float64(lag), sh.Cluster, sh.ID)
	}
	return nil
}

// configuration counts the CAs and enrollment groups.
func (f *Fleet) configuration(ctx context.Context, ch chan<- prometheus.Metric) error {
	var verified, unverified int
	err := pages(ctx, f.Store.ListCAs, func(ca *enrollment.CA) {
		if ca.Verified {
			verified++
		} else {
			unverified++
		}
	})
	if err != nil {
		return err
	}
	var enabled, disabled int
	err = pages(ctx, f.Store.ListGroups, func(g *enrollment.Group) {
		if g.Disabled {
			disabled++
		} else {
			enabled++
		}
	})
	if err != nil {
		return err
	}
	ch <- prometheus.MustNewConstMetric(descCAs, prometheus.GaugeValue, float64(verified), "true")
	ch <- prometheus.MustNewConstMetric(descCAs, prometheus.GaugeValue, float64(unverified), "false")
	ch <- prometheus.MustNewConstMetric(descGroups, prometheus.GaugeValue, float64(enabled), "true")
	ch <- prometheus.MustNewConstMetric(descGroups, prometheus.GaugeValue, float64(disabled), "false")
	return nil
}

// pages calls fn for every item a paged list returns.
func pages[T any](ctx context.Context, list func(context.Context, enrollment.Page) ([]T, string, error), fn func(T)) error {
	for token := ""; ; {
		items, next, err := list(ctx, enrollment.Page{Token: token, Limit: fleetPage})
		if err != nil {
			return err
		}
		for _, it := range items {
			fn(it)
		}
		if next == "" {
			return nil
		}
		token = next
	}
}
