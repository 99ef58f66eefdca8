package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/storage/record"
)

// Individual enrollments (issue #17, ADR 24). An enrollment lives in its
// registration's slot, {p:r:<key>}:ind, so that a million of them spread
// over a cluster's masters as registrations do, and a registration reads
// its enrollment from the node that holds its registration. What must be
// unique across enrollments is held by claims, one key per value, each in
// its own slot:
//
//	{p:t:<thumbprint>}  the credential's thumbprint
//	{p:n:<name>}        a registration ID or device ID (ADR 17: one namespace)
//
// A claim's value is its owner's registration key, when it was stamped and
// a nonce. With no transaction across slots, three rules keep claims and
// enrollments consistent (as for registrations' device-ID claims):
//
//   - an enrollment is written only after it holds its claims, and while
//     they are younger than claimFreshFor;
//   - a claim is released only by the exact value read before its
//     enrollment stopped using it, so a claim restamped since stays;
//   - another enrollment takes a claim over only when it is older than
//     claimStaleAfter and its owner's enrollment does not use it.
//
// So an enrollment that uses a value holds its claim, and a reader trusts a
// claim only with its owner's enrollment. The list of enrollments is split
// into indBuckets sorted sets, by a hash of the key.
const indBuckets = 16

func (s *Store) indKey(key string) string       { return s.regKey(key) + ":ind" }
func (s *Store) thumbClaim(thumb string) string { return "{" + s.prefix + ":t:" + thumb + "}" }
func (s *Store) nameClaim(name string) string {
	return "{" + s.prefix + ":n:" + enrollment.Key(name) + "}"
}
func (s *Store) indList(bucket int) string {
	return "{" + s.prefix + ":inds:" + strconv.Itoa(bucket) + "}"
}
func (s *Store) indVersion() string              { return s.cfgKey("ind:version") }
func (s *Store) indLayoutMarker() string         { return s.cfgKey("ind:layout") }
func (s *Store) legacyInd(key string) string     { return s.cfgKey("ind", key) }
func (s *Store) legacyIndList() string           { return s.cfgKey("inds") }
func (s *Store) legacyThumb(thumb string) string { return s.cfgKey("ind_thumb", thumb) }
func (s *Store) legacyDev(name string) string    { return s.cfgKey("ind_dev", enrollment.Key(name)) }

func indBucket(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % indBuckets)
}

const indWhat = "enrollment"

// claimSpec is one value an enrollment claims.
type claimSpec struct {
	key   string // the claim's Redis key
	value string // the thumbprint, or the name's key
	given string // the name as given, for errors
	thumb bool
}

// claimsOf lists the values rec claims: its thumbprint, its registration
// key, and its device ID when that is another name.
func (s *Store) claimsOf(rec *record.Individual) []claimSpec {
	key := enrollment.Key(rec.RegistrationID)
	out := []claimSpec{
		{key: s.thumbClaim(rec.Thumbprint), value: rec.Thumbprint, thumb: true},
		{key: s.nameClaim(key), value: key, given: rec.RegistrationID},
	}
	if dev := rec.Device(); enrollment.Key(dev) != key {
		out = append(out, s.devClaim(dev))
	}
	return out
}

func (s *Store) devClaim(dev string) claimSpec {
	return claimSpec{key: s.nameClaim(dev), value: enrollment.Key(dev), given: dev}
}

// usedBy reports whether rec (nil: absent) uses the value c claims.
func (c claimSpec) usedBy(rec *record.Individual) bool {
	switch {
	case rec == nil:
		return false
	case c.thumb:
		return rec.Thumbprint == c.value
	default:
		return enrollment.Key(rec.RegistrationID) == c.value || enrollment.Key(rec.Device()) == c.value
	}
}

// taken is the refusal of a value that owner's enrollment uses.
func (c claimSpec) taken(owner string) error {
	if c.thumb {
		return fault.Existsf("this certificate is already enrolled as %q", owner)
	}
	return enrollment.NameTaken(c.given, owner, owner != c.value)
}

