package secrets

import (
	"bytes"
	"testing"
)

func TestCustody(t *testing.T) {
	s, err := New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys := &SymmetricKeys{Primary: []byte("primary-key-0123456789abcdef0123"), Secondary: []byte("secondary-key-0123456789abcdef01")}
	sealed, err := s.SealKeys(keys, IndividualAAD("Dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, keys.Primary) {
		t.Fatal("the sealed value contains the key")
	}
	// The registration ID binds case-insensitively, as lookups fold case.
	got, err := s.OpenKeys(sealed, IndividualAAD("dev-1"))
	if err != nil || !bytes.Equal(got.Primary, keys.Primary) || !bytes.Equal(got.Secondary, keys.Secondary) {
		t.Fatalf("open: %+v %v", got, err)
	}
	// Bound to its record: another enrollment, a group of the same name,
	// an access key cannot open it.
	for _, aad := range []string{IndividualAAD("dev-2"), GroupAAD("dev-1"), SASKeyAAD("dev-1")} {
		if _, err := s.OpenKeys(sealed, aad); err == nil {
			t.Fatalf("opened with %q", aad)
		}
	}
	// Webhook secrets: one per URL, the same for the same data key.
	a, b := s.WebhookSecret("https://a.example/alloc"), s.WebhookSecret("https://b.example/alloc")
	s2, _ := New(bytes.Repeat([]byte{7}, 32))
	if len(a) < 32 || bytes.Equal(a, b) || !bytes.Equal(a, s2.WebhookSecret("https://a.example/alloc")) {
		t.Fatal("webhook secrets are not per URL and stable")
	}
	other, _ := New(bytes.Repeat([]byte{8}, 32))
	if bytes.Equal(a, other.WebhookSecret("https://a.example/alloc")) {
		t.Fatal("another data key derives the same webhook secret")
	}
}
