package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// syntheticEK is a distinct RSA-2048 EK public area (the TCG default
// template with a random modulus): the server checks its structure and
// attributes, and no RSA key needs generating.
func syntheticEK(t testing.TB) []byte {
	t.Helper()
	pub := tpm2.RSAEKTemplate
	n := make([]byte, 256)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	n[0], n[255] = n[0]|0x80, n[255]|1
	pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: n})
	return tpm.MarshalPublic(&pub)
}

func randomThumbprint(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// importStream sends items as one stream (sequence i+1 for items[i]) and
// returns the results by sequence and the summary.
func importStream(t *testing.T, ctx context.Context, cc *grpc.ClientConn, items []*pb.Enrollment, validateOnly bool) (map[int64]*pb.ImportEnrollmentsResult, *pb.ImportEnrollmentsSummary) {
	t.Helper()
	stream, err := pb.NewEnrollmentServiceClient(cc).ImportEnrollments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i, it := range items {
			if stream.Send(&pb.ImportEnrollmentsRequest{Sequence: int64(i + 1), Enrollment: it, ValidateOnly: validateOnly}) != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	results := map[int64]*pb.ImportEnrollmentsResult{}
	var sum *pb.ImportEnrollmentsSummary
	last := int64(0)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResults() {
			if r.GetSequence() <= last {
				t.Fatalf("result %d after %d: out of order", r.GetSequence(), last)
			}
			last = r.GetSequence()
			results[r.GetSequence()] = r
		}
		if resp.GetSummary() != nil {
			sum = resp.GetSummary()
		}
	}
	if sum == nil || len(results) != len(items) {
		t.Fatalf("%d results for %d items, summary %v", len(results), len(items), sum)
	}
	return results, sum
}

// enrolledCount counts the individual enrollments through the API.
func enrolledCount(t *testing.T, e *env) int {
	t.Helper()
	cl := pb.NewEnrollmentServiceClient(e.admin)
	n, token := 0, ""
	for {
		resp, err := cl.ListEnrollments(e.owner(), &pb.ListEnrollmentsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		n += len(resp.GetEnrollments())
		if token = resp.GetNextPageToken(); token == "" {
			return n
		}
	}
}

// TestImportEnrollments streams TPM and X.509 items with malformed ones
// among them, on the embedded store and on Redis: every item is answered
// in order with its outcome and a stable reason; a refused item writes
// nothing; a dry run writes nothing; replaying the stream changes nothing
// and answers every good item unchanged.
func TestImportEnrollments(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testImport(t, start(t)) })
	t.Run("redis", func(t *testing.T) {
		redistest.Require(t)
		srv := redistest.Start(t, redistest.Options{})
		testImport(t, startWith(t, options{store: openRedis(t, srv.Addr())}))
	})
}

