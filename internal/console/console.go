// Package console serves Zerotouch's web console: static pages (HTML, CSS
// and JavaScript modules, embedded in the binary, with no build step and
// nothing fetched from elsewhere) that an operator signs in to with an
// access key. The pages call the public REST API (/v1/...) with that key as
// a bearer token, so the console can do nothing the key cannot; the key is
// kept in the page's memory only (no cookie, no storage, never in a URL).
//
// This package holds no state, reads no store and calls no use case: it
// serves files, with headers that keep the pages from being framed,
// sniffed, cached with data, or made to run script from anywhere but the
// console itself (a strict Content-Security-Policy). It must not import
// the API, a store or a use case. docs/console.md describes the pages.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is every console response's policy: scripts,
// styles, images and API calls from this origin only, no inline script or
// style, no plugins, no framing, forms posting nowhere else.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded asset, ready to serve.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the console under Prefix: the pages' shell at Prefix
// itself and the assets under it. Anything else under Prefix is 404; only
// GET and HEAD are answered.
type Handler struct {
	files map[string]file
}

// New reads the embedded assets once.
func New() (*Handler, error) {
	h := &Handler{files: map[string]file{}}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			// JavaScript modules must be served as JavaScript; the
			// system's MIME table may lack or misname it.
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".html":
			ctype = "text/html; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		h.files[p] = file{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Paths lists the served paths (under Prefix), for tests.
func (h *Handler) Paths() []string {
	out := make([]string, 0, len(h.files))
	for p := range h.files {
		out = append(out, Prefix+p)
	}
	return out
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	f, ok := h.files[name]
	if !ok || name != path.Clean(name) {
		http.NotFound(w, r)
		return
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	if name == "index.html" {
		// The shell is never stored; the assets are revalidated (by
		// etag) on every load, so that an upgraded server serves its own.
		hd.Set("Cache-Control", "no-store")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
