package redis_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// TestCertIndexOfEarlierBuilds: an intermediate is indexed once per path,
// not per device (issue #17); registrations an earlier build indexed per
// certificate are still found by each of their certificates, once each
// beside the new ones, and lose the old members when next written.
func TestCertIndexOfEarlierBuilds(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	c := s.Client()
	now := time.Now()
	chains := map[string][]registry.CertRef{}
	for _, i := range []int{0, 8, 1} { // 0 and 8 under intermediate 0, 1 under intermediate 1
		reg, id := x509Device(i, now)
		if _, err := s.CreateRegistration(ctx, reg, id); err != nil {
			t.Fatal(err)
		}
		chains[reg.RegistrationID] = id.Credential.X509Chain
	}
	inter0, inter1 := chains["sensor-0000000"][1], chains["sensor-0000001"][1]
	rootIdx := "zt:ix:crt:" + inter0.Issuer
	if n := c.ZCard(ctx, rootIdx).Val(); n != 0 {
		t.Fatalf("the root's set holds %d members for intermediates", n)
	}
	if got := c.ZRange(ctx, "zt:ix:sub:"+inter0.Issuer, 0, -1).Val(); len(got) != 2 {
		t.Fatalf("the root's paths: %q, want one per intermediate", got)
	}
	// sensor-0000001 as an earlier build left it: a member per certificate
	// in ix:crt, no path (no device of this build is under intermediate 1).
	// sensor-0000000 as a write of this build that could not drop the old
	// members left it: both.
	legacy := func(ref registry.CertRef, key string) goredis.Z { return goredis.Z{Member: ref.Serial + "\x00" + key} }
	for _, k := range keysLike(t, c, "zt:ix:*") {
		if strings.HasPrefix(k, "zt:ix:shard:") || strings.HasPrefix(k, "zt:ix:grp:") {
			continue
		}
		for _, m := range c.ZRange(ctx, k, 0, -1).Val() {
			if k == "zt:ix:sub:"+inter1.Issuer && strings.HasPrefix(m, inter1.Serial+"\x00") || k == "zt:ix:lp:"+chains["sensor-0000001"][0].Issuer {
				c.ZRem(ctx, k, m)
			}
		}
	}
	for _, key := range []string{"sensor-0000000", "sensor-0000001"} {
		for _, ref := range chains[key] {
			c.ZAdd(ctx, "zt:ix:crt:"+ref.Issuer, legacy(ref, key))
		}
	}

	list := func(ref registry.CertRef, limit int) []string {
		t.Helper()
		var ids []string
		token := ""
		for {
			regs, next, err := s.ListRegistrations(ctx, registry.Filter{Cert: &ref}, token, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range regs {
				ids = append(ids, r.RegistrationID)
			}
			if next == "" {
				slices.Sort(ids)
				return ids
			}
			token = next
		}
	}
	for _, limit := range []int{1, 100} {
		if got := list(inter0, limit); !slices.Equal(got, []string{"sensor-0000000", "sensor-0000008"}) {
			t.Errorf("limit %d: by intermediate 0: %v", limit, got)
		}
		if got := list(inter1, limit); !slices.Equal(got, []string{"sensor-0000001"}) {
			t.Errorf("limit %d: by intermediate 1 (no path): %v", limit, got)
		}
		for _, key := range []string{"sensor-0000000", "sensor-0000001", "sensor-0000008"} {
			if got := list(chains[key][0], limit); !slices.Equal(got, []string{key}) {
				t.Errorf("limit %d: by the leaf of %s: %v", limit, key, got)
			}
		}
	}
	// A write of this build drops the old member; the CA entry finds it.
	reg, err := s.GetRegistration(ctx, "sensor-0000000")
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.GetIdentity(ctx, "sensor-0000000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRegistration(ctx, reg, id); err != nil {
		t.Fatal(err)
	}
	for _, ref := range chains["sensor-0000000"] {
		if err := c.ZScore(ctx, "zt:ix:crt:"+ref.Issuer, ref.Serial+"\x00sensor-0000000").Err(); err != goredis.Nil {
			t.Errorf("an old member is still there after a write: %v", err)
		}
	}
	if got := list(inter0, 100); !slices.Equal(got, []string{"sensor-0000000", "sensor-0000008"}) {
		t.Errorf("by intermediate 0 after the write: %v", got)
	}
}

// TestCertWalkReadsOnlyItsDevices: a CA key certified twice (a
// manufacturer's intermediate, and a cross-certificate by another
// enrolled CA) is two paths, so revoking the cross-certificate reads
// nothing of the devices under the manufacturer's certificate. Had the
// walk gone by key, anyone able to cross-certify a key (and register one
// device under it) could make each CRL of theirs read another fleet.
func TestCertWalkReadsOnlyItsDevices(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	s := openAt(t, []string{srv.Addr()}, false, "zt")
	c := s.Client()
	now := time.Now()
	key := hexHash("manufacturer intermediate key")
	manufacturers := registry.CertRef{Issuer: hexHash("manufacturer root"), Serial: "01"}
	cross := registry.CertRef{Issuer: hexHash("other root"), Serial: "01"}
	for i := range 201 {
		reg, id := x509Device(i, now)
		above := manufacturers
		if i == 200 {
			above = cross
		}
		id.Credential.X509Chain = []registry.CertRef{{Issuer: key, Serial: hexHash("leaf", i)[:32]}, above}
		if _, err := s.CreateRegistration(ctx, reg, id); err != nil {
			t.Fatal(err)
		}
	}
	reads := func() int64 {
		var n int64
		for _, line := range strings.Split(c.Info(ctx, "stats").Val(), "\n") {
			for _, f := range []string{"keyspace_hits:", "keyspace_misses:"} {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), f); ok {
					x, _ := strconv.ParseInt(v, 10, 64)
					n += x
				}
			}
		}
		return n
	}
	for _, limit := range []int{1, 100} {
		before := reads()
		var got []string
		token := ""
		for {
			regs, next, err := s.ListRegistrations(ctx, registry.Filter{Cert: &cross}, token, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range regs {
				got = append(got, r.RegistrationID)
			}
			if next == "" {
				break
			}
			token = next
		}
		if !slices.Equal(got, []string{"sensor-0000200"}) {
			t.Fatalf("limit %d: by the cross-certificate: %v", limit, got)
		}
		// About eight keys a page (the sources, the candidates and their
		// records); 200 or more would be the other fleet.
		if n := reads() - before; n > 30 {
			t.Errorf("limit %d: listing one device read %d keys", limit, n)
		}
	}
}
