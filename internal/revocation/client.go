package revocation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// MaxRedirects bounds the redirects a CRL fetch or OCSP request follows.
const MaxRedirects = 3

// errPrivateAddress refuses a dial to an address of the host's own
// networks.
var errPrivateAddress = errors.New("the address is loopback, link-local or private (revocation.allow_private_networks is off)")

// cgnat is the shared address space of RFC 6598.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// privateAddr reports whether ip is one a fetch of a URL that a device's
// certificate names must not reach unless allowed: loopback, link-local,
// private (RFC 1918, RFC 4193), shared, unspecified or multicast.
func privateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsPrivate() || ip.IsUnspecified() || ip.IsMulticast() || cgnat.Contains(ip) ||
		(ip.Is4() && ip.As4()[0] == 0)
}

// NewClient is the HTTP client that fetches CRLs and asks OCSP responders
// at the URLs devices' certificates name (which anyone who has a CA
// enrolled chooses): each call bounded by timeout; at most MaxRedirects
// redirects, to http or https only and never from https to http; and,
// unless allowPrivate, no connection to a loopback, link-local or private
// address (checked on the address dialled, after name resolution, so a
// name that resolves there is refused too; a proxy from the environment
// is dialled instead of the target and checked alike).
func NewClient(timeout time.Duration, allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if privateAddr(ap.Addr()) {
				return fmt.Errorf("dial %s: %w", address, errPrivateAddress)
			}
			return nil
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	tr.MaxIdleConnsPerHost = 2
	return &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect allows MaxRedirects redirects to http or https URLs, none
// from https to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("more than %d redirects", MaxRedirects)
	}
	to := strings.ToLower(req.URL.Scheme)
	if to != "http" && to != "https" {
		return fmt.Errorf("a redirect to a %q URL", req.URL.Scheme)
	}
	if to == "http" && strings.EqualFold(via[len(via)-1].URL.Scheme, "https") {
		return errors.New("a redirect from https to http")
	}
	return nil
}
