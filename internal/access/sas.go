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

// AddSASKey generates a DPS shared access key for k's slot, seals it into
// k.SealedSAS (or SealedSAS2), and returns it (shown once).
func AddSASKey(rand io.Reader, sealer *secrets.Sealer, k *Key, slot Slot) ([]byte, error) {
	key := make([]byte, SASKeyBytes)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, err
	}
	sealed, err := sealer.Seal(key, sasAAD(k.ID, slot))
	if err != nil {
		return nil, err
	}
	if slot == Secondary {
		k.SealedSAS2 = sealed
	} else {
		k.SealedSAS = sealed
	}
	return key, nil
}

func sasAAD(id string, slot Slot) string {
	if slot == Secondary {
		return secrets.SASKeySecondaryAAD(id)
	}
	return secrets.SASKeyAAD(id)
}

// ConnectionString is the DPS service connection string for a key.
func ConnectionString(host, keyID string, sasKey []byte) string {
	return "HostName=" + host + ";SharedAccessKeyName=" + keyID + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(sasKey)
}

// dummySAS keeps the work for unknown key names the same as for known ones.
var dummySAS = make([]byte, SASKeyBytes)

// AuthenticateSAS resolves a DPS service SAS token ("SharedAccessSignature
// sr=<resource>&sig=…&se=…&skn=<key ID>") to its key, for a request to
// path (its segments, decoded) of the service named host. The signature
// covers sr exactly as sent; sr must name host, the service's configured
// host name (never the request's Host header), and may go on with a path
// that must be the request path's first segments, segment by segment
// (resourceMatches). Every failure but expiry is the same UNAUTHENTICATED
// answer.
func AuthenticateSAS(ctx context.Context, s Store, sealer *secrets.Sealer, header, host string, path []string, now time.Time) (*Key, error) {
	denied := fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a valid shared access signature is required")
	t, err := symkey.Parse(header)
	if err != nil || t.KeyName == "" || len(t.KeyName) > 128 {
		return nil, denied
	}
	k, err := s.GetKey(ctx, t.KeyName)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return nil, err
	}
	// Both of the key's shared access keys verify, each with the same
	// work whether or not it exists.
	signed := false
	for _, slot := range []Slot{Primary, Secondary} {
		key, sealed := dummySAS, []byte(nil)
		if k != nil {
			sealed = k.SealedSAS
			if slot == Secondary {
				sealed = k.SealedSAS2
			}
		}
		if sealed != nil && sealer != nil {
			if key, err = sealer.Open(sealed, sasAAD(k.ID, slot)); err != nil {
				return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "open the %s shared access key of %q", slot, k.ID)
			}
		}
		signed = t.Verify(key) && sealed != nil || signed
	}
	if !signed || k == nil || !resourceMatches(t.Resource, host, path) {
		return nil, denied
	}
	if err := t.CheckExpiry(now); err != nil {
		return nil, err
	}
	if k.Expired(now) {
		return nil, fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "the access key expired at %s", k.Expires.UTC().Format(time.RFC3339))
	}
	return k, nil
}

// resourceMatches reports whether a token's sr grants a request to path
// on host. sr is URL-decoded once and split on "/": its first segment must
// be host (case-insensitively), and the rest, if any, the first segments
// of path: the collection name case-insensitively (DPS's paths are), IDs
// exactly (group IDs are case-sensitive, so "acme" must not grant
// "ACME"; a registration ID is then matched as written). A token for
// "host/enrollmentGroups/acme" grants that group and what is below it, not
// "acme2" and not another group. Empty, "." and ".." segments, and any
// "%" left after decoding (an encoding of an encoding), refuse.
func resourceMatches(sr, host string, path []string) bool {
	if host == "" {
		return false
	}
	got, err := url.QueryUnescape(sr)
	if err != nil || strings.Contains(got, "%") {
		return false
	}
	segs := strings.Split(got, "/")
	if !strings.EqualFold(segs[0], host) {
		return false
	}
	segs = segs[1:]
	if len(segs) > len(path) {
		return false
	}
	for i, seg := range segs {
		same := seg == path[i]
		if i == 0 {
			same = strings.EqualFold(seg, path[i]) // collection names: enrollmentGroups, enrollmentgroups
		}
		if seg == "" || seg == "." || seg == ".." || !same {
			return false
		}
	}
	return true
}

// PathSegments splits a request's escaped path into its segments, each
// decoded once; ok is false for a path with empty, "." or ".." segments
// or a bad escape.
func PathSegments(escaped string) (segs []string, ok bool) {
	for _, raw := range strings.Split(strings.TrimPrefix(escaped, "/"), "/") {
		seg, err := url.PathUnescape(raw)
		if err != nil || seg == "" || seg == "." || seg == ".." {
			return nil, false
		}
		segs = append(segs, seg)
	}
	return segs, true
}
