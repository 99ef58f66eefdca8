// Package attempts is the failed-attempt log: every refused device request,
// from any transport, with the claimed registration ID, the credential it
// presented, where it came from, the transport, the refusal's reason and
// the request ID (the one in the answer and in the log line).
//
// The log is bounded so that an attacker cannot fill the store or slow
// registrations (ADR 20): refusals are queued in memory and written in
// batches off the request path (a full queue drops, and counts the drop);
// storage is bucketed by hour and kept for a retention; each hour stores
// at most a fixed number of records per source address (an IPv6 /64) and
// in all, while
// its summaries (refusals per registration ID, per source address and per
// reason) count every refusal, up to a bound on distinct keys.
package attempts

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Attempt is one refused device request.
type Attempt struct {
	Time time.Time `json:"t"`
	// RegistrationID is the ID the request claimed (at most 128
	// characters are kept).
	RegistrationID string `json:"r,omitempty"`
	// Credential identifies what the device presented: its leaf
	// certificate's SHA-256, its EK hash, or "" (a SAS token).
	Credential string `json:"c,omitempty"`
	// Source is the client's IP address.
	Source    string `json:"s,omitempty"`
	Transport string `json:"tr,omitempty"`
	Reason    string `json:"x"`
	RequestID string `json:"id,omitempty"`
}

// Hour is the start of the hour t falls in (UTC).
func Hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// Summary kinds: what an hour's counts are keyed by.
const (
	ByRegistration = "registration_id"
	BySource       = "source"
	ByReason       = "reason"
)

// Overflow is the key that counts refusals beyond an hour's bound on
// distinct keys.
const Overflow = "(other)"

// Batch is what one write adds to an hour: the records to store and the
// counts to add to its summaries (kind → key → n).
type Batch struct {
	Hour    time.Time
	Records []Attempt
	Counts  map[string]map[string]int64
}

// Store keeps the log. Hours are independent: a write touches one hour.
type Store interface {
	// AppendAttempts stores a batch in one atomic step.
	AppendAttempts(ctx context.Context, b Batch) error
	// HourAttempts returns up to limit of the hour's stored records from
	// the offset-th on, in the order they were stored.
	HourAttempts(ctx context.Context, hour time.Time, offset, limit int) ([]Attempt, error)
	// HourCounts returns an hour's summary of a kind (key → n).
	HourCounts(ctx context.Context, hour time.Time, kind string) (map[string]int64, error)
	// PruneAttempts removes the hours before cutoff.
	PruneAttempts(ctx context.Context, cutoff time.Time) error
}

// Filter narrows a listing; empty fields match everything.
type Filter struct {
	RegistrationID string
	Reason         string
	// Source is an IP address or a CIDR prefix.
	Source string
	// Since and Until bound the time (Until exclusive).
	Since, Until time.Time

	prefix netip.Prefix
}

// Parse checks a filter's fields and prepares it.
func (f *Filter) Parse() error {
	if len(f.RegistrationID) > 128 || len(f.Reason) > 64 {
		return fault.Invalidf("filter registration_id or reason is too long")
	}
	if f.Source != "" {
		p, err := netip.ParsePrefix(f.Source)
		if err != nil {
			a, aerr := netip.ParseAddr(f.Source)
			if aerr != nil {
				return fault.Invalidf("filter source %q is neither an IP address nor a CIDR prefix", f.Source)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		f.prefix = p.Masked()
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fault.Invalidf("filter since must be before until")
	}
	return nil
}

func (f *Filter) match(a *Attempt) bool {
	if f.RegistrationID != "" && !strings.EqualFold(a.RegistrationID, f.RegistrationID) || f.Reason != "" && a.Reason != f.Reason ||
		!f.Since.IsZero() && a.Time.Before(f.Since) || !f.Until.IsZero() && !a.Time.Before(f.Until) {
		return false
	}
	if f.prefix.IsValid() {
		addr, err := netip.ParseAddr(a.Source)
		if err != nil || !f.prefix.Contains(addr.Unmap()) {
			return false
		}
	}
	return true
}

// SourceIP is the IP of a peer address ("ip:port" or "ip"), or "".
func SourceIP(peer string) string {
	host := peer
	if h, _, err := net.SplitHostPort(peer); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	return a.Unmap().String()
}

// pageToken is where a listing goes on: an hour and an offset into it,
// walking from the newest hour to the oldest.
func pageToken(hour time.Time, offset int) string {
	return fmt.Sprintf("%d.%d", hour.Unix(), offset)
}

func parseToken(s string) (time.Time, int, error) {
	var h int64
	var off int
	if _, err := fmt.Sscanf(s, "%d.%d", &h, &off); err != nil || off < 0 || h%3600 != 0 || pageToken(time.Unix(h, 0), off) != s {
		return time.Time{}, 0, fault.Invalidf("page_token is not valid")
	}
	return time.Unix(h, 0).UTC(), off, nil
}
