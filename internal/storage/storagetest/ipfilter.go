package storagetest

import (
	"net/netip"
	"testing"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
)

// testIPFilter: the rule set is one record, replaced whole under an etag.
func testIPFilter(t *testing.T, s Store) {
	ctx := t.Context()
	_, err := s.GetIPFilter(ctx)
	wantKind(t, err, fault.NotFound, "GetIPFilter(never set)")
	rs := &ipfilter.Rules{Default: ipfilter.Reject, Rules: []ipfilter.Rule{
		{Name: "lab", Action: ipfilter.Accept, Prefix: netip.MustParsePrefix("192.0.2.0/24"), Target: ipfilter.All},
		{Name: "v6", Action: ipfilter.Reject, Prefix: netip.MustParsePrefix("2001:db8::/32"), Target: ipfilter.Device}}}
	etag, err := s.PutIPFilter(ctx, rs, "")
	must(t, err, "PutIPFilter")
	got, err := s.GetIPFilter(ctx)
	must(t, err, "GetIPFilter")
	if got.Etag != etag || got.Default != ipfilter.Reject || len(got.Rules) != 2 || got.Rules[1].Prefix != rs.Rules[1].Prefix || got.Rules[1].Target != ipfilter.Device {
		t.Fatalf("GetIPFilter = %+v (etag %q)", got, etag)
	}
	_, err = s.PutIPFilter(ctx, &ipfilter.Rules{Default: ipfilter.Accept}, "stale")
	wantKind(t, err, fault.Conflict, "PutIPFilter(stale etag)")
	if got, _ := s.GetIPFilter(ctx); got.Default != ipfilter.Reject {
		t.Fatal("a refused put changed the rules")
	}
	etag2, err := s.PutIPFilter(ctx, &ipfilter.Rules{Default: ipfilter.Accept}, etag)
	must(t, err, "PutIPFilter(current etag)")
	if got, _ := s.GetIPFilter(ctx); got.Etag != etag2 || len(got.Rules) != 0 || etag2 == etag {
		t.Fatalf("after replace: %+v", got)
	}
}
