package access

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// countingKeys is memKeys counting its look-ups, or failing them.
type countingKeys struct {
	memKeys
	gets int
	err  error
}

func (c *countingKeys) GetKey(ctx context.Context, id string) (*Key, error) {
	c.gets++
	if c.err != nil {
		return nil, c.err
	}
	return c.memKeys.GetKey(ctx, id)
}

var tokenShape = regexp.MustCompile(`^ztk\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$`)

func TestGenerate(t *testing.T) {
	now := time.Now()
	perms := []Permission{EnrollmentRead, ServiceConfig}
	token, k, err := Generate(rand.Reader, "ops", perms, now)
	if err != nil {
		t.Fatal(err)
	}
	if !tokenShape.MatchString(token) || !strings.HasPrefix(token, "ztk."+k.ID+".") {
		t.Fatalf("token %q for key %q", token, k.ID)
	}
	secret := token[strings.LastIndexByte(token, '.')+1:]
	if sum := sha256.Sum256([]byte(secret)); !bytes.Equal(k.SecretHash, sum[:]) {
		t.Fatal("the stored hash is not the secret's")
	}
	if strings.Contains(string(k.SecretHash), secret) || k.Name != "ops" || !k.Created.Equal(now) || k.SealedSAS != nil {
		t.Fatalf("key: %+v", k)
	}
	perms[0] = HubConnect // the key holds its own copy
	if !slices.Equal(k.Permissions, []Permission{EnrollmentRead, ServiceConfig}) {
		t.Fatalf("permissions: %v", k.Permissions)
	}
	other, k2, err := Generate(rand.Reader, "ops", nil, now)
	if err != nil || other == token || k2.ID == k.ID {
		t.Fatalf("a second key is the same: %v", err)
	}
	for _, r := range []struct {
		name string
		rand *bytes.Reader
	}{{"no randomness", bytes.NewReader(nil)}, {"too little for the secret", bytes.NewReader(make([]byte, 20))}} {
		if _, _, err := Generate(r.rand, "ops", nil, now); err == nil {
			t.Errorf("%s: no error", r.name)
		}
	}
	if _, _, err := Generate(iotest.ErrReader(iotest.ErrTimeout), "ops", nil, now); err == nil {
		t.Error("a failing source of randomness made a key")
	}
}

