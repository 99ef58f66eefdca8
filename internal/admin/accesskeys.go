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

// CreateAccessKey makes an access key with the named permissions and,
// unless noSAS, a DPS shared access key sealed under the data key.
func (s *Service) CreateAccessKey(ctx context.Context, keys access.Store, name string, perms []string, noSAS bool) (*NewAccessKey, error) {
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
	if err := keys.CreateKey(ctx, k); err != nil {
		return nil, err
	}
	return out, nil
}
