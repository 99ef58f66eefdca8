// Package audit is the tamper-evident record of operator changes (ADR 19).
//
// Every operator mutation, from every surface (gRPC, REST, the DPS service
// API, and so the CLI), becomes one Record: who (the access key), what
// (action, resource, the etags before and after, a summary without
// secrets), from where, when, and the outcome, refusals included. Records
// are appended to a chain: each stored Entry carries its sequence number
// and the MAC of the entry before it, and is itself MACed (HMAC-SHA256
// under a key derived from the data key). Verify walks the chain from its
// anchor and detects an edited, removed, inserted or reordered entry;
// without the data key nobody can forge a consistent chain, even with
// write access to the store.
//
// The log is append-only: the API has no update or delete. Entries older
// than the retention are pruned from the front; the anchor (the sequence
// number and MAC of the last pruned entry) moves with them, and every
// prune is itself a record, so the chain stays verifiable across pruning.
package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Outcomes of a change.
const (
	Done    = "done"
	Refused = "refused"
)

// Record is one operator change as the API shows it.
type Record struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// ActorID and ActorName name the access key ("system" for the
	// service's own changes, such as pruning this log).
	ActorID   string `json:"actor"`
	ActorName string `json:"actor_name,omitempty"`
	// Action is the use case ("CreateGroup", "accessKeys.rotate", ...);
	// Resource the ID of what it acted on.
	Action   string `json:"action"`
	Resource string `json:"resource"`
	// Surface is where the change came in (grpc, rest, dps-service);
	// Source the client's address.
	Surface string `json:"surface,omitempty"`
	Source  string `json:"source,omitempty"`
	// RequestID is the request's ID, as in its answer and log line.
	RequestID string `json:"request_id,omitempty"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
	// IfMatch is the etag the change was conditional on; Etag the
	// resource's etag after it.
	IfMatch string `json:"if_match,omitempty"`
	Etag    string `json:"etag,omitempty"`
	// Summary says what changed, without secrets.
	Summary string `json:"summary,omitempty"`
	// Prev is the MAC (hex) of the entry before this one.
	Prev string `json:"prev"`
	// AnchorSeq and AnchorMAC are set on an audit.prune record: the anchor
	// the prune moves to (written before the entries go), so that the
	// stored anchor is vouched for by a MACed record.
	AnchorSeq uint64 `json:"anchor_seq,omitempty"`
	AnchorMAC string `json:"anchor_mac,omitempty"`
}

// PruneAction is the action of the records that prunes leave.
const PruneAction = "audit.prune"

// Entry is a stored record: its sequence number, the exact bytes that
// were MACed, and the MAC.
type Entry struct {
	Seq  uint64
	Body []byte
	MAC  []byte
}

// Head is a point in the chain: a sequence number and the MAC of the
// entry there (zero values before the first entry).
type Head struct {
	Seq uint64
	MAC []byte
}

// Store keeps the chain. Implementations serialize appends (a transaction
// or an optimistic retry) so that each batch links to the head it read.
type Store interface {
	// AppendAudit appends records in order after the current head: link
	// turns each record into its entry given the entry before it. The
	// batch is written in one atomic step.
	AppendAudit(ctx context.Context, recs []*Record, link func(prev Head, r *Record) (Entry, error)) error
	// AuditHeads returns the chain's head (its last entry) and its anchor
	// (the last pruned entry; zero if nothing was pruned).
	AuditHeads(ctx context.Context) (head, anchor Head, err error)
	// AuditEntries returns up to limit entries with sequence numbers from
	// `from` upwards (descending: from `from` downwards), in that order.
	AuditEntries(ctx context.Context, from uint64, limit int, descending bool) ([]Entry, error)
	// PruneAudit removes the entries up to and including upTo, which must
	// be above the anchor and at most the head, and makes upTo the anchor.
	PruneAudit(ctx context.Context, upTo Head) error
}

// Chain computes and checks MACs with a key only the service holds.
type Chain struct {
	key []byte
}

// NewChain is the chain MACed with key (derive it from the data key).
func NewChain(key []byte) *Chain { return &Chain{key: key} }

func (c *Chain) mac(body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(body)
	return m.Sum(nil)
}

// Link makes r the entry after prev: it numbers r, links it to prev and
// MACs the encoding.
func (c *Chain) Link(prev Head, r *Record) (Entry, error) {
	r.Seq, r.Prev = prev.Seq+1, hex.EncodeToString(prev.MAC)
	r.Time = r.Time.UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Seq: r.Seq, Body: body, MAC: c.mac(body)}, nil
}

// Decode returns the record an entry holds.
func Decode(e Entry) (*Record, error) {
	var r Record
	if err := json.Unmarshal(e.Body, &r); err != nil {
		return nil, fmt.Errorf("audit entry %d: %w", e.Seq, err)
	}
	return &r, nil
}

// Problem is where verification found the chain broken.
type Problem struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

func (p Problem) String() string { return fmt.Sprintf("entry %d: %s", p.Seq, p.Reason) }

// Result is what Verify found.
type Result struct {
	// Anchor and Head bound the verified chain; Entries is how many
	// entries were checked.
	Anchor  Head
	Head    Head
	Entries uint64
	// Problems is empty when the chain is intact; Verify stops at the
	// first few.
	Problems []Problem
}

// maxProblems is how many problems Verify reports before it stops.
const maxProblems = 20

// Verify walks the whole chain from its anchor to its head, pageSize
// entries per read: every entry must carry the next sequence number, the
// MAC of the entry before it, and a MAC of its own bytes; the last must be
// the head.
func (c *Chain) Verify(ctx context.Context, s Store, pageSize int) (*Result, error) {
	head, anchor, err := s.AuditHeads(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Anchor: anchor, Head: head}
	prev := anchor
	var declared *Record // the newest prune record
	problem := func(seq uint64, format string, args ...any) bool {
		res.Problems = append(res.Problems, Problem{Seq: seq, Reason: fmt.Sprintf(format, args...)})
		return len(res.Problems) >= maxProblems
	}
	for next := anchor.Seq + 1; next <= head.Seq; {
		page, err := s.AuditEntries(ctx, next, pageSize, false)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			problem(next, "entries %d to %d are missing", next, head.Seq)
			return res, nil
		}
		for _, e := range page {
			if e.Seq > head.Seq {
				break
			}
			res.Entries++
			if e.Seq != prev.Seq+1 {
				if problem(prev.Seq+1, "missing: the next entry found is %d", e.Seq) {
					return res, nil
				}
			}
			if !hmac.Equal(c.mac(e.Body), e.MAC) {
				if problem(e.Seq, "its MAC does not match its contents (edited)") {
					return res, nil
				}
			}
			r, err := Decode(e)
			switch {
			case err != nil:
				if problem(e.Seq, "undecodable: %v", err) {
					return res, nil
				}
			case r.Seq != e.Seq:
				if problem(e.Seq, "stored under %d but numbered %d (moved)", e.Seq, r.Seq) {
					return res, nil
				}
			case r.Prev != hex.EncodeToString(prev.MAC):
				if problem(e.Seq, "does not follow entry %d (reordered, or an entry before it was replaced)", prev.Seq) {
					return res, nil
				}
			case r.Action == PruneAction && r.ActorID == "system":
				declared = r
			}
			prev = Head{Seq: e.Seq, MAC: e.MAC}
		}
		next = prev.Seq + 1
	}
	if prev.Seq != head.Seq || !hmac.Equal(prev.MAC, head.MAC) {
		problem(head.Seq, "the chain ends at %d, not at the head", prev.Seq)
	}
	// Entries stored beyond the head: the head was moved back.
	if beyond, err := s.AuditEntries(ctx, head.Seq+1, 1, false); err != nil {
		return nil, err
	} else if len(beyond) > 0 {
		problem(beyond[0].Seq, "stored beyond the head %d (the head was moved back)", head.Seq)
	}
	// The anchor must be one a prune record declared: the newest prune
	// record names an anchor at or after the stored one (a prune writes
	// its record first), and the same entry when they agree on it.
	switch {
	case anchor.Seq == 0:
	case declared == nil:
		problem(anchor.Seq, "the log starts after entry %d, but no prune record in it says so (entries removed from its front)", anchor.Seq)
	case anchor.Seq > declared.AnchorSeq:
		problem(anchor.Seq, "the log starts after entry %d, but the newest prune (record %d) went only to %d (entries removed from its front)", anchor.Seq, declared.Seq, declared.AnchorSeq)
	case anchor.Seq == declared.AnchorSeq && declared.AnchorMAC != hex.EncodeToString(anchor.MAC):
		problem(anchor.Seq, "the anchor is not the entry the prune record %d names", declared.Seq)
	}
	return res, nil
}
