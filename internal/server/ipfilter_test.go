package server

import "testing"

// TestIsDeviceRESTPath: only the three device calls on one registration
// are the device API; a management path whose ID merely ends like one is
// not (found by review).
func TestIsDeviceRESTPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/v1/registrations/dev-1:register":               true,
		"/v1/registrations/dev-1:beginTpmAttestation":    true,
		"/v1/registrations/dev-1:completeTpmAttestation": true,
		"/v1/registrations/xTpmAttestation":              false,
		"/v1/registrations/a:b:register":                 false,
		"/v1/registrations/:register":                    false,
		"/v1/registrations/dev-1/x:register":             false,
		"/v1/registrations/dev-1":                        false,
		"/v1/shards":                                     false,
	} {
		if got := isDeviceRESTPath(p); got != want {
			t.Errorf("%s: %v, want %v", p, got, want)
		}
	}
	for m, want := range map[string]bool{"ListShards": true, "VerifyCaCertificate": false, "SummarizeFailedAttempts": true, "LookupIdentity": true, "UpdateShard": false} {
		if isRead(m) != want {
			t.Errorf("isRead(%s) = %v", m, !want)
		}
	}
}