// pending is the refusal of a value that owner claimed but does not use
// (yet: a create under way, or one that failed and whose hold lapses).
func (c claimSpec) pending(owner string) error {
	const lapse = "; if that enrollment is not created, its hold ends within %v"
	if c.thumb {
		return fault.Existsf("this certificate is being enrolled as %q"+lapse, owner, claimStaleAfter)
	}
	return fault.New(fault.AlreadyExists, fault.DeviceIDConflict, "%q is being enrolled as %q"+lapse, c.given, owner, claimStaleAfter)
}

func newClaimValue(owner string, at time.Time) string {
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return owner + "\x00" + strconv.FormatInt(at.UnixMilli(), 36) + "\x00" + hex.EncodeToString(nonce[:])
}

// parseIndClaim splits a claim's value into its owner and stamp.
func parseIndClaim(v string) (owner string, at time.Time) {
	owner, rest, _ := strings.Cut(v, "\x00")
	ts, _, _ := strings.Cut(rest, "\x00")
	n, _ := strconv.ParseInt(ts, 36, 64)
	return owner, time.UnixMilli(n)
}

var (
	// acquireClaim: take an absent claim (1), restamp one the owner holds
	// (2, its old value), or report another's (0, its value).
	acquireClaim = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[2])
  return {1, ''}
end
local nul = string.find(v, '\0', 1, true)
local owner = nul and string.sub(v, 1, nul - 1) or v
if owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return {2, v}
end
return {0, v}
`)
	// swapClaim replaces a claim's value if it is still ARGV[1].
	swapClaim = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
`)
	// releaseClaim deletes a claim if its value is still ARGV[1].
	releaseClaim = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
)

// claimAll makes key the owner of every claim in specs, or refuses with
// none of them made: a claim it made from nothing (or took over) is
// released again; one key already held stays. It returns when the claims
// were stamped.
func (s *Store) claimAll(ctx context.Context, key string, specs []claimSpec) (time.Time, []heldClaim, error) {
	stamped := time.Now()
	vals := make([]string, len(specs))
	cmds := make([]*goredis.Cmd, len(specs))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, c := range specs {
			vals[i] = newClaimValue(key, stamped)
			cmds[i] = acquireClaim.Eval(ctx, p, []string{c.key}, key, vals[i])
		}
		return nil
	})
	var made []heldClaim
	var refusal error
	for i, cmd := range cmds {
		res, cerr := cmd.Slice()
		if cerr != nil || len(res) != 2 {
			if refusal == nil {
				refusal = s.fail(ctx, errors.Join(cerr, err))
			}
			continue
		}
		state, _ := res[0].(int64)
		old, _ := res[1].(string)
		switch state {
		case 1:
			made = append(made, heldClaim{specs[i].key, vals[i]})
		case 0:
			if refusal != nil {
				continue
			}
			if refusal = s.takeOver(ctx, specs[i], old, vals[i]); refusal == nil {
				made = append(made, heldClaim{specs[i].key, vals[i]})
			}
		}
	}
	if refusal != nil {
		s.release(ctx, made)
		return time.Time{}, nil, refusal
	}
	return stamped, made, nil
}

// heldClaim is a claim key and the value this operation wrote to it.
type heldClaim struct{ key, val string }

// takeOver replaces another owner's claim (its value old) with val if that
// owner's enrollment does not use it and the claim is stale.
func (s *Store) takeOver(ctx context.Context, c claimSpec, old, val string) error {
	owner, at := parseIndClaim(old)
	rec, err := s.loadInd(ctx, s.c, owner)
	if err != nil {
		return err
	}
	if c.usedBy(rec) {
		return c.taken(owner)
	}
	if time.Since(at) < claimStaleAfter {
		return c.pending(owner)
	}
	ok, err := swapClaim.Run(ctx, s.c, []string{c.key}, old, val).Bool()
	if err != nil {
		return s.fail(ctx, err)
	}
	if !ok {
		return c.pending(owner)
	}
	return nil
}

