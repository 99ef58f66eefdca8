package admin

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/audit"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// One write path: every operator change, from any transport (gRPC, REST,
// the DPS service API), goes through an admin method that passes its store
// write through mutate. It is the one place an operator change is
// recorded: a log line (action, resource, actor, outcome, reason) and an
// audit record (ADR 19). A change the transport or a use case refused
// before its write (no permission, a malformed field) is recorded by the
// transport's error path through Refused, once per request.

// Caller is who makes a request's changes and where it came from, set by
// the transport once it authenticated the caller.
type Caller struct {
	KeyID, KeyName string
	// Key is the caller's access key, for the checks a use case makes
	// beyond the transport's (adopting registrations).
	Key *access.Key
	// Surface is the transport (grpc, rest, dps-service); Source the
	// client's address; RequestID the request's ID.
	Surface, Source, RequestID string

	// recorded is set once the request produced an audit record.
	recorded atomic.Bool
}

type callerKey struct{}

// WithCaller names the request's caller.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// ForItem is ctx for one item of a batch: the same caller with its own
// record, so that each item's change or refusal is recorded once.
func ForItem(ctx context.Context) context.Context {
	c := CallerOf(ctx)
	if c == nil {
		return ctx
	}
	return WithCaller(ctx, &Caller{KeyID: c.KeyID, KeyName: c.KeyName, Key: c.Key, Surface: c.Surface, Source: c.Source, RequestID: c.RequestID})
}

// CallerOf is the caller WithCaller recorded, or nil.
func CallerOf(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// ActorOf is the ID of the caller's access key, or "".
func ActorOf(ctx context.Context) string {
	if c := CallerOf(ctx); c != nil {
		return c.KeyID
	}
	return ""
}

// change describes one operator change for its records.
type change struct {
	action, resource string
	// ifMatch is the etag the change was conditional on.
	ifMatch string
	// summary says what changed, without secrets.
	summary string
}

// mutate runs one operator change and records it. A string result is the
// resource's new etag.
func mutate[T any](ctx context.Context, s *Service, c change, fn func() (T, error)) (T, error) {
	out, err := fn()
	etag, _ := any(out).(string)
	s.record(ctx, c, etag, err)
	return out, err
}

// write is mutate for a change that returns only an error.
func (s *Service) write(ctx context.Context, c change, fn func() error) error {
	_, err := mutate(ctx, s, c, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

// Refused records a change that a transport or a use case refused before
// it reached mutate: a caller without the permission, a malformed
// request. It records nothing for a request with no authenticated caller
// (that is not an operator's change) or one already recorded.
func (s *Service) Refused(ctx context.Context, action, resource string, err error) {
	c := CallerOf(ctx)
	if c == nil || err == nil || c.recorded.Load() {
		return
	}
	s.record(ctx, change{action: action, resource: resource}, "", err)
}

// record writes the log line and the audit record of a change.
func (s *Service) record(ctx context.Context, c change, etag string, err error) {
	caller := CallerOf(ctx)
	if caller == nil {
		caller = &Caller{KeyID: "system"}
	}
	caller.recorded.Store(true)
	r := &audit.Record{ActorID: caller.KeyID, ActorName: caller.KeyName, Action: c.action, Resource: c.resource,
		Surface: caller.Surface, Source: caller.Source, RequestID: caller.RequestID, IfMatch: c.ifMatch, Summary: c.summary, Outcome: audit.Done}
	level := slog.LevelInfo
	if err != nil {
		r.Outcome, r.Reason, level = audit.Refused, string(fault.ReasonOf(err)), slog.LevelWarn
		if r.Reason == "" {
			r.Reason = string(fault.InternalError)
		}
	} else {
		r.Etag = etag
	}
	if s.Log != nil {
		attrs := []any{"action", c.action, "resource", c.resource, "actor", caller.KeyID, "outcome", r.Outcome}
		if err != nil {
			attrs = append(attrs, "reason", r.Reason)
		}
		if caller.RequestID != "" {
			attrs = append(attrs, "request_id", caller.RequestID)
		}
		s.Log.Log(ctx, level, "operator change", attrs...)
	}
	if s.Audit == nil {
		return
	}
	if aerr := s.Audit.Append(ctx, r); aerr != nil && s.Log != nil {
		// The change stands; its record is lost. Loud, so an operator
		// sees a gap in the log's coverage.
		s.Log.Error("audit record not written", "action", c.action, "resource", c.resource, "actor", caller.KeyID, "err", aerr)
	}
}
