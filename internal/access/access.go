// Package access authenticates operators' access keys and checks their
// permissions. Secrets are 256-bit random values; only their SHA-256 is
// stored, and comparison is constant-time. A key's bearer token is
// "ztk.<id>.<secret>"; it is shown once, when the key is created.
//
// A key may also carry a DPS shared access key, so that DPS service clients
// (which sign SAS tokens with a policy key) can use it: that key must be
// recoverable to verify an HMAC, so it is sealed under the data key rather
// than hashed. See ADR 10.
package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Permission is a named right of an access key.
type Permission string

// Permissions, named as DPS names its shared access policy rights.
const (
	ServiceConfig     Permission = "ServiceConfig"
	EnrollmentRead    Permission = "EnrollmentRead"
	EnrollmentWrite   Permission = "EnrollmentWrite"
	RegistrationRead  Permission = "RegistrationStatusRead"
	RegistrationWrite Permission = "RegistrationStatusWrite"
	HubConnect        Permission = "HubConnect"
	// AuditRead reads the audit log (a Zerotouch permission; DPS has no
	// audit log).
	AuditRead Permission = "AuditRead"
)

// All is every permission: what the owner key holds.
var All = []Permission{ServiceConfig, EnrollmentRead, EnrollmentWrite, RegistrationRead, RegistrationWrite, HubConnect, AuditRead}

// Key is a stored access key.
type Key struct {
	ID          string
	Name        string
	Permissions []Permission
	// SecretHash is SHA-256 of the (primary) secret; the secret is never
	// stored. SecondaryHash is that of the secondary secret, nil until one
	// is made: either secret authenticates, so that one can be replaced
	// while the other keeps working.
	SecretHash    []byte
	SecondaryHash []byte
	// SealedSAS is the key's DPS shared access key (HMAC-SHA256 key),
	// sealed under the data key; nil when the key has none. SealedSAS2 is
	// its secondary shared access key, made with the secondary secret.
	SealedSAS  []byte
	SealedSAS2 []byte
	Created    time.Time
	// Expires is when the key stops working; zero for never.
	Expires time.Time
	// LastUsed is when the key last authenticated a request, to a minute.
	LastUsed time.Time
}

// Slot names one of a key's two secrets.
type Slot string

// The slots.
const (
	Primary   Slot = "primary"
	Secondary Slot = "secondary"
)

// Has reports whether the key holds p. The owner key holds every
// permission, also those added after it was made.
func (k *Key) Has(p Permission) bool { return k.ID == OwnerKeyID || slices.Contains(k.Permissions, p) }

// Store keeps access keys. GetKey returns NotFound for an unknown ID;
// CreateKey returns AlreadyExists for a taken ID.
type Store interface {
	CreateKey(ctx context.Context, k *Key) error
	GetKey(ctx context.Context, id string) (*Key, error)
	CountKeys(ctx context.Context) (int, error)
	// ListKeys pages through keys ordered by ID; token "" starts.
	ListKeys(ctx context.Context, token string, limit int) (keys []*Key, next string, err error)
	// DeleteKey removes a key; NotFound if there is none.
	DeleteKey(ctx context.Context, id string) error
	// RotateKey replaces one slot's secret hash and sealed shared access
	// key of key id in one write, leaving the other slot as it is in the
	// store (concurrent rotations of the two slots both stand); NotFound
	// if there is none.
	RotateKey(ctx context.Context, id string, slot Slot, secretHash, sealedSAS []byte) error
	// TouchKey records when a key was last used; NotFound if there is none.
	TouchKey(ctx context.Context, id string, at time.Time) error
}

// OwnerKeyID is the ID of the bootstrap owner key: it holds every
// permission, cannot be deleted, and only it can rotate its secret.
const OwnerKeyID = "owner"

const tokenPrefix = "ztk."

