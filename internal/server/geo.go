package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/zerotouch/zerotouch/allocation"
)

// Geo locates clients for the geo allocation policy: by a header that a
// trusted edge proxy sets, or else by the client address's network.
type Geo struct {
	// Networks map address ranges to regions; the longest prefix wins.
	Networks []GeoNetwork
	// TrustedProxies are the peers whose Header is believed.
	TrustedProxies []netip.Prefix
	// Header names the region header (HTTP), or in lower case the gRPC
	// metadata key; "" trusts no header.
	Header string
}

// GeoNetwork is one address range of a region.
type GeoNetwork struct {
	Prefix netip.Prefix
	Region string
}

// locate returns the client's region, or "". A header from an untrusted
// peer, or one that is not a valid region name, is ignored.
// LocateRequest is the region of an HTTP request's client ("" if unknown),
// for transports outside this package (the DPS device API).
func (g *Geo) LocateRequest(r *http.Request) string { return g.locate(r.RemoteAddr, r.Header.Get) }

func (g *Geo) locate(peerAddr string, header func(string) string) string {
	if g == nil {
		return ""
	}
	host := peerAddr
	if h, _, err := net.SplitHostPort(peerAddr); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	addr = addr.Unmap()
	if g.Header != "" {
		for _, p := range g.TrustedProxies {
			if p.Contains(addr) {
				if r := strings.TrimSpace(header(g.Header)); r != "" && allocation.ValidateRegion(r) == nil {
					return r
				}
				break
			}
		}
	}
	best, bits := "", -1
	for _, n := range g.Networks {
		if n.Prefix.Contains(addr) && n.Prefix.Bits() > bits {
			best, bits = n.Region, n.Prefix.Bits()
		}
	}
	return best
}
