package redis_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
)

// TestCertWalkReadsOnlyItsDevices: a CA key certified twice (a
// manufacturer's intermediate, and a cross-certificate by another
// enrolled CA): revoking the cross-certificate reads nothing of the
// devices under the manufacturer's certificate. An index that went by
// key would let anyone able to cross-certify a key (and register one
// device under it) make each CRL of theirs read another fleet.
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
