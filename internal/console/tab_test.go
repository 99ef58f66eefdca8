package console_test

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// stepTimeout bounds one browser step (a wait included): the console polls
// every 5 s, so a live change shows within two polls.
const stepTimeout = 30 * time.Second

// newBrowser starts headless Chromium as this machine allows it (no
// sandbox, no GPU, no QUIC, no background networking), trusting only the
// test server's key, in a fresh profile.
func newBrowser(t *testing.T, exe string, s *server) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", s.spki()),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one browser tab on the console, with what it did recorded: every
// request it made, and every script error or console error it logged.
type tab struct {
	t     *testing.T
	name  string
	ctx   context.Context
	shots string

	mu       sync.Mutex
	requests []*network.Request
	problems []string
}

func newTab(t *testing.T, parent context.Context, name, shots string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	b := &tab{t: t, name: name, ctx: ctx, shots: shots}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("exception %s (%s:%d)", text, d.URL, d.LineNumber))
		case *cdplog.EventEntryAdded:
			// A refused API call is logged by the browser as a failed
			// resource (source network); that is the console working.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				b.problems = append(b.problems, fmt.Sprintf("console %s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do runs actions, failing the test with what was being done. A node the
// page replaced between being found and being used (a re-render after a
// reload) is found again: the browser reports it before any event is
// dispatched, so nothing ran twice.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	for {
		err := chromedp.Do(ctx, actions...)
		if err == nil {
			return
		}
		if strings.Contains(err.Error(), "Could not find node with given id") && ctx.Err() == nil {
			continue
		}
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// eval evaluates a JavaScript expression (promises awaited).
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.name, expr, err)
	}
	return v
}

// waitFor waits until the expression is true.
func (b *tab) waitFor(what, expr string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(stepTimeout-time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
}

// waitText waits until an element matching sel contains text.
func (b *tab) waitText(sel, text string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("wait for %q in %s", text, sel),
		fmt.Sprintf(`[...document.querySelectorAll(%q)].some(e => e.textContent.includes(%q))`, sel, text))
}

// count is how many elements match sel.
func (b *tab) count(sel string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// nav follows a link of the console's navigation and waits for its page.
func (b *tab) nav(page, title string) {
	b.t.Helper()
	b.do("open "+page, chromedp.Click(chromedp.CSS(fmt.Sprintf(`nav a[href="#/%s"]`, page))))
	b.waitText("main h1", title)
}

// open opens a closed part of the page (a form to create something) by
// its title, as a user does: a click on its summary.
func (b *tab) open(title string) {
	b.t.Helper()
	b.do("open "+title, chromedp.Click(chromedp.CSS(fmt.Sprintf(`details[data-title=%q]:not([open]) > summary`, title))))
}

// fill sets form fields: pairs of CSS selector and value.
func (b *tab) fill(what string, pairs ...string) {
	b.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(pairs); i += 2 {
		actions = append(actions, chromedp.SetValue(chromedp.CSS(pairs[i]), pairs[i+1]))
	}
	b.do(what, actions...)
}

// submit clicks a form's submit button, the form named by its aria-label.
func (b *tab) submit(form string) {
	b.t.Helper()
	b.do("submit "+form, chromedp.Click(chromedp.CSS(fmt.Sprintf(`form[aria-label=%q] button[type=submit]`, form))))
}

// shot saves a full-page screenshot as NN-name.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.shots, fmt.Sprintf("%s-%s.png", b.name, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// noProblems fails on any script error the tab logged.
func (b *tab) noProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("%s: %s", b.name, p)
	}
	b.problems = nil
}

// crlPath is GetCrl's path: the overview reads the CRL of each CA of
// the page of CAs it read, and no more.
var crlPath = regexp.MustCompile(`^/v1/caCertificates/[^/]+/crl$`)