func testImport(t *testing.T, e *env) {
	ek1, ek2, ek3 := syntheticEK(t), syntheticEK(t), syntheticEK(t)
	th1, th2 := randomThumbprint(t), randomThumbprint(t)
	items := []*pb.Enrollment{
		{RegistrationId: "tpm-1", Tpm: &pb.TpmAttestation{EndorsementKey: ek1}},                  // 1
		{Tpm: &pb.TpmAttestation{EndorsementKey: ek2}},                                           // 2: ID derived
		{RegistrationId: "x509-1", Sha256Thumbprint: th1},                                        // 3
		{RegistrationId: "bad-ek", Tpm: &pb.TpmAttestation{EndorsementKey: []byte{0, 1, 2}}},     // 4
		{RegistrationId: "bad-thumb", Sha256Thumbprint: "zz"},                                    // 5
		{RegistrationId: "TPM-1", Tpm: &pb.TpmAttestation{EndorsementKey: ek3}},                  // 6: item 1's ID, another EK
		{RegistrationId: "x509-2", Sha256Thumbprint: th1},                                        // 7: item 3's thumbprint
		{RegistrationId: "big", Sha256Thumbprint: th2, InitialTwin: strings.Repeat(" ", 70<<10)}, // 8: over 64 KiB
		{RegistrationId: "sym", SymmetricKey: &pb.SymmetricKeyAttestation{}},                     // 9
		{RegistrationId: "bad id!", Sha256Thumbprint: randomThumbprint(t)},                       // 10
		{RegistrationId: "x509-3", Sha256Thumbprint: strings.ToUpper(randomThumbprint(t))},       // 11
	}
	want := map[int64]string{4: "TPM_STRUCTURE_INVALID", 5: "FIELD_INVALID", 6: "RESOURCE_ALREADY_EXISTS", 7: "RESOURCE_ALREADY_EXISTS",
		8: "BODY_TOO_LARGE", 9: "ATTESTATION_UNSUPPORTED", 10: "REGISTRATION_ID_INVALID"}
	check := func(results map[int64]*pb.ImportEnrollmentsResult, good pb.ImportOutcome) {
		t.Helper()
		for seq, r := range results {
			if reason, bad := want[seq]; bad {
				if r.GetOutcome() != pb.ImportOutcome_IMPORT_OUTCOME_REFUSED || r.GetError().GetReason() != reason {
					t.Errorf("item %d: %v, want refused with %s", seq, r, reason)
				}
			} else if r.GetOutcome() != good || r.GetError() != nil {
				t.Errorf("item %d: %v, want %v", seq, r, good)
			}
		}
	}
	// A dry run writes nothing.
	results, _ := importStream(t, e.owner(), e.admin, items, true)
	want[6], want[7] = "", "" // items of a dry run are not checked against each other
	delete(want, 6)
	delete(want, 7)
	check(results, pb.ImportOutcome_IMPORT_OUTCOME_CREATED)
	if n := enrolledCount(t, e); n != 0 {
		t.Fatalf("the dry run wrote %d enrollments", n)
	}
	want[6], want[7] = "RESOURCE_ALREADY_EXISTS", "RESOURCE_ALREADY_EXISTS"

	results, sum := importStream(t, e.owner(), e.admin, items, false)
	check(results, pb.ImportOutcome_IMPORT_OUTCOME_CREATED)
	if r := results[2]; r.GetRegistrationId() != tpm.RegistrationID(ek2) {
		t.Errorf("item 2's derived ID: %v", r)
	}
	if sum.GetCreated() != 4 || sum.GetRefused() != 7 || sum.GetUnchanged() != 0 {
		t.Errorf("summary %v", sum)
	}
	if n := enrolledCount(t, e); n != 4 {
		t.Fatalf("%d enrollments, want 4", n)
	}
	got, err := pb.NewEnrollmentServiceClient(e.admin).GetEnrollment(e.owner(), &pb.GetEnrollmentRequest{RegistrationId: "tpm-1"})
	if err != nil || got.GetSha256Thumbprint() != tpm.EKHash(ek1) {
		t.Fatalf("tpm-1 after the import: %v %v", got, err)
	}

	// A replay: the good items are unchanged, the bad ones refused again.
	results, sum = importStream(t, e.owner(), e.admin, items, false)
	check(results, pb.ImportOutcome_IMPORT_OUTCOME_UNCHANGED)
	if sum.GetCreated() != 0 || sum.GetUnchanged() != 4 {
		t.Errorf("replay summary %v", sum)
	}
	if n := enrolledCount(t, e); n != 4 {
		t.Fatalf("%d enrollments after the replay, want 4", n)
	}

	// A replayed item says unchanged only when the enrollment is what it
	// describes, and only to a key that may read enrollments: another
	// device ID or status is refused as existing, and so is an identical
	// item from a write-only key (it learns no more than that the ID is
	// taken).
	changed := []*pb.Enrollment{
		{RegistrationId: "tpm-1", DeviceId: "another", Tpm: &pb.TpmAttestation{EndorsementKey: ek1}},
		{RegistrationId: "x509-1", Sha256Thumbprint: th1, ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED},
		{RegistrationId: "x509-1", Sha256Thumbprint: th1, InitialTwin: `{"tags":{"a":1}}`},
	}
	for i, it := range changed {
		results, _ := importStream(t, e.owner(), e.admin, []*pb.Enrollment{it}, false)
		if r := results[1]; r.GetOutcome() != pb.ImportOutcome_IMPORT_OUTCOME_REFUSED || r.GetError().GetReason() != "RESOURCE_ALREADY_EXISTS" {
			t.Errorf("changed replay %d: %v, want refused as existing", i, r)
		}
	}
	writer := e.newKey("import-writer", access.EnrollmentWrite)
	results, _ = importStream(t, as(t.Context(), writer), e.admin, items[:1], false)
	if r := results[1]; r.GetOutcome() != pb.ImportOutcome_IMPORT_OUTCOME_REFUSED || r.GetError().GetReason() != "RESOURCE_ALREADY_EXISTS" {
		t.Errorf("an identical replay by a write-only key: %v, want refused as existing", r)
	}

	// Without the permission, nothing is read.
	stream, err := pb.NewEnrollmentServiceClient(e.admin).ImportEnrollments(as(t.Context(), e.readerKey))
	if err == nil {
		_, err = stream.Recv()
	}
	if codeOf(err) != codes.PermissionDenied {
		t.Fatalf("reader key: %v", err)
	}
}

