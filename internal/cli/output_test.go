package cli_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/zerotouch/zerotouch/internal/app"
	"github.com/zerotouch/zerotouch/internal/pki"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// apiJSON is the API's JSON of m as the CLI printed every answer before
// -o (and prints it with -o json).
func apiJSON(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// sameData reports whether a JSON and a YAML text hold the same data.
func sameData(t *testing.T, jsonText, yamlText string) bool {
	t.Helper()
	var j, y any
	if err := json.Unmarshal([]byte(jsonText), &j); err != nil {
		t.Fatalf("%v:\n%s", err, jsonText)
	}
	if err := yaml.Unmarshal([]byte(yamlText), &y); err != nil {
		t.Fatalf("%v:\n%s", err, yamlText)
	}
	// YAML decodes integers as int, JSON as float64: compare through JSON.
	raw, err := json.Marshal(y)
	if err != nil {
		t.Fatal(err)
	}
	var yj any
	json.Unmarshal(raw, &yj)
	return reflect.DeepEqual(j, yj)
}

// admin is a gRPC connection to s's management API as the owner.
func admin(t *testing.T, s *devServer) *grpc.ClientConn {
	t.Helper()
	cas, err := pki.LoadCertificates(filepath.Join(s.dataDir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cas[0])
	key, err := os.ReadFile(filepath.Join(s.dataDir, app.OwnerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})),
		grpc.WithPerRPCCredentials(ownerKey(strings.TrimSpace(string(key)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

type ownerKey string

func (k ownerKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(k)}, nil
}

func (ownerKey) RequireTransportSecurity() bool { return true }

// TestOutputFormats: lists and gets print a table by default; -o json is
// byte for byte the API's JSON the CLI always printed (a list: the List
// response holding every page); -o yaml the same data as YAML; -q only
// the IDs, or the one value a script wants (a verification code, an
// access key's token); create commands still print JSON by default, and
// -q only the new ID. Exit statuses: 0, 1 for what the server refuses, 2
// for usage.
func TestOutputFormats(t *testing.T) {
	s := startDevServer(t)
	run := s.run
	if out := run(0, "shard", "create", "hub-1", "--hostname", "hub1.example.com", "-q"); out != "hub-1\n" {
		t.Fatalf("shard create -q: %q", out)
	}
	run(0, "shard", "create", "hub-2", "--hostname", "hub2.example.com", "--region", "eu-west", "--weight", "7")
	if out := run(0, "shard", "create", "hub-3", "--hostname", "hub3.example.com"); !strings.HasPrefix(out, "{\n") || !regexp.MustCompile(`"hostname":\s+"hub3.example.com"`).MatchString(out) {
		t.Fatalf("shard create prints JSON by default: %s", out)
	}

	// Table by default: a header and a row per shard, columns aligned.
	out := run(0, "shard", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !regexp.MustCompile(`^ID\s+HOSTNAME\s+STATE\s+WEIGHT\s+REGION\s+DEVICES`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^hub-2\s+hub2\.example\.com\s+active\s+7\s+eu-west\s+0\s`).MatchString(lines[2]) {
		t.Fatalf("shard list:\n%s", out)
	}
	if out := run(0, "shard", "get", "hub-2"); !regexp.MustCompile(`(?s)^ID\s+HOSTNAME.*\nhub-2\s+hub2\.example\.com\s+active\s+7\s+eu-west`).MatchString(out) {
		t.Fatalf("shard get:\n%s", out)
	}

	// -o json: what the API answers, as the CLI printed it before -o.
	cl := pb.NewHubServiceClient(admin(t, s))
	list, err := cl.ListShards(t.Context(), &pb.ListShardsRequest{PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	jsonOut := run(0, "shard", "list", "-o", "json")
	if want := apiJSON(t, list); jsonOut != want {
		t.Fatalf("shard list -o json:\n%s\nwant:\n%s", jsonOut, want)
	}
	one, err := cl.GetShard(t.Context(), &pb.GetShardRequest{Id: "hub-2"})
	if err != nil {
		t.Fatal(err)
	}
	if out := run(0, "shard", "get", "hub-2", "--output", "json"); out != apiJSON(t, one) {
		t.Fatalf("shard get -o json:\n%s\nwant:\n%s", out, apiJSON(t, one))
	}

	// -o yaml: the same data, block style; strings that look like numbers stay strings.
	yamlOut := run(0, "shard", "list", "-o", "yaml")
	if !sameData(t, jsonOut, yamlOut) || !strings.Contains(yamlOut, "shards:\n  - id: hub-1\n") || !strings.Contains(yamlOut, `etag: "1"`) {
		t.Fatalf("shard list -o yaml:\n%s", yamlOut)
	}

	// -q: the IDs, one a line; nothing else.
	if out := run(0, "shard", "list", "-q"); out != "hub-1\nhub-2\nhub-3\n" {
		t.Fatalf("shard list -q: %q", out)
	}
	if out := run(0, "registration", "list"); !strings.HasPrefix(out, "REGISTRATION ID") || strings.Count(out, "\n") != 1 {
		t.Fatalf("an empty list's table: %q", out)
	}
	if out := run(0, "registration", "list", "-o", "json"); out != "{}\n" {
		t.Fatalf("an empty list's JSON: %q", out)
	}

	// The proof of possession with -q: the code alone, straight into pki
	// proof.
	run(0, "pki", "ca", "--cn", "Acme Root", "--out", "acme")
	if out := run(0, "ca", "create", "acme-root", "--cert", "acme/ca.pem", "-q"); out != "acme-root\n" {
		t.Fatalf("ca create -q: %q", out)
	}
	code := run(0, "ca", "verification-code", "acme-root", "-q")
	if !regexp.MustCompile(`^[0-9A-F]{16,}\n$`).MatchString(code) {
		t.Fatalf("ca verification-code -q: %q", code)
	}
	run(0, "pki", "proof", "--ca", "acme", "--code", strings.TrimSpace(code), "--out", "proof.pem")
	if out := run(0, "ca", "verify", "acme-root", "--cert", "proof.pem", "-o", "yaml"); !strings.Contains(out, "verified: true") {
		t.Fatalf("ca verify -o yaml: %s", out)
	}
	if out := run(0, "ca", "list"); !regexp.MustCompile(`(?m)^acme-root\s+CN=Acme Root\S*\s+yes\s`).MatchString(out) {
		t.Fatalf("ca list:\n%s", out)
	}
	if out := run(0, "ca", "verification-code", "acme-root", "-o", "table"); !regexp.MustCompile(`(?m)^acme-root\s+[0-9A-F]{16,}\s+\d{4}-`).MatchString(out) {
		t.Fatalf("ca verification-code -o table:\n%s", out)
	}
	if out := run(0, "group", "create", "acme", "--ca", "acme-root", "-q"); out != "acme\n" {
		t.Fatalf("group create -q: %q", out)
	}
	if out := run(0, "group", "get", "acme"); !regexp.MustCompile(`(?m)^acme\s+x509\s+acme-root\s+enabled\s+hashed\s`).MatchString(out) {
		t.Fatalf("group get:\n%s", out)
	}
	// A create whose secrets are shown once refuses to drop them.
	if out := run(2, "group", "create", "sym", "--attestation", "symmetric", "-q"); !strings.Contains(out, "shown only this once") {
		t.Fatalf("symmetric group create -q: %s", out)
	}
	if out := run(2, "enrollment", "create", "sym-1", "--symmetric", "-q"); !strings.Contains(out, "-o json") {
		t.Fatalf("symmetric enrollment create -q: %s", out)
	}
	run(1, "group", "get", "sym")

	// Access keys: -q prints the token alone, which works as a key; -o json
	// has the answer and the DPS connection string.
	token := strings.TrimSpace(run(0, "access-key", "create", "reader", "--permissions", "EnrollmentRead", "-q"))
	if !strings.HasPrefix(token, "ztk.") || strings.ContainsAny(token, " \n") {
		t.Fatalf("access-key create -q: %q", token)
	}
	if out := run(0, "group", "list", "-q", "--access-key", token); out != "acme\n" {
		t.Fatalf("group list with the new key: %q", out)
	}
	var created struct {
		AccessKey                  struct{ ID, Name string }
		Token, DPSConnectionString string
	}
	if err := json.Unmarshal([]byte(run(0, "access-key", "create", "writer", "--permissions", "EnrollmentWrite", "-o", "json")), &created); err != nil ||
		created.AccessKey.Name != "writer" || !strings.HasPrefix(created.Token, "ztk.") || !strings.Contains(created.DPSConnectionString, "SharedAccessKey=") {
		t.Fatalf("access-key create -o json: %+v %v", created, err)
	}
	if out := run(0, "access-key", "list"); !regexp.MustCompile(`(?m)^\S+\s+reader\s+EnrollmentRead\s+yes\s`).MatchString(out) {
		t.Fatalf("access-key list:\n%s", out)
	}

	// Exit statuses: 1 for what the server refuses (with its reason), 2 for
	// usage, before anything is sent.
	if out := run(1, "shard", "get", "nowhere"); !strings.Contains(out, "NOT_FOUND") {
		t.Fatalf("shard get nowhere: %s", out)
	}
	run(1, "shard", "create", "hub-1", "--hostname", "again.example.com")
	run(2, "shard", "get")
	run(2, "shard", "list", "-o", "csv")
	if out := run(1, "shard", "list", "--access-key", "ztk.00.bad"); !strings.Contains(out, "UNAUTHENTICATED") {
		t.Fatalf("a bad key: %s", out)
	}
}
