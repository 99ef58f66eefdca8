// Package ipfilter holds the IP filter rules (ADR 21): an ordered list of
// accept or reject rules by IPv4 or IPv6 prefix, each for the device API,
// the management API or both; the first rule that matches an address
// decides, and a default action decides for an address no rule matches.
// Every replica reloads the rules within a second of a change (Filter).
package ipfilter

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Action is what a rule does.
type Action string

// Actions.
const (
	Accept Action = "accept"
	Reject Action = "reject"
)

// Target is the API a rule guards.
type Target string

// Targets.
const (
	Device     Target = "device"
	Management Target = "management"
	All        Target = "all"
)

// MaxRules bounds a rule set.
const MaxRules = 256

// Rule is one rule.
type Rule struct {
	Name   string       `json:"name"`
	Action Action       `json:"action"`
	Prefix netip.Prefix `json:"prefix"`
	Target Target       `json:"target"`
}

// Rules is the whole, ordered set.
type Rules struct {
	Rules []Rule `json:"rules"`
	// Default decides for an address no rule matches ("" is accept).
	Default Action `json:"default"`
	// Etag changes with every write (output only).
	Etag string `json:"-"`
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// Validate checks a rule set and normalizes it (prefixes masked, an empty
// default made accept, an empty target made all).
func (rs *Rules) Validate() error {
	if len(rs.Rules) > MaxRules {
		return fault.Invalidf("%d rules, at most %d allowed", len(rs.Rules), MaxRules)
	}
	switch rs.Default {
	case "":
		rs.Default = Accept
	case Accept, Reject:
	default:
		return fault.Invalidf("default action %q is not one of accept, reject", rs.Default)
	}
	seen := map[string]bool{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if !ruleName.MatchString(r.Name) {
			return fault.Invalidf("rule %d: name %q must be 1-64 of [A-Za-z0-9._:-]", i, r.Name)
		}
		if seen[strings.ToLower(r.Name)] {
			return fault.Invalidf("rule %d: name %q is used twice", i, r.Name)
		}
		seen[strings.ToLower(r.Name)] = true
		if r.Action != Accept && r.Action != Reject {
			return fault.Invalidf("rule %q: action %q is not one of accept, reject", r.Name, r.Action)
		}
		switch r.Target {
		case "":
			r.Target = All
		case Device, Management, All:
		default:
			return fault.Invalidf("rule %q: target %q is not one of device, management, all", r.Name, r.Target)
		}
		if !r.Prefix.IsValid() {
			return fault.Invalidf("rule %q: a prefix is required", r.Name)
		}
		r.Prefix = unmapPrefix(r.Prefix)
	}
	return nil
}

// unmapPrefix makes an IPv4-mapped IPv6 prefix the IPv4 prefix it names:
// addresses are matched unmapped, so a mapped rule would never match.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// TooMany is the refusal of a rule set longer than MaxRules.
func TooMany(n int) error { return fault.Invalidf("%d rules, at most %d allowed", n, MaxRules) }

// ParsePrefix reads an IPv4 or IPv6 CIDR prefix, or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return unmapPrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fault.Invalidf("%q is not an IP address or CIDR prefix", s)
	}
	return unmapPrefix(netip.PrefixFrom(a, a.BitLen())), nil
}

func (t Target) covers(want Target) bool { return t == All || t == want }

// Decide says whether addr may use the target API, and the name of the
// rule that decided ("" for the default).
func (rs *Rules) Decide(addr netip.Addr, target Target) (bool, string) {
	if rs == nil {
		return true, ""
	}
	addr = addr.Unmap()
	for _, r := range rs.Rules {
		if r.Target.covers(target) && r.Prefix.Contains(addr) {
			return r.Action == Accept, r.Name
		}
	}
	return rs.Default != Reject, ""
}

// Refusal is the error of a refused address.
func Refusal(addr netip.Addr, rule string) error {
	by := "the default action"
	if rule != "" {
		by = fmt.Sprintf("rule %q", rule)
	}
	return fault.New(fault.PermissionDenied, fault.IPFiltered, "the address %s is refused by the IP filter (%s)", addr, by)
}
