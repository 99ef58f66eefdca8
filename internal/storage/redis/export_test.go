package redis

import "time"

// SetRelayOff makes writes leave their outboxes to the sweeper, as a
// replica that stops between a write and its relay does.
func (s *Store) SetRelayOff(off bool) { s.relayOff.Store(off) }

// SetLayoutLease shortens the lease of a move of individual enrollments
// to the current layout, for tests of a mover that stalls.
func SetLayoutLease(d time.Duration) func() {
	old := layoutLease
	layoutLease = d
	return func() { layoutLease = old }
}
