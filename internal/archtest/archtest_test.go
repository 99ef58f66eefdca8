package archtest

import (
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/zerotouch/zerotouch"

// A layer is a ring of the architecture (DESIGN.md §2, STYLE.md §1).
type layer string

const (
	kernel    layer = "kernel"
	domain    layer = "domain"
	support   layer = "support"
	service   layer = "service"
	usecase   layer = "use case"
	store     layer = "store"
	api       layer = "api"
	transport layer = "transport"
	config    layer = "config"
	telemetry layer = "telemetry"
	client    layer = "client"
	tool      layer = "tool"
	wiring    layer = "wiring"
	tests     layer = "tests"
)

// layerOf puts every package of the module into its layer by path prefix,
// relative to the module and matched by whole path elements
// ("internal/cli" covers internal/cli and internal/cli/dpsclient, not
// internal/clix); the longest matching prefix wins. A package that matches
// none fails TestEveryPackageHasALayer: add it here, to the layer whose
// rules it must keep. A prefix that matches no package fails
// TestEveryPrefixHasAPackage.
var layerOf = map[string]layer{
	// kernel: the error kinds and reasons every layer speaks. Standard
	// library only.
	"internal/fault": kernel,

	// domain: enrollments, attestation mechanisms, allocation policies.
	// The standard library, crypto libraries, the kernel and one another;
	// no transport, store, API or other internal package.
	"enrollment":  domain,
	"attestation": domain,
	"allocation":  domain,

	// support: leaf libraries that know nothing of Zerotouch's records
	// (certificate minting). Standard library and crypto only.
	"internal/pki": support,
	// Bounded line reading (import files, NDJSON bodies).
	"internal/lines": support,

	// service: the application's own records and policies that use cases,
	// transports and stores share (registry identities and their store
	// interface, access keys, sealed secrets, rate limits). They see stores
	// only as interfaces and never speak gRPC.
	"internal/registry":  service,
	"internal/access":    service,
	"internal/secrets":   service,
	"internal/ratelimit": service,
	"internal/audit":     service,
	"internal/attempts":  service,
	"internal/ipfilter":  service,
	"internal/issuance":  service,
	// Revocation of manufacturer certificates: CRLs and OCSP (ADR 23).
	"internal/revocation": service,

	// use case: the flows that drive the domain (registration, the
	// operator use cases). Stores only as interfaces, no gRPC or API types,
	// and no use case calls another.
	"internal/provisioning": usecase,
	"internal/admin":        usecase,

	// store: the backends that implement the interfaces the domain and the
	// services own, their record types, the conformance suite and its
	// helpers. They never import a transport or the API.
	"internal/storage": store,

	// api: the generated protobuf, gRPC and gateway code of the public
	// API. It imports no other package of the module.
	"proto": api,

	// transport: the adapters that turn wire requests into use case calls
	// (gRPC, REST gateway, the DPS-compatible APIs) and the one error
	// boundary that renders errors for every wire. They never import a
	// store.
	"internal/server":     transport,
	"internal/dpsdevice":  transport,
	"internal/dpsservice": transport,
	"internal/apierr":     transport,
	"internal/mqtt":       transport,
	// The web console's embedded pages (they call the API over HTTP, as
	// any client; the Go side only serves files).
	"internal/console": transport,

	// config: the configuration schema and its validation. Domain values
	// only; it builds nothing.
	"internal/config": config,

	// telemetry: the Prometheus metrics. It implements the observers the
	// use cases declare and wraps their store interfaces; only the wiring
	// imports it, so no use case, transport or store depends on Prometheus
	// (whose exposition format brings protobuf).
	"internal/metrics": telemetry,

	// client: public libraries for the other side of the API, embedded by
	// hubs outside this module. They depend on the public API only, never
	// on an internal package.
	"hubclient": client,

	// tool: internal code that runs on the other side of the API (the load
	// generator, the device side of TPM, the container image's health
	// check). Domain, support, API and clients; no use case, store or
	// transport.
	"internal/bench":     tool,
	"internal/tpmdevice": tool,
	"deploy/healthcheck": tool,

	// wiring: the one place stores and transports meet (internal/app), and
	// the commands built on it. Anything.
	"cmd":          wiring,
	"internal/app": wiring,
	"internal/cli": wiring,
	// The scale benchmark seeds stores directly and spawns servers.
	"internal/scale": wiring,

	// tests: packages with only tests. Anything (test imports are not
	// checked in any layer).
	"internal/e2e":        tests,
	"internal/archtest":   tests,
	"internal/deploytest": tests,
}

// Third-party families the rules name. A prefix matches whole path
// elements: "github.com/google/go-tpm" does not cover go-tpm-tools (the
// simulator).
var (
	grpcAndAPI   = []string{"google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto", "github.com/grpc-ecosystem/grpc-gateway"}
	storeEngines = []string{"go.etcd.io/bbolt", "github.com/redis/go-redis"}
	cryptoLibs   = []string{"golang.org/x/crypto", "golang.org/x/sys", "github.com/google/go-tpm"}
	// grpcOnly is gRPC and the gateway without protobuf, which Prometheus's
	// client brings.
	grpcOnly = []string{"google.golang.org/grpc", "google.golang.org/genproto", "github.com/grpc-ecosystem/grpc-gateway"}
)

// A rule says what a layer's packages may import, transitively and
// outside tests. The standard library is always allowed.
type rule struct {
	// may lists the layers of this module, besides its own, that the
	// layer may import.
	may []layer
	// apart: the layer's packages do not import one another (by default
	// they may).
	apart bool
	// thirdParty says which packages outside the module and the standard
	// library it may import.
	thirdParty thirdParty
}

// thirdParty is an allowlist (only) or a denylist (refuse) of import
// path prefixes outside the module and the standard library.
type thirdParty struct {
	allowlist bool
	prefixes  []string // matched by whole path elements
}

// only allows these and nothing else; only() allows none.
func only(prefixes ...string) thirdParty { return thirdParty{allowlist: true, prefixes: prefixes} }

// refuse allows everything but these families.
func refuse(families ...[]string) thirdParty { return thirdParty{prefixes: slices.Concat(families...)} }

var anyThirdParty = refuse()

var everyLayer = []layer{kernel, domain, support, service, usecase, store, api, transport, config, telemetry, client, tool, wiring, tests}

// rules are the allowed directions, one per layer; TestRulesKeepTheDesign
// pins the ones the design fixes.
var rules = map[layer]rule{
	kernel:    {thirdParty: only()},
	domain:    {may: []layer{kernel}, thirdParty: only(cryptoLibs...)},
	support:   {may: []layer{kernel}, thirdParty: only(cryptoLibs...)},
	service:   {may: []layer{kernel, domain}, thirdParty: refuse(grpcAndAPI, storeEngines)},
	usecase:   {may: []layer{kernel, domain, support, service}, apart: true, thirdParty: refuse(grpcAndAPI, storeEngines)},
	store:     {may: []layer{kernel, domain, service}, thirdParty: refuse(grpcAndAPI)},
	api:       {thirdParty: refuse(storeEngines)},
	transport: {may: []layer{kernel, domain, support, service, usecase, api}, thirdParty: refuse(storeEngines)},
	config:    {may: []layer{kernel, domain}, thirdParty: refuse(grpcAndAPI, storeEngines)},
	telemetry: {may: []layer{kernel, domain, service, usecase}, thirdParty: refuse(storeEngines, grpcOnly)},
	client:    {may: []layer{api}, thirdParty: refuse(storeEngines)},
	tool:      {may: []layer{kernel, domain, support, api, client}, thirdParty: refuse(storeEngines)},
	wiring:    {may: everyLayer, thirdParty: anyThirdParty},
	tests:     {may: everyLayer, thirdParty: anyThirdParty},
}

// An edge is an import, direct or not, that breaks a rule: the importing
// package and what it reaches (a package of the module, or a third-party
// module), both relative to the module where they are in it.
type edge struct{ from, to string }

// knownViolations break a rule today and are to be fixed; each names what
// fixes it. An entry that no longer occurs fails TestImportDirections, so
// the list only shrinks.
var knownViolations = map[edge]string{}

// within reports whether path is prefix or below it, by whole path
// elements.
func within(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// rel returns a module package's path relative to the module, and whether
// it is in the module.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// classify returns the layer of a package of the module (by its path
// relative to the module): the layer of the longest prefix that matches.
func classify(relPath string) (layer, bool) {
	best, found := "", false
	for prefix := range layerOf {
		if within(relPath, prefix) && (!found || len(prefix) > len(best)) {
			best, found = prefix, true
		}
	}
	return layerOf[best], found
}

// allows reports whether a third-party package may be imported.
func (tp thirdParty) allows(path string) bool {
	matched := slices.ContainsFunc(tp.prefixes, func(p string) bool { return within(path, p) })
	return matched == tp.allowlist
}

// A pkg is one line of `go list -deps ./...`.
type pkg struct {
	path     string
	standard bool
	listed   bool   // matched by ./..., not only a dependency
	module   string // its module's path; "" in the standard library
	imports  []string
	deps     []string // `go list -deps` of the package: transitive, no test imports
}

// load lists the module's packages (`go list ./...` from the module root)
// and everything they import outside tests, once for every test.
var load = sync.OnceValues(func() (map[string]*pkg, error) {
	root, err := goList("", "list", "-m", "-f", "{{.Dir}}", module)
	if err != nil {
		return nil, err
	}
	const sep = "\x1f"
	out, err := goList(strings.TrimSpace(root), "list", "-deps", "-f",
		strings.Join([]string{"{{.ImportPath}}", "{{.Standard}}", "{{.DepOnly}}", "{{with .Module}}{{.Path}}{{end}}", `{{join .Imports " "}}`, `{{join .Deps " "}}`}, sep),
		"./...")
	if err != nil {
		return nil, err
	}
	pkgs := map[string]*pkg{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, sep)
		if len(f) != 6 {
			return nil, fmt.Errorf("go list: unexpected line %q", line)
		}
		pkgs[f[0]] = &pkg{path: f[0], standard: f[1] == "true", listed: f[2] == "false", module: f[3],
			imports: strings.Fields(f[4]), deps: strings.Fields(f[5])}
	}
	return pkgs, nil
})

func goList(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// modulePackages returns the module's packages (those `go list ./...`
// lists), sorted.
func modulePackages(t *testing.T) (map[string]*pkg, []*pkg) {
	t.Helper()
	pkgs, err := load()
	if err != nil {
		t.Fatal(err)
	}
	var mine []*pkg
	for _, p := range pkgs {
		if _, in := rel(p.path); in && p.listed {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		t.Fatal("go list ./... found no package of the module")
	}
	slices.SortFunc(mine, func(a, b *pkg) int { return strings.Compare(a.path, b.path) })
	return pkgs, mine
}

// TestEveryPackageHasALayer: a new package must be placed in layerOf
// before it can be built on.
func TestEveryPackageHasALayer(t *testing.T) {
	_, mine := modulePackages(t)
	for _, p := range mine {
		r, _ := rel(p.path)
		if _, ok := classify(r); !ok {
			t.Errorf("package %s has no layer: add its path (or a prefix of it) to layerOf in internal/archtest/archtest_test.go, in the layer whose import rules it must keep", p.path)
		}
	}
}

// TestEveryPrefixHasAPackage: the table names no package that is gone.
func TestEveryPrefixHasAPackage(t *testing.T) {
	_, mine := modulePackages(t)
	for prefix, l := range layerOf {
		if !slices.ContainsFunc(mine, func(p *pkg) bool { r, _ := rel(p.path); return within(r, prefix) }) {
			t.Errorf("layerOf[%q] (%s) matches no package of the module: remove it", prefix, l)
		}
	}
}

// TestImportDirections checks every package's non-test dependencies
// against its layer's rule.
func TestImportDirections(t *testing.T) {
	pkgs, mine := modulePackages(t)
	found := map[edge]bool{}
	for _, p := range mine {
		from, _ := rel(p.path)
		l, ok := classify(from)
		if !ok {
			continue // TestEveryPackageHasALayer reports it
		}
		r := rules[l]
		reported := map[edge]bool{}
		for _, d := range p.deps {
			dp := pkgs[d]
			if d == "C" || dp == nil || dp.standard || d == p.path {
				continue
			}
			e, what := edge{from: from}, ""
			if to, in := rel(d); in {
				dl, ok := classify(to)
				if !ok || (dl == l && !r.apart) || slices.Contains(r.may, dl) {
					continue
				}
				e.to = to
				what = fmt.Sprintf("%s (%s)", to, dl)
			} else {
				if r.thirdParty.allows(d) {
					continue
				}
				e.to = dp.module
				if e.to == "" {
					e.to = d
				}
				what = e.to
			}
			if reported[e] {
				continue
			}
			reported[e] = true
			found[e] = true
			if _, known := knownViolations[e]; known {
				continue
			}
			t.Errorf("%s (%s) may not import %s: %s", from, l, what, strings.Join(chain(pkgs, p.path, d), " -> "))
		}
	}
	for e, todo := range knownViolations {
		if !found[e] {
			t.Errorf("known violation %s -> %s no longer occurs: remove it from knownViolations (%s)", e.from, e.to, todo)
		}
	}
}

// chain returns the shortest import path from one package to another,
// module paths shortened.
func chain(pkgs map[string]*pkg, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 && prev[to] == "" {
		cur := queue[0]
		queue = queue[1:]
		if p := pkgs[cur]; p != nil {
			for _, next := range p.imports {
				if _, seen := prev[next]; !seen {
					prev[next] = cur
					queue = append(queue, next)
				}
			}
		}
	}
	var path []string
	for cur := to; cur != ""; cur = prev[cur] {
		short := cur
		if r, in := rel(cur); in {
			short = r
		}
		path = append([]string{short}, path...)
	}
	return path
}

// TestRulesKeepTheDesign pins the directions the design fixes, so that the
// rules table cannot be loosened in passing.
func TestRulesKeepTheDesign(t *testing.T) {
	for _, l := range everyLayer {
		if _, ok := rules[l]; !ok {
			t.Errorf("layer %s has no rule", l)
		}
		if !slices.Contains(slices.Collect(maps.Values(layerOf)), l) {
			t.Errorf("layer %s has no package in layerOf", l)
		}
	}
	if len(rules) != len(everyLayer) {
		t.Errorf("rules has %d layers, everyLayer %d", len(rules), len(everyLayer))
	}
	mayImport := func(l, of layer) bool { return l == of || slices.Contains(rules[l].may, of) }
	for _, l := range everyLayer {
		if l == wiring || l == tests {
			continue
		}
		if mayImport(l, store) && mayImport(l, transport) {
			t.Errorf("%s may import both stores and transports: only the wiring may", l)
		}
		if l != store && mayImport(l, store) {
			t.Errorf("%s may import stores: use cases, transports and the rest see them only as interfaces", l)
		}
		if mayImport(l, wiring) {
			t.Errorf("%s may import the wiring", l)
		}
	}
	for _, l := range []layer{domain, support, service, usecase, store, config} {
		if mayImport(l, api) || mayImport(l, transport) || rules[l].thirdParty.allows("google.golang.org/grpc") || rules[l].thirdParty.allows("google.golang.org/protobuf") {
			t.Errorf("%s may speak gRPC, protobuf or the API", l)
		}
	}
	for _, l := range []layer{domain, support, service, usecase, transport, config, telemetry, client, tool} {
		if rules[l].thirdParty.allows("go.etcd.io/bbolt") || rules[l].thirdParty.allows("github.com/redis/go-redis/v9") {
			t.Errorf("%s may import a storage engine", l)
		}
	}
	if d := rules[domain]; !slices.Equal(d.may, []layer{kernel}) || !d.thirdParty.allowlist {
		t.Errorf("the domain may import more than the kernel and an allowlist of crypto libraries: %+v", d)
	}
	if c := rules[client]; !slices.Equal(c.may, []layer{api}) {
		t.Errorf("a public client may import internal packages: %+v", c)
	}
}
