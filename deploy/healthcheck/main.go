// Command zerotouch-healthcheck is the container image's HEALTHCHECK. The
// image (distroless) has no shell and no curl, and `zerotouch` has no health
// subcommand, so this asks the server's own REST listener on loopback for
// /readyz (ready: the store answers) and exits 0 on 200, 1 otherwise.
//
// The listener is read from ZEROTOUCH_LISTEN_HTTP, as `zerotouch serve`
// reads it (default 127.0.0.1:8443; a wildcard host means loopback);
// ZEROTOUCH_HEALTH_URL overrides the whole URL. The check sends nothing
// secret and talks to its own container, so it does not verify the
// server's certificate (whose names are the service's, not 127.0.0.1).
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if err := check(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "zerotouch-healthcheck:", err)
		os.Exit(1)
	}
}

// target is the URL to ask.
func target(getenv func(string) string) (string, error) {
	if u := getenv("ZEROTOUCH_HEALTH_URL"); u != "" {
		return u, nil
	}
	addr := getenv("ZEROTOUCH_LISTEN_HTTP")
	if addr == "" {
		addr = "127.0.0.1:8443"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("ZEROTOUCH_LISTEN_HTTP %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port) + "/readyz", nil
}

func check(getenv func(string) string) error {
	url, err := target(getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback, nothing secret sent
	}}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return nil
}