// TestAuthenticate: every token that is not exactly a key's gets the
// same UNAUTHENTICATED answer, whatever was wrong with it.
func TestAuthenticate(t *testing.T) {
	token, k, err := Generate(rand.Reader, "ops", All, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	store := &countingKeys{memKeys: memKeys{k}}
	got, err := Authenticate(t.Context(), store, token, time.Now())
	if err != nil || got != k {
		t.Fatalf("valid token: %v %v", got, err)
	}
	secret := token[strings.LastIndexByte(token, '.')+1:]
	wrong := []byte(secret)
	wrong[0] ^= 1
	cases := []struct {
		name   string
		token  string
		lookup bool // the store is asked for the key
	}{
		{"empty", "", false},
		{"no prefix", k.ID + "." + secret, false},
		{"other prefix", "ZTK." + k.ID + "." + secret, false},
		{"bearer scheme left on", "Bearer " + token, false},
		{"prefix only", "ztk.", false},
		{"no secret", "ztk." + k.ID, false},
		{"empty secret", "ztk." + k.ID + ".", false},
		{"empty id", "ztk.." + secret, false},
		{"over-long", token + strings.Repeat("a", 257-len(token)), false},
		{"over-long, valid prefix", token + "." + strings.Repeat("a", 300), false},
		{"wrong secret", "ztk." + k.ID + "." + string(wrong), true},
		{"secret of another key", "ztk." + k.ID + "." + strings.Repeat("A", 43), true},
		{"unknown id", "ztk.0000000000000000." + secret, true},
		{"id in another case", "ztk." + strings.ToUpper(k.ID) + "." + secret, true},
		{"extra segment", token + ".x", true},
		{"trailing space", token + " ", true},
		// The secret whose hash stands in for unknown keys' does not
		// authenticate an unknown key.
		{"unknown id with the stand-in secret", "ztk.nobody.zerotouch-unknown-key", true},
	}
	var first string
	for _, tc := range cases {
		store.gets = 0
		got, err := Authenticate(t.Context(), store, tc.token, time.Now())
		if got != nil || fault.KindOf(err) != fault.Unauthenticated || fault.ReasonOf(err) != fault.UnauthenticatedR {
			t.Errorf("%s: %v, %v", tc.name, got, err)
			continue
		}
		if first == "" {
			first = err.Error()
		}
		if err.Error() != first {
			t.Errorf("%s: answer %q differs from %q", tc.name, err, first)
		}
		if want := map[bool]int{false: 0, true: 1}[tc.lookup]; store.gets != want {
			t.Errorf("%s: %d look-ups, want %d", tc.name, store.gets, want)
		}
	}
	if len(first) > 0 && strings.Contains(first, k.ID) {
		t.Errorf("the answer names the key: %q", first)
	}
}

// TestAuthenticatePaths: an unknown ID and a wrong secret take the same
// path (one look-up, one hash, one constant-time comparison against a
// hash of the same length); a key stored without a hash never matches;
// a store failure is not a refusal of the caller.
func TestAuthenticatePaths(t *testing.T) {
	if len(dummyHash) != sha256.Size {
		t.Fatalf("the stand-in hash is %d bytes", len(dummyHash))
	}
	token, k, err := Generate(rand.Reader, "ops", All, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret := token[strings.LastIndexByte(token, '.')+1:]
	hashless := *k
	hashless.SecretHash = nil
	for _, tc := range []struct {
		name  string
		store *countingKeys
		token string
		kind  fault.Kind
	}{
		{"wrong secret", &countingKeys{memKeys: memKeys{k}}, "ztk." + k.ID + ".x", fault.Unauthenticated},
		{"unknown id", &countingKeys{memKeys: memKeys{k}}, "ztk.other." + secret, fault.Unauthenticated},
		{"no keys at all", &countingKeys{}, token, fault.Unauthenticated},
		{"key without a hash", &countingKeys{memKeys: memKeys{&hashless}}, token, fault.Unauthenticated},
		{"key without a hash, empty secret", &countingKeys{memKeys: memKeys{&hashless}}, "ztk." + k.ID + ".", fault.Unauthenticated},
		{"store down", &countingKeys{memKeys: memKeys{k}, err: fault.New(fault.Unavailable, fault.StoreUnavailable, "down")}, token, fault.Unavailable},
	} {
		got, err := Authenticate(t.Context(), tc.store, tc.token, time.Now())
		if got != nil || fault.KindOf(err) != tc.kind {
			t.Errorf("%s: %v, %v", tc.name, got, err)
		}
		if tc.store.gets > 1 {
			t.Errorf("%s: %d look-ups", tc.name, tc.store.gets)
		}
	}
}

func TestRequireAndCovers(t *testing.T) {
	k := &Key{ID: "k", Permissions: []Permission{EnrollmentRead, ServiceConfig}}
	for _, tc := range []struct {
		k    *Key
		p    Permission
		want bool
	}{
		{k, EnrollmentRead, true},
		{k, ServiceConfig, true},
		{k, EnrollmentWrite, false},
		{k, "enrollmentread", false},
		{k, "", false},
		{nil, EnrollmentRead, false},
		{&Key{ID: "empty"}, EnrollmentRead, false},
	} {
		err := Require(tc.k, tc.p)
		if (err == nil) != tc.want {
			t.Errorf("Require(%v, %q): %v", tc.k, tc.p, err)
		}
		if err != nil && (fault.KindOf(err) != fault.PermissionDenied || fault.ReasonOf(err) != fault.PermissionDeniedR || !strings.Contains(err.Error(), string(tc.p))) {
			t.Errorf("Require(%v, %q): %v", tc.k, tc.p, err)
		}
	}
	for _, tc := range []struct {
		perms []Permission
		want  bool
	}{
		{nil, true},
		{[]Permission{ServiceConfig}, true},
		{[]Permission{ServiceConfig, EnrollmentRead, ServiceConfig}, true},
		{[]Permission{ServiceConfig, HubConnect}, false},
		{All, false},
	} {
		err := k.Covers(tc.perms)
		if (err == nil) != tc.want || err != nil && fault.ReasonOf(err) != fault.PermissionDeniedR {
			t.Errorf("Covers(%v): %v", tc.perms, err)
		}
	}
	owner := &Key{Permissions: slices.Clone(All)}
	if err := owner.Covers(All); err != nil {
		t.Errorf("the owner key does not cover every permission: %v", err)
	}
}

func TestRotate(t *testing.T) {
	token, k, err := Generate(rand.Reader, "ops", []Permission{EnrollmentRead}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k.SealedSAS = []byte("sealed")
	orig := *k
	newToken, rotated, err := Rotate(rand.Reader, k, Primary)
	if err != nil {
		t.Fatal(err)
	}
	if !tokenShape.MatchString(newToken) || newToken == token || !strings.HasPrefix(newToken, "ztk."+k.ID+".") {
		t.Fatalf("token %q", newToken)
	}
	if rotated.ID != k.ID || rotated.Name != k.Name || !slices.Equal(rotated.Permissions, k.Permissions) || !rotated.Created.Equal(k.Created) ||
		bytes.Equal(rotated.SecretHash, k.SecretHash) || rotated.SealedSAS != nil {
		t.Fatalf("rotated: %+v", rotated)
	}
	if !bytes.Equal(k.SecretHash, orig.SecretHash) || !bytes.Equal(k.SealedSAS, orig.SealedSAS) {
		t.Fatal("Rotate changed the key it was given")
	}
	// Only the new token works against the rotated key.
	store := memKeys{rotated}
	if _, err := Authenticate(t.Context(), store, token, time.Now()); fault.KindOf(err) != fault.Unauthenticated {
		t.Fatalf("old token: %v", err)
	}
	if got, err := Authenticate(t.Context(), store, newToken, time.Now()); err != nil || got.ID != k.ID {
		t.Fatalf("new token: %v %v", got, err)
	}
	if _, _, err := Rotate(iotest.ErrReader(iotest.ErrTimeout), k, Primary); err == nil {
		t.Fatal("a failing source of randomness rotated a key")
	}
	if _, _, err := Rotate(rand.Reader, k, "tertiary"); fault.KindOf(err) != fault.InvalidArgument {
		t.Fatalf("an unknown slot: %v", err)
	}
	// A secondary secret: both work; rotating the primary again leaves
	// the secondary working.
	secondToken, both, err := Rotate(rand.Reader, rotated, Secondary)
	if err != nil || both.SealedSAS2 != nil || !bytes.Equal(both.SecretHash, rotated.SecretHash) {
		t.Fatalf("secondary: %+v %v", both, err)
	}
	for _, tok := range []string{newToken, secondToken} {
		if got, err := Authenticate(t.Context(), memKeys{both}, tok, time.Now()); err != nil || got.ID != k.ID {
			t.Fatalf("with two secrets: %v %v", got, err)
		}
	}
	thirdToken, again, err := Rotate(rand.Reader, both, Primary)
	if err != nil {
		t.Fatal(err)
	}
	for tok, ok := range map[string]bool{newToken: false, secondToken: true, thirdToken: true} {
		if _, err := Authenticate(t.Context(), memKeys{again}, tok, time.Now()); (err == nil) != ok {
			t.Fatalf("after rotating the primary again: token works = %v, want %v", err == nil, ok)
		}
	}
	// Expiry: the right secret after it is told so; before it, works.
	again.Expires = time.Now().Add(time.Hour)
	if _, err := Authenticate(t.Context(), memKeys{again}, thirdToken, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := Authenticate(t.Context(), memKeys{again}, thirdToken, time.Now().Add(2*time.Hour)); fault.KindOf(err) != fault.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	if _, err := Authenticate(t.Context(), memKeys{again}, newToken, time.Now().Add(2*time.Hour)); err == nil || strings.Contains(err.Error(), "expired") {
		t.Fatalf("a wrong secret for an expired key learns it expired: %v", err)
	}
}

func TestWithID(t *testing.T) {
	token, k, err := Generate(rand.Reader, "owner", All, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ownerToken, owner := WithID(token, k, OwnerKeyID)
	secret := token[strings.LastIndexByte(token, '.')+1:]
	if ownerToken != "ztk.owner."+secret || owner.ID != OwnerKeyID || k.ID == OwnerKeyID || !bytes.Equal(owner.SecretHash, k.SecretHash) {
		t.Fatalf("WithID: %q %+v", ownerToken, owner)
	}
	if got, err := Authenticate(t.Context(), memKeys{owner}, ownerToken, time.Now()); err != nil || got.ID != OwnerKeyID {
		t.Fatalf("owner token: %v %v", got, err)
	}
	if _, err := Authenticate(t.Context(), memKeys{owner}, token, time.Now()); fault.KindOf(err) != fault.Unauthenticated {
		t.Fatalf("the token under the old ID: %v", err)
	}
}

func TestSASKey(t *testing.T) {
	sealer, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "data.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	_, k, err := Generate(rand.Reader, "svc", []Permission{EnrollmentRead}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sas, err := AddSASKey(rand.Reader, sealer, k, Primary)
	if err != nil || len(sas) != SASKeyBytes || k.SealedSAS == nil || bytes.Contains(k.SealedSAS, sas) {
		t.Fatalf("AddSASKey: %d bytes, %v", len(sas), err)
	}
	if opened, err := sealer.Open(k.SealedSAS, secrets.SASKeyAAD(k.ID)); err != nil || !bytes.Equal(opened, sas) {
		t.Fatalf("open: %v", err)
	}
	if _, err := sealer.Open(k.SealedSAS, secrets.SASKeyAAD("other")); err == nil {
		t.Fatal("the sealed key opens for another key ID")
	}
	sealed := k.SealedSAS
	if _, err := AddSASKey(iotest.ErrReader(iotest.ErrTimeout), sealer, k, Primary); err == nil || !bytes.Equal(k.SealedSAS, sealed) {
		t.Fatalf("a failing source of randomness: %v", err)
	}
	cs := ConnectionString("dps.example.com", k.ID, sas)
	if want := "HostName=dps.example.com;SharedAccessKeyName=" + k.ID + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(sas); cs != want {
		t.Fatalf("connection string %q", cs)
	}
	// A key without a shared access key, or a service without a data key,
	// answers SAS tokens like an unknown key.
	plain := *k
	plain.SealedSAS = nil
	for name, tc := range map[string]struct {
		store  Store
		sealer *secrets.Sealer
	}{
		"no shared access key": {memKeys{&plain}, sealer},
		"no data key":          {memKeys{k}, nil},
	} {
		token := symkey.Sign(sas, "dps.example.com", time.Now().Add(time.Hour), k.ID)
		if _, err := AuthenticateSAS(t.Context(), tc.store, tc.sealer, token, "dps.example.com", nil, time.Now()); fault.ReasonOf(err) != fault.UnauthenticatedR {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzAuthenticate: no token but the key's own authenticates, and every
// refusal is the one UNAUTHENTICATED answer.
func FuzzAuthenticate(f *testing.F) {
	token, k, err := Generate(rand.Reader, "ops", All, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{token, "", "ztk.", "ztk.a.b", token + "x", "ztk." + k.ID + ".", strings.Repeat("ztk.", 70)} {
		f.Add(seed)
	}
	store := memKeys{k}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Authenticate(context.Background(), store, s, time.Now())
		if s == token {
			if err != nil || got != k {
				t.Fatalf("the key's token: %v", err)
			}
			return
		}
		if got != nil || fault.ReasonOf(err) != fault.UnauthenticatedR {
			t.Fatalf("%q: %v %v", s, got, err)
		}
	})
}
