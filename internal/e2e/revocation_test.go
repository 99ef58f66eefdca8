package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/hubclient"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// Revocation of manufacturer certificates (issue #19 part 4, ADR 23),
// end to end: real servers, real certificates and CRLs, HTTP servers the
// tests run as distribution points and OCSP responders, registrations over
// gRPC and REST, and the hub's view through the assignment stream.

// crlOf signs a CRL of ca revoking serials, valid from this to next.
func crlOf(t *testing.T, ca *pki.Issued, number int64, this, next time.Time, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// deviceWith mints a device certificate under parent naming the CRL
// distribution points and OCSP responders given.
func deviceWith(t *testing.T, regID string, parent *pki.Issued, cdp, ocspURLs []string) *pki.Issued {
	t.Helper()
	tmpl := pki.LeafTemplate(regID, time.Now(), 24*time.Hour)
	tmpl.CRLDistributionPoints, tmpl.OCSPServer = cdp, ocspURLs
	return leaf(t, tmpl, parent)
}

// revocationHub is a hub cluster with one shard, so that tests can watch
// what its hub is told.
func (e *env) revocationHub() *pki.Issued {
	e.t.Helper()
	node := hubCert(e.t, "rev-hubs", time.Now().Add(-time.Minute), time.Hour)
	hubs := pb.NewHubServiceClient(e.admin)
	if _, err := hubs.CreateHubCluster(e.owner(), &pb.CreateHubClusterRequest{HubCluster: &pb.HubCluster{Id: "rev-hubs", CertificatePems: []string{string(pki.CertPEM(node.Cert))}}}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := hubs.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{Id: "rev-shard", Hostname: "rev-shard.hubs.example.com", Weight: 1, HubCluster: "rev-hubs"}}); err != nil {
		e.t.Fatal(err)
	}
	return node
}

// createGroupWith creates an X.509 group with a revocation policy.
func (e *env) createGroupWith(id, ca string, rev *pb.RevocationPolicy) {
	e.t.Helper()
	if _, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{
		EnrollmentGroup: &pb.EnrollmentGroup{Id: id, CaCertificate: ca, Revocation: rev}}); err != nil {
		e.t.Fatalf("CreateEnrollmentGroup %s: %v", id, err)
	}
}

// waitRevoked waits until regID's registration and identity are disabled
// by a revocation, and its shard's log has the disabled event with the
// reason; it returns the event.
func (e *env) waitRevoked(regID string) *registry.Event {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		reg, err := e.store.GetRegistration(ctx, regID)
		if err != nil {
			e.t.Fatal(err)
		}
		id, err := e.store.GetIdentity(ctx, reg.DeviceID)
		if err != nil {
			e.t.Fatal(err)
		}
		if reg.Status == registry.Disabled && id.Status == registry.IdentityDisabled {
			if id.DisabledReason != string(fault.CertificateRevoked) {
				e.t.Fatalf("identity disabled with reason %q", id.DisabledReason)
			}
			events, err := e.store.ReadEvents(ctx, reg.Shard, 0, 10_000)
			if err != nil {
				e.t.Fatal(err)
			}
			for i := len(events) - 1; i >= 0; i-- {
				ev := events[i]
				if ev.Identity.DeviceID == reg.DeviceID {
					if ev.Kind != registry.EventDisabled || ev.Identity.DisabledReason != string(fault.CertificateRevoked) {
						e.t.Fatalf("the device's last event is %s with reason %q", ev.Kind, ev.Identity.DisabledReason)
					}
					return ev
				}
			}
			e.t.Fatalf("no event of %s in shard %s's log", regID, reg.Shard)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s not disabled: registration %s, identity %s", regID, reg.Status, id.Status)
		}
		time.Sleep(20 * time.Millisecond) // the disabling pass runs in the background
	}
}

