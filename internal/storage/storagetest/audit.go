package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/fault"
)

func newAuditLog(s Store, now func() time.Time) *audit.Log {
	return &audit.Log{Store: s, Chain: audit.NewChain([]byte("audit-test-key-0123456789abcdef!")), Now: now}
}

// testAuditChain: concurrent appends form one unbroken chain (every
// record once, numbered 1..n), which verifies; listings filter and page
// newest first.
func testAuditChain(t *testing.T, s Store) {
	ctx := t.Context()
	clock := t0
	var mu sync.Mutex
	log := newAuditLog(s, func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Second); return clock })
	head, anchor, err := s.AuditHeads(ctx)
	must(t, err, "AuditHeads(empty)")
	if head.Seq != 0 || anchor.Seq != 0 {
		t.Fatalf("empty log: head %d anchor %d", head.Seq, anchor.Seq)
	}
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcome := audit.Done
			if i%3 == 0 {
				outcome = audit.Refused
			}
			err := log.Append(ctx, &audit.Record{ActorID: fmt.Sprintf("key-%d", i%2), Action: "CreateGroup",
				Resource: fmt.Sprintf("g-%02d", i), Outcome: outcome})
			if err != nil {
				t.Errorf("Append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	res, err := log.Chain.Verify(ctx, s, 7)
	must(t, err, "Verify")
	if len(res.Problems) != 0 || res.Entries != n || res.Head.Seq != n {
		t.Fatalf("Verify = %+v", res)
	}
	seen := map[string]bool{}
	entries, err := s.AuditEntries(ctx, 1, n+5, false)
	must(t, err, "AuditEntries")
	if len(entries) != n {
		t.Fatalf("%d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		r, err := audit.Decode(e)
		must(t, err, "Decode")
		if e.Seq != uint64(i+1) || r.Seq != e.Seq || seen[r.Resource] {
			t.Fatalf("entry %d: %+v", i, r)
		}
		seen[r.Resource] = true
	}
	desc, err := s.AuditEntries(ctx, 10, 4, true)
	must(t, err, "AuditEntries(descending)")
	if len(desc) != 4 || desc[0].Seq != 10 || desc[3].Seq != 7 {
		t.Fatalf("descending from 10: %d entries, first %d", len(desc), desc[0].Seq)
	}

	// Newest first, in pages, with a filter.
	var got []*audit.Record
	token := ""
	for range n {
		page, next, err := log.List(ctx, audit.Filter{ActorID: "key-0", Outcome: audit.Refused}, token, 4)
		must(t, err, "List")
		got = append(got, page...)
		if token = next; token == "" {
			break
		}
	}
	if len(got) != 10 { // i = 0, 6, 12, ...: even and a multiple of 3
		t.Fatalf("filtered list: %d records, want 10", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq >= got[i-1].Seq || got[i].ActorID != "key-0" || got[i].Outcome != audit.Refused {
			t.Fatalf("list order or filter: %+v after %+v", got[i], got[i-1])
		}
	}
	// Time bounds: the first ten seconds.
	early, _, err := log.List(ctx, audit.Filter{Since: t0, Until: t0.Add(10*time.Second + time.Millisecond)}, "", 100)
	must(t, err, "List(time range)")
	if len(early) != 10 {
		t.Fatalf("time range: %d records, want 10", len(early))
	}
	for _, bad := range []audit.Filter{{Outcome: "maybe"}, {Since: t0, Until: t0}, {Action: string(make([]byte, 300))}} {
		if _, _, err := log.List(ctx, bad, "", 10); err == nil {
			t.Fatalf("filter %+v accepted", bad)
		}
	}
	if _, _, err := log.List(ctx, audit.Filter{}, "x", 10); err == nil {
		t.Fatal("a malformed page token was accepted")
	}
	// Another key's chain does not verify.
	if res, err := audit.NewChain([]byte("another key")).Verify(ctx, s, 100); err != nil || len(res.Problems) == 0 {
		t.Fatalf("verified with another key: %+v %v", res, err)
	}
}

// testAuditPrune: pruning removes the oldest entries, moves the anchor,
// records itself, and the chain still verifies from the anchor.
func testAuditPrune(t *testing.T, s Store) {
	ctx := t.Context()
	clock := t0
	log := newAuditLog(s, func() time.Time { clock = clock.Add(time.Minute); return clock })
	for i := range 10 {
		must(t, log.Append(ctx, &audit.Record{ActorID: "k", Action: "UpdateShard", Resource: fmt.Sprint(i), Outcome: audit.Done}), "Append")
	}
	n, err := log.Prune(ctx, t0.Add(4*time.Minute+time.Second)) // entries at t0+1m..t0+4m
	must(t, err, "Prune")
	if n != 4 {
		t.Fatalf("pruned %d, want 4", n)
	}
	head, anchor, err := s.AuditHeads(ctx)
	must(t, err, "AuditHeads")
	if anchor.Seq != 4 || head.Seq != 11 {
		t.Fatalf("after pruning: anchor %d head %d, want 4 and 11", anchor.Seq, head.Seq)
	}
	res, err := log.Chain.Verify(ctx, s, 3)
	must(t, err, "Verify")
	if len(res.Problems) != 0 || res.Entries != 7 {
		t.Fatalf("Verify after pruning = %+v", res)
	}
	all, next, err := log.List(ctx, audit.Filter{}, "", 100)
	must(t, err, "List")
	if len(all) != 7 || next != "" || all[0].Action != "audit.prune" || all[0].ActorID != "system" {
		t.Fatalf("after pruning: %d records (next %q), newest %+v", len(all), next, all[0])
	}
	if n, err := log.Prune(ctx, t0); err != nil || n != 0 {
		t.Fatalf("nothing to prune: %d %v", n, err)
	}
	wantKind(t, s.PruneAudit(ctx, audit.Head{Seq: 2}), fault.InvalidArgument, "PruneAudit behind the anchor")
}
