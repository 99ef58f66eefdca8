package provisioning

import (
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Authenticate is attestation alone (MQTT's CONNECT): it refuses what
// Register refuses at attestation, and writes nothing either way.
func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		regID  string
		req    Request
		reason fault.Reason
	}{
		{"SAS", "sym-1", sasRequest("sym-1", f.symInd.Primary, time.Now().Add(time.Hour)), ""},
		{"X.509 group", "dev-auth", f.device("dev-auth"), ""},
		{"SAS wrong key", "sym-1", sasRequest("sym-1", []byte(strings.Repeat("x", 32)), time.Now().Add(time.Hour)), fault.SASInvalid},
		{"SAS expired", "sym-1", sasRequest("sym-1", f.symInd.Primary, time.Now().Add(-time.Hour)), fault.SASExpired},
		{"no credential", "sym-1", Request{RegistrationID: "sym-1", Transport: TransportMQTT}, fault.CertificateMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.s.Authenticate(ctx, tc.req)
			wantReason(t, err, tc.reason)
			if tc.reason != "" && fault.KindOf(err) != fault.Unauthenticated {
				t.Fatalf("kind %v, want Unauthenticated", fault.KindOf(err))
			}
			f.nothingWritten(tc.regID)
		})
	}
}