// TestCRLUpload: an operator uploads CRLs for CA certificates. A revoked
// device is refused over gRPC and REST with CERTIFICATE_REVOKED and
// nothing is written; an already registered device is disabled, with the
// reason, and its hub's stream says so; a root's CRL revoking the
// intermediate refuses and disables every device under it; replays,
// foreign CRLs and malformed uploads are refused.
func TestCRLUpload(t *testing.T) {
	e := start(t)
	node := e.revocationHub()
	now := time.Now()
	root, err := pki.NewCA("Acme Devices Root", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.NewCA("Acme Devices Issuing", root, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.uploadCA("acme-root", root, true)
	e.uploadCA("acme-issuing", inter, false) // only to hang its CRL on
	e.createGroup("acme", "acme-root")
	f := &fleet{root: root, inter: inter}
	early, victim, stranger := f.device(t, "early-1"), f.device(t, "victim-1"), f.device(t, "stranger-1")
	for _, d := range []*pki.Issued{early, victim} {
		if _, err := e.registerGRPC(d.Cert.Subject.CommonName, d, inter.Cert); err != nil {
			t.Fatalf("register %s: %v", d.Cert.Subject.CommonName, err)
		}
	}

	// The hub watches its shard from the start.
	conn := e.dial(e.clientTLS(node))
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := pb.NewHubAssignmentServiceClient(conn).WatchAssignments(ctx, &pb.WatchAssignmentsRequest{Shards: []*pb.ShardCursor{{Shard: "rev-shard"}}})
	if err != nil {
		t.Fatal(err)
	}

	cas := pb.NewCertificateAuthorityServiceClient(e.admin)
	crlPEM := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlOf(t, inter, 10, now, now.Add(24*time.Hour), victim.Cert.SerialNumber, stranger.Cert.SerialNumber)}))
	got, err := cas.UploadCrl(e.owner(), &pb.UploadCrlRequest{Name: "acme-issuing", CrlPem: crlPEM})
	if err != nil {
		t.Fatalf("UploadCrl: %v", err)
	}
	if got.GetRevokedCount() != 2 || got.GetAddedCount() != 2 || got.GetCrlNumber() != "10" || got.GetCaCertificate() != "acme-issuing" || !got.GetNextUpdate().AsTime().After(now) {
		t.Fatalf("UploadCrl answered %v", got)
	}

	// A revoked device that never registered: refused on both transports,
	// nothing written.
	for _, tr := range transports {
		_, err := tr.register(e, "stranger-1", stranger, inter.Cert)
		if reasonOf(t, err) != string(fault.CertificateRevoked) {
			t.Fatalf("%s: revoked device: %v", tr.name, err)
		}
	}
	e.assertNoRegistration("stranger-1")
	// The registered one is disabled, with the reason, in the store, the
	// log and the hub's stream; it cannot register again.
	ev := e.waitRevoked("victim-1")
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("the hub's stream ended before the disabled event: %v", err)
		}
		if msg.GetIdentity().GetDeviceId() == "victim-1" && msg.GetKind() == pb.IdentityEventKind_IDENTITY_EVENT_KIND_DISABLED {
			if msg.GetIdentity().GetEnabled() || msg.GetIdentity().GetDisabledReason() != string(fault.CertificateRevoked) || msg.GetCursor() != ev.Seq {
				t.Fatalf("the hub got %v", msg)
			}
			break
		}
	}
	// A hub following its cluster with the hubclient package (what the
	// reference agent runs) ends with the device disabled, with the reason.
	replica, err := hubclient.OpenReplica(filepath.Join(t.TempDir(), "replica.json"))
	if err != nil {
		t.Fatal(err)
	}
	hubCtx, stopHub := context.WithCancel(t.Context())
	hubDone := make(chan error, 1)
	go func() {
		hubDone <- (&hubclient.Client{API: pb.NewHubAssignmentServiceClient(conn), Replica: replica, SaveEvery: 20 * time.Millisecond}).Run(hubCtx)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) { // until the hub caught up
		if id := replica.Get("victim-1"); id != nil && !id.Enabled && id.DisabledReason == string(fault.CertificateRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub's replica holds %+v", replica.Get("victim-1"))
		}
	}
	if id := replica.Get("early-1"); id == nil || !id.Enabled {
		t.Fatalf("the hub's replica holds early-1 as %+v", id)
	}
	stopHub()
	if err := <-hubDone; err != nil {
		t.Fatalf("hub client: %v", err)
	}
	if _, err := e.registerGRPC("victim-1", victim, inter.Cert); reasonOf(t, err) != string(fault.CertificateRevoked) {
		t.Fatalf("the revoked registered device again: %v", err)
	}
	// Saving the group (which enables its devices' identities) leaves it
	// disabled.
	groups := pb.NewEnrollmentServiceClient(e.admin)
	g, err := groups.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	g.ProvisioningStatus = pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED
	if _, err := groups.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: g, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}}); err != nil {
		t.Fatal(err)
	}
	if id, err := e.store.GetIdentity(t.Context(), "victim-1"); err != nil || id.Status != registry.IdentityDisabled || id.DisabledReason != string(fault.CertificateRevoked) {
		t.Fatalf("after the group was saved: %+v %v", id, err)
	}
	if _, err := e.registerREST("early-1", early, inter.Cert); err != nil {
		t.Fatalf("a device the CRL does not list: %v", err)
	}
	if reg, _ := e.store.GetRegistration(t.Context(), "early-1"); reg.Status != registry.Assigned {
		t.Fatalf("early-1 is %s", reg.Status)
	}

	// Refusals: a replayed older CRL, a CRL of another CA, nothing, both
	// forms, an unknown CA. Then REST with base64 DER, and GetCrl.
	for name, tc := range map[string]struct {
		req  *pb.UploadCrlRequest
		code codes.Code
	}{
		"older":       {&pb.UploadCrlRequest{Name: "acme-issuing", CrlDer: crlOf(t, inter, 9, now, now.Add(24*time.Hour))}, codes.FailedPrecondition},
		"another CA":  {&pb.UploadCrlRequest{Name: "acme-issuing", CrlDer: crlOf(t, root, 11, now, now.Add(24*time.Hour))}, codes.InvalidArgument},
		"empty":       {&pb.UploadCrlRequest{Name: "acme-issuing"}, codes.InvalidArgument},
		"both":        {&pb.UploadCrlRequest{Name: "acme-issuing", CrlPem: crlPEM, CrlDer: []byte{1}}, codes.InvalidArgument},
		"garbage":     {&pb.UploadCrlRequest{Name: "acme-issuing", CrlDer: []byte{0x30, 0x01, 0x00}}, codes.InvalidArgument},
		"unknown CA":  {&pb.UploadCrlRequest{Name: "nobody", CrlPem: crlPEM}, codes.NotFound},
		"certificate": {&pb.UploadCrlRequest{Name: "acme-issuing", CrlPem: string(pki.CertPEM(inter.Cert))}, codes.InvalidArgument},
	} {
		if _, err := cas.UploadCrl(e.owner(), tc.req); codeOf(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	if _, err := cas.UploadCrl(as(t.Context(), e.readerKey), &pb.UploadCrlRequest{Name: "acme-issuing", CrlPem: crlPEM}); codeOf(err) != codes.PermissionDenied {
		t.Fatalf("an EnrollmentRead key uploads a CRL: %v", err)
	}
	body, _ := json.Marshal(map[string]string{"crlDer": base64.StdEncoding.EncodeToString(crlOf(t, inter, 11, now, now.Add(24*time.Hour), victim.Cert.SerialNumber, stranger.Cert.SerialNumber))})
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	if a := e.restCall(t, &http.Client{Transport: tr}, http.MethodPost, "/v1/caCertificates/acme-issuing:uploadCrl", "application/json", body); a.http != http.StatusOK {
		t.Fatalf("REST upload: %d %s", a.http, a.body)
	}
	if got, err := cas.GetCrl(e.owner(), &pb.GetCrlRequest{Name: "acme-issuing"}); err != nil || got.GetCrlNumber() != "11" || got.GetRevokedCount() != 2 {
		t.Fatalf("GetCrl: %v %v", got, err)
	}

	// The root's CRL revokes the intermediate: every device under it.
	if _, err := cas.UploadCrl(e.owner(), &pb.UploadCrlRequest{Name: "acme-root", CrlDer: crlOf(t, root, 1, now, now.Add(24*time.Hour), inter.Cert.SerialNumber)}); err != nil {
		t.Fatal(err)
	}
	e.waitRevoked("early-1")
	newcomer := f.device(t, "newcomer-1")
	if _, err := e.registerGRPC("newcomer-1", newcomer, inter.Cert); reasonOf(t, err) != string(fault.CertificateRevoked) {
		t.Fatalf("a device under a revoked intermediate: %v", err)
	}
	e.assertNoRegistration("newcomer-1")

	// Deleting the root's CRL lets new devices in again; what it disabled
	// stays disabled.
	if _, err := cas.DeleteCrl(e.owner(), &pb.DeleteCrlRequest{Name: "acme-root"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cas.GetCrl(e.owner(), &pb.GetCrlRequest{Name: "acme-root"}); codeOf(err) != codes.NotFound {
		t.Fatalf("GetCrl after DeleteCrl: %v", err)
	}
	if _, err := e.registerGRPC("newcomer-1", newcomer, inter.Cert); err != nil {
		t.Fatalf("after the root's CRL was deleted: %v", err)
	}
	if _, err := e.registerGRPC("early-1", early, inter.Cert); reasonOf(t, err) != string(fault.RegistrationDisabled) {
		t.Fatalf("a registration disabled by a revocation stays disabled: %v", err)
	}
}

// cdpServer serves one CRL that a test changes (nil: 404).
type cdpServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
}

func serveCDP(t *testing.T) *cdpServer {
	s := &cdpServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		if body == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *cdpServer) set(body []byte) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

// TestCRLDistributionPoints: CRLs fetched from the distribution points the
// devices' certificates name, from HTTP servers the test runs. A listed
// device is refused and writes nothing; a stale or unreachable CRL refuses
// (REVOCATION_UNKNOWN) under the default REQUIRED check and admits under
// BEST_EFFORT; a new CRL at the point, fetched by the refresher, disables
// a registered device. The group's policy goes through the API.
func TestCRLDistributionPoints(t *testing.T) {
	e := startWith(t, options{revocationRefresh: 300 * time.Millisecond})
	e.createShard("shard-a", 1)
	now := time.Now()
	type ca struct {
		name string
		ca   *pki.Issued
		cdp  *cdpServer
	}
	var cas []ca
	for _, name := range []string{"strict", "lenient"} {
		root, err := pki.NewCA(name+" root", nil, now, 48*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.uploadCA(name, root, true)
		cas = append(cas, ca{name, root, serveCDP(t)})
	}
	strict, lenient := cas[0], cas[1]
	e.createGroup("strict", "strict") // the default: REQUIRED
	e.createGroupWith("lenient", "lenient", &pb.RevocationPolicy{Check: pb.RevocationCheck_REVOCATION_CHECK_BEST_EFFORT})
	groups := pb.NewEnrollmentServiceClient(e.admin)
	if g, err := groups.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "strict"}); err != nil || g.GetRevocation().GetCheck() != pb.RevocationCheck_REVOCATION_CHECK_REQUIRED {
		t.Fatalf("the default policy reads %v (%v)", g.GetRevocation(), err)
	}
	if _, err := groups.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: "bad", CaCertificate: "strict",
		Revocation: &pb.RevocationPolicy{Check: pb.RevocationCheck_REVOCATION_CHECK_OFF, Ocsp: true}}}); codeOf(err) != codes.InvalidArgument {
		t.Fatalf("OCSP with checking off: %v", err)
	}

	dev := func(c ca, regID string) *pki.Issued {
		return deviceWith(t, regID, c.ca, []string{c.cdp.URL + "/" + c.name + ".crl"}, nil)
	}
	register := func(regID string, d *pki.Issued) error {
		_, err := e.registerGRPC(regID, d)
		return err
	}
	for _, c := range cas {
		ok, bad := dev(c, c.name+"-ok"), dev(c, c.name+"-bad")
		c.cdp.set(crlOf(t, c.ca, 1, now, now.Add(time.Hour), bad.Cert.SerialNumber))
		if err := register(c.name+"-ok", ok); err != nil {
			t.Fatalf("%s: a device its CRL does not list: %v", c.name, err)
		}
		if err := register(c.name+"-bad", bad); reasonOf(t, err) != string(fault.CertificateRevoked) {
			t.Fatalf("%s: a listed device: %v", c.name, err)
		}
		e.assertNoRegistration(c.name + "-bad")
	}

	// Stale: each CA's point now serves a CRL past its nextUpdate. Devices
	// that point there (a new URL, so nothing cached) are refused by the
	// strict group and admitted by the lenient one.
	for _, c := range cas {
		c.cdp.set(crlOf(t, c.ca, 2, now.Add(-2*time.Hour), now.Add(-time.Hour)))
	}
	staleDev := func(c ca, regID string) *pki.Issued {
		return deviceWith(t, regID, c.ca, []string{c.cdp.URL + "/stale.crl"}, nil)
	}
	err := register("strict-stale", staleDev(strict, "strict-stale"))
	if reasonOf(t, err) != string(fault.RevocationUnknown) || codeOf(err) != codes.Unavailable {
		t.Fatalf("strict group, stale CRL: %v", err)
	}
	e.assertNoRegistration("strict-stale")
	if err := register("lenient-stale", staleDev(lenient, "lenient-stale")); err != nil {
		t.Fatalf("lenient group, stale CRL: %v", err)
	}
	// Unreachable: a point nobody serves.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/gone.crl"
	dead.Close()
	if _, err := e.registerREST("strict-dead", deviceWith(t, "strict-dead", strict.ca, []string{deadURL}, nil)); reasonOf(t, err) != string(fault.RevocationUnknown) {
		t.Fatalf("strict group, unreachable point: %v", err)
	}
	e.assertNoRegistration("strict-dead")
	if _, err := e.registerREST("lenient-dead", deviceWith(t, "lenient-dead", lenient.ca, []string{deadURL}, nil)); err != nil {
		t.Fatalf("lenient group, unreachable point: %v", err)
	}
	// The strict group switched to best effort through the API (update
	// mask "revocation") admits its stale device.
	g, _ := groups.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "strict"})
	g.Revocation = &pb.RevocationPolicy{Check: pb.RevocationCheck_REVOCATION_CHECK_BEST_EFFORT}
	if _, err := groups.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: g, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"revocation"}}}); err != nil {
		t.Fatal(err)
	}
	if err := register("strict-stale", staleDev(strict, "strict-stale")); err != nil {
		t.Fatalf("strict group made best effort, stale CRL: %v", err)
	}

	// The refresher: the strict CA publishes a new CRL listing a
	// registered device; the device is disabled within a refresh period.
	strict.cdp.set(crlOf(t, strict.ca, 3, now, now.Add(time.Hour), e.certOf(t, "strict-ok").SerialNumber))
	e.waitRevoked("strict-ok")
	if reg, _ := e.store.GetRegistration(t.Context(), "lenient-ok"); reg.Status != registry.Assigned {
		t.Fatalf("a device of the other CA was touched: %s", reg.Status)
	}
}

