package registry

import (
	"context"
	"sync"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// EventKind is what happened to an identity on a shard.
type EventKind string

// Event kinds. A device that moves between shards is Deleted on the old
// shard and Created on the new one.
const (
	EventCreated  EventKind = "created"
	EventUpdated  EventKind = "updated"
	EventDisabled EventKind = "disabled"
	EventEnabled  EventKind = "enabled"
	EventDeleted  EventKind = "deleted"
)

// Event is one entry of a shard's assignment log.
type Event struct {
	Shard string
	// Seq numbers a shard's events 1, 2, 3, ... with no gaps; it is the
	// hub's cursor.
	Seq  uint64
	Kind EventKind
	// Identity as it is after the change; for EventDeleted, as it was,
	// with the version of the deletion.
	Identity *Identity
	Time     time.Time
}

// DefaultEventRetention is how many events each shard's log keeps.
const DefaultEventRetention = 100_000

// NextVersion is the version of an identity's next change: one more than
// old, and never less than the clock in microseconds, so that versions of
// one device ID keep increasing across a deletion and a new registration
// (a hub that applies events by version never takes a stale one for new).
func NextVersion(old int64, now time.Time) int64 {
	return max(old+1, now.UnixMicro())
}

// Changes lists the events that turn old into new (nil for none: a
// creation or a deletion). Both stores call it inside the write, so the
// log always agrees with the registry.
func Changes(old, new *Identity, now time.Time) []Event {
	switch {
	case old == nil && new == nil:
		return nil
	case old == nil:
		return []Event{{Shard: new.Shard, Kind: EventCreated, Identity: new, Time: now}}
	case new == nil:
		gone := *old
		gone.Version, gone.Updated = NextVersion(old.Version, now), now
		return []Event{{Shard: old.Shard, Kind: EventDeleted, Identity: &gone, Time: now}}
	case old.Shard != new.Shard:
		gone := *old
		gone.Version, gone.Updated = new.Version, new.Updated
		return []Event{{Shard: old.Shard, Kind: EventDeleted, Identity: &gone, Time: now}, {Shard: new.Shard, Kind: EventCreated, Identity: new, Time: now}}
	}
	kind := EventUpdated
	switch {
	case old.Status != IdentityDisabled && new.Status == IdentityDisabled:
		kind = EventDisabled
	case old.Status == IdentityDisabled && new.Status != IdentityDisabled:
		kind = EventEnabled
	}
	return []Event{{Shard: new.Shard, Kind: kind, Identity: new, Time: now}}
}

// EventLog is each shard's durable, ordered log of identity events, and
// what each hub cluster has acknowledged of it. Stores append to it in the
// same write as the registration (see Changes).
type EventLog interface {
	// ReadEvents returns up to limit events of the shard after seq
	// `after`, in order (none when the hub is up to date). When the log
	// no longer holds the event after `after` (trimmed by retention), or
	// `after` is beyond its newest event, it fails with FailedPrecondition
	// and reason CURSOR_EXPIRED: the hub resyncs from a snapshot.
	ReadEvents(ctx context.Context, shard string, after uint64, limit int) ([]*Event, error)
	// LogHead returns the seq of the shard's newest event (0 for none).
	LogHead(ctx context.Context, shard string) (uint64, error)
	// LogHeads is LogHead for many shards in one read (an idle stream
	// polls them).
	LogHeads(ctx context.Context, shards []string) ([]uint64, error)
	// AckEvents records that the cluster has applied the shard's events up
	// to seq.
	AckEvents(ctx context.Context, cluster, shard string, seq uint64) error
	// AckedEvent returns the cluster's last acknowledged seq of the shard
	// (0 for none).
	AckedEvent(ctx context.Context, cluster, shard string) (uint64, error)
	// ListIdentities pages through the identities on a shard (a snapshot
	// for a hub that resyncs).
	ListIdentities(ctx context.Context, shard, token string, limit int) ([]*Identity, string, error)
}

// CursorExpired is the error both stores give for a cursor CheckCursor
// refuses.
func CursorExpired(shard string, after uint64) error {
	return fault.New(fault.FailedPrecondition, fault.CursorExpired,
		"the log of shard %q no longer holds the events after cursor %d; resync from a snapshot (ListShardIdentities)", shard, after)
}

// CheckCursor is the rule both stores apply to a read after `after` of a
// log whose oldest kept event is first (0 when empty) and newest is head.
func CheckCursor(after, first, head uint64) bool {
	switch {
	case after == head:
		return true
	case after > head || first == 0:
		return false
	}
	return after+1 >= first
}

// Broadcast tells waiters that something changed: Changed returns a
// channel that the next Notify closes. Stores notify after each
// registration write, so that assignment streams on the same replica wake
// at once instead of at their next poll.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// Changed returns a channel closed by the next Notify.
func (b *Broadcast) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// Notify wakes everyone waiting on Changed.
func (b *Broadcast) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
