package access

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// SASKeyBytes is the size of a generated shared access key.
const SASKeyBytes = 32

func sasAAD(id string) string { return "sas:" + id }

// AddSASKey generates a DPS shared access key for k, seals it into
// k.SealedSAS, and returns it (shown once).
func AddSASKey(rand io.Reader, sealer *secrets.Sealer, k *Key) ([]byte, error) {
	key := make([]byte, SASKeyBytes)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, err
	}
	sealed, err := sealer.Seal(key, sasAAD(k.ID))
	if err != nil {
		return nil, err
	}
	k.SealedSAS = sealed
	return key, nil
}

// ConnectionString is the DPS service connection string for a key.
func ConnectionString(host, keyID string, sasKey []byte) string {
	return "HostName=" + host + ";SharedAccessKeyName=" + keyID + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(sasKey)
}

// dummySAS keeps the work for unknown key names the same as for known ones.
var dummySAS = make([]byte, SASKeyBytes)

// AuthenticateSAS resolves a DPS service SAS token ("SharedAccessSignature
// sr=<host>&sig=…&se=…&skn=<key ID>") to its key. The signature covers sr
// exactly as sent; sr, URL-decoded, must name host (the host the request
// was sent to, without port), optionally followed by a path. Every failure
// but expiry is the same UNAUTHENTICATED answer.
func AuthenticateSAS(ctx context.Context, s Store, sealer *secrets.Sealer, header, host string, now time.Time) (*Key, error) {
	denied := fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a valid shared access signature is required")
	t, err := symkey.Parse(header)
	if err != nil || t.KeyName == "" || len(t.KeyName) > 128 {
		return nil, denied
	}
	k, err := s.GetKey(ctx, t.KeyName)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return nil, err
	}
	key := dummySAS
	if k != nil && k.SealedSAS != nil && sealer != nil {
		if key, err = sealer.Open(k.SealedSAS, sasAAD(k.ID)); err != nil {
			return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "open the shared access key of %q", k.ID)
		}
	}
	if !t.Verify(key) || k == nil || k.SealedSAS == nil || !resourceMatches(t.Resource, host) {
		return nil, denied
	}
	if err := t.CheckExpiry(now); err != nil {
		return nil, err
	}
	return k, nil
}

// resourceMatches reports whether sr names host: equal to it, or it
// followed by a path, compared case-insensitively after URL-decoding.
func resourceMatches(sr, host string) bool {
	got, err := url.QueryUnescape(sr)
	if err != nil || host == "" {
		return false
	}
	got = strings.ToLower(got)
	host = strings.ToLower(host)
	return got == host || strings.HasPrefix(got, host+"/")
}
