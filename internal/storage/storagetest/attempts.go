package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/attempts"
)

// testAttempts: an hour's records come back in order, by offset; its
// summaries add up over batches; hours are apart; pruning removes the
// hours before the cutoff.
func testAttempts(t *testing.T, s Store) {
	ctx := t.Context()
	now := attempts.Hour(time.Now())
	h1, h2 := now.Add(-2*time.Hour), now.Add(-time.Hour)
	rec := func(h time.Time, i int) attempts.Attempt {
		return attempts.Attempt{Time: h.Add(time.Duration(i) * time.Second), RegistrationID: fmt.Sprintf("dev-%d", i%3),
			Source: fmt.Sprintf("192.0.2.%d", i%2), Transport: "grpc", Reason: "CERTIFICATE_UNTRUSTED", RequestID: fmt.Sprint(i)}
	}
	for batch := range 2 {
		b := attempts.Batch{Hour: h1, Counts: map[string]map[string]int64{attempts.ByReason: {"CERTIFICATE_UNTRUSTED": 5}, attempts.BySource: {"192.0.2.0": 3, "192.0.2.1": 2}}}
		for i := range 5 {
			b.Records = append(b.Records, rec(h1, batch*5+i))
		}
		must(t, s.AppendAttempts(ctx, b), "AppendAttempts")
	}
	must(t, s.AppendAttempts(ctx, attempts.Batch{Hour: h2, Records: []attempts.Attempt{rec(h2, 0)}, Counts: map[string]map[string]int64{attempts.ByReason: {"SAS_INVALID": 1}}}), "AppendAttempts(h2)")
	got, err := s.HourAttempts(ctx, h1, 0, 100)
	must(t, err, "HourAttempts")
	if len(got) != 10 {
		t.Fatalf("%d records in the hour, want 10", len(got))
	}
	for i, a := range got {
		if a.RequestID != fmt.Sprint(i) || a.Source == "" || !a.Time.Equal(h1.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("record %d = %+v", i, a)
		}
	}
	page, err := s.HourAttempts(ctx, h1, 7, 2)
	must(t, err, "HourAttempts(offset)")
	if len(page) != 2 || page[0].RequestID != "7" || page[1].RequestID != "8" {
		t.Fatalf("offset 7, limit 2: %+v", page)
	}
	if page, _ := s.HourAttempts(ctx, h1, 10, 5); len(page) != 0 {
		t.Fatalf("past the end: %+v", page)
	}
	counts, err := s.HourCounts(ctx, h1, attempts.BySource)
	must(t, err, "HourCounts")
	if counts["192.0.2.0"] != 6 || counts["192.0.2.1"] != 4 || len(counts) != 2 {
		t.Fatalf("counts = %v", counts)
	}
	if c, _ := s.HourCounts(ctx, h2, attempts.ByReason); c["SAS_INVALID"] != 1 || len(c) != 1 {
		t.Fatalf("the other hour's counts = %v", c)
	}
	if c, err := s.HourCounts(ctx, now.Add(-5*time.Hour), attempts.ByReason); err != nil || len(c) != 0 {
		t.Fatalf("an empty hour: %v %v", c, err)
	}
	must(t, s.PruneAttempts(ctx, h2), "PruneAttempts")
	if got, _ := s.HourAttempts(ctx, h1, 0, 100); len(got) != 0 {
		t.Fatalf("a pruned hour has %d records", len(got))
	}
	if c, _ := s.HourCounts(ctx, h1, attempts.BySource); len(c) != 0 {
		t.Fatalf("a pruned hour has counts %v", c)
	}
	if got, _ := s.HourAttempts(ctx, h2, 0, 100); len(got) != 1 {
		t.Fatalf("the hour after the cutoff lost its records: %d", len(got))
	}
}
