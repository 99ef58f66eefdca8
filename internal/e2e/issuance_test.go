package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// issuing is an issuing CA, a policy on it and a group naming the policy,
// made through the API.
type issuing struct {
	e      *env
	caCert *x509.Certificate
	fleet  *fleet
}

func (e *env) newIssuing(policy *pb.CredentialPolicy) *issuing {
	e.t.Helper()
	cl := pb.NewIssuanceServiceClient(e.admin)
	ca, err := cl.CreateIssuingCa(e.owner(), &pb.CreateIssuingCaRequest{Name: "fleet-ops", CommonName: "Acme Operational CA"})
	if err != nil {
		e.t.Fatalf("CreateIssuingCa: %v", err)
	}
	if ca.GetState() != pb.IssuingCaState_ISSUING_CA_STATE_ACTIVE || !strings.HasSuffix(ca.GetCrlUrl(), "/pki/fleet-ops/crl") {
		e.t.Fatalf("issuing CA: %v", ca)
	}
	block, _ := pem.Decode([]byte(ca.GetCertificateChainPem()))
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		e.t.Fatal(err)
	}
	if policy == nil {
		policy = &pb.CredentialPolicy{}
	}
	policy.Name, policy.IssuingCa = "devices", "fleet-ops"
	if _, err := cl.CreateCredentialPolicy(e.owner(), &pb.CreateCredentialPolicyRequest{CredentialPolicy: policy}); err != nil {
		e.t.Fatalf("CreateCredentialPolicy: %v", err)
	}
	f := e.newFleet()
	g, err := pb.NewEnrollmentServiceClient(e.admin).GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := pb.NewEnrollmentServiceClient(e.admin).UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{
		EnrollmentGroup: &pb.EnrollmentGroup{Id: "acme", Etag: g.GetEtag(), CredentialPolicy: "devices"},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"credential_policy"}}}); err != nil {
		e.t.Fatalf("set the group's credential policy: %v", err)
	}
	return &issuing{e: e, caCert: caCert, fleet: f}
}

