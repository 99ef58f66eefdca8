package ipfilter_test

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

func rule(name string, a ipfilter.Action, prefix string, t ipfilter.Target) ipfilter.Rule {
	return ipfilter.Rule{Name: name, Action: a, Prefix: netip.MustParsePrefix(prefix), Target: t}
}

func TestValidate(t *testing.T) {
	many := &ipfilter.Rules{}
	for i := range ipfilter.MaxRules + 1 {
		many.Rules = append(many.Rules, rule("r"+strings.Repeat("x", i%50), ipfilter.Accept, "10.0.0.0/8", ipfilter.All))
	}
	for name, rs := range map[string]*ipfilter.Rules{
		"too many rules":  many,
		"bad default":     {Default: "deny"},
		"bad action":      {Rules: []ipfilter.Rule{rule("a", "allow", "10.0.0.0/8", "")}},
		"bad target":      {Rules: []ipfilter.Rule{rule("a", ipfilter.Accept, "10.0.0.0/8", "hubs")}},
		"bad name":        {Rules: []ipfilter.Rule{rule("a b", ipfilter.Accept, "10.0.0.0/8", "")}},
		"name used twice": {Rules: []ipfilter.Rule{rule("a", ipfilter.Accept, "10.0.0.0/8", ""), rule("A", ipfilter.Reject, "::/0", "")}},
		"no prefix":       {Rules: []ipfilter.Rule{{Name: "a", Action: ipfilter.Accept}}},
	} {
		if err := rs.Validate(); fault.ReasonOf(err) != fault.FieldInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	rs := &ipfilter.Rules{Rules: []ipfilter.Rule{{Name: "a", Action: ipfilter.Accept, Prefix: netip.MustParsePrefix("10.1.2.3/8")}}}
	if err := rs.Validate(); err != nil || rs.Default != ipfilter.Accept || rs.Rules[0].Target != ipfilter.All || rs.Rules[0].Prefix.String() != "10.0.0.0/8" {
		t.Fatalf("normalized: %+v %v", rs, err)
	}
	for _, bad := range []string{"", "10.0.0.0/33", "300.1.1.1", "::1/129", "example.com"} {
		if _, err := ipfilter.ParsePrefix(bad); fault.ReasonOf(err) != fault.FieldInvalid {
			t.Errorf("prefix %q: %v", bad, err)
		}
	}
	if p, err := ipfilter.ParsePrefix("::1"); err != nil || p.String() != "::1/128" {
		t.Fatalf("a single address: %v %v", p, err)
	}
	// IPv4-mapped IPv6 names the IPv4 prefix (addresses are matched
	// unmapped); a zoned address is no rule.
	for in, want := range map[string]string{"::ffff:203.0.113.0/120": "203.0.113.0/24", "::ffff:203.0.113.7": "203.0.113.7/32"} {
		if p, err := ipfilter.ParsePrefix(in); err != nil || p.String() != want {
			t.Errorf("%s: %v %v, want %s", in, p, err, want)
		}
	}
	if _, err := ipfilter.ParsePrefix("fe80::1%eth0"); fault.ReasonOf(err) != fault.FieldInvalid {
		t.Errorf("a zoned address: %v", err)
	}
}

// TestDecide: the first matching rule for the target decides, IPv4 and
// IPv6 (and IPv4-mapped IPv6); the default decides for the rest.
func TestDecide(t *testing.T) {
	rs := &ipfilter.Rules{Default: ipfilter.Reject, Rules: []ipfilter.Rule{
		rule("lab-host-out", ipfilter.Reject, "127.0.0.2/32", ipfilter.All),
		rule("lab", ipfilter.Accept, "127.0.0.0/8", ipfilter.All),
		rule("v6-devices", ipfilter.Accept, "::1/128", ipfilter.Device),
		rule("ops", ipfilter.Accept, "192.0.2.0/24", ipfilter.Management),
	}}
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr   string
		target ipfilter.Target
		ok     bool
		rule   string
	}{
		{"127.0.0.2", ipfilter.Device, false, "lab-host-out"},
		{"127.0.0.1", ipfilter.Device, true, "lab"},
		{"127.0.0.1", ipfilter.Management, true, "lab"},
		{"::ffff:127.0.0.1", ipfilter.Device, true, "lab"},
		{"::1", ipfilter.Device, true, "v6-devices"},
		{"::1", ipfilter.Management, false, ""},
		{"192.0.2.9", ipfilter.Management, true, "ops"},
		{"192.0.2.9", ipfilter.Device, false, ""},
		{"2001:db8::1", ipfilter.Device, false, ""},
	} {
		ok, r := rs.Decide(netip.MustParseAddr(c.addr), c.target)
		if ok != c.ok || r != c.rule {
			t.Errorf("%s %s: %v by %q, want %v by %q", c.addr, c.target, ok, r, c.ok, c.rule)
		}
	}
	var none *ipfilter.Rules
	if ok, _ := none.Decide(netip.MustParseAddr("203.0.113.1"), ipfilter.Device); !ok {
		t.Fatal("no rules refused an address")
	}
}

