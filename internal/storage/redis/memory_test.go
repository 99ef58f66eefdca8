package redis_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

func usedMemory(t *testing.T, s *redis.Store) int64 {
	t.Helper()
	info, err := s.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}

// hexHash is a deterministic 64-hex identifier (a thumbprint or an issuer
// ID, revocation.IssuerID's size).
func hexHash(parts ...any) string {
	sum := sha256.Sum256(fmt.Append(nil, parts...))
	return hex.EncodeToString(sum[:])
}

// x509Device is a realistic X.509 group device: a leaf under one of 8
// intermediates under the group's root CA, so its chain names two
// certificates (16-byte serials), no issued certificate, no twin.
func x509Device(i int, now time.Time) (*registry.Registration, *registry.Identity) {
	id := fmt.Sprintf("sensor-%07d", i)
	thumb := hexHash("leaf", i)
	reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: fmt.Sprintf("shard-%d", i%4), AssignedHub: fmt.Sprintf("hub-%d.example.com", i%4),
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.X509, GroupID: "acme-line-1",
		CredentialThumbprint: thumb, Created: now, Updated: now}
	chain := []registry.CertRef{
		{Issuer: hexHash("intermediate", i%8), Serial: hexHash("serial", i)[:32]},
		{Issuer: hexHash("root"), Serial: hexHash("intermediate-serial", i%8)[:32]},
	}
	ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: reg.Shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.X509, X509Thumbprint: thumb, CAThumbprint: hexHash("root-ca"), X509Chain: chain},
		Version:    registry.NextVersion(0, now), Created: now, Updated: now}
	return reg, ident
}

// tpmDevice is a TPM individual enrollment's device: EK hash and an ECC
// P-256 bound key (an 88-byte TPM2B_PUBLIC; an RSA-2048 one is ~280).
func tpmDevice(i int, now time.Time) (*registry.Registration, *registry.Identity) {
	id := fmt.Sprintf("tpm-%07d", i)
	ek := hexHash("ek", i)
	bound := make([]byte, 88)
	copy(bound, hexHash("bound", i))
	reg := &registry.Registration{RegistrationID: id, DeviceID: id, Shard: fmt.Sprintf("shard-%d", i%4), AssignedHub: fmt.Sprintf("hub-%d.example.com", i%4),
		Status: registry.Assigned, Substatus: registry.InitialAssignment, AttestationType: registry.TPM, Individual: true,
		CredentialThumbprint: ek, Created: now, Updated: now}
	ident := &registry.Identity{DeviceID: id, RegistrationID: id, Shard: reg.Shard, Status: registry.IdentityEnabled,
		Credential: registry.Credential{Type: registry.TPM, TPMEKHash: ek, TPMBoundKey: bound},
		Version:    registry.NextVersion(0, now), Created: now, Updated: now}
	return reg, ident
}