// release deletes claims that still hold the values given (best effort:
// a claim left behind is taken over once stale).
func (s *Store) release(ctx context.Context, claims []heldClaim) {
	if len(claims) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, c := range claims {
			releaseClaim.Eval(ctx, p, []string{c.key}, c.val)
		}
		return nil
	})
}

// loadInd reads an enrollment by registration key; nil when absent.
func (s *Store) loadInd(ctx context.Context, c goredis.Cmdable, key string) (*record.Individual, error) {
	var rec record.Individual
	ok, err := getJSON(ctx, c, s.indKey(key), &rec)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if !ok {
		return nil, nil
	}
	return &rec, nil
}

// CreateIndividual implements enrollment.IndividualStore: claim the
// thumbprint and names, then write the enrollment if it is new.
func (s *Store) CreateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return "", err
	}
	etag := newEtag()
	key := enrollment.Key(e.RegistrationID)
	rec := record.FromIndividual(e, etag)
	raw, err := encode(rec)
	if err != nil {
		return "", err
	}
	// An existing enrollment is refused before its claims are restamped.
	if n, err := s.c.Exists(ctx, s.indKey(key)).Result(); err != nil {
		return "", s.fail(ctx, err)
	} else if n > 0 {
		return "", fault.Existsf("%s %q already exists", indWhat, key)
	}
	stamped, made, err := s.claimAll(ctx, key, s.claimsOf(rec))
	if err != nil {
		return "", err
	}
	if time.Since(stamped) > claimFreshFor {
		s.release(ctx, made)
		return "", fault.New(fault.Unavailable, fault.StoreUnavailable, "the enrollment took too long; retry")
	}
	// The record first, then its list entry: a delete that ran meanwhile
	// lists the key again if the record is there after it unlisted it.
	set, err := s.c.SetNX(ctx, s.indKey(key), raw, 0).Result()
	if err != nil {
		return "", s.fail(ctx, err) // the claims stay: the write may have landed
	}
	if !set {
		s.release(ctx, made) // claims made now are not the existing enrollment's
		return "", fault.Existsf("%s %q already exists", indWhat, key)
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZAdd(ctx, s.indList(indBucket(key)), goredis.Z{Member: key})
		p.IncrBy(ctx, s.indVersion(), versionStep())
		return nil
	})
	if err != nil {
		// Not listed: undo the record (if it is still this one) and claims.
		if n, uerr := releaseClaim.Run(context.WithoutCancel(ctx), s.c, []string{s.indKey(key)}, raw).Int(); uerr == nil && n == 1 {
			s.release(ctx, made)
		}
		return "", s.fail(ctx, err)
	}
	return etag, nil
}

// ReservedByIndividual implements enrollment.IndividualStore: whether an
// individual enrollment uses name as its registration ID or device ID.
func (s *Store) ReservedByIndividual(ctx context.Context, name string) (bool, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return false, err
	}
	key := enrollment.Key(name)
	var claim string
	var own bool // an enrollment under key exists
	if ahead, ok := s.readAheadAll(ctx, s.nameClaim(key), s.indKey(key)); ok {
		if !ahead[0].exists {
			return false, nil
		}
		claim, own = ahead[0].val, ahead[1].exists
	} else {
		v, err := getString(ctx, s.c, s.nameClaim(key))
		if err != nil || v == "" {
			return false, s.fail(ctx, err)
		}
		claim = v
		n, err := s.c.Exists(ctx, s.indKey(key)).Result()
		if err != nil {
			return false, s.fail(ctx, err)
		}
		own = n > 0
	}
	owner, _ := parseIndClaim(claim)
	if owner == key {
		return own, nil
	}
	rec, err := s.loadInd(ctx, s.c, owner)
	if err != nil {
		return false, err
	}
	return s.devClaim(name).usedBy(rec), nil
}