// certOf finds a registered device's certificate serial through the
// store's chain record (the test keeps no map).
func (e *env) certOf(t *testing.T, regID string) *x509.Certificate {
	t.Helper()
	id, err := e.store.GetIdentity(t.Context(), regID)
	if err != nil || len(id.Credential.X509Chain) == 0 {
		t.Fatalf("identity of %s: %+v %v", regID, id, err)
	}
	n, ok := new(big.Int).SetString(id.Credential.X509Chain[0].Serial, 16)
	if !ok {
		t.Fatalf("serial %q", id.Credential.X509Chain[0].Serial)
	}
	return &x509.Certificate{SerialNumber: n}
}

// TestOCSPResponder: a group that asks for OCSP checks each device with
// the responder its certificate names (a responder the test runs, signing
// with golang.org/x/crypto/ocsp): good is admitted, revoked refused,
// silence refused under REQUIRED.
func TestOCSPResponder(t *testing.T) {
	e := start(t)
	e.createShard("shard-a", 1)
	now := time.Now()
	root, err := pki.NewCA("OCSP Root", nil, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.uploadCA("ocsp-root", root, true)
	e.createGroupWith("ocsp", "ocsp-root", &pb.RevocationPolicy{Ocsp: true})
	var revoked sync.Map // serial text → true
	var down atomic.Bool
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(raw)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}
		if _, ok := revoked.Load(req.SerialNumber.String()); ok {
			tmpl.Status, tmpl.RevokedAt = ocsp.Revoked, time.Now().Add(-time.Minute)
		}
		resp, err := ocsp.CreateResponse(root.Cert, root.Cert, tmpl, root.Key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
	defer responder.Close()
	good := deviceWith(t, "good-1", root, nil, []string{responder.URL})
	bad := deviceWith(t, "bad-1", root, nil, []string{responder.URL})
	revoked.Store(bad.Cert.SerialNumber.String(), true)
	if _, err := e.registerGRPC("good-1", good); err != nil {
		t.Fatalf("good: %v", err)
	}
	if _, err := e.registerREST("bad-1", bad); reasonOf(t, err) != string(fault.CertificateRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	e.assertNoRegistration("bad-1")
	down.Store(true)
	if _, err := e.registerGRPC("silent-1", deviceWith(t, "silent-1", root, nil, []string{responder.URL})); reasonOf(t, err) != string(fault.RevocationUnknown) {
		t.Fatalf("responder down: %v", err)
	}
	e.assertNoRegistration("silent-1")
}

// TestCRLOnRedisReplicas: two replicas on one redis-server. A CRL uploaded
// through one is applied by the other within its reload period (a second),
// and the device it revokes, registered through the other, is disabled
// in the shared store and its shard's log.
func TestCRLOnRedisReplicas(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	keyFile := filepath.Join(t.TempDir(), "data.key")
	if _, err := secrets.LoadOrCreate(keyFile, true); err != nil {
		t.Fatal(err)
	}
	open := func() *redis.Store {
		s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := startWith(t, options{store: open(), dataKeyFile: keyFile}), startWith(t, options{store: open(), dataKeyFile: keyFile})
	f := a.newFleet()
	a.uploadCA("acme-issuing", f.inter, false)
	victim, other := f.device(t, "victim-1"), f.device(t, "other-1")
	if _, err := b.registerGRPC("victim-1", victim, f.inter.Cert); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := pb.NewCertificateAuthorityServiceClient(a.admin).UploadCrl(a.owner(), &pb.UploadCrlRequest{Name: "acme-issuing",
		CrlDer: crlOf(t, f.inter, 1, now, now.Add(time.Hour), victim.Cert.SerialNumber, other.Cert.SerialNumber)}); err != nil {
		t.Fatal(err)
	}
	// Replica b refuses the other revoked device once it reloaded (it reads
	// the store's version every second): its status lookup, which writes
	// nothing, says so.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, _, body := b.dpsCall("POST", "/"+idScope+"/registrations/other-1", "", `{"registrationId":"other-1"}`, other, f.inter)
		if strings.Contains(string(body), string(fault.CertificateRevoked)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b never loaded the CRL uploaded on a: %s", body)
		}
	}
	if _, err := b.registerREST("other-1", other, f.inter.Cert); reasonOf(t, err) != string(fault.CertificateRevoked) {
		t.Fatalf("replica b after the upload on a: %v", err)
	}
	b.assertNoRegistration("other-1")
	b.waitRevoked("victim-1")
	a.waitRevoked("victim-1")

	// The root's CRL revokes the intermediate: a device under it is
	// disabled too (found by the intermediate's own index entry), and one
	// of another intermediate is not.
	spare, err := pki.NewCA("Acme Devices Issuing 2", f.root, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	third, kept := f.device(t, "third-1"), f.deviceFrom(t, "kept-1", spare)
	if _, err := b.registerGRPC("third-1", third, f.inter.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := b.registerGRPC("kept-1", kept, spare.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewCertificateAuthorityServiceClient(a.admin).UploadCrl(a.owner(), &pb.UploadCrlRequest{Name: "acme-root",
		CrlDer: crlOf(t, f.root, 1, now, now.Add(time.Hour), f.inter.Cert.SerialNumber)}); err != nil {
		t.Fatal(err)
	}
	a.waitRevoked("third-1")
	if reg, err := a.store.GetRegistration(t.Context(), "kept-1"); err != nil || reg.Status != registry.Assigned {
		t.Fatalf("a device of another intermediate after the root's CRL: %+v, %v", reg, err)
	}
}