func newECKey(t *testing.T, c elliptic.Curve) crypto.Signer {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func makeCSR(t *testing.T, cn string, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// registerCSR registers over gRPC presenting dev's certificate, with a CSR.
func (e *env) registerCSR(regID string, dev *pki.Issued, chain []*x509.Certificate, csr []byte) (*pb.Registration, error) {
	cc := e.dial(e.clientTLS(dev, chain...))
	defer cc.Close()
	resp, err := pb.NewDeviceRegistrationServiceClient(cc).Register(e.t.Context(), &pb.RegisterRequest{RegistrationId: regID, Csr: csr})
	if err != nil {
		return nil, err
	}
	return resp.GetRegistration(), nil
}

// issuedDevice is the certificate a registration got, with its key.
func issuedDevice(t *testing.T, reg *pb.Registration, key crypto.Signer) (*pki.Issued, []*x509.Certificate) {
	t.Helper()
	var certs []*x509.Certificate
	for _, der := range reg.GetIssuedCertificateChain() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("issued chain: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("issued chain has %d certificates", len(certs))
	}
	return &pki.Issued{Cert: certs[0], Key: key}, certs[1:]
}

// TestCertificateIssuance: a device that sends a CSR gets a certificate
// from its group's credential policy, recorded with its registration and
// its hub identity; it renews with that certificate alone; a superseded
// and revoked certificate is refused; every bad CSR is named and writes
// nothing.
func TestCertificateIssuance(t *testing.T) { testCertificateIssuance(t, start(t)) }

// TestCertificateIssuanceOnRedis is the same on a real redis-server.
func TestCertificateIssuanceOnRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	testCertificateIssuance(t, startWith(t, options{store: openRedis(t, srv.Addr())}))
}

func testCertificateIssuance(t *testing.T, e *env) {
	is := e.newIssuing(&pb.CredentialPolicy{Validity: durationpb.New(48 * time.Hour)})
	birth := is.fleet.device(t, "sensor-1")
	chain := []*x509.Certificate{is.fleet.inter.Cert}

	// First registration with a CSR.
	k1 := newECKey(t, elliptic.P256())
	reg, err := e.registerCSR("sensor-1", birth, chain, makeCSR(t, "sensor-1", k1))
	if err != nil {
		t.Fatalf("register with a CSR: %v", err)
	}
	c1, c1chain := issuedDevice(t, reg, k1)
	pool := x509.NewCertPool()
	pool.AddCert(is.caCert)
	if _, err := c1.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify to the issuing CA: %v", err)
	}
	if c1.Cert.Subject.CommonName != "sensor-1" || c1.Cert.NotAfter.After(time.Now().Add(48*time.Hour+time.Minute)) {
		t.Fatalf("issued: CN %q, notAfter %s", c1.Cert.Subject.CommonName, c1.Cert.NotAfter)
	}
	serial1 := reg.GetIssuedCertificate().GetSerial()
	if serial1 == "" || reg.GetIssuedCertificate().GetIssuingCa() != "fleet-ops" {
		t.Fatalf("registration's issued certificate: %v", reg.GetIssuedCertificate())
	}
	// Recorded with the registration, and in the identity the hub gets.
	got, err := e.store.GetRegistration(t.Context(), "sensor-1")
	if err != nil || got.Issued == nil || got.Issued.Serial != serial1 {
		t.Fatalf("stored registration's issued certificate: %+v, %v", got, err)
	}
	events, err := e.store.ReadEvents(t.Context(), got.Shard, 0, 100)
	if err != nil || len(events) == 0 {
		t.Fatalf("events: %v", err)
	}
	if last := events[len(events)-1].Identity; last.Credential.Issued == nil || last.Credential.Issued.Serial != serial1 {
		t.Fatalf("the hub's event does not carry the issued certificate: %+v", last.Credential)
	}

	// Renewal: the issued certificate alone (no birth credential), a new key.
	k2 := newECKey(t, elliptic.P384())
	reg2, err := e.registerCSR("sensor-1", c1, c1chain, makeCSR(t, "sensor-1", k2))
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	c2, c2chain := issuedDevice(t, reg2, k2)
	if reg2.GetIssuedCertificate().GetSerial() == serial1 || reg2.GetDeviceId() != reg.GetDeviceId() || reg2.GetShard() != reg.GetShard() {
		t.Fatalf("renewal: serial %s (was %s), device %s (was %s)", reg2.GetIssuedCertificate().GetSerial(), serial1, reg2.GetDeviceId(), reg.GetDeviceId())
	}
	got, _ = e.store.GetRegistration(t.Context(), "sensor-1")
	if got.Superseded == nil || got.Superseded.Serial != serial1 || got.CredentialThumbprint != enrollment.Thumbprint(birth.Cert.Raw) {
		t.Fatalf("after renewal: superseded %+v, credential %s", got.Superseded, got.CredentialThumbprint)
	}
	// The superseded certificate's revocation waits for the overlap.
	revs, err := pb.NewIssuanceServiceClient(e.admin).ListRevocations(e.owner(), &pb.ListRevocationsRequest{IssuingCa: "fleet-ops"})
	if err != nil || len(revs.GetRevocations()) != 1 || revs.GetRevocations()[0].GetSerial() != serial1 ||
		!revs.GetRevocations()[0].GetRevokeTime().AsTime().After(time.Now().Add(50*time.Minute)) {
		t.Fatalf("revocations after renewal: %v, %v", revs, err)
	}

	// The superseded certificate no longer renews, even within its
	// overlap (a stolen copy must not outlive it).
	_, err = e.registerCSR("sensor-1", c1, c1chain, makeCSR(t, "sensor-1", newECKey(t, elliptic.P256())))
	if r := reasonOf(t, err); r != "CERTIFICATE_REVOKED" {
		t.Fatalf("renewal with the superseded certificate: %s (%v)", r, err)
	}
	// A second renewal makes the first certificate's overlap moot: it is
	// revoked now, and replaying it is refused.
	k3 := newECKey(t, elliptic.P256())
	if _, err := e.registerCSR("sensor-1", c2, c2chain, makeCSR(t, "sensor-1", k3)); err != nil {
		t.Fatalf("second renewal: %v", err)
	}
	_, err = e.registerCSR("sensor-1", c1, c1chain, makeCSR(t, "sensor-1", newECKey(t, elliptic.P256())))
	if r := reasonOf(t, err); r != "CERTIFICATE_REVOKED" {
		t.Fatalf("replayed superseded certificate: %s (%v)", r, err)
	}
	// The birth certificate still registers (and may ask again).
	if _, err := e.registerGRPC("sensor-1", birth, chain...); err != nil {
		t.Fatalf("birth certificate after renewals: %v", err)
	}

	// Every bad CSR is named and writes nothing.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range []struct {
		name, want string
		csr        []byte
	}{
		{"garbage", "CSR_INVALID", []byte("garbage")},
		{"another device's CN", "CSR_SUBJECT_MISMATCH", makeCSR(t, "sensor-1", newECKey(t, elliptic.P256()))},
		{"RSA under an EC-only policy", "CSR_KEY_NOT_ALLOWED", makeCSR(t, "sensor-2", rsaKey)},
	} {
		_, err := e.registerCSR("sensor-2", is.fleet.device(t, "sensor-2"), chain, c.csr)
		if r := reasonOf(t, err); r != c.want {
			t.Errorf("%s: %s (%v), want %s", c.name, r, err, c.want)
		}
		e.assertNoRegistration("sensor-2")
	}
	// A group with no credential policy issues nothing.
	root2, _ := pki.NewCA("Other Root", nil, time.Now(), time.Hour)
	e.uploadCA("other-root", root2, true)
	e.createGroup("other", "other-root")
	d3, _ := pki.NewDevice("sensor-3", root2, time.Now(), time.Hour)
	_, err = e.registerCSR("sensor-3", d3, nil, makeCSR(t, "sensor-3", newECKey(t, elliptic.P256())))
	if r := reasonOf(t, err); r != "CREDENTIAL_POLICY_MISSING" {
		t.Fatalf("no policy: %s (%v)", r, err)
	}
	e.assertNoRegistration("sensor-3")

	// An enrollment cannot name a policy that does not exist.
	root3, _ := pki.NewCA("Third Root", nil, time.Now(), time.Hour)
	e.uploadCA("third-root", root3, true)
	_, err = pb.NewEnrollmentServiceClient(e.admin).CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{
		EnrollmentGroup: &pb.EnrollmentGroup{Id: "ghost", CaCertificate: "third-root", CredentialPolicy: "nope"}})
	if r := reasonOf(t, err); r != "CREDENTIAL_POLICY_MISSING" {
		t.Fatalf("group naming a missing policy: %s (%v)", r, err)
	}
}

