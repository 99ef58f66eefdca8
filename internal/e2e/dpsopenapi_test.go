package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestDPSOpenAPIDocument: /openapi-dps.json documents the DPS-compatible
// device and service APIs. Every documented operation reaches a handler
// of the real server (an unrouted one answers PATH_NOT_FOUND or
// METHOD_NOT_ALLOWED, as the undocumented probe below shows), every
// reference resolves, and the shapes carry what the code sends and takes.
func TestDPSOpenAPIDocument(t *testing.T) {
	e := start(t)
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	res, err := client.Get("https://" + e.httpAddr + "/openapi-dps.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var doc struct {
		Swagger string                                `json:"swagger"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Defs    map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Swagger != "2.0" || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("document: %v, swagger %q", err, doc.Swagger)
	}
	for _, ref := range strings.Split(string(raw), `"$ref": "#/definitions/`)[1:] {
		name := ref[:strings.IndexByte(ref, '"')]
		if _, ok := doc.Defs[name]; !ok {
			t.Errorf("$ref to a missing definition %q", name)
		}
	}
	for def, field := range map[string]string{"DeviceRegistration": "csr", "DeviceRegistrationResult": "issuedCertificateChain",
		"IndividualEnrollment": "credentialPolicyName", "EnrollmentGroup": "reprovisionPolicy", "ProvisioningServiceErrorDetails": "errorCode"} {
		if _, ok := doc.Defs[def].Properties[field]; !ok {
			t.Errorf("definition %s has no %s", def, field)
		}
	}
	probe := func(method, path string) (int, string) {
		req, _ := http.NewRequest(strings.ToUpper(method), "https://"+e.httpAddr+path+"?api-version=2021-10-01", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	unrouted := func(code int, body string) bool {
		return strings.Contains(body, "PATH_NOT_FOUND") || strings.Contains(body, "METHOD_NOT_ALLOWED") || code == http.StatusMethodNotAllowed ||
			strings.Contains(body, "no such operation: ")
	}
	values := strings.NewReplacer("{idScope}", idScope, "{registrationId}", "doc-probe", "{enrollmentGroupId}", "doc-group", "{operationId}", "0.abc")
	n := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			n++
			code, body := probe(method, values.Replace(path))
			if unrouted(code, body) {
				t.Errorf("%s %s is documented but not routed: %d %s", method, path, code, body)
			}
		}
	}
	if n < 17 {
		t.Fatalf("only %d operations documented", n)
	}
	if code, body := probe("patch", "/enrollments/doc-probe"); !unrouted(code, body) {
		t.Fatalf("the undocumented probe was routed: %d %s", code, body)
	}
}
