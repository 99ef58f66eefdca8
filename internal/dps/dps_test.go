package dps

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHandles(t *testing.T) {
	for path, want := range map[string]bool{
		"/enrollments/x": true, "/enrollmentgroups/x": true, "/EnrollmentGroups": true, "/registrations/x/query": true,
		"/0ne00000001/registrations/x/register": false, "/v1/enrollments": false, "/": false, "/enrollmentsX": false,
	} {
		if Handles(path) != want {
			t.Errorf("Handles(%q) = %v", path, !want)
		}
	}
}

func TestEtags(t *testing.T) {
	for in, want := range map[string]string{`"12"`: "12", `W/"12"`: "12", "12": "12", ` "12" `: "12", "*": "*", "": ""} {
		if got := unquoteEtag(in); got != want {
			t.Errorf("unquoteEtag(%q) = %q, want %q", in, got, want)
		}
	}
	if matchEtag("", "5", "x", "y") != nil || matchEtag("*", "5", "x", "y") != nil || matchEtag("5", "5", "x", "y") != nil || matchEtag("4", "5", "x", "y") == nil {
		t.Fatal("matchEtag")
	}
}

// An assigning operation ID names its registration and deadline, and only
// that registration can use it.
func TestAssigningOperationID(t *testing.T) {
	deadline := time.Unix(1_900_000_000, 0)
	id := assigningOperationID("Dev-1", deadline)
	if got, ok := parseAssigningOperationID(id, "dev-1"); !ok || !got.Equal(deadline) {
		t.Fatalf("round trip: %v %v", got, ok)
	}
	for _, bad := range []struct{ op, reg string }{{id, "dev-2"}, {"0.assigning.%%%", "dev-1"}, {"0.assigning.", "dev-1"}, {"0.other", "dev-1"},
		{"0.assigning." + strings.Repeat("A", 10), "dev-1"}} {
		if _, ok := parseAssigningOperationID(bad.op, bad.reg); ok {
			t.Errorf("parsed %q for %q", bad.op, bad.reg)
		}
	}
}

func TestNewClient(t *testing.T) {
	c, err := NewClient("HostName=dps.example.com:8443;SharedAccessKeyName=k1;SharedAccessKey=AAAA", http.DefaultClient)
	if err != nil || c.Host != "dps.example.com:8443" || c.KeyName != "k1" || len(c.Key) != 3 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"", "HostName=x", "HostName=x;SharedAccessKeyName=k;SharedAccessKey=%%%", "HostName=x;junk;SharedAccessKeyName=k;SharedAccessKey=AAAA"} {
		if _, err := NewClient(bad, http.DefaultClient); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
