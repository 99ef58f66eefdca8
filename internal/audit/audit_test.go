package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is the chain in memory: the rules under test are Verify's and
// List's, not a backend's (the backends run the conformance suite).
type memStore struct {
	mu             sync.Mutex
	entries        map[uint64]Entry
	head, anchor   Head
	reads, entried int
}

func newMem() *memStore { return &memStore{entries: map[uint64]Entry{}} }

func (m *memStore) AppendAudit(_ context.Context, recs []*Record, link func(Head, *Record) (Entry, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		e, err := link(m.head, r)
		if err != nil {
			return err
		}
		m.entries[e.Seq], m.head = e, Head{Seq: e.Seq, MAC: e.MAC}
	}
	return nil
}

func (m *memStore) AuditHeads(context.Context) (Head, Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head, m.anchor, nil
}

func (m *memStore) AuditEntries(_ context.Context, from uint64, limit int, desc bool) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	var seqs []uint64
	for s := range m.entries {
		if desc && s <= from || !desc && s >= from {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	if desc {
		slices.Reverse(seqs)
	}
	var out []Entry
	for _, s := range seqs[:min(limit, len(seqs))] {
		out = append(out, m.entries[s])
	}
	m.entried += len(out)
	return out, nil
}

func (m *memStore) PruneAudit(_ context.Context, upTo Head) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.entries {
		if s <= upTo.Seq {
			delete(m.entries, s)
		}
	}
	m.anchor = upTo
	return nil
}

func filled(t *testing.T, n int) (*Log, *memStore) {
	t.Helper()
	m := newMem()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &Log{Store: m, Chain: NewChain([]byte("k")), Now: func() time.Time { at = at.Add(time.Second); return at }}
	for i := range n {
		if err := l.Append(t.Context(), &Record{ActorID: "a", Action: "UpdateShard", Resource: fmt.Sprint(i), Outcome: Done}); err != nil {
			t.Fatal(err)
		}
	}
	return l, m
}

// TestVerifyNamesTheBreak: each kind of tampering is found at its entry.
func TestVerifyNamesTheBreak(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(m *memStore)
		seq    uint64
		reason string
	}{
		{"edited", func(m *memStore) {
			e := m.entries[3]
			e.Body = []byte(strings.Replace(string(e.Body), `"resource":"2"`, `"resource":"9"`, 1))
			m.entries[3] = e
		}, 3, "edited"},
		{"edited and re-MACed with another key", func(m *memStore) {
			e := m.entries[3]
			e.Body = []byte(strings.Replace(string(e.Body), `"resource":"2"`, `"resource":"9"`, 1))
			e.MAC = NewChain([]byte("guess")).mac(e.Body)
			m.entries[3] = e
		}, 3, "edited"},
		{"removed", func(m *memStore) { delete(m.entries, 3) }, 3, "missing"},
		{"reordered", func(m *memStore) {
			a, b := m.entries[3], m.entries[4]
			a.Seq, b.Seq = 4, 3
			m.entries[3], m.entries[4] = b, a
		}, 3, "moved"},
		{"truncated", func(m *memStore) { delete(m.entries, 5) }, 5, "missing"},
		{"head moved back", func(m *memStore) { m.head = Head{Seq: 4, MAC: m.entries[4].MAC} }, 5, "beyond the head"},
		{"front removed, anchor forged", func(m *memStore) {
			m.anchor = Head{Seq: 3, MAC: m.entries[3].MAC}
			delete(m.entries, 1)
			delete(m.entries, 2)
			delete(m.entries, 3)
		}, 3, "no prune record"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, m := filled(t, 5)
			tc.tamper(m)
			res, err := l.Chain.Verify(t.Context(), m, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Problems) == 0 || res.Problems[0].Seq != tc.seq || !strings.Contains(res.Problems[0].Reason, tc.reason) {
				t.Fatalf("problems = %v, want entry %d %q", res.Problems, tc.seq, tc.reason)
			}
		})
	}
}

// TestListReadsABoundedNumber: a filter that matches nothing reads at most
// scanBudget entries per call and hands back a token to go on; following
// the tokens reaches the end.
func TestListReadsABoundedNumber(t *testing.T) {
	l, m := filled(t, scanBudget+700)
	recs, next, err := l.List(t.Context(), Filter{ActorID: "nobody"}, "", 10)
	if err != nil || len(recs) != 0 || next == "" || m.entried > scanBudget {
		t.Fatalf("first call: %d records, next %q, %d entries read, %v", len(recs), next, m.entried, err)
	}
	recs, next, err = l.List(t.Context(), Filter{ActorID: "nobody"}, next, 10)
	if err != nil || len(recs) != 0 || next != "" {
		t.Fatalf("second call: %d records, next %q, %v", len(recs), next, err)
	}
	// Since stops the walk at the first older entry.
	m.entried = 0
	recs, _, err = l.List(t.Context(), Filter{Since: l.Now().Add(-5 * time.Second)}, "", 100)
	if err != nil || len(recs) != 5 || m.entried > readPage {
		t.Fatalf("since: %d records, %d entries read, %v", len(recs), m.entried, err)
	}
}

// TestPruneVouchesForTheAnchor: a real prune verifies; moving the anchor
// past what the newest prune record declared does not.
func TestPruneVouchesForTheAnchor(t *testing.T) {
	l, m := filled(t, 8)
	n, err := l.Prune(t.Context(), l.Now())
	if err != nil || n != 8 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	for i := range 3 {
		l.Append(t.Context(), &Record{ActorID: "a", Action: "UpdateShard", Resource: fmt.Sprint(i), Outcome: Done})
	}
	if res, err := l.Chain.Verify(t.Context(), m, 2); err != nil || len(res.Problems) != 0 {
		t.Fatalf("after a real prune: %+v %v", res, err)
	}
	// Remove the prune record and the next entry, anchor after them.
	m.anchor = Head{Seq: 10, MAC: m.entries[10].MAC}
	delete(m.entries, 9)
	delete(m.entries, 10)
	res, err := l.Chain.Verify(t.Context(), m, 2)
	if err != nil || len(res.Problems) == 0 || !strings.Contains(res.Problems[0].Reason, "prune") {
		t.Fatalf("anchor moved past the prune record: %+v %v", res, err)
	}
}
