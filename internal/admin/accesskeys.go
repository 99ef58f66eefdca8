package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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

// maxKeyLife bounds an access key's expiry.
const maxKeyLife = 10 * 365 * 24 * time.Hour

// ParsePermission reads a permission name: the names are DPS's shared
// access policy rights, matched without case ("enrollmentread" is
// EnrollmentRead). DPS's DeviceConnect right has no meaning here (devices
// never use access keys) and is refused by name.
func ParsePermission(name string) (access.Permission, error) {
	for _, p := range access.All {
		if strings.EqualFold(name, string(p)) {
			return p, nil
		}
	}
	if strings.EqualFold(name, "DeviceConnect") {
		return "", fault.Invalidf("permission DeviceConnect is DPS's right for devices, which never use access keys here; grant one of %v", access.All)
	}
	return "", fault.Invalidf("permission %q is not one of %v", name, access.All)
}

// CreateAccessKey makes an access key with the named permissions (a
// subset of the caller's) and, unless noSAS, a DPS shared access key
// sealed under the data key. A non-zero expires is when the key stops
// working (in the future, at most ten years ahead).
func (s *Service) CreateAccessKey(ctx context.Context, caller *access.Key, name string, perms []string, noSAS bool, expires time.Time) (*NewAccessKey, error) {
	if err := enrollment.ValidateID("name", name); err != nil {
		return nil, err
	}
	if len(perms) == 0 {
		return nil, fault.Invalidf("permissions are required (some of %v)", access.All)
	}
	if now := s.Now(); !expires.IsZero() && (!expires.After(now) || expires.After(now.Add(maxKeyLife))) {
		return nil, fault.Invalidf("expire_time must be in the future and at most ten years ahead")
	}
	var ps []access.Permission
	for _, p := range perms {
		perm, err := ParsePermission(p)
		if err != nil {
			return nil, err
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
	k.Expires = expires.UTC()
	out := &NewAccessKey{Key: k, Token: token}
	if !noSAS {
		if s.Secrets == nil {
			return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "no data key to seal a shared access key; ask for none (no_shared_access_key)")
		}
		if out.SAS, err = access.AddSASKey(s.Rand, s.Secrets, k, access.Primary); err != nil {
			return nil, err
		}
	}
	err = s.write(ctx, change{action: "accessKeys.create", resource: k.ID, summary: keySummary(k)}, func() error { return s.Store.CreateKey(ctx, k) })
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
	return s.write(ctx, change{action: "accessKeys.delete", resource: id}, func() error { return s.Store.DeleteKey(ctx, id) })
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

// RotateAccessKey gives a key a new secret in slot (and a new DPS shared
// access key there if the key has them), shown once; the slot's old ones
// stop working at once, the other slot's keep working. The caller must
// hold all of the key's permissions; only the owner key rotates the owner
// key.
func (s *Service) RotateAccessKey(ctx context.Context, caller *access.Key, id string, slot access.Slot) (*NewAccessKey, error) {
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
	if slot == "" {
		slot = access.Primary
	}
	token, rotated, err := access.Rotate(s.Rand, k, slot)
	if err != nil {
		return nil, err
	}
	out := &NewAccessKey{Key: rotated, Token: token}
	if k.SealedSAS != nil || k.SealedSAS2 != nil {
		if s.Secrets == nil {
			return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "no data key to seal a new shared access key")
		}
		if out.SAS, err = access.AddSASKey(s.Rand, s.Secrets, rotated, slot); err != nil {
			return nil, err
		}
	}
	err = s.write(ctx, change{action: "accessKeys.rotate", resource: id, summary: "secret=" + string(slot)}, func() error {
		hash, sealed := rotated.SecretHash, rotated.SealedSAS
		if slot == access.Secondary {
			hash, sealed = rotated.SecondaryHash, rotated.SealedSAS2
		}
		return s.Store.RotateKey(ctx, id, slot, hash, sealed)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Authenticate resolves an operator's bearer token to its access key and
// notes its use.
func (s *Service) Authenticate(ctx context.Context, token string) (*access.Key, error) {
	k, err := access.Authenticate(ctx, s.Store, token, s.Now())
	if err == nil {
		s.touch(ctx, k)
	}
	return k, err
}

// touchEvery is how often a key's last-used time is written: at most one
// write per key per minute per replica, whatever the request rate.
const touchEvery = time.Minute

// touch records that k was used, unless it was recorded less than
// touchEvery ago. A failure is logged, never the request's.
func (s *Service) touch(ctx context.Context, k *access.Key) {
	now := s.Now()
	if now.Sub(k.LastUsed) < touchEvery {
		return
	}
	if last, ok := s.touched.Load(k.ID); ok && now.Sub(last.(time.Time)) < touchEvery {
		return
	}
	s.touched.Store(k.ID, now)
	if err := s.Store.TouchKey(ctx, k.ID, now.Truncate(time.Second)); err != nil && s.Log != nil {
		s.Log.Debug("could not record an access key's use", "key", k.ID, "err", err)
	}
}

// keySummary describes a key for the audit log: its name, permissions and
// whether it can sign SAS tokens; never a secret.
func keySummary(k *access.Key) string {
	perms := make([]string, len(k.Permissions))
	for i, p := range k.Permissions {
		perms[i] = string(p)
	}
	out := fmt.Sprintf("name=%q permissions=%s shared_access_key=%t", k.Name, strings.Join(perms, ","), k.SealedSAS != nil)
	if !k.Expires.IsZero() {
		out += " expires=" + k.Expires.UTC().Format(time.RFC3339)
	}
	return out
}
