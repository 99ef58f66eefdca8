package cli_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// count is how many times a JSON field appears in a CLI answer.
func count(out, field string) int {
	return len(regexp.MustCompile(`"`+field+`":`).FindAllString(out, -1))
}

// TestEnrollmentImport: `enrollment import` skips a header line and
// comments, reports each bad line with its number (no comma, not base64,
// a registration ID or EK already on an earlier line, an EK the server
// refuses, an enrollment that exists) and goes on with the others; it
// ends with a summary and fails if any line did. --dry-run reports the
// same lines, server checks included, and writes nothing.
func TestEnrollmentImport(t *testing.T) {
	s := startDevServer(t)
	taken := ekBase64(t)
	s.run(0, "enrollment", "create", "taken", "--tpm-ek", taken)
	s.run(0, "enrollment", "create", "taken-2", "--tpm-ek", ekBase64(t))
	ek1, ek2, ek3, ek5, ek6 := ekBase64(t), ekBase64(t), ekBase64(t), ekBase64(t), ekBase64(t)
	file := strings.Join([]string{
		"registration_id,endorsement_key", // 1: the header
		"# exported 2026-11-01",           // 2
		"dev-a," + ek1,                    // 3
		"," + ek2,                         // 4: the ID derived from the EK
		"",                                // 5
		"dev-c",                           // 6: no comma
		"dev-d,not*base64",                // 7
		"DEV-A," + ek3,                    // 8: line 3's registration ID
		"dev-e," + ek1,                    // 9: line 3's EK
		"broken-ek,AAEC",                  // 10: the server refuses the EK
		"taken," + taken,                  // 11: enrolled already, identically: unchanged
		"dev-f," + ek5 + "\r",             // 12: CRLF
		"taken-2," + ek6,                  // 13: enrolled already with another EK
	}, "\n")
	if err := os.WriteFile("eks.csv", []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	wantLines := []string{
		`eks.csv:1: skipped as a header`,
		`eks.csv:6: malformed: want registration_id,endorsement_key`,
		`eks.csv:7: malformed: the endorsement key is not base64`,
		`eks.csv:8: malformed: registration ID "DEV-A" is already on line 3`,
		`eks.csv:9: malformed: the same endorsement key is already on line 3`,
		`eks.csv:10: TPM_STRUCTURE_INVALID`,
		`eks.csv:13: RESOURCE_ALREADY_EXISTS`,
	}
	check := func(out, summary string) {
		t.Helper()
		for _, w := range wantLines {
			if !strings.Contains(out, w) {
				t.Errorf("missing %q in:\n%s", w, out)
			}
		}
		if strings.Count(out, "eks.csv:") != len(wantLines) || !strings.Contains(out, summary) || !strings.Contains(out, "6 of 10 lines failed") {
			t.Fatalf("want only the bad lines and %q:\n%s", summary, out)
		}
	}
	check(s.run(1, "enrollment", "import", "--dry-run", "eks.csv"), "3 would be created (dry run: nothing was written), 2 refused, 4 malformed, 1 unchanged")
	if out := s.run(0, "enrollment", "list", "-o", "json"); count(out, "registrationId") != 2 {
		t.Fatalf("the dry run wrote:\n%s", out)
	}
	check(s.run(1, "enrollment", "import", "eks.csv"), "3 created, 2 refused, 4 malformed, 1 unchanged")
	out := s.run(0, "enrollment", "list", "-o", "json")
	if count(out, "registrationId") != 5 || !strings.Contains(out, `"dev-a"`) || !strings.Contains(out, `"dev-f"`) {
		t.Fatalf("after the import:\n%s", out)
	}
	// The same file again: every line that was good is now enrolled,
	// identically, and unchanged.
	if out := s.run(1, "enrollment", "import", "--dry-run", "eks.csv"); strings.Contains(out, "eks.csv:3:") || !strings.Contains(out, "0 would be created") || !strings.Contains(out, "4 unchanged") {
		t.Fatalf("a dry run of enrolled lines:\n%s", out)
	}

	// A clean file, header and all, succeeds; a damaged first line is not
	// mistaken for a header.
	os.WriteFile("clean.csv", []byte("id,ek\n"+"dev-g,"+ekBase64(t)+"\n"+"dev-h,"+ekBase64(t)+"\n"), 0o600)
	if out := s.run(0, "enrollment", "import", "--dry-run", "clean.csv"); !strings.Contains(out, "2 would be created") {
		t.Fatalf("dry run of a clean file: %s", out)
	}
	if out := s.run(0, "enrollment", "import", "clean.csv"); !strings.Contains(out, "2 created, 0 refused, 0 malformed") {
		t.Fatalf("clean file: %s", out)
	}
	os.WriteFile("damaged.csv", []byte("dev-i,"+ekBase64(t)[:40]+"%%\n"), 0o600)
	if out := s.run(1, "enrollment", "import", "damaged.csv"); !strings.Contains(out, "damaged.csv:1: malformed") {
		t.Fatalf("damaged first line: %s", out)
	}
	s.run(2, "enrollment", "import")
	s.run(1, "enrollment", "import", "nowhere.csv")
}

// TestEnrollmentSettingsFlags: group and enrollment create take the
// device settings (re-provisioning policy, initial twin inline or from a
// file, IoT Edge, adopt_from, SAS switch) and the custom webhook's
// timeout and fallback; update changes only what its flags name (an
// allocation flag keeps the rest of the allocation); malformed values are
// refused with FIELD_INVALID or a usage error.
func TestEnrollmentSettingsFlags(t *testing.T) {
	s := startDevServer(t)
	s.run(0, "shard", "create", "hub-1", "--hostname", "hub1.example.com")
	s.run(0, "shard", "create", "hub-2", "--hostname", "hub2.example.com")
	os.WriteFile("twin.json", []byte(`{"tags": {"site": "berlin"},
  "properties": {"desired": {"interval": 30}}}`), 0o600)
	type got struct {
		ReprovisionPolicy, InitialTwin string
		IotEdge, DisableDeviceSas      bool
		AdoptFrom                      []string
		Allocation                     struct {
			Policy, StaticShard string
			Shards              []string
			Webhook             *struct {
				URL            string `json:"url"`
				TimeoutSeconds int
				FallbackPolicy string
			}
		}
		DeviceID string `json:"deviceId"`
	}
	read := func(args ...string) got {
		t.Helper()
		var g got
		if err := json.Unmarshal([]byte(s.run(0, args...)), &g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	const twin = `{"tags":{"site":"berlin"},"properties":{"desired":{"interval":30}}}`
	g := read("group", "create", "fleet", "--attestation", "symmetric", "--reprovision", "reset", "--initial-twin", "@twin.json", "--iot-edge",
		"--adopt-from", "old-a,old-b", "--disable-device-sas", "--policy", "custom", "--shards", "hub-1,hub-2",
		"--webhook-url", "https://hooks.example.com/allocate", "--webhook-timeout", "3s", "--webhook-fallback", "hashed")
	w := g.Allocation.Webhook
	if g.ReprovisionPolicy != "REPROVISION_POLICY_RESET" || g.InitialTwin != twin || !g.IotEdge || !g.DisableDeviceSas || strings.Join(g.AdoptFrom, ",") != "old-a,old-b" ||
		g.Allocation.Policy != "ALLOCATION_POLICY_CUSTOM" || len(g.Allocation.Shards) != 2 || w == nil || w.TimeoutSeconds != 3 || w.FallbackPolicy != "ALLOCATION_POLICY_HASHED" {
		t.Fatalf("created group: %+v", g)
	}
	// One flag changes one thing.
	g = read("group", "update", "fleet", "--iot-edge=false")
	if g.IotEdge || g.ReprovisionPolicy != "REPROVISION_POLICY_RESET" || g.InitialTwin != twin || g.Allocation.Webhook == nil || g.Allocation.Webhook.TimeoutSeconds != 3 {
		t.Fatalf("after --iot-edge=false: %+v", g)
	}
	g = read("group", "update", "fleet", "--webhook-timeout", "7s")
	if g.Allocation.Policy != "ALLOCATION_POLICY_CUSTOM" || g.Allocation.Webhook.URL != "https://hooks.example.com/allocate" || g.Allocation.Webhook.TimeoutSeconds != 7 ||
		len(g.Allocation.Shards) != 2 || g.Allocation.Webhook.FallbackPolicy != "ALLOCATION_POLICY_HASHED" {
		t.Fatalf("after --webhook-timeout: %+v", g)
	}
	g = read("group", "update", "fleet", "--policy", "static", "--static-shard", "hub-2", "--reprovision", "never", "--initial-twin", "", "--adopt-from", "")
	if g.Allocation.Policy != "ALLOCATION_POLICY_STATIC" || g.Allocation.StaticShard != "hub-2" || g.Allocation.Webhook != nil || len(g.Allocation.Shards) != 2 ||
		g.ReprovisionPolicy != "REPROVISION_POLICY_NEVER" || g.InitialTwin != "" || len(g.AdoptFrom) != 0 || !g.DisableDeviceSas {
		t.Fatalf("after static: %+v", g)
	}
	g = read("group", "update", "fleet", "--policy", "hashed")
	if g.Allocation.Policy != "ALLOCATION_POLICY_HASHED" || g.Allocation.StaticShard != "" {
		t.Fatalf("after hashed: %+v", g)
	}

	// Individual enrollments: the same flags; --device-id alone keeps the
	// allocation.
	e := read("enrollment", "create", "dev-1", "--symmetric", "--reprovision", "migrate", "--initial-twin", `{"tags":{"a":1}}`, "--iot-edge",
		"--policy", "static", "--static-shard", "hub-1")
	if e.ReprovisionPolicy != "REPROVISION_POLICY_MIGRATE" || e.InitialTwin != `{"tags":{"a":1}}` || !e.IotEdge || e.Allocation.StaticShard != "hub-1" {
		t.Fatalf("created enrollment: %+v", e)
	}
	e = read("enrollment", "update", "dev-1", "--device-id", "device-1")
	if e.DeviceID != "device-1" || e.Allocation.Policy != "ALLOCATION_POLICY_STATIC" || e.Allocation.StaticShard != "hub-1" || e.InitialTwin != `{"tags":{"a":1}}` || !e.IotEdge {
		t.Fatalf("after --device-id: %+v", e)
	}
	e = read("enrollment", "update", "dev-1", "--reprovision", "reset", "--adopt-from", "fleet")
	if e.ReprovisionPolicy != "REPROVISION_POLICY_RESET" || strings.Join(e.AdoptFrom, ",") != "fleet" || e.DeviceID != "device-1" {
		t.Fatalf("after --reprovision: %+v", e)
	}

	// Refusals.
	for _, args := range [][]string{
		{"group", "update", "fleet", "--initial-twin", "[]"},
		{"group", "update", "fleet", "--initial-twin", `{"tags":`},
		{"group", "update", "fleet", "--adopt-from", "a/b"},
		{"group", "update", "fleet", "--webhook-url", "http://plain.example.com"},
		{"enrollment", "update", "dev-1", "--initial-twin", `{"properties":{"reported":{}}}`},
		{"enrollment", "create", "dev-2", "--symmetric", "--adopt-from", "g,g"},
	} {
		if out := s.run(1, args...); !strings.Contains(out, "FIELD_INVALID") {
			t.Errorf("%v: %s", args, out)
		}
	}
	s.run(2, "group", "update", "fleet")
	s.run(2, "enrollment", "update", "dev-1")
	s.run(2, "group", "update", "fleet", "--reprovision", "sometimes")
	s.run(2, "group", "update", "fleet", "--webhook-fallback", "custom")
	s.run(1, "group", "update", "fleet", "--initial-twin", "@nowhere.json")
}
