package console_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// screenshotDir is $ZEROTOUCH_SCREENSHOTS, or a new temporary directory
// that outlives the test (so that the pictures can be looked at).
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ZEROTOUCH_SCREENSHOTS")
	if dir == "" {
		d, err := os.MkdirTemp("", "zerotouch-console-screenshots-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of every page: %s", dir)
	return dir
}

// reasonOf is the ErrorInfo reason of a gRPC error.
func reasonOf(t *testing.T, err error) string {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("not a refusal: %v", err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	t.Fatalf("no reason in %v", err)
	return ""
}

// TestConsoleInBrowser drives the console in headless Chromium against a
// real server, as an operator would: sign in with the owner key; make a hub
// cluster and a shard; upload a CA and prove possession; create a group;
// watch devices register live (registered over gRPC with real
// certificates, as devices do); read a refusal's reason; disable the
// group and see its devices refused; disable one device; create a
// symmetric-key enrollment (keys shown once); meet an etag conflict;
// make an issuing CA and a credential policy on the certificates page,
// revoke the certificates of a device that registered with a CSR and find
// the revocation listed; see issuing CAs and CRLs near expiry on the
// overview. Then a key that may only read: it sees no write control (and
// no certificates page), and the API refuses the write it tries anyway
// through the console's own code; and a ServiceConfig-only key, whose
// certificates page has no revoke control. Every
// page is checked for labels, keyboard reach with a visible focus ring,
// colour contrast, script errors, and bounded list calls; a screenshot of
// each is saved.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	s := startServer(t, nil)
	shots := screenshotDir(t)
	browser := newBrowser(t, exe, s)
	o := newTab(t, browser, "owner", shots)
	now := time.Now()

	// Sign-in: / leads to the console; a wrong key is refused plainly.
	o.do("open the server's root", chromedp.Navigate(s.url+"/"))
	o.do("sign-in form", chromedp.WaitVisible(chromedp.ID("access-key")))
	if u := eval[string](o, `location.pathname`); u != "/console/" {
		t.Fatalf("/ led to %s", u)
	}
	if f := eval[string](o, `document.activeElement.id`); f != "access-key" {
		t.Errorf("sign-in: focus starts on %q, want the key field", f)
	}
	// The checker itself finds what it is for: an unlabelled field, a
	// nameless button, a second h1.
	planted := eval[[]string](o, `(() => {
  const f = document.createElement('input'); f.name = 'planted'; document.body.append(f);
  const b = document.createElement('button'); document.body.append(b);
  const h = document.createElement('h1'); h.textContent = 'x'; document.body.append(h);
  const problems = `+a11yScript+`;
  f.remove(); b.remove(); h.remove();
  return problems;
})()`)
	if len(planted) != 3 {
		t.Errorf("the accessibility check found %q in a page with three planted problems", planted)
	}
	o.a11y("sign-in")
	measured := map[string]float64{}
	contrast := func(b *tab, page string) {
		for sel, r := range b.contrast(page) {
			if old, ok := measured[sel]; !ok || r < old {
				measured[sel] = r
			}
		}
	}
	contrast(o, "sign-in")
	o.reaches("sign-in", o.tabWalk(3), "input|Access key", "button|Sign in")
	o.shot("01-sign-in")
	o.do("type a wrong key", chromedp.SendKeys(chromedp.ID("access-key"), "ztk.nope.nope\n"))
	o.waitText(".signin [role=alert]", "The key was refused")
	o.do("type the owner key", chromedp.SendKeys(chromedp.ID("access-key"), s.ownerKey+"\n"))
	o.do("signed in", chromedp.WaitVisible(chromedp.CSS(`nav a[href="#/overview"]`)))
	if !eval[bool](o, `document.cookie === '' && localStorage.length === 0 && sessionStorage.length === 0 && !location.href.includes('ztk.') && !document.getElementById('access-key')`) {
		t.Error("the key left a trace outside the page's memory (cookie, storage, URL or the DOM)")
	}
	if got := eval[string](o, `document.querySelector('[data-permissions]').dataset.permissions`); !strings.Contains(got, "EnrollmentWrite") {
		t.Errorf("owner's permissions shown as %q", got)
	}

	// Hubs and shards: a cluster, and a shard it owns.
	o.nav("hubs", "Hubs and shards")
	o.open("Create a hub cluster")
	o.fill("hub cluster form", `input[name="cluster-id"]`, "hubs-eu")
	o.submit("Create a hub cluster")
	o.waitText("main table", "hubs-eu")
	o.open("Create a shard")
	o.fill("shard form", `input[name="shard-id"]`, "hub-1", `input[name="shard-hostname"]`, "hub1.example.com",
		`input[name="shard-capacity"]`, "1000", `input[name="shard-cluster"]`, "hubs-eu")
	o.submit("Create a shard")
	o.waitText("main table", "hub1.example.com")

	// A CA: upload it, take the verification code from the page, sign the
	// proof with the CA's key, give it back: verified.
	root, err := pki.NewCA("Acme Devices Root", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.NewCA("Acme Devices Issuing", root, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	o.nav("cas", "CA certificates")
	o.a11y("CAs (empty)")
	o.open("Upload a CA certificate")
	o.fill("CA upload form", `input[name="ca-name"]`, "acme-root", `textarea[name="ca-pem"]`, string(pki.CertPEM(root.Cert)))
	o.submit("Upload a CA certificate")
	o.do("CA detail", chromedp.WaitVisible(chromedp.ID("generate-code")))
	if o.count(`[data-ca-state="unverified"]`) != 1 {
		t.Error("a new CA is not shown as not verified")
	}
	contrast(o, "CA")
	o.do("generate a code", chromedp.Click(chromedp.ID("generate-code")))
	o.waitFor("the code", `!!document.querySelector('[data-verification-code]')`)
	code := eval[string](o, `document.querySelector('[data-verification-code]').dataset.verificationCode`)
	proof, err := pki.NewProof(root, code, now)
	if err != nil {
		t.Fatal(err)
	}
	o.shot("02-ca-proof-of-possession")
	o.fill("proof", `textarea[name="proof-pem"]`, string(pki.CertPEM(proof.Cert)))
	o.submit("Verify proof of possession")
	o.waitFor("verified", `!!document.querySelector('[data-ca-state="verified"]')`)
	o.waitFor("the list says verified", `[...document.querySelectorAll('main table td')].some(td => td.textContent === 'verified')`)
	o.a11y("CAs")
	o.shot("03-cas")

	// A group on the CA.
	o.nav("groups", "Enrollment groups")
	o.open("Create an enrollment group")
	o.fill("group form", `input[name="group-id"]`, "acme", `input[name="group-ca"]`, "acme-root")
	o.submit("Create an enrollment group")
	o.waitFor("the group's row", `!!document.querySelector('main table [data-id="acme"]')`)
	o.a11y("groups")
	contrast(o, "groups")
	walk := o.tabWalk(80)
	t.Logf("Tab order on the groups page: %q", walk)
	o.reaches("groups", walk, "a|Overview", "a|Registrations", "input|Group ID", "select|Policy", "button|Create group", "button|Disable")
	o.shot("04-groups")

	// Devices register (over gRPC, with the group CA's certificates) and
	// appear live: the overview's counts and chart, the registrations page.
	o.nav("overview", "Overview")
	o.waitText(`[data-figure="devices"]`, "0")
	device := func(id string, issuer *pki.Issued) *pki.Issued {
		d, err := pki.NewDevice(id, issuer, now, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if _, err := s.register("sensor-0001", device("sensor-0001", inter), inter.Cert); err != nil {
		t.Fatalf("register sensor-0001: %v", err)
	}
	o.waitFor("the overview counts the device", `document.querySelector('[data-figure="devices"]').textContent === '1'`)
	o.waitFor("the chart shows it", `[...document.querySelectorAll('svg.chart .bar')].some(b => Number(b.dataset.value) >= 1)`)
	o.nav("registrations", "Registrations")
	o.waitFor("sensor-0001 listed", `!!document.querySelector('[data-registration="sensor-0001"]')`)
	if _, err := s.register("sensor-0002", device("sensor-0002", inter), inter.Cert); err != nil {
		t.Fatalf("register sensor-0002: %v", err)
	}
	o.waitFor("sensor-0002 appears without a reload", `!!document.querySelector('[data-registration="sensor-0002"]')`)
	o.a11y("registrations")
	o.shot("05-registrations")
	// Search by device ID (the device-ID index) and by shard.
	o.fill("search by device ID", `select[name="search-by"]`, "device", `input[name="search-value"]`, "sensor-0002")
	o.submit("Search registrations")
	o.waitFor("only sensor-0002", `location.hash.includes('device=sensor-0002') && !!document.querySelector('[data-registration="sensor-0002"]') && !document.querySelector('[data-registration="sensor-0001"]')`)
	o.fill("search by shard", `select[name="search-by"]`, "shard", `input[name="search-value"]`, "hub-1")
	o.submit("Search registrations")
	o.waitFor("both on hub-1", `location.hash.includes('shard=hub-1') && document.querySelectorAll('[data-registration]').length === 2`)

	// A refused device: its reason, as the device was told it, is on the
	// failed-attempts page.
	rogue, err := pki.NewCA("Rogue Root", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.register("rogue-1", device("rogue-1", rogue))
	refusal := reasonOf(t, err)
	o.nav("failed-attempts", "Failed attempts")
	o.fill("filter", `input[name="fa-registration-id"]`, "rogue-1")
	o.submit("Filter failed attempts")
	o.waitFor("the refusal's reason", fmt.Sprintf(`!!document.querySelector('main table code[data-reason=%q]')`, refusal))
	o.a11y("failed attempts")
	o.shot("06-failed-attempts")

	// Certificates: an issuing CA and a credential policy made on the page;
	// an etag conflict and a refusal shown with their reasons; a device of
	// the group registers with a CSR and gets a certificate, which the
	// page revokes; the revocation is on the CA's list.
	serial := certificatesPage(t, s, o, inter)
	contrast(o, "certificates")

	// Disable the group from the console: its devices are refused.
	o.nav("groups", "Enrollment groups")
	o.do("disable acme", chromedp.Click(chromedp.CSS(`button[aria-label="Disable group acme"]`)))
	o.waitFor("acme disabled", `!!document.querySelector('button[aria-label="Enable group acme"]')`)
	_, err = s.register("sensor-0003", device("sensor-0003", inter), inter.Cert)
	if r := reasonOf(t, err); r != "ENROLLMENT_DISABLED" {
		t.Fatalf("a device of the disabled group: %s", r)
	}
	o.nav("failed-attempts", "Failed attempts")
	o.fill("filter", `input[name="fa-registration-id"]`, "sensor-0003")
	o.submit("Filter failed attempts")
	o.waitFor("ENROLLMENT_DISABLED listed", `!!document.querySelector('main table code[data-reason="ENROLLMENT_DISABLED"]')`)

	// One device: its record, history, and disabling it.
	o.do("open sensor-0001", chromedp.Evaluate[chromedp.Void](`location.hash = '#/registrations?id=sensor-0001'`))
	o.do("sensor-0001's page", chromedp.WaitVisible(chromedp.CSS(`button[data-action="disable"]`)))
	o.do("disable sensor-0001", chromedp.Click(chromedp.CSS(`button[data-action="disable"]`)))
	o.waitFor("sensor-0001 disabled", `!!document.querySelector('button[data-action="enable"]')`)
	o.waitText("main table", "UpdateRegistration")
	o.a11y("registration")
	o.shot("07-registration")
	// Delete it, so that it would provision afresh: asked first, in place.
	o.do("delete sensor-0001", chromedp.Click(chromedp.CSS(`button[aria-label="Delete registration sensor-0001"]`)))
	o.waitText(".confirm .question", "provisions afresh")
	o.do("confirm", chromedp.Click(chromedp.CSS(`.confirm button.danger`)))
	o.waitFor("back on the list", `location.hash === '#/registrations'`)
	if _, err := pb.NewRegistrationServiceClient(s.dial(nil)).GetRegistration(as(t.Context(), s.ownerKey),
		&pb.GetRegistrationRequest{RegistrationId: "sensor-0001"}); status.Code(err) != codes.NotFound {
		t.Errorf("sensor-0001 after its deletion in the console: %v", err)
	}

	// A symmetric-key enrollment: its keys are shown this once.
	o.nav("enrollments", "Individual enrollments")
	o.open("Create an individual enrollment")
	o.do("choose symmetric key", chromedp.Click(chromedp.CSS(`label[for="enr-att-2"]`)))
	o.fill("enrollment form", `input[name="registration-id"]`, "sym-0001")
	o.submit("Create an individual enrollment")
	o.waitFor("keys shown", `document.querySelectorAll('[data-once="symmetric-keys"] code.secret').length === 2`)
	for _, k := range eval[[]string](o, `[...document.querySelectorAll('[data-once="symmetric-keys"] code.secret')].map(c => c.textContent)`) {
		if raw, err := base64.StdEncoding.DecodeString(k); err != nil || len(raw) != 32 {
			t.Errorf("symmetric key shown as %q", k)
		}
	}
	o.waitText("main table", "sym-0001")
	o.a11y("enrollments")
	o.shot("08-enrollments")
	o.nav("enrollments", "Individual enrollments")
	if o.count(`[data-once]`) != 0 {
		t.Error("the symmetric keys are shown again")
	}

	// An etag conflict: someone changes the group while the page has it.
	o.do("edit acme", chromedp.Evaluate[chromedp.Void](`location.hash = '#/groups?edit=acme'`))
	o.do("edit form", chromedp.WaitVisible(chromedp.CSS(`form[aria-label="Edit group acme"]`)))
	ec := pb.NewEnrollmentServiceClient(s.dial(nil))
	g, err := ec.GetEnrollmentGroup(as(t.Context(), s.ownerKey), &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	g.IotEdge = true
	if _, err := ec.UpdateEnrollmentGroup(as(t.Context(), s.ownerKey), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: g,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"iot_edge"}}}); err != nil {
		t.Fatal(err)
	}
	o.submit("Edit group acme")
	o.waitFor("the conflict shown", `!!document.querySelector('[data-reason="ETAG_MISMATCH"]')`)
	o.waitText(`[data-reason="ETAG_MISMATCH"]`, "Changed by someone else")
	contrast(o, "etag conflict")
	o.shot("09-etag-conflict")
	o.do("reload after the conflict", chromedp.Click(chromedp.CSS(`[data-reason="ETAG_MISMATCH"] button`)))
	o.waitFor("the fresh copy", `!document.querySelector('[data-reason]') && !!document.querySelector('form[aria-label="Edit group acme"]')`)
	o.waitText("dl.facts", "disabled")
	// Edited again on the fresh copy, the change is saved.
	o.fill("re-provisioning", `form[aria-label="Edit group acme"] select[name="reprovision"]`, "REPROVISION_POLICY_RESET",
		`form[aria-label="Edit group acme"] select[name="policy"]`, "ALLOCATION_POLICY_GEO")
	o.submit("Edit group acme")
	o.waitText("main [role=status]", "Saved")
	g, err = ec.GetEnrollmentGroup(as(t.Context(), s.ownerKey), &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if err != nil || g.GetReprovisionPolicy() != pb.ReprovisionPolicy_REPROVISION_POLICY_RESET || !g.GetIotEdge() ||
		g.GetAllocation().GetPolicy() != pb.AllocationPolicy_ALLOCATION_POLICY_GEO || g.GetProvisioningStatus() != pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED {
		t.Errorf("after the edit: %v %v", g, err)
	}

	// The audit log has the console's changes, and its chain verifies.
	o.nav("audit", "Audit log")
	o.waitText("main table", "CreateGroup")
	o.do("verify the chain", chromedp.Click(chromedp.ID("verify-audit")))
	o.waitText("main", "Intact")
	o.a11y("audit")
	o.shot("10-audit")

	// What is about to expire: an imported issuing CA with ten days left;
	// manufacturer CRLs: acme-root's due in two hours, one stale, one good
	// for a week (not shown), and a CA with none (its 404 left out).
	expiringSoon(t, s, root, now)

	// The overview, now with a refusal, devices and the hub's lag, and what
	// expires soon.
	o.nav("overview", "Overview")
	o.waitText("main table", refusal)
	o.waitText("main table", "ENROLLMENT_DISABLED")
	o.waitText("main table", "behind")
	o.waitText("main table", "hub-1")
	o.waitFor("the issuing CA that expires soon", `!!document.querySelector('main section a[data-issuing-ca="legacy-ops"]')`)
	o.waitFor("the CRLs due or stale", `!!document.querySelector('main a[data-crl="acme-root"]') && !!document.querySelector('main a[data-crl="old-vendor"]')`)
	for _, c := range []struct{ sel, text string }{
		{`main a[data-issuing-ca="legacy-ops"]`, "days left"},
		{`main a[data-crl="acme-root"]`, "due within 24 h"},
		{`main a[data-crl="old-vendor"]`, "stale"},
	} {
		if got := eval[string](o, fmt.Sprintf(`document.querySelector(%q).closest('tr').textContent`, c.sel)); !strings.Contains(got, c.text) {
			t.Errorf("overview: the row of %s reads %q, want %q in it", c.sel, got, c.text)
		}
	}
	if n := o.count(`main a[data-issuing-ca="fleet-ops"], main a[data-crl="fresh-vendor"], main a[data-crl="quiet-vendor"], main section [role=alert]`); n != 0 {
		t.Errorf("overview: %d rows or errors for CAs and CRLs that are not due (or a CA without a CRL)", n)
	}
	o.a11y("overview")
	contrast(o, "overview")
	o.shot("11-overview")
	o.nav("hubs", "Hubs and shards")
	o.fill("weight", `input[aria-label="Weight of shard hub-1"]`, "250")
	o.do("set the weight", chromedp.Click(chromedp.CSS(`button[aria-label="Set the weight of shard hub-1"]`)))
	o.waitText("#status", "weight 250")
	o.do("drain hub-1", chromedp.Click(chromedp.CSS(`button[aria-label="Drain shard hub-1"]`)))
	o.waitText("main table", "draining")
	sh, err := pb.NewHubServiceClient(s.dial(nil)).GetShard(as(t.Context(), s.ownerKey), &pb.GetShardRequest{Id: "hub-1"})
	if err != nil || sh.GetWeight() != 250 || sh.GetState() != pb.ShardState_SHARD_STATE_DRAINING {
		t.Errorf("hub-1 after the console set its weight and drained it: %v %v", sh, err)
	}
	o.a11y("hubs")
	o.shot("12-hubs")

	// A key that may read enrollments, registrations and the audit log,
	// and write nothing.
	reader := s.newKey("auditor", access.EnrollmentRead, access.RegistrationRead, access.AuditRead)
	r := newTab(t, browser, "reader", shots)
	r.do("open the console", chromedp.Navigate(s.url+"/console/"), chromedp.WaitVisible(chromedp.ID("access-key")),
		chromedp.SendKeys(chromedp.ID("access-key"), reader+"\n"), chromedp.WaitVisible(chromedp.CSS(`nav a[href="#/overview"]`)))
	if r.count(`nav a[href="#/cas"]`)+r.count(`nav a[href="#/hubs"]`)+r.count(`nav a[href="#/certificates"]`) != 0 {
		t.Error("the reader is offered pages that need ServiceConfig")
	}
	writeControls := `main form[aria-label^="Create"], main form[aria-label^="Edit"], main form[aria-label^="Upload"], main [data-action], main .confirm`
	for i, page := range []struct{ path, title, wait string }{
		{"groups", "Enrollment groups", `main table [data-id="acme"]`},
		{"enrollments", "Individual enrollments", `main table a[href*="sym-0001"]`},
		{"registrations", "Registrations", `[data-registration="sensor-0002"]`},
	} {
		r.nav(page.path, page.title)
		r.waitFor(page.path+" listed", fmt.Sprintf(`!!document.querySelector(%q)`, page.wait))
		if n := r.count(writeControls); n != 0 {
			t.Errorf("reader: %s page shows %d write controls", page.path, n)
		}
		r.a11y(page.path + " (reader)")
		r.shot(fmt.Sprintf("%02d-%s", i+1, page.path))
	}
	r.do("open sensor-0002", chromedp.Evaluate[chromedp.Void](`location.hash = '#/registrations?id=sensor-0002'`))
	r.waitText("dl.facts", "sensor-0002")
	if n := r.count(writeControls); n != 0 {
		t.Errorf("reader: a registration's page shows %d write controls", n)
	}
	r.shot("04-registration")
	contrast(r, "registration (reader)")
	r.do("open hubs by its address", chromedp.Evaluate[chromedp.Void](`location.hash = '#/hubs'`))
	r.waitText("main [role=alert]", "needs the ServiceConfig permission")
	r.do("open certificates by its address", chromedp.Evaluate[chromedp.Void](`location.hash = '#/certificates'`))
	r.waitText("main h1", "Certificates")
	r.waitText("main [role=alert]", "needs the ServiceConfig permission")
	if n := r.count(writeControls + `, main table, main form`); n != 0 {
		t.Errorf("reader: the certificates page shows %d lists or controls", n)
	}
	r.shot("05-certificates")
	// The reader tries anyway, through the console's own API module (the
	// same instance, holding the key in memory): the server refuses.
	for _, try := range []string{
		`m.call('PATCH', '/v1/enrollmentGroups/acme', {query: {update_mask: 'provisioning_status'}, body: {provisioningStatus: 'PROVISIONING_STATUS_ENABLED'}})`,
		`m.call('DELETE', '/v1/registrations/sensor-0002')`,
		`m.call('POST', '/v1/shards', {body: {id: 'sneaky', hostname: 'x.example.com', weight: 1}})`,
		`m.call('POST', '/v1/issuingCas/fleet-ops:disable', {body: {}})`,
	} {
		got := eval[string](r, `import('/console/js/api.js').then(m => `+try+`).then(() => 'written', e => e.status + ' ' + e.reason)`)
		if got != "403 PERMISSION_DENIED" {
			t.Errorf("reader: %s: %s, want 403 PERMISSION_DENIED", try, got)
		}
	}
	g, err = ec.GetEnrollmentGroup(as(t.Context(), s.ownerKey), &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if err != nil || g.GetProvisioningStatus() != pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED {
		t.Errorf("the reader's refused write changed the group: %v %v", g.GetProvisioningStatus(), err)
	}
	refused, err := pb.NewAuditServiceClient(s.dial(nil)).ListAuditRecords(as(t.Context(), s.ownerKey), &pb.ListAuditRecordsRequest{Outcome: "refused", Action: "UpdateEnrollmentGroup"})
	if err != nil || len(refused.GetRecords()) == 0 || refused.GetRecords()[0].GetActorName() != "auditor" {
		t.Errorf("the refused write is not in the audit log as the reader's: %v %v", refused, err)
	}
	// Signing out forgets the key: the API module has none.
	r.do("sign out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("access-key")))
	if got := eval[string](r, `import('/console/js/api.js').then(m => m.signedIn() ? 'signed in' : 'signed out')`); got != "signed out" {
		t.Errorf("after sign-out the API module is %s", got)
	}
	r.do("keyboard: Escape is harmless", chromedp.KeyEvent(kb.Escape))

	// The main colour pairs were all measured somewhere (and passed).
	for _, sel := range []string{"body", "main h1", "nav a:not([aria-current])", "nav a[aria-current=page]", "nav span.muted", "header.top",
		".btn.primary", ".btn.danger", "button.btn:not(.primary):not(.danger)", ".badge.ok", ".badge.warn", ".badge.off", ".badge.bad", ".hint",
		"table.data th", "table.data td", ".error", "svg.chart .axis", "label", "input"} {
		if r, ok := measured[sel]; !ok {
			t.Errorf("the contrast of %s was never measured", sel)
		} else {
			t.Logf("contrast %-40s %5.2f:1 (lowest seen)", sel, r)
		}
	}

	// A key that may configure the service but not write registrations:
	// the certificates page, without the control that revokes.
	pkiKey := s.newKey("pki-admin", access.ServiceConfig)
	p := newTab(t, browser, "pki-admin", shots)
	p.do("open the console", chromedp.Navigate(s.url+"/console/"), chromedp.WaitVisible(chromedp.ID("access-key")),
		chromedp.SendKeys(chromedp.ID("access-key"), pkiKey+"\n"), chromedp.WaitVisible(chromedp.CSS(`nav a[href="#/overview"]`)))
	p.nav("certificates", "Certificates")
	p.waitFor("the issuing CAs", `!!document.querySelector('main table a[data-issuing-ca="fleet-ops"]') && !!document.querySelector('[data-policy="devices"]')`)
	if p.count(`form[aria-label="Create an issuing CA"]`) != 1 || p.count(`form[aria-label="Revoke certificates"]`) != 0 {
		t.Error("pki-admin: the certificates page should offer creating an issuing CA and no revoking")
	}
	p.waitText("main p.muted", "also needs the RegistrationStatusWrite permission")
	p.a11y("certificates (ServiceConfig only)")
	p.shot("01-certificates")
	got := eval[string](p, `import('/console/js/api.js').then(m => m.call('POST', '/v1/certificates:revoke', {body: {registrationId: 'sensor-0004', reason: 1}})).then(() => 'written', e => e.status + ' ' + e.reason)`)
	if got != "403 PERMISSION_DENIED" {
		t.Errorf("pki-admin: revoking: %s, want 403 PERMISSION_DENIED", got)
	}
	if revs, err := pb.NewIssuanceServiceClient(s.dial(nil)).ListRevocations(as(t.Context(), s.ownerKey), &pb.ListRevocationsRequest{IssuingCa: "fleet-ops"}); err != nil ||
		len(revs.GetRevocations()) != 1 || revs.GetRevocations()[0].GetSerial() != serial {
		t.Errorf("fleet-ops's revocations after the refused one: %v %v", revs, err)
	}

	for _, b := range []*tab{o, r, p} {
		b.noProblems()
		if n := b.checkRequests(s.url); n < 5 && b != p {
			t.Errorf("%s: only %d list calls seen; the request log is broken", b.name, n)
		}
	}
}

// certificatesPage drives the certificates page as the owner and returns
// the serial of the certificate it revoked.
func certificatesPage(t *testing.T, s *server, o *tab, inter *pki.Issued) string {
	t.Helper()
	owner := as(t.Context(), s.ownerKey)
	cc := s.dial(nil)
	defer cc.Close()
	issuing := pb.NewIssuanceServiceClient(cc)

	o.nav("certificates", "Certificates")
	o.waitText("main table", "No issuing CAs yet")
	o.a11y("certificates (empty)")
	o.open("Create an issuing CA")
	o.fill("issuing CA form", `input[name="issuing-ca-name"]`, "fleet-ops", `input[name="issuing-ca-cn"]`, "Acme Operational CA",
		`select[name="issuing-ca-key-type"]`, "ecdsa-p384")
	o.submit("Create an issuing CA")
	activeRow := `[...document.querySelectorAll('main table tr')].some(tr => !!tr.querySelector('a[data-issuing-ca="fleet-ops"]') && !!tr.querySelector('[data-issuing-ca-state="%s"]'))`
	o.waitFor("fleet-ops listed, active", fmt.Sprintf(activeRow, "active"))
	o.waitText("main table", "Acme Operational CA")
	o.waitText("main table code", "/pki/fleet-ops/crl")

	o.open("Create a credential policy")
	o.waitFor("fleet-ops offered", `!!document.querySelector('select[name="policy-issuing-ca"] option[value="fleet-ops"]')`)
	o.fill("policy form", `input[name="policy-name"]`, "devices", `select[name="policy-issuing-ca"]`, "fleet-ops",
		`input[name="policy-validity"]`, "2d", `input[name="policy-overlap"]`, "30m")
	o.do("allow rsa-2048, revoke on disable", chromedp.Click(chromedp.CSS(`input[name="policy-key-type"][value="rsa-2048"]`)),
		chromedp.Click(chromedp.CSS(`input[name="policy-revoke-on-disable"]`)))
	o.submit("Create a credential policy")
	o.waitFor("devices listed", `!!document.querySelector('main table [data-policy="devices"]')`)
	o.waitText("main table", "2 d")
	pol, err := issuing.GetCredentialPolicy(owner, &pb.GetCredentialPolicyRequest{Name: "devices"})
	if err != nil || pol.GetIssuingCa() != "fleet-ops" || pol.GetValidity().AsDuration() != 48*time.Hour || pol.GetOverlap().AsDuration() != 30*time.Minute ||
		!pol.GetRevokeOnDisable() || strings.Join(pol.GetKeyTypes(), " ") != "ecdsa-p256 ecdsa-p384 rsa-2048" {
		t.Errorf("the policy made on the page: %v %v", pol, err)
	}
	o.a11y("certificates")
	walk := o.tabWalk(60)
	o.reaches("certificates", walk, "a|Certificates", "input|Name", "select|Key type", "button|Create issuing CA", "select|Issuing CA",
		"input|rsa-2048", "input|Validity", "button|Create policy", "a|fleet-ops", "button|Disable issuing CA fleet-ops",
		"button|Delete credential policy devices", "input|Registration ID", "select|Reason")
	o.shot("13-certificates")

	// An etag conflict: the CA changes (disabled and enabled again through
	// the API) while the page has it; the page's disable is refused, says
	// so, and works once reloaded.
	ca, err := issuing.DisableIssuingCa(owner, &pb.DisableIssuingCaRequest{Name: "fleet-ops"})
	if err == nil {
		_, err = issuing.EnableIssuingCa(owner, &pb.EnableIssuingCaRequest{Name: "fleet-ops", Etag: ca.GetEtag()})
	}
	if err != nil {
		t.Fatal(err)
	}
	o.do("disable fleet-ops", chromedp.Click(chromedp.CSS(`button[aria-label="Disable issuing CA fleet-ops"]`)))
	o.waitText(`[data-reason="ETAG_MISMATCH"]`, "Changed by someone else")
	o.do("reload after the conflict", chromedp.Click(chromedp.CSS(`[data-reason="ETAG_MISMATCH"] button`)))
	o.waitFor("the conflict cleared", `!document.querySelector('[data-reason]')`)
	o.do("disable fleet-ops again", chromedp.Click(chromedp.CSS(`button[aria-label="Disable issuing CA fleet-ops"]`)))
	o.waitFor("fleet-ops disabled", fmt.Sprintf(activeRow, "disabled"))
	o.do("enable fleet-ops", chromedp.Click(chromedp.CSS(`button[aria-label="Enable issuing CA fleet-ops"]`)))
	o.waitFor("fleet-ops active again", fmt.Sprintf(activeRow, "active"))
	if ca, err := issuing.GetIssuingCa(owner, &pb.GetIssuingCaRequest{Name: "fleet-ops"}); err != nil || ca.GetState() != pb.IssuingCaState_ISSUING_CA_STATE_ACTIVE {
		t.Fatalf("fleet-ops after the page disabled and enabled it: %v %v", ca, err)
	}

	// The group names the policy; a device registers with a CSR.
	ec := pb.NewEnrollmentServiceClient(cc)
	g, err := ec.GetEnrollmentGroup(owner, &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.UpdateEnrollmentGroup(owner, &pb.UpdateEnrollmentGroupRequest{
		EnrollmentGroup: &pb.EnrollmentGroup{Id: "acme", Etag: g.GetEtag(), CredentialPolicy: "devices"},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"credential_policy"}}}); err != nil {
		t.Fatalf("set the group's credential policy: %v", err)
	}
	dev, err := pki.NewDevice("sensor-0004", inter, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "sensor-0004"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.registerCSR("sensor-0004", csr, dev, inter.Cert)
	if err != nil {
		t.Fatalf("register sensor-0004 with a CSR: %v", err)
	}
	serial := reg.GetIssuedCertificate().GetSerial()
	if serial == "" || reg.GetIssuedCertificate().GetIssuingCa() != "fleet-ops" || len(reg.GetIssuedCertificateChain()) < 2 {
		t.Fatalf("sensor-0004 got no certificate from fleet-ops: %v", reg.GetIssuedCertificate())
	}

	// A refusal, with its reason: sensor-0002 holds no issued certificate.
	o.fill("revoke sensor-0002", `input[name="revoke-registration-id"]`, "sensor-0002")
	o.submit("Revoke certificates")
	o.waitText(".confirm .question", "sensor-0002")
	o.do("confirm", chromedp.Click(chromedp.CSS(`button[data-action="confirm-revoke"]`)))
	o.waitText(`form[aria-label="Revoke certificates"] [data-reason="RESOURCE_NOT_FOUND"]`, "holds no issued certificate")

	// Revoke sensor-0004's certificates: asked first, then listed.
	o.fill("revoke sensor-0004", `input[name="revoke-registration-id"]`, "sensor-0004", `select[name="revoke-reason"]`, "1")
	o.submit("Revoke certificates")
	o.waitText(".confirm .question", "keyCompromise")
	o.a11y("certificates (revoking)")
	o.shot("14-revoke-confirm")
	o.do("confirm", chromedp.Click(chromedp.CSS(`button[data-action="confirm-revoke"]`)))
	o.waitFor("the revoked serial shown", fmt.Sprintf(`!!document.querySelector('form[aria-label="Revoke certificates"] [data-serial=%q]')`, serial))
	revs, err := issuing.ListRevocations(owner, &pb.ListRevocationsRequest{IssuingCa: "fleet-ops"})
	if err != nil || len(revs.GetRevocations()) != 1 || revs.GetRevocations()[0].GetSerial() != serial ||
		revs.GetRevocations()[0].GetRegistrationId() != "sensor-0004" || revs.GetRevocations()[0].GetReason() != 1 {
		t.Errorf("fleet-ops's revocations after the page revoked sensor-0004: %v %v", revs, err)
	}
	// The CA's page lists it.
	o.do("open fleet-ops", chromedp.Click(chromedp.CSS(`main table a[data-issuing-ca="fleet-ops"]`)))
	o.waitText("main h2", "Issuing CA fleet-ops")
	o.waitFor("the revocation listed", fmt.Sprintf(`[...document.querySelectorAll('main table tr')].some(tr => !!tr.querySelector('[data-serial=%q]') && tr.textContent.includes('sensor-0004') && tr.textContent.includes('keyCompromise (1)'))`, serial))
	o.a11y("issuing CA")
	o.shot("15-issuing-ca-revocations")
	return serial
}

// expiringSoon imports an issuing CA that expires in ten days and uploads
// manufacturer CAs and CRLs: acme-root's due in two hours, old-vendor's
// stale since an hour, fresh-vendor's good for a week, quiet-vendor none.
func expiringSoon(t *testing.T, s *server, root *pki.Issued, now time.Time) {
	t.Helper()
	owner := as(t.Context(), s.ownerKey)
	cc := s.dial(nil)
	defer cc.Close()
	legacy, err := pki.NewCA("Legacy Operational CA", nil, now, 10*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(legacy.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewIssuanceServiceClient(cc).CreateIssuingCa(owner, &pb.CreateIssuingCaRequest{Name: "legacy-ops", Mode: pb.IssuingCaMode_ISSUING_CA_MODE_IMPORT,
		CertificateChainPem: string(pki.CertPEM(legacy.Cert)), PrivateKeyPem: string(keyPEM)}); err != nil {
		t.Fatalf("import legacy-ops: %v", err)
	}
	cas := pb.NewCertificateAuthorityServiceClient(cc)
	upload := func(name string, ca *pki.Issued, this, next time.Time) {
		t.Helper()
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: this, NextUpdate: next}, ca.Cert, ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cas.UploadCrl(owner, &pb.UploadCrlRequest{Name: name, CrlDer: der}); err != nil {
			t.Fatalf("upload %s's CRL: %v", name, err)
		}
	}
	upload("acme-root", root, now.Add(-time.Hour), now.Add(2*time.Hour))
	for _, v := range []struct {
		name       string
		this, next time.Duration
	}{
		{"old-vendor", -48 * time.Hour, -time.Hour},
		{"fresh-vendor", -time.Hour, 7 * 24 * time.Hour},
		{"quiet-vendor", 0, 0},
	} {
		ca, err := pki.NewCA("Vendor "+v.name, nil, now, 400*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cas.CreateCaCertificate(owner, &pb.CreateCaCertificateRequest{CaCertificate: &pb.CaCertificate{Name: v.name, CertificatePem: string(pki.CertPEM(ca.Cert))}}); err != nil {
			t.Fatal(err)
		}
		if v.next != 0 {
			upload(v.name, ca, now.Add(v.this), now.Add(v.next))
		}
	}
}
