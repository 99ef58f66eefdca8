package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/cli"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/secrets"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
	"github.com/zerotouch/zerotouch/internal/storage/redis"
	"github.com/zerotouch/zerotouch/internal/storage/redis/redistest"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// runCLI runs `zerotouch ARGS` against e as the owner and returns its exit
// code and output.
func (e *env) runCLI(args ...string) (int, string) {
	e.t.Helper()
	caFile := filepath.Join(e.t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.CertPEM(e.serverCA.Cert), 0o600); err != nil {
		e.t.Fatal(err)
	}
	var out bytes.Buffer
	args = append(args, "--server", e.grpcAddr, "--ca-file", caFile)
	code := cli.Main(e.t.Context(), args, cli.Env{Stdout: &out, Stderr: &out, Getenv: func(k string) string {
		if k == "ZEROTOUCH_ACCESS_KEY" {
			return e.ownerKey
		}
		return ""
	}})
	return code, out.String()
}

func (e *env) auditRecords(f *pb.ListAuditRecordsRequest) []*pb.AuditRecord {
	e.t.Helper()
	f.PageSize = 1000
	res, err := pb.NewAuditServiceClient(e.admin).ListAuditRecords(e.owner(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.GetRecords()
}

// TestAuditLogRecordsEverySurface: changes over gRPC, REST and the DPS
// service API, and refusals (no permission, a malformed request, a stale
// etag), each become one audit record naming the key, the surface, the
// outcome and the etags; the log lists with filters, is readable only with
// AuditRead, and verifies intact from the CLI.
func TestAuditLogRecordsEverySurface(t *testing.T) {
	e := start(t)
	hubs := pb.NewHubServiceClient(e.admin)
	sh, err := hubs.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{Id: "s1", Hostname: "s1.example.com", Weight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// REST.
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	if a := e.restCall(t, &http.Client{Transport: tr}, "POST", "/v1/shards", "application/json", []byte(`{"id":"s2","hostname":"s2.example.com","weight":1}`)); a.http != 200 {
		t.Fatalf("REST create: %+v", a)
	}
	// The DPS service API.
	keyID, key := e.newSASKey("dps-writer", access.EnrollmentWrite, access.EnrollmentRead)
	svc := e.serviceClient(keyID, key)
	if a := svc.call("PUT", "/enrollmentGroups/sym-1", `{"enrollmentGroupId":"sym-1","attestation":{"type":"symmetricKey"}}`); a.code != 200 {
		t.Fatalf("DPS service create: %d %s", a.code, a.body)
	}
	// Refusals: a key without the permission, a malformed ID, a stale etag.
	if _, err := hubs.CreateShard(as(t.Context(), e.readerKey), &pb.CreateShardRequest{Shard: &pb.Shard{Id: "s3", Hostname: "s3.example.com", Weight: 1}}); reasonOf(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("reader creates a shard: %v", err)
	}
	if _, err := hubs.CreateShard(e.owner(), &pb.CreateShardRequest{Shard: &pb.Shard{Id: "bad id", Hostname: "x.example.com", Weight: 1}}); reasonOf(t, err) != "FIELD_INVALID" {
		t.Fatalf("malformed shard: %v", err)
	}
	if _, err := hubs.DeleteShard(e.owner(), &pb.DeleteShardRequest{Id: "s1", Etag: "stale"}); reasonOf(t, err) != "ETAG_MISMATCH" {
		t.Fatalf("stale delete: %v", err)
	}
	if _, err := hubs.DeleteShard(e.owner(), &pb.DeleteShardRequest{Id: "s1", Etag: sh.GetEtag()}); err != nil {
		t.Fatal(err)
	}

	all := e.auditRecords(&pb.ListAuditRecordsRequest{})
	type row struct{ action, resource, surface, outcome, reason string }
	var got []row
	for _, r := range all {
		got = append(got, row{r.GetAction(), r.GetResource(), r.GetSurface(), r.GetOutcome(), r.GetReason()})
		if r.GetActorId() == "" || r.GetTime() == nil || r.GetSeq() == 0 || r.GetRequestId() == "" && r.GetSurface() != "dps-service" {
			t.Errorf("record without actor, time, seq or request ID: %v", r)
		}
		if r.GetSource() == "" || !strings.HasPrefix(r.GetSource(), "127.0.0.1:") {
			t.Errorf("record without the client's address: %v", r)
		}
	}
	want := []row{ // newest first
		{"DeleteShard", "s1", "grpc", "done", ""},
		{"DeleteShard", "s1", "grpc", "refused", "ETAG_MISMATCH"},
		{"CreateShard", "", "grpc", "refused", "FIELD_INVALID"},
		{"CreateShard", "", "grpc", "refused", "PERMISSION_DENIED"},
		{"CreateGroup", "sym-1", "dps-service", "done", ""},
		{"CreateShard", "s2", "rest", "done", ""},
		{"CreateShard", "s1", "grpc", "done", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d:\n%v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if all[0].GetIfMatch() != sh.GetEtag() || all[6].GetEtag() != sh.GetEtag() || all[2].GetIfMatch() != "" {
		t.Errorf("etags: delete if-match %q, create etag %q, want %q", all[0].GetIfMatch(), all[6].GetEtag(), sh.GetEtag())
	}
	if all[3].GetActorName() != "reader" || all[4].GetActorId() != keyID {
		t.Errorf("actors: %v / %v", all[3], all[4])
	}
	for _, r := range all {
		if strings.Contains(r.String(), e.ownerKey) || strings.Contains(r.String(), e.readerKey) {
			t.Fatalf("a record holds a secret: %v", r)
		}
	}
	// Filters.
	if n := len(e.auditRecords(&pb.ListAuditRecordsRequest{Outcome: "refused"})); n != 3 {
		t.Errorf("refused: %d records, want 3", n)
	}
	if n := len(e.auditRecords(&pb.ListAuditRecordsRequest{Action: "createshard", Resource: "S2"})); n != 1 {
		t.Errorf("action and resource: %d records, want 1", n)
	}
	for _, bad := range []*pb.ListAuditRecordsRequest{{Outcome: "maybe"}, {PageToken: "abc"}, {PageSize: -1}, {Action: strings.Repeat("a", 300)}} {
		if _, err := pb.NewAuditServiceClient(e.admin).ListAuditRecords(e.owner(), bad); reasonOf(t, err) != "FIELD_INVALID" {
			t.Errorf("filter %v: %v", bad, err)
		}
	}
	// Only AuditRead reads it; the refusal is not a change.
	if _, err := pb.NewAuditServiceClient(e.admin).ListAuditRecords(as(t.Context(), e.readerKey), &pb.ListAuditRecordsRequest{}); reasonOf(t, err) != "PERMISSION_DENIED" {
		t.Fatalf("reader lists the audit log: %v", err)
	}
	auditor := e.newKey("auditor", access.AuditRead)
	if _, err := pb.NewAuditServiceClient(e.admin).ListAuditRecords(as(t.Context(), auditor), &pb.ListAuditRecordsRequest{}); err != nil {
		t.Fatalf("an AuditRead key: %v", err)
	}
	if n := len(e.auditRecords(&pb.ListAuditRecordsRequest{})); n != len(want) {
		t.Fatalf("reads were recorded: %d records", n)
	}
	if code, out := e.runCLI("audit", "verify"); code != 0 || !regexp.MustCompile(`"intact":\s*true`).MatchString(out) {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	if code, out := e.runCLI("audit", "list", "--outcome", "refused", "--since", "1h", "-o", "json"); code != 0 || len(regexp.MustCompile(`"outcome":\s*"refused"`).FindAllString(out, -1)) != 3 {
		t.Fatalf("audit list: exit %d\n%s", code, out)
	}
	if code, out := e.runCLI("audit", "list", "--since", "yesterday"); code != 2 || !strings.Contains(out, "--since") {
		t.Fatalf("audit list --since yesterday: exit %d\n%s", code, out)
	}
}

// tamper is one way of editing the stored chain directly.
type tamper struct {
	name string
	// edit changes entries (seq → stored value; "" deletes).
	edit func(entries map[uint64]string) map[uint64]string
}

var tampers = []tamper{
	{"edited", func(m map[uint64]string) map[uint64]string {
		return map[uint64]string{2: strings.Replace(m[2], `"outcome":"done"`, `"outcome":"refused"`, 1)}
	}},
	{"removed", func(m map[uint64]string) map[uint64]string { return map[uint64]string{3: ""} }},
	{"reordered", func(m map[uint64]string) map[uint64]string { return map[uint64]string{2: m[3], 3: m[2]} }},
	{"truncated", func(m map[uint64]string) map[uint64]string { return map[uint64]string{uint64(len(m)): ""} }},
}

// makeChanges makes a few audited changes.
func makeChanges(t *testing.T, e *env) {
	for i := range 4 {
		e.createShard("t"+strconv.Itoa(i), 1)
	}
}

// TestAuditLogTamperEvidentRedis: entries edited, removed, swapped or cut
// off directly in Redis are found by `zerotouch audit verify`, which exits
// non-zero naming the record; put back, the chain verifies again.
func TestAuditLogTamperEvidentRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := redis.Open(redis.Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, options{store: s})
	makeChanges(t, e)
	ctx := context.Background()
	entries, err := s.Client().HGetAll(ctx, "{zt:audit}:e").Result()
	if err != nil || len(entries) != 4 {
		t.Fatalf("stored entries: %d %v", len(entries), err)
	}
	orig := map[uint64]string{}
	for k, v := range entries {
		n, _ := strconv.ParseUint(k, 10, 64)
		orig[n] = v
	}
	for _, tc := range tampers {
		for seq, v := range tc.edit(orig) {
			if v == "" {
				s.Client().HDel(ctx, "{zt:audit}:e", strconv.FormatUint(seq, 10))
			} else {
				s.Client().HSet(ctx, "{zt:audit}:e", strconv.FormatUint(seq, 10), v)
			}
		}
		if code, out := e.runCLI("audit", "verify"); code != 1 || !strings.Contains(out, "not intact") || !strings.Contains(out, "record ") {
			t.Errorf("%s: audit verify exit %d\n%s", tc.name, code, out)
		}
		for seq, v := range orig {
			s.Client().HSet(ctx, "{zt:audit}:e", strconv.FormatUint(seq, 10), v)
		}
		if code, out := e.runCLI("audit", "verify"); code != 0 {
			t.Fatalf("%s, restored: audit verify exit %d\n%s", tc.name, code, out)
		}
	}
}

// TestAuditLogTamperEvidentEmbedded: the same with the embedded store's
// file, edited with bbolt while the server is stopped.
func TestAuditLogTamperEvidentEmbedded(t *testing.T) {
	dir := t.TempDir()
	path, keyFile := filepath.Join(dir, "zerotouch.db"), filepath.Join(dir, "data.key")
	if _, err := secrets.LoadOrCreate(keyFile, true); err != nil {
		t.Fatal(err)
	}
	serve := func() *env {
		s, err := embedded.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return startWith(t, options{store: s, dataKeyFile: keyFile})
	}
	e := serve()
	makeChanges(t, e)
	if code, out := e.runCLI("audit", "verify"); code != 0 {
		t.Fatalf("untouched: exit %d\n%s", code, out)
	}
	e.close()
	raw := func(fn func(b *bolt.Bucket) error) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket([]byte("audit"))) }); err != nil {
			t.Fatal(err)
		}
	}
	orig := map[uint64]string{}
	raw(func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error { orig[binary.BigEndian.Uint64(k)] = string(v); return nil })
	})
	if len(orig) < 4 {
		t.Fatalf("%d entries stored", len(orig))
	}
	for _, tc := range tampers {
		raw(func(b *bolt.Bucket) error {
			for seq, v := range tc.edit(orig) {
				k := binary.BigEndian.AppendUint64(nil, seq)
				if v == "" {
					b.Delete(k)
				} else {
					b.Put(k, []byte(v))
				}
			}
			return nil
		})
		e := serve()
		if code, out := e.runCLI("audit", "verify"); code != 1 || !strings.Contains(out, "not intact") {
			t.Errorf("%s: audit verify exit %d\n%s", tc.name, code, out)
		}
		e.close()
		raw(func(b *bolt.Bucket) error {
			for seq, v := range orig {
				b.Put(binary.BigEndian.AppendUint64(nil, seq), []byte(v))
			}
			return nil
		})
	}
	e = serve()
	if code, out := e.runCLI("audit", "verify"); code != 0 {
		t.Fatalf("restored: exit %d\n%s", code, out)
	}
}

