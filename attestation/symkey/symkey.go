// Package symkey verifies symmetric-key devices (for evaluation): shared
// access signature (SAS) tokens as DPS devices send them, individual keys,
// and per-device keys derived from a group key.
//
// A domain package: the standard library and internal/fault only.
package symkey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Limits on device-supplied tokens and operator-supplied keys.
const (
	MaxTokenLength = 2048
	MinKeyBytes    = 16
	MaxKeyBytes    = 64
	// MaxLifetime bounds how far in the future a token may expire.
	MaxLifetime = 366 * 24 * time.Hour
	// Skew is the clock difference tolerated on expiry.
	Skew = 5 * time.Minute
)

const prefix = "SharedAccessSignature "

// Token is a parsed SAS token.
type Token struct {
	// Resource is sr exactly as sent: what the signature covers.
	Resource string
	// ExpiryRaw is se exactly as sent.
	ExpiryRaw string
	Expiry    time.Time
	Signature []byte
	KeyName   string
}

func invalid(format string, args ...any) error {
	return fault.New(fault.Unauthenticated, fault.SASInvalid, format, args...)
}

// Parse reads "SharedAccessSignature sr=…&sig=…&se=…&skn=…" (any order).
func Parse(header string) (*Token, error) {
	if len(header) > MaxTokenLength {
		return nil, invalid("SAS token longer than %d bytes", MaxTokenLength)
	}
	rest, ok := strings.CutPrefix(header, prefix)
	if !ok {
		return nil, invalid("authorization is not a SharedAccessSignature")
	}
	t := &Token{}
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || seen[k] {
			return nil, invalid("SAS token field %q is malformed or repeated", k)
		}
		seen[k] = true
		switch k {
		case "sr":
			t.Resource = v
		case "sig":
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return nil, invalid("SAS signature is not URL-encoded")
			}
			if t.Signature, err = base64.StdEncoding.DecodeString(dec); err != nil || len(t.Signature) != sha256.Size {
				return nil, invalid("SAS signature is not a base64 HMAC-SHA256")
			}
		case "se":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return nil, invalid("SAS expiry is not a Unix time")
			}
			t.ExpiryRaw, t.Expiry = v, time.Unix(n, 0)
		case "skn":
			t.KeyName = v
		default:
			return nil, invalid("SAS token has an unknown field %q", k)
		}
	}
	if t.Resource == "" || t.Signature == nil || t.ExpiryRaw == "" {
		return nil, invalid("SAS token lacks sr, sig or se")
	}
	return t, nil
}

// CheckResource compares the URL-decoded sr, case-insensitively, with the
// resource the request is for.
func (t *Token) CheckResource(want string) error {
	got, err := url.QueryUnescape(t.Resource)
	if err != nil || !strings.EqualFold(got, want) {
		return invalid("SAS token is for another resource")
	}
	return nil
}

// CheckExpiry refuses a token that expired (allowing Skew) or that lives
// longer than MaxLifetime.
func (t *Token) CheckExpiry(now time.Time) error {
	if now.After(t.Expiry.Add(Skew)) {
		return fault.New(fault.Unauthenticated, fault.SASExpired, "the SAS token expired at %s", t.Expiry.UTC().Format(time.RFC3339))
	}
	if t.Expiry.Sub(now) > MaxLifetime {
		return invalid("the SAS token expires more than %s from now", MaxLifetime)
	}
	return nil
}

// Verify reports, in constant time, whether key signed the token: the
// HMAC-SHA256 of sr (exactly as sent), a newline, and se.
func (t *Token) Verify(key []byte) bool {
	return hmac.Equal(t.Signature, mac(key, t.Resource+"\n"+t.ExpiryRaw))
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// DeriveDeviceKey is a group device's key: HMAC-SHA256(group key,
// registration ID), as DPS derives it.
func DeriveDeviceKey(groupKey []byte, registrationID string) []byte {
	return mac(groupKey, registrationID)
}

// Sign makes a SAS token (the device side, and tests).
func Sign(key []byte, resource string, expiry time.Time, keyName string) string {
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac(key, resource+"\n"+se)))
	s := prefix + "sr=" + resource + "&sig=" + sig + "&se=" + se
	if keyName != "" {
		s += "&skn=" + keyName
	}
	return s
}

// CheckKey validates an operator-supplied key (decoded bytes).
func CheckKey(field string, key []byte) error {
	if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
		return fault.Invalidf("%s must be %d-%d bytes (base64), not %d", field, MinKeyBytes, MaxKeyBytes, len(key))
	}
	return nil
}
