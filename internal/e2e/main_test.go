package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every
// server, connection and store the tests open must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