// TestListener: on real loopback sockets (IPv4 and ::1), a refused
// connection is closed before the server reads a byte; an accepted one is
// handed on; a rule change reaches the listener on the next reload.
func TestListener(t *testing.T) {
	st, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var refused []string
	f := &ipfilter.Filter{Store: st, Refused: func(a netip.Addr, transport, _ string, err error) {
		refused = append(refused, a.String()+" "+transport+" "+string(fault.ReasonOf(err)))
	}}
	if err := f.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", network)
		if err != nil {
			t.Fatalf("listen on %s: %v", network, err)
		}
		fl := f.Listener(l, "test", ipfilter.Device, ipfilter.Management)
		accepted := make(chan net.Conn, 4)
		go func() {
			for {
				c, err := fl.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}
		}()
		dial := func() bool {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case s := <-accepted:
				s.Close()
				return true
			case <-time.After(500 * time.Millisecond):
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(make([]byte, 1))
			return err == nil // closed by the server: EOF
		}
		if !dial() {
			t.Fatalf("%s: accepted by default", network)
		}
		host := strings.Trim(network[:strings.LastIndex(network, ":")], "[]")
		self := netip.MustParseAddr(host)
		if _, err := st.PutIPFilter(t.Context(), &ipfilter.Rules{Default: ipfilter.Accept, Rules: []ipfilter.Rule{
			{Name: "out", Action: ipfilter.Reject, Prefix: netip.PrefixFrom(self, self.BitLen()), Target: ipfilter.All}}}, ""); err != nil {
			t.Fatal(err)
		}
		if err := f.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		if dial() {
			t.Fatalf("%s: a refused address was accepted", network)
		}
		// Refused for devices only: the listener serves both APIs, so the
		// connection is accepted (its requests are checked per API).
		if _, err := st.PutIPFilter(t.Context(), &ipfilter.Rules{Default: ipfilter.Accept, Rules: []ipfilter.Rule{
			{Name: "dev-out", Action: ipfilter.Reject, Prefix: netip.MustParsePrefix("::/0"), Target: ipfilter.Device},
			{Name: "dev-out4", Action: ipfilter.Reject, Prefix: netip.MustParsePrefix("0.0.0.0/0"), Target: ipfilter.Device}}}, ""); err != nil {
			t.Fatal(err)
		}
		if err := f.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !dial() {
			t.Fatalf("%s: a device-only refusal cut a shared listener's connection", network)
		}
		if err := f.Check(l.Addr().String(), ipfilter.Device, "test", "req-1"); fault.ReasonOf(err) != fault.IPFiltered {
			t.Fatalf("%s: a device request: %v", network, err)
		}
		if err := f.Check(l.Addr().String(), ipfilter.Management, "test", "req-2"); err != nil {
			t.Fatalf("%s: a management request: %v", network, err)
		}
		if _, err := st.PutIPFilter(t.Context(), &ipfilter.Rules{Default: ipfilter.Accept}, ""); err != nil {
			t.Fatal(err)
		}
		f.Load(t.Context())
		l.Close()
	}
	if len(refused) < 2 || !strings.HasSuffix(refused[0], " test IP_FILTERED") {
		t.Fatalf("refusals reported: %v", refused)
	}
}

// TestClientAddr: a proxy's client header is believed only from a trusted
// proxy, and only its last address (the one the proxy added).
func TestClientAddr(t *testing.T) {
	f := &ipfilter.Filter{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32"), netip.MustParsePrefix("::1/128")},
		ClientIPHeader: "X-Forwarded-For"}
	hdr := func(lines ...string) func(string) []string {
		return func(k string) []string {
			if k == "X-Forwarded-For" {
				return lines
			}
			return nil
		}
	}
	// A client's own line before the proxy's is not believed.
	if got := f.ClientAddr("127.0.0.4:5000", hdr("127.0.0.9", "203.0.113.7")); got != "203.0.113.7" {
		t.Errorf("two lines: %q", got)
	}
	if got := f.ClientAddr("127.0.0.4:5000", hdr()); got != "127.0.0.4:5000" {
		t.Errorf("no header: %q", got)
	}
	for _, c := range []struct{ peer, header, want string }{
		{"127.0.0.4:5000", "203.0.113.7", "203.0.113.7"},
		{"127.0.0.4:5000", "10.9.9.9, 203.0.113.7", "203.0.113.7"}, // the client may forge the first
		{"[::1]:5000", "2001:db8::5", "2001:db8::5"},
		{"127.0.0.4:5000", "not-an-ip", "127.0.0.4:5000"},
		{"127.0.0.5:5000", "203.0.113.7", "127.0.0.5:5000"}, // not a trusted proxy
		{"127.0.0.4:5000", "", "127.0.0.4:5000"},
	} {
		if got := f.ClientAddr(c.peer, hdr(c.header)); got != c.want {
			t.Errorf("%s with %q: %q, want %q", c.peer, c.header, got, c.want)
		}
	}
	var none *ipfilter.Filter
	if got := none.ClientAddr("127.0.0.4:1", hdr("203.0.113.7")); got != "127.0.0.4:1" {
		t.Fatalf("no filter: %q", got)
	}
}
