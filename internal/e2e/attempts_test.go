package e2e

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TestFailedAttemptLog: refused device requests over gRPC, REST and the
// DPS API land in the failed-attempt log with the claimed ID, the
// credential, the source, the transport, the reason and the request ID the
// device was answered with (DPS's trackingId); the log filters and
// summarizes, and needs RegistrationStatusRead.
func TestFailedAttemptLog(t *testing.T) {
	e := start(t)
	e.createShard("s1", 1)
	rogue, err := pki.NewCA("Rogue CA", nil, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := pki.NewDevice("stranger-1", rogue, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("stranger-1", dev, rogue.Cert); err == nil {
		t.Fatal("a device of an unknown CA registered")
	}
	if _, err := e.registerREST("stranger-1", dev, rogue.Cert); err == nil {
		t.Fatal("a device of an unknown CA registered")
	}
	_, _, raw := e.dpsCall("PUT", "/"+idScope+"/registrations/sym-x/register", sas(make([]byte, 32), "sym-x", time.Now().Add(time.Hour)), `{"registrationId":"sym-x"}`, nil)
	dpsAnswer := decodeErr(t, raw)

	cl := pb.NewFailedAttemptServiceClient(e.admin)
	var got []*pb.FailedAttempt
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := cl.ListFailedAttempts(e.owner(), &pb.ListFailedAttemptsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got = res.GetFailedAttempts(); len(got) >= 3 {
			break
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d failed attempts recorded, want 3: %v", len(got), got)
	}
	byTransport := map[string]*pb.FailedAttempt{}
	for _, a := range got {
		byTransport[a.GetTransport()] = a
		if a.GetSource() != "127.0.0.1" || a.GetTime() == nil || a.GetRequestId() == "" || a.GetReason() == "" {
			t.Errorf("incomplete record: %v", a)
		}
	}
	if a := byTransport["grpc"]; a == nil || a.GetRegistrationId() != "stranger-1" || a.GetCredential() != fingerprint(dev) {
		t.Errorf("gRPC refusal: %v", a)
	}
	if a := byTransport["dps-https"]; a == nil || a.GetRegistrationId() != "sym-x" || a.GetReason() != dpsAnswer.Info["reason"] || a.GetRequestId() != dpsAnswer.TrackingID {
		t.Errorf("DPS refusal: %v, answered %+v", a, dpsAnswer)
	}
	if byTransport["rest"] == nil {
		t.Error("no REST refusal")
	}
	// Filters and summaries.
	list := func(req *pb.ListFailedAttemptsRequest) int {
		t.Helper()
		res, err := cl.ListFailedAttempts(e.owner(), req)
		if err != nil {
			t.Fatal(err)
		}
		return len(res.GetFailedAttempts())
	}
	for name, c := range map[string]struct {
		req  *pb.ListFailedAttemptsRequest
		want int
	}{
		"registration ID, any case": {&pb.ListFailedAttemptsRequest{RegistrationId: "STRANGER-1"}, 2},
		"reason":                    {&pb.ListFailedAttemptsRequest{Reason: dpsAnswer.Info["reason"]}, 1},
		"loopback CIDR":             {&pb.ListFailedAttemptsRequest{Source: "127.0.0.0/8"}, 3},
		"IPv6 loopback":             {&pb.ListFailedAttemptsRequest{Source: "::1"}, 0},
	} {
		if n := list(c.req); n != c.want {
			t.Errorf("%s: %d, want %d", name, n, c.want)
		}
	}
	sum, err := cl.SummarizeFailedAttempts(e.owner(), &pb.SummarizeFailedAttemptsRequest{By: "registration_id"})
	if err != nil || len(sum.GetTotal()) != 2 || sum.GetTotal()[0].GetKey() != "stranger-1" || sum.GetTotal()[0].GetCount() != 2 || len(sum.GetHours()) == 0 {
		t.Fatalf("summary: %v %v", sum, err)
	}
	for _, bad := range []*pb.ListFailedAttemptsRequest{{Source: "not-an-ip"}, {PageToken: "zz"}, {RegistrationId: string(make([]byte, 200))}} {
		if _, err := cl.ListFailedAttempts(e.owner(), bad); reasonOf(t, err) != "FIELD_INVALID" {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if _, err := cl.SummarizeFailedAttempts(e.owner(), &pb.SummarizeFailedAttemptsRequest{By: "ip"}); reasonOf(t, err) != "FIELD_INVALID" {
		t.Errorf("summary by ip: %v", err)
	}
	// The CLI.
	if code, out := e.runCLI("failed-attempts", "list", "--source", "127.0.0.0/8", "--since", "1h", "-o", "json"); code != 0 || strings.Count(out, "stranger-1") != 2 {
		t.Errorf("failed-attempts list: exit %d\n%s", code, out)
	}
	if code, out := e.runCLI("failed-attempts", "summary", "--by", "reason"); code != 0 || !strings.Contains(out, dpsAnswer.Info["reason"]) {
		t.Errorf("failed-attempts summary: exit %d\n%s", code, out)
	}
	if code, out := e.runCLI("failed-attempts", "list", "--source", "nowhere"); code == 0 || !strings.Contains(out, "FIELD_INVALID") && !strings.Contains(out, "source") {
		t.Errorf("failed-attempts list --source nowhere: exit %d\n%s", code, out)
	}
	// RegistrationStatusRead.
	if _, err := cl.ListFailedAttempts(as(t.Context(), e.readerKey), &pb.ListFailedAttemptsRequest{}); reasonOf(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("EnrollmentRead key: %v", err)
	}
	regReader := e.newKey("reg-reader", access.RegistrationRead)
	if _, err := cl.ListFailedAttempts(as(t.Context(), regReader), &pb.ListFailedAttemptsRequest{}); err != nil {
		t.Fatalf("RegistrationStatusRead key: %v", err)
	}
}

// fingerprint is a device certificate's SHA-256, as the logs name it.
func fingerprint(d *pki.Issued) string { return enrollment.Thumbprint(d.Cert.Raw) }

// TestBulkItemsAreAudited: each item of a DPS bulk operation is one audit
// record, the refused ones included (found by review).
func TestBulkItemsAreAudited(t *testing.T) {
	e := start(t)
	keyID, key := e.newSASKey("svc", access.EnrollmentWrite, access.EnrollmentRead)
	a := e.serviceClient(keyID, key).call("POST", "/enrollments", `{"mode":"create","enrollments":[
		{"registrationId":"bulk-ok","attestation":{"type":"symmetricKey"}},
		{"registrationId":"bad id","attestation":{"type":"symmetricKey"}},
		{"registrationId":"bulk-x","attestation":{"type":"tpm"}}]}`)
	if a.code != 200 {
		t.Fatalf("bulk: %d %s", a.code, a.body)
	}
	res, err := pb.NewAuditServiceClient(e.admin).ListAuditRecords(e.owner(), &pb.ListAuditRecordsRequest{ActorId: keyID})
	if err != nil {
		t.Fatal(err)
	}
	done, refused := 0, 0
	for _, r := range res.GetRecords() {
		switch r.GetOutcome() {
		case "done":
			done++
		case "refused":
			refused++
		}
	}
	if done != 1 || refused != 2 {
		t.Fatalf("%d done, %d refused, want 1 and 2: %v", done, refused, res.GetRecords())
	}
}

// TestMQTTRefusalsAreRecorded: a CONNECT refused by the MQTT transport
// itself (a client ID that is not the username's registration ID) and one
// refused by provisioning (a SAS not signed by the enrollment's key) are
// both in the failed-attempt log, as transport dps-mqtt.
func TestMQTTRefusalsAreRecorded(t *testing.T) {
	e := start(t)
	if _, err := e.mqttConnect("mqtt-dev", make([]byte, 32), nil); err == nil {
		t.Fatal("a wrong key connected")
	}
	c, err := tls.Dial("tcp", e.mqttAddr, e.clientTLS(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := &mqttDevice{t: t, conn: c, r: bufio.NewReader(c)}
	if err := d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "someone-else",
			UsernameFlag: true, Username: []byte(mqttUsername("mqtt-dev"))}}); err != nil {
		t.Fatal(err)
	}
	if ack, err := d.read(); err != nil || ack.ReasonCode == 0 {
		t.Fatalf("CONNACK %+v %v", ack, err)
	}
	c.Close()
	reasons := map[string]string{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(reasons) < 2; time.Sleep(100 * time.Millisecond) {
		res, err := pb.NewFailedAttemptServiceClient(e.admin).ListFailedAttempts(e.owner(), &pb.ListFailedAttemptsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.GetFailedAttempts() {
			if a.GetTransport() == "dps-mqtt" && a.GetRequestId() != "" {
				reasons[a.GetRegistrationId()] = a.GetReason()
			}
		}
	}
	if reasons["mqtt-dev"] == "" || reasons["someone-else"] != "FIELD_INVALID" {
		t.Fatalf("MQTT refusals recorded: %v", reasons)
	}
}