// TestImportMemoryBound streams 50,000 items on one stream: the server
// never holds more than its window of unanswered items (counted by the
// server and reported in the summary), however long the stream.
func TestImportMemoryBound(t *testing.T) {
	e := start(t)
	const n = 50000
	items := make([]*pb.Enrollment, n)
	for i := range items {
		sum := sha256.Sum256(fmt.Appendf(nil, "device %d", i))
		items[i] = &pb.Enrollment{RegistrationId: fmt.Sprintf("dev-%06d", i), Sha256Thumbprint: hex.EncodeToString(sum[:])}
	}
	// A dry run: the same chunks, queue and window as a write, at a
	// fraction of the cost.
	results, sum := importStream(t, e.owner(), e.admin, items, true)
	if sum.GetCreated() != n || len(results) != n {
		t.Fatalf("summary %v", sum)
	}
	const window = 2000 // the server's importWindow
	if sum.GetMaxInFlight() <= 0 || sum.GetMaxInFlight() > window {
		t.Fatalf("the server held up to %d items; its window is %d", sum.GetMaxInFlight(), window)
	}
}

// cutProxy forwards TCP connections to target; cut closes every
// connection open so far (a dropped network), and later ones pass.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	t.Cleanup(func() { l.Close(); p.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestImportResumesAfterDrop: the connection drops in the middle of a
// stream; the client resumes on a new stream after the last item
// answered, and every item ends enrolled exactly once, each answered
// created or (sent again after it was written) unchanged.
func TestImportResumesAfterDrop(t *testing.T) {
	e := start(t)
	const n = 6000
	items := make([]*pb.Enrollment, n)
	for i := range items {
		if i%2 == 0 {
			items[i] = &pb.Enrollment{RegistrationId: fmt.Sprintf("ek-%05d", i), Tpm: &pb.TpmAttestation{EndorsementKey: syntheticEK(t)}}
		} else {
			items[i] = &pb.Enrollment{RegistrationId: fmt.Sprintf("x-%05d", i), Sha256Thumbprint: randomThumbprint(t)}
		}
	}
	p := newCutProxy(t, e.grpcAddr)
	cc, err := grpc.NewClient(p.l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(e.clientTLS(nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	outcomes := map[int64]pb.ImportOutcome{}
	acked, drops := int64(0), 0
	for attempt := 0; acked < n; attempt++ {
		if attempt > 10 {
			t.Fatalf("no progress after %d attempts (acked %d)", attempt, acked)
		}
		from := acked
		ctx, cancel := context.WithCancel(e.owner())
		stream, err := pb.NewEnrollmentServiceClient(cc).ImportEnrollments(ctx)
		if err != nil {
			cancel()
			continue
		}
		go func() {
			for i := from; i < n; i++ {
				if stream.Send(&pb.ImportEnrollmentsRequest{Sequence: i + 1, Enrollment: items[i]}) != nil {
					return
				}
			}
			stream.CloseSend()
		}()
		for {
			resp, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) && codeOf(err) != codes.Unavailable && codeOf(err) != codes.Canceled {
					t.Fatalf("stream: %v", err)
				}
				break
			}
			for _, r := range resp.GetResults() {
				if _, twice := outcomes[r.GetSequence()]; twice {
					t.Fatalf("item %d answered twice", r.GetSequence())
				}
				outcomes[r.GetSequence()] = r.GetOutcome()
				acked = r.GetSequence()
			}
			// Drop the connection once, in the middle.
			if drops == 0 && acked >= n/3 {
				drops++
				p.cut()
			}
		}
		cancel()
	}
	if drops != 1 {
		t.Fatalf("the connection was dropped %d times", drops)
	}
	created := 0
	for seq := int64(1); seq <= n; seq++ {
		switch outcomes[seq] {
		case pb.ImportOutcome_IMPORT_OUTCOME_CREATED:
			created++
		case pb.ImportOutcome_IMPORT_OUTCOME_UNCHANGED:
		default:
			t.Fatalf("item %d: %v", seq, outcomes[seq])
		}
	}
	if got := enrolledCount(t, e); got != n {
		t.Fatalf("%d enrollments after the resumed import, want %d", got, n)
	}
	t.Logf("%d created, %d unchanged (written before the drop, answered after)", created, n-created)
}

// TestImportREST posts NDJSON to /v1/enrollments:import and reads the
// results as NDJSON: one line per item, in order, then the summary; a
// line that is not an item (unknown field, too long) is refused as an
// item; no key is 401.
func TestImportREST(t *testing.T) {
	e := start(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.clientTLS(nil)}}
	ek := base64.StdEncoding.EncodeToString(syntheticEK(t))
	th := randomThumbprint(t)
	body := strings.Join([]string{
		`{"enrollment": {"registrationId": "rest-tpm", "tpm": {"endorsementKey": "` + ek + `"}}}`, // 1
		``, // 2: blank
		`{"enrollment": {"registrationId": "rest-x509", "sha256Thumbprint": "` + th + `"}}`,                       // 3
		`{"enrollment": {"registrationId": "rest-y"}, "color": "blue"}`,                                           // 4: unknown field
		`{"enrollment": {"registrationId": "rest-z", "sha256Thumbprint": "` + strings.Repeat("a", 70<<10) + `"}}`, // 5: too long
		`{"sequence": 9, "enrollment": {"registrationId": "rest-x509", "sha256Thumbprint": "` + th + `"}}`,        // 6: a repeat, sequence 9
	}, "\n")
	post := func(key, contentType string) (*http.Response, []map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, "https://"+e.httpAddr+"/v1/enrollments:import", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var lines []map[string]any
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%v: %s", err, sc.Text())
			}
			lines = append(lines, m)
		}
		return res, lines
	}
	if res, _ := post("", "application/x-ndjson"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no key: %d", res.StatusCode)
	}
	if res, _ := post(e.ownerKey, "application/json"); res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: %d", res.StatusCode)
	}
	res, lines := post(e.ownerKey, "application/x-ndjson")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) != 6 {
		t.Fatalf("%d %s: %v", res.StatusCode, res.Header.Get("Content-Type"), lines)
	}
	type want struct{ seq, outcome, reason string }
	for i, w := range []want{
		{"1", "IMPORT_OUTCOME_CREATED", ""}, {"3", "IMPORT_OUTCOME_CREATED", ""},
		{"4", "IMPORT_OUTCOME_REFUSED", "FIELD_INVALID"}, {"5", "IMPORT_OUTCOME_REFUSED", "BODY_TOO_LARGE"},
		{"9", "IMPORT_OUTCOME_UNCHANGED", ""},
	} {
		l := lines[i]
		errObj, _ := l["error"].(map[string]any)
		reason, _ := errObj["reason"].(string)
		if l["sequence"] != w.seq || l["outcome"] != w.outcome || reason != w.reason {
			t.Errorf("line %d: %v, want %v", i+1, l, w)
		}
	}
	sum, _ := lines[5]["summary"].(map[string]any)
	if sum["created"] != "2" || sum["refused"] != "2" || sum["unchanged"] != "1" {
		t.Errorf("summary: %v", lines[5])
	}
	if n := enrolledCount(t, e); n != 2 {
		t.Fatalf("%d enrollments, want 2", n)
	}
	for _, id := range []string{"rest-tpm", "rest-x509"} {
		if _, err := pb.NewEnrollmentServiceClient(e.admin).GetEnrollment(e.owner(), &pb.GetEnrollmentRequest{RegistrationId: enrollment.Key(id)}); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}
