// Package scale is `zerotouch bench scale`: it measures how Zerotouch's
// per-device costs grow with the fleet (issue 17). For each size it seeds
// a fresh store (embedded or Redis) with registered devices written
// through the store's own methods, exactly as registrations write them,
// starts a `zerotouch serve` on that store as a child process, and
// measures registration rate on fresh TLS (internal/bench's load
// generator), store bytes per device, list and query page latency, a hub's
// shard snapshot with the server's peak memory, start-up time and memory,
// and, on Redis Cluster, the balance of keys and memory over the masters.
// It prints one markdown table per metric.
//
// It is a tool, not part of the service: it imports the stores, the load
// generator and the public API, and nothing imports it but the CLI. It
// never asserts a timing; its tests check the tables come out and the
// invariants the figures rely on.
package scale