// dpsRegister is a raw DPS register (PUT) at an api-version.
func (e *env) dpsRegister(method, path, apiVersion, body string, dev *pki.Issued, chain []*x509.Certificate) (int, []byte) {
	e.t.Helper()
	tr := &http.Transport{TLSClientConfig: e.clientTLS(dev, chain...), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(method, "https://"+e.httpAddr+path+"?api-version="+apiVersion, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, raw
}

// TestDPSCertificateIssuance: DPS's certificate issuance preview, with raw
// requests (the Azure Node SDK never sends a csr): csr in, an
// issuedCertificateChain out; renewal over TLS with the issued
// certificate; a csr on an older api-version or on a status lookup is a
// 400.
func TestDPSCertificateIssuance(t *testing.T) {
	e := start(t)
	is := e.newIssuing(nil)
	birth := is.fleet.device(t, "dps-dev")
	chain := []*x509.Certificate{is.fleet.inter.Cert}
	path := "/" + idScope + "/registrations/dps-dev/register"
	key := newECKey(t, elliptic.P384())
	body := `{"registrationId":"dps-dev","csr":"` + base64.StdEncoding.EncodeToString(makeCSR(t, "dps-dev", key)) + `"}`

	code, raw := e.dpsRegister(http.MethodPut, path, "2021-10-01", body, birth, chain)
	if code != http.StatusBadRequest {
		t.Fatalf("csr at 2021-10-01: %d %s", code, raw)
	}
	e.assertNoRegistration("dps-dev")
	code, raw = e.dpsRegister(http.MethodPut, path, "2025-07-01-preview", `{"registrationId":"dps-dev","csr":"!!"}`, birth, chain)
	if code != http.StatusBadRequest || !strings.Contains(string(raw), "CSR_INVALID") {
		t.Fatalf("non-base64 csr: %d %s", code, raw)
	}
	code, raw = e.dpsRegister(http.MethodPut, path, "2025-07-01-preview", body, birth, chain)
	if code != http.StatusOK {
		t.Fatalf("register with csr: %d %s", code, raw)
	}
	op := decodeOp(t, raw)
	ders := op.RegistrationState.IssuedCertificateChain
	if op.Status != "assigned" || len(ders) != 2 {
		t.Fatalf("operation: %s", raw)
	}
	var certs []*x509.Certificate
	for _, b := range ders {
		der, _ := base64.StdEncoding.DecodeString(b)
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if certs[0].Subject.CommonName != "dps-dev" || certs[0].CheckSignatureFrom(certs[1]) != nil || !certs[1].Equal(is.caCert) {
		t.Fatal("issuedCertificateChain is not leaf → issuing CA")
	}
	// A status lookup with a csr is a 400; without, no chain.
	code, raw = e.dpsRegister(http.MethodPost, "/"+idScope+"/registrations/dps-dev", "2025-07-01-preview", body, birth, chain)
	if code != http.StatusBadRequest {
		t.Fatalf("status lookup with csr: %d %s", code, raw)
	}
	code, raw = e.dpsRegister(http.MethodPost, "/"+idScope+"/registrations/dps-dev", "2025-07-01-preview", `{"registrationId":"dps-dev"}`, birth, chain)
	if code != http.StatusOK || strings.Contains(string(raw), "issuedCertificateChain") {
		t.Fatalf("status lookup: %d %s", code, raw)
	}
	// Renewal over DPS: the device's TLS client certificate is the issued one.
	key2 := newECKey(t, elliptic.P384())
	body2 := `{"registrationId":"dps-dev","csr":"` + base64.StdEncoding.EncodeToString(makeCSR(t, "dps-dev", key2)) + `"}`
	code, raw = e.dpsRegister(http.MethodPut, path, "2025-07-01-preview", body2, &pki.Issued{Cert: certs[0], Key: key}, certs[1:])
	if code != http.StatusOK || len(decodeOp(t, raw).RegistrationState.IssuedCertificateChain) != 2 {
		t.Fatalf("renewal over DPS: %d %s", code, raw)
	}
}

// TestRevocationPublished: revoking a registration's certificate puts it
// on the issuing CA's CRL and makes OCSP say revoked, checked by openssl;
// the device can no longer renew with it; a policy with revoke_on_disable
// revokes when the registration is disabled.
func TestRevocationPublished(t *testing.T) {
	e := startWith(t, options{pki: true})
	is := e.newIssuing(&pb.CredentialPolicy{RevokeOnDisable: true})
	chain := []*x509.Certificate{is.fleet.inter.Cert}
	issue := func(id string) (*pki.Issued, []*x509.Certificate) {
		k := newECKey(t, elliptic.P256())
		reg, err := e.registerCSR(id, is.fleet.device(t, id), chain, makeCSR(t, id, k))
		if err != nil {
			t.Fatal(err)
		}
		return issuedDevice(t, reg, k)
	}
	revoked, rchain := issue("rev-1")
	// With listen.pki the certificates point relying parties at plain HTTP.
	if got := revoked.Cert.CRLDistributionPoints; len(got) != 1 || got[0] != "http://"+e.pkiAddr+"/pki/fleet-ops/crl" {
		t.Fatalf("CRL distribution point %v, want the plain-HTTP listener", got)
	}
	kept, _ := issue("rev-2")
	disabled, _ := issue("rev-3")

	cl := pb.NewIssuanceServiceClient(e.admin)
	out, err := cl.RevokeCertificates(e.owner(), &pb.RevokeCertificatesRequest{RegistrationId: "rev-1", Reason: 1})
	if err != nil || len(out.GetRevocations()) != 1 {
		t.Fatalf("revoke: %v %v", out, err)
	}
	// A key without RegistrationStatusWrite cannot revoke.
	if _, err := cl.RevokeCertificates(as(t.Context(), e.readerKey), &pb.RevokeCertificatesRequest{RegistrationId: "rev-2"}); reasonOf(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("reader revoked: %v", err)
	}
	// Disabling rev-3's registration revokes its certificate (the policy says so).
	if _, err := pb.NewRegistrationServiceClient(e.admin).DisableRegistration(e.owner(), &pb.DisableRegistrationRequest{RegistrationId: "rev-3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerCSR("rev-1", revoked, rchain, makeCSR(t, "rev-1", newECKey(t, elliptic.P256()))); reasonOf(t, err) != "CERTIFICATE_REVOKED" {
		t.Fatalf("renewal with a revoked certificate: %v", err)
	}

	// The CRL and OCSP, from /pki/ without an access key.
	dir := t.TempDir()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	res, err := client.Get("https://" + e.httpAddr + "/pki/fleet-ops/crl")
	if err != nil {
		t.Fatal(err)
	}
	crlDER, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET crl: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range crl.RevokedCertificateEntries {
		listed[r.SerialNumber.String()] = true
	}
	if !listed[revoked.Cert.SerialNumber.String()] || !listed[disabled.Cert.SerialNumber.String()] || listed[kept.Cert.SerialNumber.String()] {
		t.Fatalf("CRL lists %v", listed)
	}
	// The same CRL over plain HTTP, from the URL in the certificate.
	res, err = client.Get(revoked.Cert.CRLDistributionPoints[0])
	if err != nil {
		t.Fatal(err)
	}
	plainDER, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(plainDER) != string(crlDER) {
		t.Fatalf("GET %s: %d, %d bytes (the HTTPS one has %d)", revoked.Cert.CRLDistributionPoints[0], res.StatusCode, len(plainDER), len(crlDER))
	}
	res, err = client.Get("https://" + e.httpAddr + "/pki/nope/crl")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("an unknown CA's CRL: %d, want 404", res.StatusCode)
	}

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPEM := write("ca.pem", pki.CertPEM(is.caCert))
	crlPEM := write("crl.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}))
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed to check the published PKI with a client nobody here wrote")
	}
	for _, c := range []struct {
		cert    *x509.Certificate
		revoked bool
	}{{revoked.Cert, true}, {kept.Cert, false}} {
		leafPEM := write("leaf.pem", pki.CertPEM(c.cert))
		outb, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", caPEM, "-CRLfile", crlPEM, "-purpose", "sslclient", leafPEM).CombinedOutput()
		if c.revoked != (err != nil) || c.revoked && !strings.Contains(string(outb), "revoked") {
			t.Errorf("openssl verify -crl_check (revoked %v): %v\n%s", c.revoked, err, outb)
		}
		// OCSP: openssl builds the request, the HTTP client carries it,
		// openssl checks the answer's signature and reads the status.
		reqPath := filepath.Join(dir, "req.der")
		hash := "-sha1"
		if c.revoked {
			hash = "-sha256" // CertIDs by SHA-256 are answered in kind
		}
		if outb, err := exec.Command("openssl", "ocsp", hash, "-issuer", caPEM, "-cert", leafPEM, "-no_nonce", "-reqout", reqPath).CombinedOutput(); err != nil {
			t.Fatalf("openssl ocsp -reqout: %v\n%s", err, outb)
		}
		reqDER, _ := os.ReadFile(reqPath)
		res, err := client.Post(revoked.Cert.OCSPServer[0], "application/ocsp-request", strings.NewReader(string(reqDER)))
		if err != nil {
			t.Fatal(err)
		}
		respDER, _ := io.ReadAll(res.Body)
		res.Body.Close()
		respPath := write("resp.der", respDER)
		outb, err = exec.Command("openssl", "ocsp", hash, "-issuer", caPEM, "-cert", leafPEM, "-respin", respPath, "-CAfile", caPEM, "-no_nonce").CombinedOutput()
		want := ": good"
		if c.revoked {
			want = ": revoked"
		}
		if err != nil || !strings.Contains(string(outb), want) || !strings.Contains(string(outb), "Response verify OK") {
			t.Errorf("openssl ocsp (revoked %v): %v\n%s", c.revoked, err, outb)
		}
		// And openssl as the whole client, over plain HTTP (listen.pki).
		outb, err = exec.Command("openssl", "ocsp", hash, "-issuer", caPEM, "-cert", leafPEM, "-url", c.cert.OCSPServer[0], "-CAfile", caPEM, "-no_nonce").CombinedOutput()
		if err != nil || !strings.Contains(string(outb), want) || !strings.Contains(string(outb), "Response verify OK") {
			t.Errorf("openssl ocsp -url (revoked %v): %v\n%s", c.revoked, err, outb)
		}
	}
}

// TestTPMCertificateIssuance: on the native TPM protocol the CSR must be
// for the bound key the TPM proved (signed in the TPM, through its hash
// ticket), so the certificate provably lives in the TPM; a CSR for any
// other key is refused and writes nothing.
func TestTPMCertificateIssuance(t *testing.T) {
	e := start(t)
	e.newIssuing(nil)
	withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) {
		regID := tpm.RegistrationID(d.EKPublic())
		if _, err := pb.NewEnrollmentServiceClient(e.admin).CreateEnrollment(e.owner(), &pb.CreateEnrollmentRequest{Enrollment: &pb.Enrollment{
			RegistrationId: regID, Tpm: &pb.TpmAttestation{EndorsementKey: d.EKPublic()}, CredentialPolicy: "devices"}}); err != nil {
			t.Fatal(err)
		}
		cc := e.dial(nil)
		defer cc.Close()
		dev := pb.NewDeviceRegistrationServiceClient(cc)
		complete := func(csr []byte) (*pb.RegisterResponse, error) {
			ch, err := dev.BeginTpmAttestation(t.Context(), &pb.BeginTpmAttestationRequest{RegistrationId: regID, EndorsementKey: d.EKPublic(), BoundKey: d.BoundKeyPublic()})
			if err != nil {
				t.Fatal(err)
			}
			secret, err := d.Activate(ch.GetCredentialBlob(), ch.GetEncryptedSecret())
			if err != nil {
				t.Fatal(err)
			}
			return dev.CompleteTpmAttestation(t.Context(), &pb.CompleteTpmAttestationRequest{RegistrationId: regID, ChallengeId: ch.GetChallengeId(), Secret: secret, Csr: csr})
		}
		// A CSR for a key outside the TPM: refused, nothing written.
		_, err := complete(makeCSR(t, regID, newECKey(t, elliptic.P256())))
		if r := reasonOf(t, err); r != "CSR_KEY_MISMATCH" {
			t.Fatalf("CSR for another key: %s (%v)", r, err)
		}
		e.assertNoRegistration(regID)

		tpmKey, err := d.Signer()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := complete(makeCSR(t, regID, tpmKey))
		if err != nil {
			t.Fatalf("CSR signed by the bound key: %v", err)
		}
		leaf, err := x509.ParseCertificate(resp.GetRegistration().GetIssuedCertificateChain()[0])
		if err != nil {
			t.Fatal(err)
		}
		if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(tpmKey.Public()) {
			t.Fatal("the issued certificate is not for the TPM's bound key")
		}
		if leaf.Subject.CommonName != regID {
			t.Fatalf("CN %q", leaf.Subject.CommonName)
		}
		// Renewal over TLS with the TPM-held certificate: the new CSR must
		// be for the bound key still, or the identity would leave the TPM.
		issued, chain := issuedDevice(t, resp.GetRegistration(), tpmKey)
		_, err = e.registerCSR(regID, issued, chain, makeCSR(t, regID, newECKey(t, elliptic.P256())))
		if r := reasonOf(t, err); r != "CSR_KEY_MISMATCH" {
			t.Fatalf("renewing a TPM certificate with a software key: %s (%v)", r, err)
		}
		renewed, err := e.registerCSR(regID, issued, chain, makeCSR(t, regID, tpmKey))
		if err != nil || renewed.GetIssuedCertificate().GetSerial() == resp.GetRegistration().GetIssuedCertificate().GetSerial() {
			t.Fatalf("renewing with the bound key: %v, %v", renewed, err)
		}
	})
}

// TestRenewalNeedsTheSameEnrollment: an issued certificate renews only
// while the enrollment that admitted its device is the same one, enabled,
// and the registration still the same device's (review findings).
func TestRenewalNeedsTheSameEnrollment(t *testing.T) {
	e := start(t)
	is := e.newIssuing(nil)
	chain := []*x509.Certificate{is.fleet.inter.Cert}
	issue := func(id string, birth *pki.Issued) (*pki.Issued, []*x509.Certificate) {
		k := newECKey(t, elliptic.P256())
		reg, err := e.registerCSR(id, birth, chain, makeCSR(t, id, k))
		if err != nil {
			t.Fatal(err)
		}
		return issuedDevice(t, reg, k)
	}
	renew := func(id string, c *pki.Issued, cc []*x509.Certificate) error {
		_, err := e.registerCSR(id, c, cc, makeCSR(t, id, newECKey(t, elliptic.P256())))
		return err
	}
	enr := pb.NewEnrollmentServiceClient(e.admin)
	setDisabled := func(id string, disabled bool) {
		g, err := enr.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		st := pb.ProvisioningStatus_PROVISIONING_STATUS_ENABLED
		if disabled {
			st = pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED
		}
		if _, err := enr.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{Id: id, Etag: g.GetEtag(), ProvisioningStatus: st},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}}); err != nil {
			t.Fatal(err)
		}
	}

	// Another device's certificate takes the registration over (the same
	// group, a new birth certificate for the ID): the old issued
	// certificate no longer renews.
	a, achain := issue("take-1", is.fleet.device(t, "take-1"))
	if _, err := e.registerGRPC("take-1", is.fleet.device(t, "take-1"), chain...); err != nil {
		t.Fatal(err)
	}
	if r := reasonOf(t, renew("take-1", a, achain)); r != "CERTIFICATE_REVOKED" {
		t.Fatalf("renewing after another birth certificate took the registration: %s", r)
	}
	got, _ := e.store.GetRegistration(t.Context(), "take-1")
	if got.Issued != nil {
		t.Fatal("the registration still holds the old device's certificate")
	}

	// The group is deleted and a namesake created (on another CA), then
	// enabled again (which re-enables the old group's identities): the
	// certificate the deleted group admitted does not renew.
	b, bchain := issue("gone-1", is.fleet.device(t, "gone-1"))
	g, _ := enr.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "acme"})
	if _, err := enr.DeleteEnrollmentGroup(e.owner(), &pb.DeleteEnrollmentGroupRequest{Id: "acme", Etag: g.GetEtag()}); err != nil {
		t.Fatal(err)
	}
	if r := reasonOf(t, renew("gone-1", b, bchain)); r != "REGISTRATION_DISABLED" {
		t.Fatalf("renewing after the group was deleted: %s", r)
	}
	root2, _ := pki.NewCA("Namesake Root", nil, time.Now(), time.Hour)
	e.uploadCA("namesake-root", root2, true)
	if _, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
		Id: "acme", CaCertificate: "namesake-root", CredentialPolicy: "devices"}}); err != nil {
		t.Fatal(err)
	}
	setDisabled("acme", true)
	setDisabled("acme", false)
	if r := reasonOf(t, renew("gone-1", b, bchain)); r != "ENROLLMENT_NOT_FOUND" {
		t.Fatalf("renewing under a namesake group: %s", r)
	}
}