// GetIndividual implements enrollment.IndividualStore.
func (s *Store) GetIndividual(ctx context.Context, registrationID string) (*enrollment.Individual, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return nil, err
	}
	key := enrollment.Key(registrationID)
	rec, err := s.loadInd(ctx, s.c, key)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fault.NotFoundf("%s %q not found", indWhat, key)
	}
	return rec.Domain(), nil
}

// FindIndividualByThumbprint implements enrollment.IndividualStore: the
// claim names the owner, whose enrollment must use the thumbprint.
func (s *Store) FindIndividualByThumbprint(ctx context.Context, thumbprint string) (*enrollment.Individual, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return nil, err
	}
	ck := s.thumbClaim(thumbprint)
	v, exists, ok := s.readAhead(ctx, ck)
	if !ok {
		var err error
		if v, err = getString(ctx, s.c, ck); err != nil {
			return nil, s.fail(ctx, err)
		}
		exists = v != ""
	}
	if exists {
		owner, _ := parseIndClaim(v)
		rec, err := s.loadInd(ctx, s.c, owner)
		if err != nil {
			return nil, err
		}
		if rec != nil && rec.Thumbprint == thumbprint {
			return rec.Domain(), nil
		}
	}
	return nil, fault.NotFoundf("no %s for thumbprint %q", indWhat, thumbprint)
}

// ListIndividuals implements enrollment.IndividualStore: a page of every
// bucket after the token, merged in key order.
func (s *Store) ListIndividuals(ctx context.Context, p enrollment.Page) ([]*enrollment.Individual, string, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return nil, "", err
	}
	limit := max(1, p.Limit)
	start := "-"
	if p.Token != "" {
		after, err := base64.RawURLEncoding.DecodeString(p.Token)
		if err != nil {
			return nil, "", fault.Invalidf("page_token is not valid")
		}
		start = "(" + string(after)
	}
	cmds := make([]*goredis.StringSliceCmd, indBuckets)
	_, err := s.c.Pipelined(ctx, func(pl goredis.Pipeliner) error {
		for b := range indBuckets {
			cmds[b] = pl.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.indList(b), Start: start, Stop: "+", ByLex: true, Count: int64(limit + 1)})
		}
		return nil
	})
	if err != nil {
		return nil, "", s.fail(ctx, err)
	}
	var keys []string
	for _, c := range cmds {
		keys = append(keys, c.Val()...)
	}
	slices.Sort(keys)
	next := ""
	if len(keys) > limit {
		keys = keys[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[limit-1]))
	}
	recs, err := s.loadInds(ctx, keys)
	if err != nil {
		return nil, "", err
	}
	out := make([]*enrollment.Individual, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Domain())
	}
	return out, next, nil
}

// loadInds reads enrollments in one pipeline (they live in different
// slots), skipping any that vanished.
func (s *Store) loadInds(ctx context.Context, keys []string) ([]*record.Individual, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*goredis.StringCmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.indKey(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.fail(ctx, err)
	}
	var out []*record.Individual
	for _, c := range cmds {
		str, err := c.Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		var rec record.Individual
		if err := decodeString(str, &rec); err != nil {
			return nil, err
		}
		out = append(out, &rec)
	}
	return out, nil
}

