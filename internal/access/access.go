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
)

// All is every permission: what the owner key holds.
var All = []Permission{ServiceConfig, EnrollmentRead, EnrollmentWrite, RegistrationRead, RegistrationWrite, HubConnect}

// Key is a stored access key.
type Key struct {
	ID          string
	Name        string
	Permissions []Permission
	// SecretHash is SHA-256 of the secret; the secret is never stored.
	SecretHash []byte
	// SealedSAS is the key's DPS shared access key (HMAC-SHA256 key),
	// sealed under the data key; nil when the key has none.
	SealedSAS []byte
	Created   time.Time
}

// Has reports whether the key holds p.
func (k *Key) Has(p Permission) bool { return slices.Contains(k.Permissions, p) }

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
	// RotateKey replaces a key's secret hash and sealed shared access key
	// in one write; NotFound if there is none.
	RotateKey(ctx context.Context, id string, secretHash, sealedSAS []byte) error
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

// Rotate makes a new secret for k: the returned token and key have k's ID
// and permissions and the new secret's hash.
func Rotate(rand io.Reader, k *Key) (token string, rotated *Key, err error) {
	var secret [32]byte
	if _, err := io.ReadFull(rand, secret[:]); err != nil {
		return "", nil, err
	}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	c := *k
	c.SecretHash, c.SealedSAS = sum[:], nil
	return tokenPrefix + k.ID + "." + sec, &c, nil
}

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

// Authenticate resolves a bearer token to its key. Any malformed, unknown
// or wrong token is Unauthenticated with one message, so that callers learn
// nothing about which part was wrong.
func Authenticate(ctx context.Context, s Store, token string) (*Key, error) {
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
	want := dummyHash[:]
	switch {
	case err == nil:
		want = k.SecretHash
	case !errors.Is(err, fault.ErrNotFound):
		return nil, err
	}
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want) != 1 || k == nil {
		return nil, denied
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