// memoryUsage sums MEMORY USAGE (exact: SAMPLES 0) of the keys.
func memoryUsage(t *testing.T, c goredis.UniversalClient, keys ...string) int64 {
	t.Helper()
	var n int64
	for _, k := range keys {
		v, err := c.Do(context.Background(), "MEMORY", "USAGE", k, "SAMPLES", "0").Int64()
		if err != nil && err != goredis.Nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}

// keysLike lists the keys matching a pattern.
func keysLike(t *testing.T, c goredis.UniversalClient, pattern string) []string {
	t.Helper()
	keys, err := c.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// split is where a kind of device's bytes go: its record, its device-ID
// claim, its index entries and its log event (MEMORY USAGE, key and
// allocator overhead included), and the record's and the event's own
// encoded size.
type split struct {
	record, claim, indexes, log, recordLen, eventLen float64
}

func (sp split) String() string {
	return fmt.Sprintf("record %.0f (value %.0f B), claim %.0f, indexes %.0f, log %.0f (event %.0f B)",
		sp.record, sp.recordLen, sp.claim, sp.indexes, sp.log, sp.eventLen)
}

// measureSplit samples every step-th of the n devices for the per-key
// figures and divides the index and log keys' usage by n.
func measureSplit(t *testing.T, c goredis.UniversalClient, ids func(i int) string, n int, indexKeys []string) split {
	t.Helper()
	ctx := context.Background()
	var sp split
	step := max(1, n/500)
	samples := 0
	for i := 0; i < n; i += step {
		id := ids(i)
		key := enrollment.Key(id)
		sp.record += float64(memoryUsage(t, c, "{zt:r:"+key+"}"))
		sp.claim += float64(memoryUsage(t, c, "{zt:r:"+key+"}:d:"+id, "{zt:d:"+id+"}"))
		l, err := c.StrLen(ctx, "{zt:r:"+key+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		sp.recordLen += float64(l)
		samples++
	}
	sp.record /= float64(samples)
	sp.claim /= float64(samples)
	sp.recordLen /= float64(samples)
	sp.indexes = float64(memoryUsage(t, c, indexKeys...)) / float64(n)
	return sp
}

// logUsage is the bytes the shards' logs use and the mean encoded event.
func logUsage(t *testing.T, c goredis.UniversalClient) (bytes, events int64, eventLen float64) {
	t.Helper()
	ctx := context.Background()
	for _, k := range keysLike(t, c, "{zt:log:*") {
		bytes += memoryUsage(t, c, k)
		if strings.HasSuffix(k, ":seq") {
			continue
		}
		n, err := c.XLen(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		events += n
		msgs, err := c.XRangeN(ctx, k, "-", "+", 100).Result()
		if err != nil {
			t.Fatal(err)
		}
		var sum int
		for _, m := range msgs {
			v, _ := m.Values["e"].(string)
			sum += len(v)
		}
		if len(msgs) > 0 {
			eventLen = float64(sum) / float64(len(msgs))
		}
	}
	return bytes, events, eventLen
}

// TestMemoryPerDevice measures Redis memory per registered device,
// everything included: the device record (registration and identity), the
// device-ID claim (none for a device at home, ADR 7), the shard, group and
// certificate index entries and the
// device's event in its shard's assignment log. It seeds X.509 group
// devices (a two-certificate chain, no issued certificate), then TPM
// individual devices, then individual enrollments, and logs the total
// (INFO used_memory before and after) and the split (MEMORY USAGE). It
// guards against regressions (under 1,400 B per X.509 device) and logs the
// figures docs/performance.md records; set ZT_MEMORY_DEVICES=100000 (or
// 1000000, about three minutes, for the log at its retention) for the full
// run.
func TestMemoryPerDevice(t *testing.T) {
	n := 10000
	if v := os.Getenv("ZT_MEMORY_DEVICES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	srv := redistest.Start(t, redistest.Options{})
	s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}, PoolSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.Client()
	ctx := context.Background()
	now := time.Now()
	before := usedMemory(t, s)
	run(t, n, func(i int) error {
		reg, ident := x509Device(i, now)
		_, err := s.CreateRegistration(ctx, reg, ident)
		return err
	})
	afterX509 := usedMemory(t, s)
	logX509, eventsX509, eventLenX509 := logUsage(t, c)
	var want int64 // the 4 shards' logs keep at most the retention each
	for sh := range 4 {
		want += min(int64((n-sh+3)/4), registry.DefaultEventRetention)
	}
	if eventsX509 != want {
		t.Fatalf("%d events in the logs, want %d", eventsX509, want)
	}
	x509Split := measureSplit(t, c, func(i int) string { return fmt.Sprintf("sensor-%07d", i) }, n,
		slices.Concat(keysLike(t, c, "zt:ix:shard:*"), keysLike(t, c, "zt:ix:grp:*"), keysLike(t, c, "zt:ix:crt:*")))
	x509Split.log, x509Split.eventLen = float64(logX509)/float64(n), eventLenX509

	m := max(1, n/10)
	shardIdx := memoryUsage(t, c, keysLike(t, c, "zt:ix:shard:*")...)
	run(t, m, func(i int) error {
		reg, ident := tpmDevice(i, now)
		_, err := s.CreateRegistration(ctx, reg, ident)
		return err
	})
	afterTPM := usedMemory(t, s)
	logAll, _, _ := logUsage(t, c)
	tpmSplit := measureSplit(t, c, func(i int) string { return fmt.Sprintf("tpm-%07d", i) }, m, nil)
	tpmSplit.indexes = float64(memoryUsage(t, c, keysLike(t, c, "zt:ix:shard:*")...)-shardIdx) / float64(m)
	tpmSplit.log = float64(logAll-logX509) / float64(m)
	if msgs, err := c.XRevRangeN(ctx, "{zt:log:shard-0}", "+", "-", 1).Result(); err == nil && len(msgs) == 1 {
		v, _ := msgs[0].Values["e"].(string)
		tpmSplit.eventLen = float64(len(v))
	}

	run(t, n, func(i int) error {
		_, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: fmt.Sprintf("device-%07d", i),
			Thumbprint: enrollment.Thumbprint(fmt.Appendf(nil, "leaf-%d", i)), Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed},
			Meta: enrollment.Meta{Created: now, Updated: now}})
		return err
	})
	afterInds := usedMemory(t, s)
	perX509 := float64(afterX509-before) / float64(n)
	perTPM := float64(afterTPM-afterX509) / float64(m)
	perEnrollment := float64(afterInds-afterTPM) / float64(n)
	t.Logf("Redis used_memory per X.509 group device: %.0f bytes over %d (%s)", perX509, n, x509Split)
	t.Logf("Redis used_memory per TPM individual device: %.0f bytes over %d (%s)", perTPM, m, tpmSplit)
	t.Logf("Redis used_memory per individual enrollment: %.0f bytes over %d", perEnrollment, n)
	t.Logf("log at retention: at most %d events per shard, so %.0f bytes per shard at most; past %d devices per shard the log's share per device falls as retention/devices",
		registry.DefaultEventRetention, float64(logX509)/float64(eventsX509)*registry.DefaultEventRetention, registry.DefaultEventRetention)
	// A regression guard at any size (issue 17 aims at 1 KiB with the log
	// at retention: 998 B at 1,000,000 devices on 4 shards; 1,097 B at
	// 100,000 and 1,270 B at 10,000, where the log keeps every event and
	// the keyspace's tables weigh more; docs/performance.md).
	if perX509 > 1400 {
		t.Errorf("%.0f bytes per X.509 device, more than the 1,400 B guard", perX509)
	}
}

func run(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	var first error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}