// TestAccessKeyTwoSecretsAndExpiry: a key's secondary secret (bearer token
// and DPS shared access key) works beside the primary, so clients move to
// it before the primary is replaced; a key with an expiry works until then
// and is refused after; the key's last use is shown; DPS's permission
// names are taken without case.
func TestAccessKeyTwoSecretsAndExpiry(t *testing.T) {
	e := start(t)
	cl := pb.NewAccessKeyServiceClient(e.admin)
	made, err := cl.CreateAccessKey(e.owner(), &pb.CreateAccessKeyRequest{Name: "ci", Permissions: []string{"enrollmentread", "ENROLLMENTWRITE"}})
	if err != nil {
		t.Fatal(err)
	}
	id := made.GetAccessKey().GetId()
	lists := func(token string) error {
		_, err := pb.NewEnrollmentServiceClient(e.admin).ListEnrollmentGroups(as(t.Context(), token), &pb.ListEnrollmentGroupsRequest{})
		return err
	}
	dpsList := func(sas []byte) int {
		return e.serviceClient(id, sas).call("POST", "/enrollmentGroups/query", `{"query":"SELECT * FROM enrollmentGroups"}`).code
	}
	second, err := cl.RotateAccessKey(e.owner(), &pb.RotateAccessKeyRequest{Id: id, Secret: "secondary"})
	if err != nil || second.GetSecret() != "secondary" || len(second.GetSharedAccessKey()) == 0 || !second.GetAccessKey().GetHasSecondarySecret() {
		t.Fatalf("rotate secondary: %v %v", second, err)
	}
	for name, tok := range map[string]string{"primary": made.GetToken(), "secondary": second.GetToken()} {
		if err := lists(tok); err != nil {
			t.Fatalf("%s token: %v", name, err)
		}
	}
	if a, b := dpsList(made.GetSharedAccessKey()), dpsList(second.GetSharedAccessKey()); a != 200 || b != 200 {
		t.Fatalf("DPS SAS with the primary %d, the secondary %d", a, b)
	}
	// Replace the primary: its old secrets stop, the secondary's go on.
	newPrimary, err := cl.RotateAccessKey(e.owner(), &pb.RotateAccessKeyRequest{Id: id})
	if err != nil || newPrimary.GetSecret() != "primary" {
		t.Fatalf("rotate primary: %v %v", newPrimary, err)
	}
	if err := lists(made.GetToken()); reasonOf(t, err) != "UNAUTHENTICATED" {
		t.Fatalf("the old primary token: %v", err)
	}
	if dpsList(made.GetSharedAccessKey()) != 401 || dpsList(second.GetSharedAccessKey()) != 200 || dpsList(newPrimary.GetSharedAccessKey()) != 200 {
		t.Fatal("DPS SAS after replacing the primary")
	}
	for _, tok := range []string{second.GetToken(), newPrimary.GetToken()} {
		if err := lists(tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.RotateAccessKey(e.owner(), &pb.RotateAccessKeyRequest{Id: id, Secret: "tertiary"}); reasonOf(t, err) != "FIELD_INVALID" {
		t.Fatalf("an unknown secret slot: %v", err)
	}
	keys, err := cl.ListAccessKeys(e.owner(), &pb.ListAccessKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.GetAccessKeys() {
		if k.GetId() == id && (k.GetLastUsedTime() == nil || !k.GetHasSecondarySecret() || len(k.GetPermissions()) != 2 || k.GetPermissions()[0] != "EnrollmentRead") {
			t.Fatalf("listed: %v", k)
		}
	}

	// Expiry.
	for _, bad := range []*timestamppb.Timestamp{timestamppb.New(time.Now().Add(-time.Hour)), {Seconds: 1, Nanos: -1}} {
		if _, err := cl.CreateAccessKey(e.owner(), &pb.CreateAccessKeyRequest{Name: "bad", Permissions: []string{"EnrollmentRead"}, ExpireTime: bad}); reasonOf(t, err) != "FIELD_INVALID" {
			t.Fatalf("expiry %v: %v", bad, err)
		}
	}
	temp, err := cl.CreateAccessKey(e.owner(), &pb.CreateAccessKeyRequest{Name: "temp", Permissions: []string{"EnrollmentRead"},
		NoSharedAccessKey: true, ExpireTime: timestamppb.New(time.Now().Add(time.Hour))})
	if err != nil || temp.GetAccessKey().GetExpireTime() == nil {
		t.Fatalf("expiring key: %v %v", temp, err)
	}
	if err := lists(temp.GetToken()); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	if _, err := cl.CreateAccessKey(e.owner(), &pb.CreateAccessKeyRequest{Name: "dc", Permissions: []string{"DeviceConnect"}}); reasonOf(t, err) != "FIELD_INVALID" {
		t.Fatalf("DeviceConnect: %v", err)
	}
}
