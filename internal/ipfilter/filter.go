package ipfilter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Store keeps the rule set: one record, replaced whole.
type Store interface {
	// GetIPFilter returns the rules, or NotFound when none were ever set.
	GetIPFilter(ctx context.Context) (*Rules, error)
	// PutIPFilter replaces the rules if ifMatch is the current etag (""
	// when none were set, or to replace whatever is there) and returns
	// the new etag.
	PutIPFilter(ctx context.Context, rs *Rules, ifMatch string) (string, error)
}

// Filter is the rules in effect on this replica, reloaded from the store
// every RefreshEvery.
type Filter struct {
	Store Store
	Log   *slog.Logger
	// Refused, if set, is told of every refused address (the
	// failed-attempt log); it must not block.
	Refused func(addr netip.Addr, transport, requestID string, err error)
	// TrustedProxies are the only peers whose ClientIPHeader is believed
	// (the last address in it is the client); their connections are not
	// filtered, their requests are, by the client's address.
	TrustedProxies []netip.Prefix
	ClientIPHeader string

	rules atomic.Pointer[Rules]
}

func (f *Filter) trusted(addr netip.Addr) bool {
	for _, p := range f.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientAddr is the address a request's rules apply to: the peer, or, for
// a trusted proxy, the last address of the last line of its
// ClientIPHeader: the one the proxy added (values reads every line of a
// request header or metadata key; a client can send lines of its own
// before it).
func (f *Filter) ClientAddr(peer string, values func(string) []string) string {
	if f == nil || f.ClientIPHeader == "" || len(f.TrustedProxies) == 0 {
		return peer
	}
	addr, ok := peerAddr(peer)
	if !ok || !f.trusted(addr) {
		return peer
	}
	lines := values(f.ClientIPHeader)
	if len(lines) == 0 {
		return peer
	}
	v := lines[len(lines)-1]
	last := strings.TrimSpace(v[strings.LastIndex(v, ",")+1:])
	if a, err := netip.ParseAddr(last); err == nil {
		return a.Unmap().String()
	}
	return peer
}

// RefreshEvery is how often a replica reloads the rules.
const RefreshEvery = time.Second

// Load reads the rules once.
func (f *Filter) Load(ctx context.Context) error {
	rs, err := f.Store.GetIPFilter(ctx)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		rs = &Rules{Default: Accept}
	case err != nil:
		return err
	}
	if cur := f.rules.Load(); cur == nil || cur.Etag != rs.Etag {
		f.rules.Store(rs)
	}
	return nil
}

// Run reloads the rules every RefreshEvery until ctx is done. A failed
// reload keeps the rules in effect.
func (f *Filter) Run(ctx context.Context) {
	t := time.NewTicker(RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f.Load(ctx); err != nil && ctx.Err() == nil && f.Log != nil {
				f.Log.Warn("could not reload the IP filter; the rules in effect stay", "err", err)
			}
		}
	}
}

// Check refuses addr (a peer address, "ip:port" or "ip") for the target
// API with reason IP_FILTERED.
func (f *Filter) Check(peer string, target Target, transport, requestID string) error {
	if f == nil {
		return nil
	}
	addr, ok := peerAddr(peer)
	if !ok {
		return nil // not an IP peer (a pipe in tests)
	}
	if ok, rule := f.rules.Load().Decide(addr, target); !ok {
		err := Refusal(addr, rule)
		if f.Refused != nil {
			f.Refused(addr, transport, requestID, err)
		}
		return err
	}
	return nil
}

func peerAddr(peer string) (netip.Addr, bool) {
	host := peer
	if h, _, err := net.SplitHostPort(peer); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	return a.WithZone("").Unmap(), err == nil
}

// Listener refuses connections before any TLS work: from an address that
// every target of the listener refuses (a listener serving both APIs
// cuts only addresses refused for both; requests are checked again, per
// API, by the transports). A refused connection is closed at once.
func (f *Filter) Listener(l net.Listener, transport string, targets ...Target) net.Listener {
	if f == nil {
		return l
	}
	return &listener{Listener: l, f: f, transport: transport, targets: targets}
}

type listener struct {
	net.Listener
	f         *Filter
	transport string
	targets   []Target
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := peerAddr(c.RemoteAddr().String())
		if !ok || l.f.trusted(addr) {
			return c, nil
		}
		rs := l.f.rules.Load()
		refused, rule := true, ""
		for _, t := range l.targets {
			ok, r := rs.Decide(addr, t)
			if ok {
				refused = false
				break
			}
			rule = r
		}
		if !refused {
			return c, nil
		}
		c.Close()
		if l.f.Refused != nil {
			l.f.Refused(addr, l.transport, "", Refusal(addr, rule))
		}
	}
}
