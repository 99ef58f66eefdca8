package admin

import (
	"context"
	"log/slog"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// One write path: every operator change, from any transport (gRPC, REST,
// the DPS service API), goes through an admin method that passes its store
// write through mutate. It is the one place an operator change is
// recorded: today a log line (action, resource, actor, outcome, reason);
// the audit log records the same there.

type actorKey struct{}

// WithActor names who makes the request's changes: the access key's ID,
// set by the transport once it authenticated the caller.
func WithActor(ctx context.Context, keyID string) context.Context {
	return context.WithValue(ctx, actorKey{}, keyID)
}

// ActorOf is the access key WithActor recorded, or "".
func ActorOf(ctx context.Context) string {
	id, _ := ctx.Value(actorKey{}).(string)
	return id
}

// mutate runs one operator change and records it.
func mutate[T any](ctx context.Context, s *Service, action, resource string, fn func() (T, error)) (T, error) {
	out, err := fn()
	if s.Log != nil {
		attrs := []any{"action", action, "resource", resource, "actor", ActorOf(ctx)}
		level := slog.LevelInfo
		if err != nil {
			attrs = append(attrs, "outcome", "refused", "reason", string(fault.ReasonOf(err)))
			level = slog.LevelWarn
		} else {
			attrs = append(attrs, "outcome", "done")
		}
		s.Log.Log(ctx, level, "operator change", attrs...)
	}
	return out, err
}

// write is mutate for a change that returns only an error.
func (s *Service) write(ctx context.Context, action, resource string, fn func() error) error {
	_, err := mutate(ctx, s, action, resource, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}