// TestIssuingCAThatAlsoSignsBirthCertificates: a manufacturer CA imported
// as an issuing CA still admits the birth certificates it signed through
// the group that trusts it (they are not taken for issued ones).
func TestIssuingCAThatAlsoSignsBirthCertificates(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	keyPEM, err := pki.KeyPEM(f.inter.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewIssuanceServiceClient(e.admin).CreateIssuingCa(e.owner(), &pb.CreateIssuingCaRequest{Name: "imported", Mode: pb.IssuingCaMode_ISSUING_CA_MODE_IMPORT,
		CertificateChainPem: string(pki.CertPEM(f.inter.Cert, f.root.Cert)), PrivateKeyPem: string(keyPEM)}); err != nil {
		t.Fatalf("import: %v", err)
	}
	if _, err := e.registerGRPC("birth-1", f.device(t, "birth-1"), f.inter.Cert); err != nil {
		t.Fatalf("a birth certificate of the imported CA: %v", err)
	}
}

// TestIssuedChainAcceptedByTLSStacks: the issued chain works as a client
// certificate, in Go's TLS stack and Node's, against a server that trusts
// only the issuing CA (as a hub would); the birth certificate does not.
func TestIssuedChainAcceptedByTLSStacks(t *testing.T) {
	e := start(t)
	is := e.newIssuing(nil)
	key := newECKey(t, elliptic.P256())
	reg, err := e.registerCSR("tls-dev", is.fleet.device(t, "tls-dev"), []*x509.Certificate{is.fleet.inter.Cert}, makeCSR(t, "tls-dev", key))
	if err != nil {
		t.Fatal(err)
	}
	issued, _ := issuedDevice(t, reg, key)

	// The hub: TLS that requires a client certificate from the issuing CA.
	hubCert, err := pki.NewServer([]string{"localhost", "127.0.0.1"}, e.serverCA, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(is.caCert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{hubCert.Cert.Raw}, PrivateKey: hubCert.Key}},
		ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan string, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil {
					accepted <- "refused"
					return
				}
				accepted <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				tc.Write([]byte("ok\n"))
			}()
		}
	}()

	// Go.
	for _, c := range []struct {
		dev  *pki.Issued
		want string
	}{{issued, "tls-dev"}, {is.fleet.device(t, "tls-dev"), "refused"}} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), e.clientTLS(c.dev))
		if err == nil {
			io.ReadAll(conn)
			conn.Close()
		}
		if got := <-accepted; got != c.want {
			t.Fatalf("Go TLS client with %s: server saw %q, want %q", c.dev.Cert.Issuer.CommonName, got, c.want)
		}
	}

	// Node.
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is required in CI")
		}
		t.Skip("node is not installed")
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	var chainPEM []byte
	for _, der := range reg.GetIssuedCertificateChain() {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	script := `const tls = require('tls');
const s = tls.connect({host: '127.0.0.1', port: +process.env.PORT, servername: 'localhost', ca: process.env.CA, cert: process.env.CERT, key: process.env.KEY},
  () => { s.on('data', d => { process.stdout.write(d); s.end(); }); });
s.on('error', e => { console.error(e.message); process.exit(1); });`
	cmd := exec.CommandContext(t.Context(), "node", "-e", script)
	cmd.Env = append(os.Environ(), "PORT="+strings.Split(ln.Addr().String(), ":")[1], "CA="+string(pki.CertPEM(e.serverCA.Cert)),
		"CERT="+string(chainPEM), "KEY="+string(keyPEM))
	out, err := cmd.CombinedOutput()
	if got := <-accepted; err != nil || got != "tls-dev" || !strings.Contains(string(out), "ok") {
		t.Fatalf("Node TLS client with the issued chain: server saw %q, node: %v %s", got, err, out)
	}
}

