package admin

import (
	"context"
	"slices"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// NewAccessKey is a created key with its secrets, shown once.
type NewAccessKey struct {
	Key   *access.Key
	Token string
	// SAS is the DPS shared access key; nil when none was made.
	SAS []byte
}

// A key grants no more than it holds: the caller must hold every
// permission of a key it creates, and of a key it rotates (rotation hands
// the caller the key's new secret). Deleting grants nothing, but the owner
// key cannot be deleted, and only it rotates its own secret; the last key
// holding ServiceConfig cannot be deleted (which the rule that a key
// cannot delete itself already implies, unless keys are deleted
// concurrently).

// CreateAccessKey makes an access key with the named permissions (a
// subset of the caller's) and, unless noSAS, a DPS shared access key
// sealed under the data key.
func (s *Service) CreateAccessKey(ctx context.Context, caller *access.Key, name string, perms []string, noSAS bool) (*NewAccessKey, error) {
	if err := enrollment.ValidateID("name", name); err != nil {
		return nil, err
	}
	if len(perms) == 0 {
		return nil, fault.Invalidf("permissions are required (some of %v)", access.All)
	}
	var ps []access.Permission
	for _, p := range perms {
		perm := access.Permission(p)
		if !slices.Contains(access.All, perm) {
			return nil, fault.Invalidf("permission %q is not one of %v", p, access.All)
		}
		if slices.Contains(ps, perm) {
			return nil, fault.Invalidf("permission %q is listed twice", p)
		}
		ps = append(ps, perm)
	}
	if err := covers(caller, ps); err != nil {
		return nil, err
	}
	token, k, err := access.Generate(s.Rand, name, ps, s.Now())
	if err != nil {
		return nil, err
	}
	out := &NewAccessKey{Key: k, Token: token}
	if !noSAS {
		if s.Secrets == nil {
			return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "no data key to seal a shared access key; ask for none (no_shared_access_key)")
		}
		if out.SAS, err = access.AddSASKey(s.Rand, s.Secrets, k); err != nil {
			return nil, err
		}
	}
	err = s.write(ctx, "accessKeys.create", k.ID, func() error { return s.Store.CreateKey(ctx, k) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// covers refuses a caller that lacks one of perms.
func covers(caller *access.Key, perms []access.Permission) error {
	if caller == nil {
		return fault.New(fault.PermissionDenied, fault.PermissionDeniedR, "no access key")
	}
	return caller.Covers(perms)
}

// ListAccessKeys pages through the keys.
func (s *Service) ListAccessKeys(ctx context.Context, token string, limit int) ([]*access.Key, string, error) {
	return s.Store.ListKeys(ctx, token, limit)
}

// DeleteAccessKey revokes a key: not the caller's own, not the owner key,
// not the last ServiceConfig key.
func (s *Service) DeleteAccessKey(ctx context.Context, caller *access.Key, id string) error {
	if caller == nil {
		return covers(nil, nil)
	}
	if id == caller.ID {
		return fault.New(fault.FailedPrecondition, fault.ResourceInUse, "an access key cannot delete itself; use another key with ServiceConfig")
	}
	if id == access.OwnerKeyID {
		return fault.New(fault.FailedPrecondition, fault.AccessKeyProtected, "the owner key cannot be deleted; rotate its secret instead")
	}
	k, err := s.Store.GetKey(ctx, id)
	if err != nil {
		return err
	}
	if k.Has(access.ServiceConfig) {
		n, err := s.countServiceConfig(ctx)
		if err != nil {
			return err
		}
		if n <= 1 {
			return fault.New(fault.FailedPrecondition, fault.AccessKeyProtected, "%q is the last key with ServiceConfig; create another before deleting it", id)
		}
	}
	return s.write(ctx, "accessKeys.delete", id, func() error { return s.Store.DeleteKey(ctx, id) })
}

// countServiceConfig counts the keys that hold ServiceConfig.
func (s *Service) countServiceConfig(ctx context.Context) (int, error) {
	n := 0
	for token := ""; ; {
		keys, next, err := s.Store.ListKeys(ctx, token, 500)
		if err != nil {
			return 0, err
		}
		for _, k := range keys {
			if k.Has(access.ServiceConfig) {
				n++
			}
		}
		if next == "" {
			return n, nil
		}
		token = next
	}
}

// RotateAccessKey gives a key a new secret (and a new DPS shared access
// key if it had one), shown once; the old ones stop working at once. The
// caller must hold all of the key's permissions; only the owner key
// rotates the owner key.
func (s *Service) RotateAccessKey(ctx context.Context, caller *access.Key, id string) (*NewAccessKey, error) {
	if caller == nil {
		return nil, covers(nil, nil)
	}
	if id == access.OwnerKeyID && caller.ID != access.OwnerKeyID {
		return nil, fault.New(fault.PermissionDenied, fault.AccessKeyProtected, "only the owner key can rotate the owner key")
	}
	k, err := s.Store.GetKey(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := covers(caller, k.Permissions); err != nil {
		return nil, err
	}
	token, rotated, err := access.Rotate(s.Rand, k)
	if err != nil {
		return nil, err
	}
	out := &NewAccessKey{Key: rotated, Token: token}
	if k.SealedSAS != nil {
		if s.Secrets == nil {
			return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "no data key to seal a new shared access key")
		}
		if out.SAS, err = access.AddSASKey(s.Rand, s.Secrets, rotated); err != nil {
			return nil, err
		}
	}
	err = s.write(ctx, "accessKeys.rotate", id, func() error { return s.Store.RotateKey(ctx, id, rotated.SecretHash, rotated.SealedSAS) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Authenticate resolves an operator's bearer token to its access key.
func (s *Service) Authenticate(ctx context.Context, token string) (*access.Key, error) {
	return access.Authenticate(ctx, s.Store, token)
}
