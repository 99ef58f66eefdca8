package cli

import (
	"strings"
	"testing"
	"time"
)

// TestWaitReadyStopsWhenTheServerExits: a spawned server that exits (a
// port taken between picking it and binding it) ends the wait at once
// with that reason, so spawnServer can start it again on other ports.
func TestWaitReadyStopsWhenTheServerExits(t *testing.T) {
	done := make(chan struct{})
	close(done)
	err := waitReady(t.Context(), "127.0.0.1:1", "/nonexistent/ca.pem", time.Hour, done)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("waitReady after the server exited: %v", err)
	}
}