// UpdateIndividual implements enrollment.IndividualStore. A changed device
// ID is claimed before the write and its old claim released after.
func (s *Store) UpdateIndividual(ctx context.Context, e *enrollment.Individual) (string, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return "", err
	}
	key := enrollment.Key(e.RegistrationID)
	rkey := s.indKey(key)
	newDev := e.EffectiveDeviceID()
	for range maxTxAttempts {
		cur, err := s.loadInd(ctx, s.c, key)
		if err != nil {
			return "", err
		}
		if cur == nil {
			return "", fault.NotFoundf("%s %q not found", indWhat, key)
		}
		if err := checkEtag(indWhat, key, e.Etag, cur.Etag); err != nil {
			return "", err
		}
		oldDev := cur.Device()
		moved := enrollment.Key(oldDev) != enrollment.Key(newDev)
		var made []heldClaim
		var stamped time.Time
		var oldClaim heldClaim // released after the write
		if moved {
			if enrollment.Key(newDev) != key {
				if stamped, made, err = s.claimAll(ctx, key, []claimSpec{s.devClaim(newDev)}); err != nil {
					return "", err
				}
			}
			if enrollment.Key(oldDev) != key {
				oldClaim.key = s.nameClaim(oldDev)
				if oldClaim.val, err = getString(ctx, s.c, oldClaim.key); err != nil {
					s.release(ctx, made)
					return "", s.fail(ctx, err)
				}
			}
		}
		etag := newEtag()
		changed := false // the enrollment changed since it was read: start again
		err = s.watch(ctx, func(tx *goredis.Tx) error {
			rec, err := s.loadInd(ctx, tx, key)
			if err != nil {
				return err
			}
			if rec == nil {
				return fault.NotFoundf("%s %q not found", indWhat, key)
			}
			if rec.Etag != cur.Etag {
				changed = true
				return nil
			}
			if !stamped.IsZero() && time.Since(stamped) > claimFreshFor {
				return fault.New(fault.Unavailable, fault.StoreUnavailable, "the update took too long; retry")
			}
			rec.ApplyUpdate(e, etag)
			raw, err := encode(rec)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, rkey, raw, 0)
				return nil
			})
			return err
		}, rkey)
		if err != nil || changed {
			s.release(ctx, made)
			if err != nil {
				return "", err
			}
			continue
		}
		_ = s.c.IncrBy(ctx, s.indVersion(), versionStep()).Err()
		if owner, _ := parseIndClaim(oldClaim.val); oldClaim.val != "" && owner == key {
			s.release(ctx, []heldClaim{oldClaim})
		}
		return etag, nil
	}
	return "", fault.New(fault.Unavailable, fault.StoreUnavailable, "too much contention on enrollment %q; retry", key)
}

// DeleteIndividual implements enrollment.IndividualStore: delete the
// enrollment, then release the claims it held as they were before.
func (s *Store) DeleteIndividual(ctx context.Context, registrationID, etag string) error {
	if err := s.ensureLayout(ctx); err != nil {
		return err
	}
	key := enrollment.Key(registrationID)
	rkey := s.indKey(key)
	for range maxTxAttempts {
		cur, err := s.loadInd(ctx, s.c, key)
		if err != nil {
			return err
		}
		if cur == nil {
			return fault.NotFoundf("%s %q not found", indWhat, key)
		}
		if etag != "" {
			if err := checkEtag(indWhat, key, etag, cur.Etag); err != nil {
				return err
			}
		}
		specs := s.claimsOf(cur)
		held := make([]heldClaim, len(specs))
		cmds := make([]*goredis.StringCmd, len(specs))
		_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, c := range specs {
				cmds[i] = p.Get(ctx, c.key)
			}
			return nil
		})
		if err != nil && !errors.Is(err, goredis.Nil) {
			return s.fail(ctx, err)
		}
		var mine []heldClaim
		for i, c := range cmds {
			held[i] = heldClaim{specs[i].key, c.Val()}
			if owner, _ := parseIndClaim(held[i].val); held[i].val != "" && owner == key {
				mine = append(mine, held[i])
			}
		}
		changed := false
		err = s.watch(ctx, func(tx *goredis.Tx) error {
			rec, err := s.loadInd(ctx, tx, key)
			if err != nil {
				return err
			}
			if rec == nil {
				return fault.NotFoundf("%s %q not found", indWhat, key)
			}
			if rec.Etag != cur.Etag {
				changed = true
				return nil
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Del(ctx, rkey)
				return nil
			})
			return err
		}, rkey)
		if err != nil {
			return err
		}
		if changed {
			continue
		}
		// Unlist it, then list it again if it was created again meanwhile
		// (a create lists its record after writing it).
		list := s.indList(indBucket(key))
		_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.ZRem(ctx, list, key)
			p.IncrBy(ctx, s.indVersion(), versionStep())
			return nil
		})
		if n, err := s.c.Exists(ctx, rkey).Result(); err == nil && n > 0 {
			_ = s.c.ZAdd(ctx, list, goredis.Z{Member: key}).Err()
		}
		s.release(ctx, mine)
		return nil
	}
	return fault.New(fault.Unavailable, fault.StoreUnavailable, "too much contention on enrollment %q; retry", key)
}