// checkRequests: the tab spoke only to the server; no URL carried an
// access key; every list call asked for one bounded page (the console
// never reads a collection whole); CRLs were read at most one per CA of
// the pages of CAs read.
func (b *tab) checkRequests(origin string) int {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	lists := map[string]bool{"/v1/shards": true, "/v1/caCertificates": true, "/v1/enrollmentGroups": true, "/v1/enrollments": true,
		"/v1/registrations": true, "/v1/failedAttempts": true, "/v1/auditRecords": true, "/v1/hubClusters": true, "/v1/accessKeys": true}
	n, crls, caRows := 0, 0, 0
	for _, r := range b.requests {
		u, err := url.Parse(r.URL)
		if err != nil {
			b.t.Errorf("%s: bad URL %q", b.name, r.URL)
			continue
		}
		if u.Scheme == "data" {
			continue
		}
		if u.Scheme+"://"+u.Host != origin {
			b.t.Errorf("%s: a request to another origin: %s", b.name, r.URL)
		}
		if strings.Contains(r.URL, "ztk.") {
			b.t.Errorf("%s: an access key in a URL: %s", b.name, r.URL)
		}
		if r.Method == "GET" && lists[u.Path] {
			n++
			size, err := strconv.Atoi(u.Query().Get("page_size"))
			if err != nil || size < 1 || size > 500 {
				b.t.Errorf("%s: list call without a bounded page: %s", b.name, r.URL)
			}
			if u.Path == "/v1/caCertificates" {
				caRows += size
			}
		}
		if r.Method == "GET" && crlPath.MatchString(u.Path) {
			crls++
		}
	}
	if crls > caRows {
		b.t.Errorf("%s: %d CRL reads for %d CA certificates listed: the overview must read at most one per CA it listed", b.name, crls, caRows)
	}
	return n
}

// a11yScript lists accessibility problems of the page as it is: controls
// without a label, buttons and links without a name, charts without a text
// alternative, tables without headers, duplicate IDs, not exactly one h1.
const a11yScript = `(() => {
  const problems = [];
  const named = (el) => {
    const l = (el.getAttribute('aria-label') || '').trim();
    if (l) return true;
    const by = el.getAttribute('aria-labelledby');
    return !!by && by.split(/\s+/).some((id) => (document.getElementById(id) || {}).textContent);
  };
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const labelled = (el.labels && [...el.labels].some((l) => l.textContent.trim() !== '')) || named(el);
    if (!labelled) problems.push('no label: ' + el.tagName.toLowerCase() + '[name=' + (el.name || '') + ']');
  }
  for (const el of document.querySelectorAll('button, a[href], [role=button]')) {
    if (!el.textContent.trim() && !named(el)) problems.push('no name: ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('svg')) {
    if (el.getAttribute('aria-hidden') !== 'true' && !(el.getAttribute('role') === 'img' && named(el))) problems.push('svg without a text alternative');
  }
  for (const t of document.querySelectorAll('table')) {
    if (!t.querySelector('caption') && !named(t)) problems.push('table without a caption');
    if (!t.querySelector('th[scope]')) problems.push('table without header cells');
  }
  for (const f of document.querySelectorAll('form, section')) {
    if (!named(f)) problems.push(f.tagName.toLowerCase() + ' without a name');
  }
  const ids = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (ids.has(el.id)) problems.push('duplicate id ' + el.id);
    ids.add(el.id);
  }
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) problems.push(h1 + ' h1 elements');
  if (!document.documentElement.lang) problems.push('no lang on html');
  if (!document.title) problems.push('no title');
  return problems;
})()`

// a11y fails on the page's accessibility problems.
func (b *tab) a11y(page string) {
	b.t.Helper()
	for _, p := range eval[[]string](b, a11yScript) {
		b.t.Errorf("%s: %s page: %s", b.name, page, p)
	}
}

