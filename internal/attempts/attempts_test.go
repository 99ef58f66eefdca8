package attempts_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zerotouch/zerotouch/internal/attempts"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

func open(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "zerotouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRecorderBounds: one source stores at most MaxRecordsPerSource
// records an hour, however many refusals it causes; every refusal is
// still counted in the hour's summaries; other sources are unaffected.
func TestRecorderBounds(t *testing.T) {
	s := open(t)
	now := time.Now()
	rec := &attempts.Recorder{Store: s, Now: func() time.Time { return now }}
	rec.Start(t.Context())
	const flood = 3 * attempts.MaxRecordsPerSource
	for i := range flood {
		rec.Record(attempts.Attempt{RegistrationID: fmt.Sprintf("dev-%d", i), Source: "203.0.113.9", Reason: "SAS_INVALID"})
	}
	rec.Record(attempts.Attempt{RegistrationID: "real", Source: "198.51.100.1", Reason: "CERTIFICATE_EXPIRED", Credential: "ab"})
	rec.Close()
	if rec.Dropped() != 0 {
		t.Fatalf("%d dropped", rec.Dropped())
	}
	hour := attempts.Hour(now)
	got, err := s.HourAttempts(t.Context(), hour, 0, 10*flood)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != attempts.MaxRecordsPerSource+1 || got[len(got)-1].RegistrationID != "real" {
		t.Fatalf("%d records stored, last %+v; want %d", len(got), got[len(got)-1], attempts.MaxRecordsPerSource+1)
	}
	bySrc, _ := s.HourCounts(t.Context(), hour, attempts.BySource)
	if bySrc["203.0.113.9"] != flood || bySrc["198.51.100.1"] != 1 {
		t.Fatalf("source counts %v", bySrc)
	}
	byReg, _ := s.HourCounts(t.Context(), hour, attempts.ByRegistration)
	if len(byReg) != flood+1 {
		t.Fatalf("%d registration keys, want %d", len(byReg), flood+1)
	}
}

// TestRecorderDropsWhenFull: Record never blocks; a full queue drops.
func TestRecorderDropsWhenFull(t *testing.T) {
	rec := &attempts.Recorder{Store: open(t)}
	rec.Start(t.Context())
	rec.Close() // the writer is gone; the queue fills
	for range 20_000 {
		rec.Record(attempts.Attempt{Source: "203.0.113.9", Reason: "SAS_INVALID"})
	}
	if rec.Dropped() == 0 {
		t.Fatal("nothing dropped")
	}
	var nilRec *attempts.Recorder
	nilRec.Record(attempts.Attempt{}) // a nil recorder records nothing
}

func fill(t *testing.T, s *embedded.Store, now time.Time) *attempts.Log {
	t.Helper()
	for h := range 3 {
		hour := attempts.Hour(now).Add(-time.Duration(h) * time.Hour)
		b := attempts.Batch{Hour: hour, Counts: map[string]map[string]int64{}}
		for i := range 10 {
			src := "192.0.2.1"
			if i%2 == 1 {
				src = "2001:db8::7"
			}
			b.Records = append(b.Records, attempts.Attempt{Time: hour.Add(time.Duration(i) * time.Minute), RegistrationID: fmt.Sprintf("Dev-%d", i%5),
				Source: src, Reason: []string{"SAS_INVALID", "CERTIFICATE_EXPIRED"}[i%2], RequestID: fmt.Sprintf("%d-%d", h, i)})
			for kind, key := range map[string]string{attempts.BySource: src, attempts.ByRegistration: fmt.Sprintf("Dev-%d", i%5)} {
				if b.Counts[kind] == nil {
					b.Counts[kind] = map[string]int64{}
				}
				b.Counts[kind][key]++
			}
		}
		if err := s.AppendAttempts(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	return &attempts.Log{Store: s, Now: func() time.Time { return now }, Retention: 24 * time.Hour}
}

// TestListFilters: filters by registration ID (any case), reason, source
// address or CIDR (IPv4 and IPv6) and time; pages follow newest hour
// first; malformed filters and tokens are refused.
func TestListFilters(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)
	l := fill(t, open(t), now)
	ctx := t.Context()
	count := func(f attempts.Filter) int {
		t.Helper()
		n := 0
		for token := ""; ; {
			page, next, err := l.List(ctx, f, token, 4)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page)
			if token = next; token == "" {
				return n
			}
		}
	}
	for name, c := range map[string]struct {
		f    attempts.Filter
		want int
	}{
		"all":                {attempts.Filter{}, 30},
		"registration ID":    {attempts.Filter{RegistrationID: "dev-3"}, 6},
		"reason":             {attempts.Filter{Reason: "CERTIFICATE_EXPIRED"}, 15},
		"IPv4 address":       {attempts.Filter{Source: "192.0.2.1"}, 15},
		"IPv4 CIDR":          {attempts.Filter{Source: "192.0.2.0/24"}, 15},
		"IPv6 CIDR":          {attempts.Filter{Source: "2001:db8::/32"}, 15},
		"another CIDR":       {attempts.Filter{Source: "10.0.0.0/8"}, 0},
		"the last hour only": {attempts.Filter{Since: attempts.Hour(now)}, 10},
		"a time window":      {attempts.Filter{Since: attempts.Hour(now).Add(-time.Hour), Until: attempts.Hour(now).Add(-time.Hour + 5*time.Minute)}, 5},
	} {
		if got := count(c.f); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
	first, next, err := l.List(ctx, attempts.Filter{}, "", 3)
	if err != nil || len(first) != 3 || first[0].RequestID != "0-0" || next == "" {
		t.Fatalf("first page: %+v %q %v", first, next, err)
	}
	for _, bad := range []attempts.Filter{{Source: "192.0.2.300"}, {Source: "example.com"}, {Since: now, Until: now}} {
		if _, _, err := l.List(ctx, bad, "", 10); fault.ReasonOf(err) != fault.FieldInvalid {
			t.Errorf("filter %+v: %v", bad, err)
		}
	}
	for _, bad := range []string{"x", "1.2", "-3600.0", fmt.Sprintf("%d.0", now.Add(48*time.Hour).Truncate(time.Hour).Unix())} {
		if _, _, err := l.List(ctx, attempts.Filter{}, bad, 10); fault.ReasonOf(err) != fault.FieldInvalid {
			t.Errorf("token %q: %v", bad, err)
		}
	}
}

// TestSummarize: the top keys per hour and over the range.
func TestSummarize(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)
	l := fill(t, open(t), now)
	hours, total, err := l.Summarize(t.Context(), attempts.BySource, time.Time{}, time.Time{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(total) != 1 || total[0].N != 15 || len(hours) != 3 || hours[0].N != 5 || !hours[0].Hour.Equal(attempts.Hour(now)) {
		t.Fatalf("hours %+v, total %+v", hours, total)
	}
	_, total, _ = l.Summarize(t.Context(), attempts.ByRegistration, attempts.Hour(now), time.Time{}, 10)
	if len(total) != 5 || total[0].N != 2 {
		t.Fatalf("registrations in the last hour: %+v", total)
	}
	for _, bad := range []struct {
		by  string
		top int
	}{{"ip", 10}, {attempts.BySource, 0}, {attempts.BySource, 5000}} {
		if _, _, err := l.Summarize(t.Context(), bad.by, time.Time{}, time.Time{}, bad.top); fault.ReasonOf(err) != fault.FieldInvalid {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// TestRecorderCapsIPv6By64: one host's /64 is one source for the cap, and
// client-chosen fields come out valid UTF-8, cut at a character.
func TestRecorderCapsIPv6By64(t *testing.T) {
	s := open(t)
	now := time.Now()
	rec := &attempts.Recorder{Store: s, Now: func() time.Time { return now }}
	rec.Start(t.Context())
	for i := range 3 * attempts.MaxRecordsPerSource {
		rec.Record(attempts.Attempt{Source: fmt.Sprintf("2001:db8:1:2::%x", i+1), Reason: "SAS_INVALID",
			RegistrationID: "é" + strings.Repeat("x", 126) + "é\xff"})
	}
	rec.Close()
	got, err := s.HourAttempts(t.Context(), attempts.Hour(now), 0, 1000)
	if err != nil || len(got) != attempts.MaxRecordsPerSource {
		t.Fatalf("%d records from one /64, want %d (%v)", len(got), attempts.MaxRecordsPerSource, err)
	}
	if id := got[0].RegistrationID; !utf8.ValidString(id) || len(id) > 128 {
		t.Fatalf("registration ID %q (%d bytes)", id, len(id))
	}
}