// TestRevocationsPaged: an issuing CA's revocations are listed a page at a
// time in serial order, every one once.
func TestRevocationsPaged(t *testing.T) {
	e := start(t)
	cl := pb.NewIssuanceServiceClient(e.admin)
	if _, err := cl.CreateIssuingCa(e.owner(), &pb.CreateIssuingCaRequest{Name: "paged"}); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []string{"05", "01", "0a", "03", "0b"} {
		if _, err := cl.RevokeCertificates(e.owner(), &pb.RevokeCertificatesRequest{IssuingCa: "paged", Serial: serial, Reason: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	pages := 0
	for token := ""; ; {
		res, err := cl.ListRevocations(e.owner(), &pb.ListRevocationsRequest{IssuingCa: "paged", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range res.GetRevocations() {
			got = append(got, r.GetSerial())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	if strings.Join(got, ",") != "01,03,05,0a,0b" || pages != 3 {
		t.Fatalf("pages %d: %v", pages, got)
	}
	for _, req := range []*pb.ListRevocationsRequest{{IssuingCa: "paged", PageToken: "zz"}, {IssuingCa: "paged", PageSize: 5000}} {
		if _, err := cl.ListRevocations(e.owner(), req); reasonOf(t, err) != "FIELD_INVALID" {
			t.Fatalf("%v: %v", req, err)
		}
	}
}

// TestIssuedCertificateCannotActForAnother: as an attacker holding one
// device's issued certificate and key: it registers as no other device,
// gets no certificate for another name, and a key with ServiceConfig but
// not RegistrationStatusWrite cannot revoke.
func TestIssuedCertificateCannotActForAnother(t *testing.T) {
	e := start(t)
	is := e.newIssuing(nil)
	chain := []*x509.Certificate{is.fleet.inter.Cert}
	issue := func(id string) (*pki.Issued, []*x509.Certificate) {
		k := newECKey(t, elliptic.P256())
		reg, err := e.registerCSR(id, is.fleet.device(t, id), chain, makeCSR(t, id, k))
		if err != nil {
			t.Fatal(err)
		}
		return issuedDevice(t, reg, k)
	}
	a, achain := issue("atk-a")
	issue("atk-b")
	before, _ := e.store.GetRegistration(t.Context(), "atk-b")

	// Another device's registration ID, with or without a CSR for it.
	if _, err := e.registerCSR("atk-b", a, achain, nil); reasonOf(t, err) != "REGISTRATION_ID_INVALID" {
		t.Fatalf("A's certificate naming B: %v", err)
	}
	if _, err := e.registerCSR("atk-b", a, achain, makeCSR(t, "atk-b", newECKey(t, elliptic.P256()))); reasonOf(t, err) != "REGISTRATION_ID_INVALID" {
		t.Fatalf("A's certificate naming B with B's CSR: %v", err)
	}
	// Its own ID, but a CSR for B: no certificate for another name.
	if _, err := e.registerCSR("atk-a", a, achain, makeCSR(t, "atk-b", newECKey(t, elliptic.P256()))); reasonOf(t, err) != "CSR_SUBJECT_MISMATCH" {
		t.Fatalf("a CSR for B with A's certificate: %v", err)
	}
	after, _ := e.store.GetRegistration(t.Context(), "atk-b")
	if after.Etag != before.Etag || after.Issued.Serial != before.Issued.Serial {
		t.Fatal("B's registration changed")
	}
	// A key that holds ServiceConfig only cannot revoke (that also needs
	// RegistrationStatusWrite), so it cannot cut devices off.
	svc := e.newKey("svc-only", access.ServiceConfig)
	if _, err := pb.NewIssuanceServiceClient(e.admin).RevokeCertificates(as(t.Context(), svc), &pb.RevokeCertificatesRequest{RegistrationId: "atk-b"}); reasonOf(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("a ServiceConfig-only key revoked: %v", err)
	}
	if revs, _ := pb.NewIssuanceServiceClient(e.admin).ListRevocations(e.owner(), &pb.ListRevocationsRequest{IssuingCa: "fleet-ops"}); len(revs.GetRevocations()) != 0 {
		t.Fatalf("revocations written by refused requests: %v", revs)
	}
}

// TestTrustCacheFollowsDeletion: with the CAs and groups cached, a group
// and CA deleted through the store refuse the next device at once.
func TestTrustCacheFollowsDeletion(t *testing.T) {
	e := start(t)
	f := e.newFleet()
	if _, err := e.registerGRPC("cache-1", f.device(t, "cache-1"), f.inter.Cert); err != nil {
		t.Fatal(err) // the cache is loaded
	}
	g, _ := e.store.GetGroup(t.Context(), "acme")
	if err := e.store.DeleteGroup(t.Context(), "acme", g.Etag); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("cache-2", f.device(t, "cache-2"), f.inter.Cert); reasonOf(t, err) != "ENROLLMENT_NOT_FOUND" {
		t.Fatalf("after the group's deletion: %v", err)
	}
	ca, _ := e.store.GetCA(t.Context(), "acme-root")
	if err := e.store.DeleteCA(t.Context(), "acme-root", ca.Etag); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registerGRPC("cache-3", f.device(t, "cache-3"), f.inter.Cert); reasonOf(t, err) != "CERTIFICATE_UNTRUSTED" {
		t.Fatalf("after the CA's deletion: %v", err)
	}
	e.assertNoRegistration("cache-2")
	e.assertNoRegistration("cache-3")
}
