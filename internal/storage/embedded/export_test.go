package embedded

// SetMaxChallenges lowers the bound on outstanding challenges for a test.
func SetMaxChallenges(s *Store, n int) { s.challenges.max = n }
