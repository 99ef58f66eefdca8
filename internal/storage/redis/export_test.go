package redis

// SetRelayOff makes writes leave their outboxes to the sweeper, as a
// replica that stops between a write and its relay does.
func (s *Store) SetRelayOff(off bool) { s.relayOff.Store(off) }
