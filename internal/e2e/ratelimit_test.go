package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/zerotouch/zerotouch/internal/ratelimit"
)

// TestRateLimits: a device re-registering too often, and an address
// sending too many requests, are answered RATE_LIMITED with a retry hint;
// a refused request writes nothing.
func TestRateLimits(t *testing.T) {
	e := startWith(t, options{limiter: &ratelimit.Limiter{Counter: &ratelimit.Memory{}, Now: time.Now,
		PerIP:           ratelimit.Rule{Limit: 6, Window: time.Hour},
		PerRegistration: ratelimit.Rule{Limit: 2, Window: time.Hour}}})
	f := e.newFleet()
	dev := f.device(t, "dev-chatty")
	for i := range 2 {
		if _, err := e.registerGRPC("dev-chatty", dev, f.inter.Cert); err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	_, err := e.registerGRPC("dev-chatty", dev, f.inter.Cert)
	if codeOf(err) != codes.ResourceExhausted || reasonOf(t, err) != "RATE_LIMITED" {
		t.Fatalf("third registration of one device: %v", err)
	}
	// Three requests so far from this address; three more are allowed.
	for i := range 3 {
		id := []string{"dev-a", "dev-b", "dev-c"}[i]
		if _, err := e.registerREST(id, f.device(t, id), f.inter.Cert); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	late := f.device(t, "dev-late")
	tr := &http.Transport{TLSClientConfig: e.clientTLS(late, f.inter.Cert)}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Post("https://"+e.httpAddr+"/v1/registrations/dev-late:register", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("seventh request from one address: %s, Retry-After %q", res.Status, res.Header.Get("Retry-After"))
	}
	e.assertNoRegistration("dev-late")
}
