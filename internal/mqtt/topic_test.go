package mqtt

import (
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		want  dpsRequest
		ok    bool
	}{
		{registerTopic + "?$rid=1", dpsRequest{op: opRegister, rid: "1"}, true},
		{registerTopic + "?$rid=8a1f4e2c-6d7b-4c1e-9f00-3b2a1c0d9e8f", dpsRequest{op: opRegister, rid: "8a1f4e2c-6d7b-4c1e-9f00-3b2a1c0d9e8f"}, true},
		{pollTopic + "?$rid=2&operationId=0.abc_-", dpsRequest{op: opPoll, rid: "2", operationID: "0.abc_-"}, true},
		{pollTopic + "?operationId=4.a%2Bb&$rid=3", dpsRequest{op: opPoll, rid: "3", operationID: "4.a+b"}, true},
		{topicPrefix + "POST/iotdps-register/?$rid=4", dpsRequest{op: opUnknown, rid: "4"}, true},
		{registerTopic, dpsRequest{op: opRegister}, false},
		{registerTopic + "?$rid=", dpsRequest{op: opRegister}, false},
		{registerTopic + "?$rid=a/b", dpsRequest{op: opRegister}, false},
		{registerTopic + "?$rid=" + strings.Repeat("r", maxRIDLength+1), dpsRequest{op: opRegister}, false},
		{registerTopic + "?$rid=a b", dpsRequest{op: opRegister}, false},
	} {
		got, ok := parseTopic(tc.topic)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseTopic(%q) = %+v %v, want %+v %v", tc.topic, got, ok, tc.want, tc.ok)
		}
	}
}

// An answer's topic, whatever the request's topic was, parses as Node's
// transport parses it, back to the request's rid, and carries no MQTT
// wildcard.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{registerTopic + "?$rid=1", pollTopic + "?$rid=2&operationId=0.x", "$dps/registrations/?$rid=&$rid=x", "?&=&$rid=%zz", registerTopic + "?$rid=+#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		req, ok := parseTopic(topic)
		if ok != validRID(req.rid) || !ok && req.rid != "" {
			t.Fatalf("ok %v with rid %q", ok, req.rid)
		}
		answer := responsePrefix + "200/?$rid=" + req.rid + "&retry-after=3"
		if strings.ContainsAny(answer, "#+\x00") {
			t.Fatalf("answer topic %q holds a wildcard or NUL", answer)
		}
		rest, _ := strings.CutPrefix(answer, responsePrefix)
		_, query, found := strings.Cut(rest, "/?")
		q, err := url.ParseQuery(query)
		if !found || err != nil || q.Get("$rid") != req.rid || q.Get("retry-after") != "3" {
			t.Fatalf("answer topic %q does not parse back to rid %q: %v", answer, req.rid, err)
		}
	})
}

func TestParseUsername(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want username
		ok   bool
	}{
		{"0ne00000001/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1",
			username{idScope: "0ne00000001", regID: "dev-1", apiVersion: "2019-03-31", clientVersion: "azure-iot-provisioning-device%2F1.9.1"}, true},
		{"0ne00000001/registrations/dev-1/api-version=2019-03-31&ClientVersion=1.3.5", username{idScope: "0ne00000001", regID: "dev-1", apiVersion: "2019-03-31", clientVersion: "1.3.5"}, true},
		{"0ne00000001/registrations/dev-1/api-version=2021-06-01&ClientVersion=c/sdk/1.0", username{idScope: "0ne00000001", regID: "dev-1", apiVersion: "2021-06-01", clientVersion: "c/sdk/1.0"}, true},
		{"0ne00000001/registrations/dev-1/api-version=2019-03-31", username{idScope: "0ne00000001", regID: "dev-1", apiVersion: "2019-03-31"}, true},
		{"0ne00000001/registrations/dev-1", username{idScope: "0ne00000001", regID: "dev-1"}, true},
		{"0ne00000001/registrations/", username{}, false},
		{"0ne00000001/devices/dev-1/api-version=2019-03-31", username{}, false},
		{"/registrations/dev-1", username{}, false},
		{"dev-1", username{}, false},
		{"", username{}, false},
	} {
		got, err := parseUsername(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseUsername(%q) = %+v %v", tc.in, got, err)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	f.Add("0ne00000001/registrations/dev-1/api-version=2019-03-31&ClientVersion=x")
	f.Add("a/registrations/b")
	f.Add("//registrations//")
	f.Fuzz(func(t *testing.T, in string) {
		u, err := parseUsername(in)
		if err != nil {
			return
		}
		if u.idScope == "" || u.regID == "" || strings.Contains(u.idScope, "/") || strings.Contains(u.regID, "/") ||
			!strings.HasPrefix(in, u.idScope+"/registrations/"+u.regID) {
			t.Fatalf("parseUsername(%q) = %+v", in, u)
		}
	})
}

// The operation IDs are those of the HTTPS API: an assigning one names
// its registration and deadline, and only that registration can use it.
func TestAssigningOperationID(t *testing.T) {
	deadline := time.Unix(1_900_000_000, 0)
	id := dpsdevice.AssigningOperationID("Dev-1", deadline)
	if id != "0.assigning.RGV2LTF8MTkwMDAwMDAwMA" {
		t.Fatalf("the HTTPS API's format changed: %s", id)
	}
	if got, ok := dpsdevice.ParseAssigningOperationID(id, "dev-1"); !ok || !got.Equal(deadline) {
		t.Fatalf("round trip: %v %v", got, ok)
	}
	for _, bad := range []struct{ op, reg string }{{id, "dev-2"}, {"0.assigning.%%%", "dev-1"}, {"0.assigning.", "dev-1"}, {"0.other", "dev-1"}} {
		if _, ok := dpsdevice.ParseAssigningOperationID(bad.op, bad.reg); ok {
			t.Errorf("parsed %q for %q", bad.op, bad.reg)
		}
	}
}
