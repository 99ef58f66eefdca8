package symkey_test

import (
	"strings"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/fault"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestSASRoundTripAndRefusals(t *testing.T) {
	now := time.Now()
	tok, err := symkey.Parse(symkey.Sign(key, "0ne/registrations/dev", now.Add(time.Hour), "registration"))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Verify(key) || tok.Verify([]byte("other")) || tok.CheckResource("0NE/registrations/DEV") != nil || tok.CheckResource("0ne/registrations/x") == nil {
		t.Fatal("verify or resource check is wrong")
	}
	if err := tok.CheckExpiry(now); err != nil {
		t.Fatal(err)
	}
	if err := tok.CheckExpiry(now.Add(2 * time.Hour)); fault.ReasonOf(err) != fault.SASExpired {
		t.Fatalf("expired: %v", err)
	}
	if err := tok.CheckExpiry(now.Add(time.Hour + symkey.Skew/2)); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	far, _ := symkey.Parse(symkey.Sign(key, "r", now.Add(2*symkey.MaxLifetime), ""))
	if err := far.CheckExpiry(now); fault.ReasonOf(err) != fault.SASInvalid {
		t.Fatalf("too long a lifetime: %v", err)
	}
	for _, bad := range []string{
		"", "Bearer x", "SharedAccessSignature ", "SharedAccessSignature sr=a&sr=b&sig=x&se=1",
		"SharedAccessSignature sr=a&sig=notbase64!&se=1", "SharedAccessSignature sr=a&sig=AAAA&se=1",
		"SharedAccessSignature sr=a&se=1", "SharedAccessSignature sr=a&sig=" + strings.Repeat("A", 44) + "&se=-5",
		"SharedAccessSignature sr=a&sig=" + strings.Repeat("A", 44) + "&se=1&zz=1",
		"SharedAccessSignature " + strings.Repeat("x", symkey.MaxTokenLength),
	} {
		if _, err := symkey.Parse(bad); fault.ReasonOf(err) != fault.SASInvalid {
			t.Errorf("%.60q: %v", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(symkey.Sign(key, "0ne/registrations/dev", time.Now().Add(time.Hour), "registration"))
	f.Add("SharedAccessSignature sr=a&sig=b&se=1")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := symkey.Parse(s)
		if err != nil {
			if fault.ReasonOf(err) != fault.SASInvalid {
				t.Fatalf("unclassified: %v", err)
			}
			return
		}
		if tok.Resource == "" || len(tok.Signature) != 32 || tok.ExpiryRaw == "" {
			t.Fatalf("accepted an incomplete token: %+v", tok)
		}
	})
}

func BenchmarkVerifySAS(b *testing.B) {
	header := symkey.Sign(symkey.DeriveDeviceKey(key, "dev-1"), "0ne/registrations/dev-1", time.Now().Add(time.Hour), "registration")
	for b.Loop() {
		tok, err := symkey.Parse(header)
		if err != nil || !tok.Verify(symkey.DeriveDeviceKey(key, "dev-1")) {
			b.Fatal("verify")
		}
	}
}
