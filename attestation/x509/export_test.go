package x509

// Hits counts the verifications the cache answered.
func (pc *PathCache) Hits() int64 { return pc.hits.Load() }