// Generate makes a new key and returns it with its bearer token.
func Generate(rand io.Reader, name string, perms []Permission, now time.Time) (token string, k *Key, err error) {
	var id [8]byte
	var secret [32]byte
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return "", nil, err
	}
	if _, err := io.ReadFull(rand, secret[:]); err != nil {
		return "", nil, err
	}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	k = &Key{ID: hex.EncodeToString(id[:]), Name: name, Permissions: slices.Clone(perms), SecretHash: sum[:], Created: now}
	return tokenPrefix + k.ID + "." + sec, k, nil
}

// Rotate makes a new secret for k in slot: the returned token and key
// have k's ID and permissions, the new secret's hash in that slot and the
// other slot's as it was. The slot's shared access key is cleared (the
// caller makes a new one when the key had one).
func Rotate(rand io.Reader, k *Key, slot Slot) (token string, rotated *Key, err error) {
	var secret [32]byte
	if _, err := io.ReadFull(rand, secret[:]); err != nil {
		return "", nil, err
	}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	c := *k
	switch slot {
	case Primary:
		c.SecretHash, c.SealedSAS = sum[:], nil
	case Secondary:
		c.SecondaryHash, c.SealedSAS2 = sum[:], nil
	default:
		return "", nil, fault.Invalidf("secret %q is not one of primary, secondary", slot)
	}
	return tokenPrefix + k.ID + "." + sec, &c, nil
}

// Expired reports whether k has expired at now.
func (k *Key) Expired(now time.Time) bool { return !k.Expires.IsZero() && !now.Before(k.Expires) }

// Covers reports whether k holds every permission in perms: what a key may
// grant, rotate or revoke (a key grants no more than it holds).
func (k *Key) Covers(perms []Permission) error {
	for _, p := range perms {
		if !k.Has(p) {
			return fault.New(fault.PermissionDenied, fault.PermissionDeniedR, "the access key lacks the %s permission, so it cannot grant, rotate or revoke it", p)
		}
	}
	return nil
}

// WithID returns the token and key re-labelled with a chosen ID (the
// bootstrap owner key's is fixed); the secret is unchanged.
func WithID(token string, k *Key, id string) (string, *Key) {
	secret := token[strings.LastIndexByte(token, '.')+1:]
	c := *k
	c.ID = id
	return tokenPrefix + id + "." + secret, &c
}

// dummyHash keeps the work for unknown key IDs the same as for known ones.
var dummyHash = sha256.Sum256([]byte("zerotouch-unknown-key"))

// Authenticate resolves a bearer token (either of the key's secrets) to
// its key. Any malformed, unknown or wrong token is Unauthenticated with
// one message, so that callers learn nothing about which part was wrong;
// the holder of a right secret for an expired key is told it expired.
func Authenticate(ctx context.Context, s Store, token string, now time.Time) (*Key, error) {
	denied := fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a valid access key is required")
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(token) > 256 {
		return nil, denied
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok || id == "" || secret == "" {
		return nil, denied
	}
	k, err := s.GetKey(ctx, id)
	want, second := dummyHash[:], dummyHash[:]
	switch {
	case err == nil:
		want = k.SecretHash
		if k.SecondaryHash != nil {
			second = k.SecondaryHash
		}
	case !errors.Is(err, fault.ErrNotFound):
		return nil, err
	}
	got := sha256.Sum256([]byte(secret))
	ok = subtle.ConstantTimeCompare(got[:], want) == 1
	ok = subtle.ConstantTimeCompare(got[:], second) == 1 && k != nil && k.SecondaryHash != nil || ok
	if !ok || k == nil {
		return nil, denied
	}
	if k.Expired(now) {
		return nil, fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "the access key expired at %s", k.Expires.UTC().Format(time.RFC3339))
	}
	return k, nil
}

// Require returns PermissionDenied unless k holds p.
func Require(k *Key, p Permission) error {
	if k == nil || !k.Has(p) {
		return fault.New(fault.PermissionDenied, fault.PermissionDeniedR, "the access key lacks the %s permission", p)
	}
	return nil
}
