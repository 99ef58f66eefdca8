// Package dpsclient calls a DPS service API (Azure DPS's, or Zerotouch's
// internal/dpsservice) as the Azure service SDKs do, and copies
// enrollments from one to another: the client side of `zerotouch
// dps-import` (docs/dps.md, ADR 10). It is part of the command line, not
// of the server.
package dpsclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/apierr"
)

// maxAnswer bounds an answer read (a page of 1,000 enrollments fits).
const maxAnswer = 4 << 20

// Client calls a DPS service API with a SAS token signed with a shared
// access policy key, made fresh for every request.
type Client struct {
	// Host is HostName from the connection string; it may carry a port
	// (the SAS resource is the host without it).
	Host    string
	KeyName string
	Key     []byte
	HTTP    *http.Client
}

// New parses a connection string
// "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…".
func New(connectionString string, hc *http.Client) (*Client, error) {
	parts := map[string]string{}
	for _, kv := range strings.Split(connectionString, ";") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("connection string: %q is not key=value", kv)
		}
		parts[k] = v
	}
	c := &Client{Host: parts["HostName"], KeyName: parts["SharedAccessKeyName"], HTTP: hc}
	if c.Host == "" || c.KeyName == "" || parts["SharedAccessKey"] == "" {
		return nil, fmt.Errorf("connection string needs HostName, SharedAccessKeyName and SharedAccessKey")
	}
	var err error
	if c.Key, err = base64.StdEncoding.DecodeString(parts["SharedAccessKey"]); err != nil {
		return nil, fmt.Errorf("connection string: SharedAccessKey is not base64")
	}
	return c, nil
}

// APIError is a DPS error answer.
type APIError struct {
	Status int
	Body   apierr.DPSErrorBody
	Raw    string
}

func (e *APIError) Error() string {
	if e.Body.Message != "" {
		if r := e.Body.Info["reason"]; r != "" {
			return fmt.Sprintf("%d %s: %s", e.Status, r, e.Body.Message)
		}
		return fmt.Sprintf("%d (%d): %s", e.Status, e.Body.ErrorCode, e.Body.Message)
	}
	return fmt.Sprintf("%d: %s", e.Status, e.Raw)
}

// Do sends one request; body (if not nil) is sent as JSON and a 2xx answer
// is decoded into out (if not nil). hdr is name, value pairs.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, hdr ...string) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.Host+path+"?api-version=2021-10-01", rd)
	if err != nil {
		return nil, err
	}
	resource := c.Host
	if h, _, err := net.SplitHostPort(c.Host); err == nil {
		resource = h
	}
	req.Header.Set("Authorization", symkey.Sign(c.Key, resource, time.Now().Add(time.Hour), c.KeyName))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 != 2 {
		e := &APIError{Status: res.StatusCode, Raw: string(raw)}
		_ = json.Unmarshal(raw, &e.Body)
		return res.Header, e
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.Header, fmt.Errorf("%s %s: the answer is not the expected JSON: %w", method, path, err)
		}
	}
	return res.Header, nil
}
