package scale

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
)

// Bytes is what the store holds, in bytes, split by kind. Registrations
// covers the registration records, identities and their indexes;
// Enrollments the individual enrollments and their indexes; Log the
// assignment logs (LogEvents events kept).
type Bytes struct {
	Total, Registrations, Enrollments, Log, Other int64
	LogEvents                                     int64
	// File is the embedded store's file size (it grows in steps and keeps
	// free pages).
	File int64
}

// Sub is b - base, field by field.
func (b Bytes) Sub(base Bytes) Bytes {
	return Bytes{Total: b.Total - base.Total, Registrations: b.Registrations - base.Registrations, Enrollments: b.Enrollments - base.Enrollments,
		Log: b.Log - base.Log, Other: b.Other - base.Other, LogEvents: b.LogEvents - base.LogEvents, File: b.File - base.File}
}

// The embedded store's buckets by kind (internal/storage/embedded).
var (
	regBuckets = map[string]bool{"registration": true, "registration_group": true, "registration_shard": true, "registration_cert": true,
		"identity": true, "identity_registration": true, "shard_count": true}
	enrBuckets = map[string]bool{"individual": true, "individual_thumb": true, "individual_device": true}
	logBucket  = "assignment_log"
)

// EmbeddedBytes reads a closed embedded store file's bytes in use per
// bucket (as embedded.Store.BytesInUse counts them) and its size.
func EmbeddedBytes(path string) (Bytes, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return Bytes{}, err
	}
	defer db.Close()
	var b Bytes
	err = db.View(func(tx *bolt.Tx) error {
		b.File = tx.Size()
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			st := bk.Stats()
			n := int64(st.LeafInuse + st.BranchInuse)
			if bk.RootPage() == 0 {
				n = int64(st.InlineBucketInuse)
			}
			b.Total += n
			switch k := string(name); {
			case regBuckets[k]:
				b.Registrations += n
			case enrBuckets[k]:
				b.Enrollments += n
			case k == logBucket:
				b.Log += n
				// Nested buckets, one per shard: count their events.
				_ = bk.ForEach(func(k, v []byte) error {
					if v == nil {
						if sb := bk.Bucket(k); sb != nil {
							b.LogEvents += int64(sb.Stats().KeyN)
						}
					}
					return nil
				})
			default:
				b.Other += n
			}
			return nil
		})
	})
	return b, err
}

// redisClient is a client of every master (a cluster client when the
// store is a Cluster).
func redisClient(o *Options) goredis.UniversalClient {
	return goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: o.RedisAddrs, IsClusterMode: o.redisCluster()})
}

// forEachMaster runs fn on each master (the one server when standalone).
func forEachMaster(ctx context.Context, c goredis.UniversalClient, fn func(ctx context.Context, m *goredis.Client) error) error {
	if cc, ok := c.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, fn)
	}
	if m, ok := c.(*goredis.Client); ok {
		return fn(ctx, m)
	}
	return fmt.Errorf("unexpected Redis client %T", c)
}

// infoField reads one numeric field of an INFO section.
func infoField(ctx context.Context, m *goredis.Client, section, field string) (int64, error) {
	info, err := m.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO %s", field, section)
}

// RedisBytes is used_memory summed over the masters, and the shards'
// streams' share (MEMORY USAGE of each log stream, XLEN for its events).
func RedisBytes(ctx context.Context, o *Options, shards int) (Bytes, error) {
	c := redisClient(o)
	defer c.Close()
	var b Bytes
	var total atomic.Int64
	err := forEachMaster(ctx, c, func(ctx context.Context, m *goredis.Client) error {
		n, err := infoField(ctx, m, "memory", "used_memory")
		if err == nil {
			total.Add(n)
		}
		return err
	})
	if err != nil {
		return b, err
	}
	b.Total = total.Load()
	for i := range shards {
		key := "{" + o.keyPrefix() + ":log:" + ShardID(i) + "}"
		if n, err := c.MemoryUsage(ctx, key, 0).Result(); err == nil {
			b.Log += n
		} else if err != goredis.Nil {
			return b, err
		}
		if n, err := c.XLen(ctx, key).Result(); err == nil {
			b.LogEvents += n
		}
	}
	b.Other = b.Total - b.Log
	return b, nil
}

// Master is one Redis master's share.
type Master struct {
	Addr       string
	Keys       int64
	UsedMemory int64
}

// RedisMasters reads each master's DBSIZE and used_memory.
func RedisMasters(ctx context.Context, o *Options) ([]Master, error) {
	c := redisClient(o)
	defer c.Close()
	ch := make(chan Master, 64)
	err := forEachMaster(ctx, c, func(ctx context.Context, m *goredis.Client) error {
		keys, err := m.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		mem, err := infoField(ctx, m, "memory", "used_memory")
		if err != nil {
			return err
		}
		ch <- Master{Addr: m.Options().Addr, Keys: keys, UsedMemory: mem}
		return nil
	})
	close(ch)
	var out []Master
	for m := range ch {
		out = append(out, m)
	}
	return out, err
}

// redisEmpty flushes every master when flush, or fails when a master
// holds keys: store bytes are measured on an empty Redis.
func redisEmpty(ctx context.Context, o *Options, flush bool) error {
	c := redisClient(o)
	defer c.Close()
	return forEachMaster(ctx, c, func(ctx context.Context, m *goredis.Client) error {
		if flush {
			return m.FlushAll(ctx).Err()
		}
		n, err := m.DBSize(ctx).Result()
		if err == nil && n > 0 {
			err = fmt.Errorf("redis %s holds %d keys: bench scale measures an empty Redis (--redis-flush empties it first, deleting everything)", m.Options().Addr, n)
		}
		return err
	})
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