// tabWalk presses Tab up to n times from the top of the page and returns
// what got focus, each as "tag|text|focus-ring": the text is the
// element's label or text, focus-ring whether an outline shows.
func (b *tab) tabWalk(n int) []string {
	b.t.Helper()
	// Focusing the body (made focusable for a moment) moves the browser's
	// sequential focus starting point to the top of the page.
	b.do("focus the top", chromedp.Evaluate[chromedp.Void](`(() => { window.scrollTo(0, 0); document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex'); })()`))
	var out []string
	for i := 0; i < n; i++ {
		b.do("press Tab", chromedp.KeyEvent(kb.Tab))
		out = append(out, eval[string](b, `(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return 'body||';
  const cs = getComputedStyle(el);
  const ring = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0;
  const text = (el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].textContent) || el.textContent || el.name || '').trim().slice(0, 40);
  return el.tagName.toLowerCase() + '|' + text + '|' + ring;
})()`))
	}
	return out
}

// reaches checks that the Tab walk focused each of want (tag|text
// prefixes), each with a visible focus ring.
func (b *tab) reaches(page string, walk []string, want ...string) {
	b.t.Helper()
	for _, w := range want {
		found := false
		for _, got := range walk {
			if strings.HasPrefix(got, w) {
				found = true
				if !strings.HasSuffix(got, "|true") {
					b.t.Errorf("%s: %s page: %s has no visible focus ring", b.name, page, got)
				}
			}
		}
		if !found {
			b.t.Errorf("%s: %s page: Tab never reaches %q; it went %q", b.name, page, w, walk)
		}
	}
}

// contrastScript reads the computed foreground and (effective) background
// colours of the console's main kinds of text.
const contrastScript = `(() => {
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (c && c !== 'transparent' && !/rgba\(.*,\s*0\)$/.test(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const sels = ['body', 'main h1', 'main p', 'nav a:not([aria-current])', 'nav a[aria-current=page]', 'nav span.muted', 'header.top', 'header.top .who .muted', '.btn.primary', '.btn.danger',
    'button.btn:not(.primary):not(.danger)', '.badge.ok', '.badge.warn', '.badge.off', '.badge.bad', 'main .muted', '.hint', 'table.data th', 'table.data td',
    '.error', '.once', 'svg.chart .axis', 'label', 'input', 'code.secret'];
  const out = [];
  for (const s of sels) {
    const el = document.querySelector(s);
    if (!el) continue;
    const cs = getComputedStyle(el);
    out.push([s, s === 'svg.chart .axis' ? cs.fill : cs.color, bg(el)]);
  }
  return out;
})()`

var rgbRe = regexp.MustCompile(`rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)`)

// luminance is WCAG 2's relative luminance of a CSS rgb() colour.
func luminance(css string) (float64, bool) {
	m := rgbRe.FindStringSubmatch(css)
	if m == nil {
		return 0, false
	}
	var l [3]float64
	for i := range l {
		v, _ := strconv.ParseFloat(m[i+1], 64)
		v /= 255
		if v <= 0.04045 {
			l[i] = v / 12.92
		} else {
			l[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2], true
}

// contrastRatio is WCAG 2's contrast ratio of two colours.
func contrastRatio(a, b string) (float64, bool) {
	la, ok1 := luminance(a)
	lb, ok2 := luminance(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05), true
}

// contrast checks that the page's main colour pairs have a contrast of at
// least 4.5:1 (WCAG 2 AA for normal text) and returns which it measured.
func (b *tab) contrast(page string) map[string]float64 {
	b.t.Helper()
	out := map[string]float64{}
	for _, c := range eval[[][]string](b, contrastScript) {
		r, ok := contrastRatio(c[1], c[2])
		if !ok {
			b.t.Errorf("%s: %s page: cannot read the colours of %s: %q on %q", b.name, page, c[0], c[1], c[2])
			continue
		}
		out[c[0]] = r
		if r < 4.5 {
			b.t.Errorf("%s: %s page: %s has contrast %.2f:1 (%s on %s), want at least 4.5:1", b.name, page, c[0], r, c[1], c[2])
		}
	}
	return out
}
