package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
)

// GetIPFilter returns the IP filter's rules (an empty set that accepts
// everything when none were ever set).
func (s *Service) GetIPFilter(ctx context.Context) (*ipfilter.Rules, error) {
	rs, err := s.Store.GetIPFilter(ctx)
	if errors.Is(err, fault.ErrNotFound) {
		return &ipfilter.Rules{Default: ipfilter.Accept}, nil
	}
	return rs, err
}

// SetIPFilter replaces the rules if ifMatch is current ("" replaces any).
// A set that would refuse the caller's own address on the management API
// is refused unless allowSelfLockout: an operator should not cut
// themselves off by mistake.
func (s *Service) SetIPFilter(ctx context.Context, rs *ipfilter.Rules, ifMatch string, allowSelfLockout bool) (*ipfilter.Rules, error) {
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	if c := CallerOf(ctx); c != nil && !allowSelfLockout {
		host := c.Source
		if h, _, err := net.SplitHostPort(c.Source); err == nil {
			host = h
		}
		if addr, err := netip.ParseAddr(host); err == nil {
			if ok, rule := rs.Decide(addr, ipfilter.Management); !ok {
				by := "the default action"
				if rule != "" {
					by = fmt.Sprintf("rule %q", rule)
				}
				return nil, fault.New(fault.FailedPrecondition, fault.ResourceInUse,
					"these rules refuse your own address %s on the management API (%s); set allow_self_lockout to apply them anyway", addr, by)
			}
		}
	}
	summary := fmt.Sprintf("%d rules, default %s", len(rs.Rules), rs.Default)
	etag, err := mutate(ctx, s, change{action: "SetIPFilter", resource: "ip-filter", ifMatch: ifMatch, summary: summary},
		func() (string, error) { return s.Store.PutIPFilter(ctx, rs, ifMatch) })
	if err != nil {
		return nil, err
	}
	rs.Etag = etag
	return rs, nil
}