// ensureLayout moves individual enrollments written by a build before
// issue #17's layout out of the configuration slot, once: each is claimed,
// copied (unless already copied) and listed, then its old keys deleted; a
// marker records the end. It runs on a process's first use of individual
// enrollments; concurrent runs (other replicas) do the same work again
// harmlessly. After the first success in a process it costs nothing.
func (s *Store) ensureLayout(ctx context.Context) error {
	if s.indLayoutReady.Load() {
		return nil
	}
	s.indLayoutMu.Lock()
	defer s.indLayoutMu.Unlock()
	if s.indLayoutReady.Load() {
		return nil
	}
	n, err := s.c.Exists(ctx, s.indLayoutMarker()).Result()
	if err != nil {
		return s.fail(ctx, err)
	}
	if n == 0 {
		if err := s.moveLegacyIndividuals(ctx); err != nil {
			return err
		}
		_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, s.indLayoutMarker(), "2", 0)
			p.Del(ctx, s.cfgKey("ind_dev:built"))
			return nil
		})
		if err != nil {
			return s.fail(ctx, err)
		}
	}
	s.indLayoutReady.Store(true)
	return nil
}

func (s *Store) moveLegacyIndividuals(ctx context.Context) error {
	for {
		ids, err := s.c.ZRange(ctx, s.legacyIndList(), 0, 499).Result()
		if err != nil {
			return s.fail(ctx, err)
		}
		if len(ids) == 0 {
			return nil
		}
		for _, id := range ids {
			var rec record.Individual
			ok, err := getJSON(ctx, s.c, s.legacyInd(id), &rec)
			if err != nil {
				return s.fail(ctx, err)
			}
			if ok {
				if err := s.moveLegacy(ctx, id, &rec); err != nil {
					return err
				}
			}
			_, err = s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Del(ctx, s.legacyInd(id))
				p.ZRem(ctx, s.legacyIndList(), id)
				if ok {
					p.Del(ctx, s.legacyThumb(rec.Thumbprint), s.legacyDev(id), s.legacyDev(rec.Device()))
				}
				return nil
			})
			if err != nil {
				return s.fail(ctx, err)
			}
		}
	}
}

// moveLegacy claims and copies one enrollment. A claim another enrollment
// already uses (data written before the name rule, ADR 17) stays with it:
// the first to move keeps it, as the old index kept the first.
func (s *Store) moveLegacy(ctx context.Context, key string, rec *record.Individual) error {
	for _, c := range s.claimsOf(rec) {
		if _, _, err := s.claimAll(ctx, key, []claimSpec{c}); err != nil {
			if fault.KindOf(err) != fault.AlreadyExists {
				return err
			}
		}
	}
	raw, err := encode(rec)
	if err != nil {
		return err
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, s.indKey(key), raw, 0)
		p.ZAdd(ctx, s.indList(indBucket(key)), goredis.Z{Member: key})
		p.IncrBy(ctx, s.indVersion(), versionStep())
		return nil
	})
	return s.fail(ctx, err)
}
