package embedded

// SetNoSync turns the file's fsync off (on) or back on (off), for bulk
// seeding by a tool that owns the file alone (zerotouch bench scale): a
// commit then only writes to the page cache, so a crash during seeding
// can lose or corrupt the file. Turning it off again syncs the file once.
// A serving store never calls it.
func (s *Store) SetNoSync(on bool) error {
	s.db.NoSync = on
	if on {
		return nil
	}
	return s.db.Sync()
}
