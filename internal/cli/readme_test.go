package cli_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeCommands returns the lines of the sh blocks in the README section
// under heading (up to the next "## " heading), with their comments.
func readmeCommands(t *testing.T, readme, heading string) []string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var lines []string
	for inBlock, rest := false, section; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		switch {
		case strings.HasPrefix(line, "```sh"):
			inBlock = true
		case strings.HasPrefix(line, "```"):
			inBlock = false
		case inBlock && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

// shellWords splits a command line as sh would for the README's simple
// lines (words, double quotes), and returns its trailing comment.
func shellWords(line string) (words []string, comment string) {
	var w strings.Builder
	quoted, inWord := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' && !quoted:
			// A single-quoted string is taken as it is.
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				end = len(line) - i - 1
			}
			w.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			quoted, inWord = !quoted, true
		case !quoted && c == '#' && !inWord:
			return words, strings.TrimSpace(line[i+1:])
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, ""
}

// TestREADMEWalkThrough runs the README's five-minute walk-through and its
// TPM section as written, then the DPS section's MQTT example, line by line, against a dev server: every
// ./zerotouch line must succeed, except those whose comment says
// "refused: REASON", which must fail with that reason. Placeholders
// (<CODE>, <REGISTRATION_ID>, <EK_BASE64>) take the values the earlier
// commands printed, as an operator copies them.
func TestREADMEWalkThrough(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := readmeCommands(t, string(raw), "## Five-minute walk-through")
	if len(lines) < 20 {
		t.Fatalf("only %d commands in the walk-through", len(lines))
	}
	mqttPort := freePort(t)
	s := startServer(t, "--mqtt-listen", "127.0.0.1:"+mqttPort)
	placeholders := map[string]*regexp.Regexp{
		"<CODE>":            regexp.MustCompile(`(?m)(?:"verificationCode":\s*"|^)([0-9A-F]{16,})(?:"|$)`),
		"<REGISTRATION_ID>": regexp.MustCompile(`registration ID: (\S+)`),
		"<EK_BASE64>":       regexp.MustCompile(`\(TPM2B_PUBLIC, base64\): (\S+)`),
	}
	values := map[string]string{}
	for _, line := range lines {
		words, comment := shellWords(line)
		if len(words) > 0 && words[0] == "go" {
			continue // go build
		}
		if len(words) < 2 || words[0] != "./zerotouch" {
			t.Fatalf("README line %q is not a ./zerotouch command", line)
		}
		args := words[1:]
		for i, a := range args {
			for p := range placeholders {
				if strings.Contains(a, p) {
					v, ok := values[p]
					if !ok {
						t.Fatalf("%q: no earlier command printed %s", line, p)
					}
					args[i] = strings.ReplaceAll(a, p, v)
				}
			}
		}
		want, reason := 0, ""
		if r, ok := strings.CutPrefix(comment, "refused: "); ok {
			want, reason = 1, strings.Fields(r)[0]
		}
		out := s.run(want, args...)
		if !strings.Contains(out, reason) {
			t.Fatalf("%q: want %s in %s", line, reason, out)
		}
		for p, re := range placeholders {
			if m := re.FindStringSubmatch(out); m != nil {
				values[p] = m[1]
			}
		}
	}
	for p := range placeholders {
		if _, ok := values[p]; !ok {
			t.Errorf("no command printed %s", p)
		}
	}

	// The DPS section's MQTT example, on the same server, after the
	// walk-through (it uses its group), with mosquitto_rr as written but
	// for the port (8883 in the README).
	dps := joinContinued(readmeCommands(t, string(raw), "## Azure DPS devices"))
	if len(dps) < 3 {
		t.Fatalf("only %d commands in the DPS section", len(dps))
	}
	for _, line := range dps {
		words, _ := shellWords(line)
		switch words[0] {
		case "./zerotouch":
			s.run(0, words[1:]...)
		case "mosquitto_rr":
			if _, err := exec.LookPath("mosquitto_rr"); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatal("mosquitto_rr is required in CI (apt-get install mosquitto-clients)")
				}
				t.Skip("mosquitto_rr is not installed: the README's MQTT example is not run")
			}
			args := words[1:]
			for i := range args {
				if args[i] == "8883" && i > 0 && args[i-1] == "-p" {
					args[i] = mqttPort
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			out, err := exec.CommandContext(ctx, "mosquitto_rr", args...).CombinedOutput()
			cancel()
			if err != nil || !strings.Contains(string(out), `"status":"assigned"`) {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		default:
			t.Fatalf("README DPS line %q is neither ./zerotouch nor mosquitto_rr", line)
		}
	}
}

// joinContinued joins lines ending in a backslash with the next.
func joinContinued(lines []string) []string {
	var out []string
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + lines[i]
		}
		out = append(out, line)
	}
	return out
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestWrongPortSaysSo: a REST registration sent to the gRPC port, and a
// gRPC command sent to the REST port, name the likely cause instead of a
// bare EOF or content-type error.
func TestWrongPortSaysSo(t *testing.T) {
	s := startDevServer(t)
	s.run(0, "pki", "ca", "--cn", "Acme Root", "--out", "acme")
	s.run(0, "pki", "device", "--ca", "acme", "--id", "dev-1", "--out", "dev-1")
	for _, args := range [][]string{
		{"device", "register", "--transport", "rest", "--server", s.grpcAddr, "--cert", "dev-1/device.pem", "--key", "dev-1/device-key.pem"},
		{"device", "register", "--tpm", "--transport", "rest", "--server", s.grpcAddr},
	} {
		if out := s.run(1, args...); !strings.Contains(out, "it is likely the gRPC address") || !strings.Contains(out, "--transport rest needs the REST (HTTPS) address") {
			t.Errorf("%v: %s", args, out)
		}
	}
	for _, args := range [][]string{
		{"ca", "list", "--server", s.httpAddr},
		{"device", "register", "--server", s.httpAddr, "--cert", "dev-1/device.pem", "--key", "dev-1/device-key.pem"},
	} {
		if out := s.run(1, args...); !strings.Contains(out, "the address is likely the REST (HTTPS) port") {
			t.Errorf("%v: %s", args, out)
		}
	}
}

// TestREADMEHubSection runs the README's hub section's command block as
// written (continuation lines joined), after making what it assumes: the
// CAs its groups name and the twin file it reads.
func TestREADMEHubSection(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := readmeCommands(t, string(raw), "## Hubs, shards and where devices go")
	s := startDevServer(t)
	for _, ca := range []string{"acme-root", "acme-x-root"} {
		s.run(0, "pki", "ca", "--cn", ca, "--out", ca)
		s.run(0, "ca", "create", ca, "--cert", ca+"/ca.pem")
	}
	if err := os.WriteFile("twin.json", []byte(`{"tags":{"site":"eu"},"properties":{"desired":{"interval":30}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	joined := joinContinued(lines)
	if len(joined) < 8 {
		t.Fatalf("only %d commands in the hub section", len(joined))
	}
	for _, line := range joined {
		words, _ := shellWords(line)
		if len(words) < 2 || words[0] != "zerotouch" {
			t.Fatalf("README line %q is not a zerotouch command", line)
		}
		s.run(0, words[1:]...)
	}
	out := s.run(0, "group", "get", "acme", "-o", "json")
	var g struct {
		IotEdge           bool   `json:"iotEdge"`
		ReprovisionPolicy string `json:"reprovisionPolicy"`
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil || !g.IotEdge || g.ReprovisionPolicy != "REPROVISION_POLICY_RESET" {
		t.Fatalf("the group's settings after the section: %v %s", err, out)
	}
}
