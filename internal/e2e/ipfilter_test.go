package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// from dials the server's gRPC listener from a chosen loopback address.
func (e *env) from(ip string) *grpc.ClientConn {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
	cc, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(e.clientTLS(nil))),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cc.Close() })
	return cc
}

// httpFrom is an HTTPS client whose connections come from ip.
func (e *env) httpFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil), DialContext: d.DialContext, DisableKeepAlives: true}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// TestIPFilter: rules set through the API take effect within a second; an
// address refused for every API is cut before TLS; one refused for the
// device API only still reaches the management API, and its device
// requests are answered 403 IP_FILTERED (gRPC, REST, DPS); refusals are in
// the failed-attempt log; malformed rule sets and ones that would lock the
// caller out are refused and change nothing.
func TestIPFilter(t *testing.T) {
	e := start(t)
	e.createShard("s1", 1)
	cl := pb.NewIPFilterServiceClient(e.admin)
	before, err := cl.GetIPFilter(e.owner(), &pb.GetIPFilterRequest{})
	if err != nil || before.GetDefaultAction() != "accept" || len(before.GetRules()) != 0 {
		t.Fatalf("initial rules: %v %v", before, err)
	}
	listShards := func(cc *grpc.ClientConn) error {
		ctx, cancel := context.WithTimeout(e.owner(), 3*time.Second)
		defer cancel()
		_, err := pb.NewHubServiceClient(cc).ListShards(ctx, &pb.ListShardsRequest{})
		return err
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		if err := listShards(e.from(ip)); err != nil {
			t.Fatalf("before any rule, from %s: %v", ip, err)
		}
	}
	// Refusals that change nothing.
	many := &pb.IPFilter{}
	for i := range 257 {
		many.Rules = append(many.Rules, &pb.IPFilterRule{Name: "r" + strings.Repeat("x", i%60) + string(rune('a'+i/60)), Action: "reject", Prefix: "10.0.0.0/8"})
	}
	for name, bad := range map[string]*pb.IPFilter{
		"malformed CIDR": {Rules: []*pb.IPFilterRule{{Name: "a", Action: "reject", Prefix: "127.0.0.300/32"}}},
		"bad action":     {Rules: []*pb.IPFilterRule{{Name: "a", Action: "drop", Prefix: "127.0.0.2"}}},
		"too many rules": many,
		"bad default":    {DefaultAction: "deny"},
	} {
		if _, err := cl.SetIPFilter(e.owner(), &pb.SetIPFilterRequest{IpFilter: bad}); reasonOf(t, err) != "FIELD_INVALID" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := cl.SetIPFilter(e.owner(), &pb.SetIPFilterRequest{IpFilter: &pb.IPFilter{DefaultAction: "reject"}}); reasonOf(t, err) != "RESOURCE_IN_USE" {
		t.Fatalf("a set that locks the caller out: %v", err)
	}
	if _, err := cl.SetIPFilter(as(t.Context(), e.readerKey), &pb.SetIPFilterRequest{IpFilter: &pb.IPFilter{}}); reasonOf(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("a key without ServiceConfig: %v", err)
	}
	if now, _ := cl.GetIPFilter(e.owner(), &pb.GetIPFilterRequest{}); now.GetEtag() != before.GetEtag() {
		t.Fatal("a refused set changed the rules")
	}

	set, err := cl.SetIPFilter(e.owner(), &pb.SetIPFilterRequest{IpFilter: &pb.IPFilter{Rules: []*pb.IPFilterRule{
		{Name: "cut", Action: "reject", Prefix: "127.0.0.2"},
		{Name: "no-devices", Action: "reject", Prefix: "127.0.0.3/32", Target: "device"},
		{Name: "lab", Action: "accept", Prefix: "127.0.0.0/8"},
	}, DefaultAction: "reject"}})
	if err != nil || set.GetEtag() == "" || set.GetRules()[0].GetTarget() != "all" || set.GetRules()[0].GetPrefix() != "127.0.0.2/32" {
		t.Fatalf("set: %v %v", set, err)
	}
	// In effect within a second (waited for, not timed).
	cut := e.from("127.0.0.2")
	for deadline := time.Now().Add(5 * time.Second); listShards(cut) == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the rule never took effect")
		}
	}
	// Cut before TLS: the connection closes without a handshake.
	c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, net.TCPAddrFromAddrPort(mustAddrPort(t, e.httpAddr)))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("a refused connection: read %d, %v", n, err)
	}
	c.Close()

	// Device-only refusal: management works, device requests are refused.
	partly := e.from("127.0.0.3")
	if err := listShards(partly); err != nil {
		t.Fatalf("management from a device-refused address: %v", err)
	}
	_, err = pb.NewDeviceRegistrationServiceClient(partly).Register(t.Context(), &pb.RegisterRequest{RegistrationId: "dev-1"})
	if reasonOf(t, err) != "IP_FILTERED" {
		t.Fatalf("gRPC device request: %v", err)
	}
	client := e.httpFrom("127.0.0.3")
	host := "https://" + e.httpAddr
	res, err := client.Post(host+"/v1/registrations/dev-1:register", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Details []struct {
			Reason string `json:"reason"`
		} `json:"details"`
	}
	json.NewDecoder(res.Body).Decode(&st)
	res.Body.Close()
	if res.StatusCode != 403 || len(st.Details) == 0 || st.Details[0].Reason != "IP_FILTERED" {
		t.Fatalf("REST device request: %d %+v", res.StatusCode, st)
	}
	req, _ := http.NewRequest("PUT", host+"/"+idScope+"/registrations/dev-1/register?api-version=2021-06-01", strings.NewReader(`{"registrationId":"dev-1"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 403 || decodeErr(t, raw).Info["reason"] != "IP_FILTERED" {
		t.Fatalf("DPS device request: %d %s", res.StatusCode, raw)
	}
	// The refusals are in the failed-attempt log.
	fa := pb.NewFailedAttemptServiceClient(e.admin)
	var got *pb.ListFailedAttemptsResponse
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = fa.ListFailedAttempts(e.owner(), &pb.ListFailedAttemptsRequest{Reason: "IP_FILTERED"}); err == nil && len(got.GetFailedAttempts()) >= 4 {
			break
		}
	}
	sources := map[string]bool{}
	for _, a := range got.GetFailedAttempts() {
		sources[a.GetSource()] = true
		// A request refused per API carries its request ID (a connection
		// cut before TLS has none).
		if a.GetSource() == "127.0.0.3" && a.GetRequestId() == "" {
			t.Errorf("a request-level refusal without its request ID: %v", a)
		}
	}
	if !sources["127.0.0.2"] || !sources["127.0.0.3"] {
		t.Fatalf("failed attempts: %v", got)
	}
	// The CLI: get prints what set takes.
	code, out := e.runCLI("ip-filter", "get")
	if code != 0 || !strings.Contains(out, `"no-devices"`) {
		t.Fatalf("ip-filter get: exit %d\n%s", code, out)
	}
	file := filepath.Join(t.TempDir(), "rules.json")
	os.WriteFile(file, []byte(strings.Replace(out, `"reject"`, `"drop"`, 1)), 0o600)
	if code, out := e.runCLI("ip-filter", "set", file); code == 0 || !strings.Contains(out, "FIELD_INVALID") {
		t.Fatalf("ip-filter set with a bad action: exit %d\n%s", code, out)
	}
	os.WriteFile(file, []byte("{not json"), 0o600)
	if code, out := e.runCLI("ip-filter", "set", file); code != 2 {
		t.Fatalf("ip-filter set with a malformed file: exit %d\n%s", code, out)
	}
	// A stale etag is refused.
	if _, err := cl.SetIPFilter(e.owner(), &pb.SetIPFilterRequest{IpFilter: &pb.IPFilter{Etag: before.GetEtag() + "x"}}); reasonOf(t, err) != "ETAG_MISMATCH" {
		t.Fatalf("stale etag: %v", err)
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
