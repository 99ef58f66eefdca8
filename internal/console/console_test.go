package console_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/zerotouch/zerotouch/internal/config"
	"github.com/zerotouch/zerotouch/internal/console"
)

// TestServesAssetsWithStrictHeaders: the shell and every asset are served
// from the binary with the security headers; the shell is never stored,
// assets revalidate by etag; nothing else is served and nothing but GET
// and HEAD is answered.
func TestServesAssetsWithStrictHeaders(t *testing.T) {
	h, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	want := map[string]string{
		"Content-Security-Policy": console.ContentSecurityPolicy,
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	for _, p := range append(h.Paths(), console.Prefix) {
		res := get(p)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, res.StatusCode)
			continue
		}
		for k, v := range want {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", p, k, got, v)
			}
		}
		ct := res.Header.Get("Content-Type")
		switch {
		case strings.HasSuffix(p, ".js") && !strings.HasPrefix(ct, "text/javascript"),
			strings.HasSuffix(p, ".css") && !strings.HasPrefix(ct, "text/css"),
			p == console.Prefix && !strings.HasPrefix(ct, "text/html"):
			t.Errorf("%s: Content-Type %q", p, ct)
		}
		cc := res.Header.Get("Cache-Control")
		if p == console.Prefix && cc != "no-store" || p != console.Prefix && !strings.HasSuffix(p, "index.html") && cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q", p, cc)
		}
		if res.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s sets a cookie", p)
		}
		if etag := res.Header.Get("ETag"); etag == "" {
			t.Errorf("%s: no etag", p)
		} else if again := get(p, "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its etag: %d, want 304", p, again.StatusCode)
		}
	}
	for _, p := range []string{console.Prefix + "nope.js", console.Prefix + "js/../index.html", console.Prefix + "js/", "/elsewhere"} {
		if res := get(p); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
	}
	res, err := http.Post(srv.URL+console.Prefix, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

// TestAssetsKeepTheRules reads the embedded sources: no inline script or
// handler in the HTML, nothing loaded from elsewhere, no API that parses
// markup or stores anything in the browser, and every module import
// resolves to an embedded file.
func TestAssetsKeepTheRules(t *testing.T) {
	root := filepath.Join("assets")
	forbidden := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage",
		"sessionStorage", "indexedDB", "document.cookie", "setAttribute('style'", "createContextualFragment", "DOMParser"}
	importRe := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'";]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'`)
	h, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	served := h.Paths()
	n := 0
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(raw)
		rel, _ := filepath.Rel(root, p)
		n++
		if regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).MatchString(src) || regexp.MustCompile(`url\(\s*['"]?(https?:)?//`).MatchString(src) ||
			regexp.MustCompile(`@import`).MatchString(src) {
			t.Errorf("%s loads something from elsewhere", rel)
		}
		switch filepath.Ext(p) {
		case ".html":
			for _, m := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(src, -1) {
				if !strings.Contains(m, `src=`) {
					t.Errorf("%s has an inline script: %s", rel, m)
				}
			}
			if regexp.MustCompile(`(?i)\son[a-z]+\s*=`).MatchString(src) || strings.Contains(src, "style=") || strings.Contains(src, "<style") {
				t.Errorf("%s has an inline handler or style", rel)
			}
		case ".js":
			for _, f := range forbidden {
				if strings.Contains(src, f) {
					t.Errorf("%s uses %s", rel, f)
				}
			}
			for _, m := range importRe.FindAllStringSubmatch(src, -1) {
				target := m[1] + m[2]
				resolved := filepath.ToSlash(filepath.Join("/console", filepath.Dir(rel), target))
				if !slices.Contains(served, resolved) {
					t.Errorf("%s imports %s, which is not served (%s)", rel, target, resolved)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d assets", n)
	}
}

// TestServedByTheServer: the real server serves the console under
// /console/ on its REST listener (through its middleware, so with request
// IDs) and sends / there; with console.enabled false neither exists.
func TestServedByTheServer(t *testing.T) {
	for _, on := range []bool{true, false} {
		s := startServer(t, func(c *config.Config) { c.Console.Enabled = on })
		client := &http.Client{
			Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots, ServerName: "localhost"}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		res, err := client.Get(s.url + "/console/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		served := res.StatusCode == http.StatusOK && strings.Contains(string(body), `<script type="module" src="js/app.js">`)
		if served != on || on && (res.Header.Get("X-Request-Id") == "" || res.Header.Get("Content-Security-Policy") == "") {
			t.Errorf("console.enabled %v: GET /console/ %d, served %v", on, res.StatusCode, served)
		}
		res, err = client.Get(s.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if redirected := res.StatusCode == http.StatusFound && res.Header.Get("Location") == "/console/"; redirected != on {
			t.Errorf("console.enabled %v: GET / %d %q", on, res.StatusCode, res.Header.Get("Location"))
		}
	}
}

// TestContrastRatio: the test's WCAG arithmetic, on known pairs.
func TestContrastRatio(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"rgb(0, 0, 0)", "rgb(255, 255, 255)", 21},
		{"rgb(119, 119, 119)", "rgb(255, 255, 255)", 4.48},
		{"rgba(10, 20, 30, 1)", "rgb(10, 20, 30)", 1},
	} {
		got, ok := contrastRatio(c.a, c.b)
		if !ok || got < c.want-0.01 || got > c.want+0.01 {
			t.Errorf("%s on %s: %.3f %v, want %.2f", c.a, c.b, got, ok, c.want)
		}
	}
	if _, ok := contrastRatio("red", "rgb(0, 0, 0)"); ok {
		t.Error("a named colour was read")
	}
}
