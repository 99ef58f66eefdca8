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

var (
	// acquireClaim takes an absent claim (1), or reports the value of one
	// held (0, its value). Its own value (a retried call) counts as taken
	// (1); with ARGV[3] set, so does its owner's (the move of old data).
	acquireClaim = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[2])
  return {1, ''}
end
if v == ARGV[2] then return {1, ''} end
if ARGV[3] == '1' then
  local nul = string.find(v, '\0', 1, true)
  if nul and string.sub(v, 1, nul - 1) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2])
    return {1, ''}
  end
end
return {0, v}
`)
	// swapClaim replaces a claim's value if it is still ARGV[1] (or is
	// already ARGV[2]: a retried call).
	swapClaim = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[2] then return 1 end
if v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
`)
	// deleteIfValue deletes a key (a claim, the lease) if its value is
	// still ARGV[1].
	deleteIfValue = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
)

// claimAll makes key the owner of every claim in specs, or refuses with
// none of them made (a claim it made is released again). A claim held
// already, even under key (another create of key under way, or one that
// failed), is taken over only when stale and unused (takeOver). It returns
// when the claims were stamped.
func (s *Store) claimAll(ctx context.Context, key string, specs []claimSpec) (time.Time, []heldClaim, error) {
	stamped := time.Now()
	vals := make([]string, len(specs))
	cmds := make([]*goredis.Cmd, len(specs))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, c := range specs {
			vals[i] = newClaimValue(key, stamped)
			cmds[i] = acquireClaim.Eval(ctx, p, []string{c.key}, key, vals[i], "0")
		}
		return nil
	})
	var made []heldClaim
	var refusal error
	for i, cmd := range cmds {
		state, old, cerr := claimResult(cmd)
		switch {
		case cerr != nil:
			if refusal == nil {
				refusal = s.fail(ctx, errors.Join(cerr, err))
			}
			// It may have been made: release it too if it was.
			made = append(made, heldClaim{specs[i].key, vals[i]})
		case state == 1:
			made = append(made, heldClaim{specs[i].key, vals[i]})
		case refusal == nil:
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

// claimResult reads acquireClaim's answer.
func claimResult(cmd *goredis.Cmd) (state int64, old string, err error) {
	res, err := cmd.Slice()
	if err != nil {
		return 0, "", err
	}
	if len(res) != 2 {
		return 0, "", errors.New("unexpected claim script answer")
	}
	state, _ = res[0].(int64)
	old, _ = res[1].(string)
	return state, old, nil
}

// heldClaim is a claim key and the value this operation wrote to it.
type heldClaim struct{ key, val string }

// takeOver replaces another owner's claim (its value old) with val if that
// owner's enrollment does not use it and the claim is stale.
func (s *Store) takeOver(ctx context.Context, c claimSpec, old, val string) error {
	owner, at := parseClaim(old)
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
			deleteIfValue.Eval(ctx, p, []string{c.key}, c.val)
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
	// An existing enrollment is refused before anything is written.
	if n, err := s.c.Exists(ctx, s.indKey(key)).Result(); err != nil {
		return "", s.fail(ctx, err)
	} else if n > 0 {
		return "", fault.Existsf("%s %q already exists", indWhat, key)
	}
	// Listed before it is written, so that a failure leaves at worst an
	// entry that lists skip; listed again after, in case a delete of key
	// running meanwhile unlisted it.
	list := s.indList(indBucket(key))
	if err := s.c.ZAdd(ctx, list, goredis.Z{Member: key}).Err(); err != nil {
		return "", s.fail(ctx, err)
	}
	stamped, made, err := s.claimAll(ctx, key, s.claimsOf(rec))
	if err == nil && time.Since(stamped) > claimFreshFor {
		s.release(ctx, made)
		err = fault.New(fault.Unavailable, fault.StoreUnavailable, "the enrollment took too long; retry")
	}
	if err != nil {
		s.unlist(ctx, key)
		return "", err
	}
	if err := ctx.Err(); err != nil { // not sent: undo
		s.release(ctx, made)
		s.unlist(ctx, key)
		return "", err
	}
	set, err := s.c.SetNX(ctx, s.indKey(key), raw, 0).Result()
	if err != nil {
		return "", s.fail(ctx, err) // claims and entry stay: the write may have landed
	}
	if !set {
		// A retried SETNX whose first try landed finds its own record.
		if cur, err := getString(ctx, s.c, s.indKey(key)); err != nil {
			return "", s.fail(ctx, err)
		} else if cur != string(raw) {
			s.release(ctx, made) // the claims made now are not the existing enrollment's
			return "", fault.Existsf("%s %q already exists", indWhat, key)
		}
	}
	_ = s.c.ZAdd(ctx, list, goredis.Z{Member: key}).Err() // listed already, but for a delete meanwhile
	return etag, nil
}

// unlist removes key's list entry, then lists it again if its enrollment
// exists (created meanwhile: a create lists its record after writing it).
func (s *Store) unlist(ctx context.Context, key string) {
	ctx = context.WithoutCancel(ctx)
	list := s.indList(indBucket(key))
	if s.c.ZRem(ctx, list, key).Err() != nil {
		return
	}
	if n, err := s.c.Exists(ctx, s.indKey(key)).Result(); err == nil && n > 0 {
		_ = s.c.ZAdd(ctx, list, goredis.Z{Member: key}).Err()
	}
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
		claim, own = ahead[0].val, ahead[1].exists
	} else {
		var claimCmd *goredis.StringCmd
		var ownCmd *goredis.IntCmd
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			claimCmd = p.Get(ctx, s.nameClaim(key))
			ownCmd = p.Exists(ctx, s.indKey(key))
			return nil
		})
		if err != nil && !errors.Is(err, goredis.Nil) {
			return false, s.fail(ctx, err)
		}
		claim, own = claimCmd.Val(), ownCmd.Val() > 0
	}
	// An enrollment under the name holds it, claimed or not; otherwise the
	// claim's owner, if its enrollment uses the name.
	owner, _ := parseClaim(claim)
	if own || claim == "" || owner == key {
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
		owner, _ := parseClaim(v)
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
	keys, more, err := s.mergeBuckets(ctx, start, limit)
	if err != nil {
		return nil, "", s.fail(ctx, err)
	}
	next := ""
	if more {
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[len(keys)-1]))
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

// mergeBuckets returns the first limit keys after start (a ZRANGE BYLEX
// bound) over every list bucket, and whether more follow. It reads a
// little over each bucket's share of a page, and more from the buckets
// that could still hold smaller keys only when that was not enough (rare:
// keys spread evenly over the buckets).
func (s *Store) mergeBuckets(ctx context.Context, start string, limit int) ([]string, bool, error) {
	type bucket struct {
		from string // ZRANGE start of the next read
		got  []string
		done bool // read to its end
	}
	bs := make([]bucket, indBuckets)
	for i := range bs {
		bs[i].from = start
	}
	per := 2*limit/indBuckets + 2
	for {
		var read []int
		cmds := make([]*goredis.StringSliceCmd, indBuckets)
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range bs {
				if !bs[i].done {
					read = append(read, i)
					cmds[i] = p.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.indList(i), Start: bs[i].from, Stop: "+", ByLex: true, Count: int64(per)})
				}
			}
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		for _, i := range read {
			got := cmds[i].Val()
			bs[i].got = append(bs[i].got, got...)
			bs[i].done = len(got) < per
			if len(got) > 0 {
				bs[i].from = "(" + got[len(got)-1]
			}
		}
		// Keys up to the smallest last key of a bucket not read to its
		// end are certainly the smallest of all.
		bound, bounded := "", false
		var all []string
		for _, b := range bs {
			all = append(all, b.got...)
			if !b.done && (!bounded || b.got[len(b.got)-1] < bound) {
				bound, bounded = b.got[len(b.got)-1], true
			}
		}
		slices.Sort(all)
		certain := len(all)
		if bounded {
			certain, _ = slices.BinarySearch(all, bound)
			certain++ // bound itself
		}
		switch {
		case certain > limit:
			return all[:limit], true, nil
		case !bounded:
			return all, false, nil
		}
		per *= 2
	}
}

// loadInds reads enrollments in one pipeline (they live in different
// slots), skipping any that vanished.
func (s *Store) loadInds(ctx context.Context, keys []string) ([]*record.Individual, error) {
	vals, err := s.getAll(ctx, keys, s.indKey)
	if err != nil {
		return nil, err
	}
	var out []*record.Individual
	for _, v := range vals {
		if v == nil {
			continue
		}
		var rec record.Individual
		if err := decodeString(*v, &rec); err != nil {
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
		changed, err := s.writeUnchanged(ctx, key, cur.Etag, func(rec *record.Individual, p goredis.Pipeliner) error {
			if !stamped.IsZero() && time.Since(stamped) > claimFreshFor {
				return fault.New(fault.Unavailable, fault.StoreUnavailable, "the update took too long; retry")
			}
			rec.ApplyUpdate(e, etag)
			raw, err := encode(rec)
			if err != nil {
				return err
			}
			p.Set(ctx, rkey, raw, 0)
			return nil
		})
		if err != nil {
			// The write may have landed with its reply lost (a timeout, or
			// the caller gone): the claim stays while the enrollment uses
			// its value, whoever wrote it.
			rec, rerr := s.loadInd(context.WithoutCancel(ctx), s.c, key)
			switch {
			case rerr != nil:
				return "", err // unknown: the new claim stays, and lapses if unused
			case rec != nil && rec.Etag == etag:
				err = nil // it landed
			case len(made) > 0 && s.devClaim(newDev).usedBy(rec):
				return "", err
			}
		}
		if err != nil || changed {
			s.release(ctx, made)
			if err != nil {
				return "", err
			}
			continue
		}
		if owner, _ := parseClaim(oldClaim.val); oldClaim.val != "" && owner == key {
			s.release(ctx, []heldClaim{oldClaim})
		}
		return etag, nil
	}
	return "", fault.New(fault.Unavailable, fault.StoreUnavailable, "too much contention on enrollment %q; retry", key)
}

// writeUnchanged queues write's commands in a transaction on key's
// enrollment if its etag is still was; changed reports that it is not
// (the caller starts again). An error from write sends nothing.
func (s *Store) writeUnchanged(ctx context.Context, key, was string, write func(rec *record.Individual, p goredis.Pipeliner) error) (changed bool, err error) {
	err = s.watch(ctx, func(tx *goredis.Tx) error {
		rec, err := s.loadInd(ctx, tx, key)
		if err != nil {
			return err
		}
		if rec == nil {
			return fault.NotFoundf("%s %q not found", indWhat, key)
		}
		if rec.Etag != was {
			changed = true
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error { return write(rec, p) })
		return err
	}, s.indKey(key))
	return changed, err
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
		var mine []heldClaim
		for i, c := range cmds {
			if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
				return s.fail(ctx, err)
			}
			held[i] = heldClaim{specs[i].key, c.Val()}
			if owner, _ := parseClaim(held[i].val); held[i].val != "" && owner == key {
				mine = append(mine, held[i])
			}
		}
		changed, err := s.writeUnchanged(ctx, key, cur.Etag, func(_ *record.Individual, p goredis.Pipeliner) error {
			p.Del(ctx, rkey)
			return nil
		})
		if err != nil {
			return err
		}
		if changed {
			continue
		}
		s.unlist(ctx, key)
		s.release(ctx, mine)
		return nil
	}
	return fault.New(fault.Unavailable, fault.StoreUnavailable, "too much contention on enrollment %q; retry", key)
}

// ensureLayout waits until individual enrollments are in this layout.
// Those written by a build before it (in the configuration slot, with
// their indexes) are moved once, by one replica at a time (moveLayout),
// in the background: a request waits for it at most layoutWait, then is
// told to retry. After the first success in a process it costs nothing.
func (s *Store) ensureLayout(ctx context.Context) error {
	if s.indLayoutReady.Load() {
		return nil
	}
	s.indLayoutMu.Lock()
	done := s.indMoving
	if done == nil {
		done = make(chan struct{})
		s.indMoving = done
		go func() {
			mctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-s.closing:
					cancel()
				case <-done:
				}
			}()
			err := s.moveLayout(mctx)
			s.indLayoutMu.Lock()
			if err == nil {
				s.indLayoutReady.Store(true)
			}
			s.indMoveErr, s.indMoving = err, nil
			s.indLayoutMu.Unlock()
			close(done)
		}()
	}
	s.indLayoutMu.Unlock()
	wait := time.NewTimer(layoutWait)
	defer wait.Stop()
	select {
	case <-done:
		s.indLayoutMu.Lock()
		err := s.indMoveErr
		s.indLayoutMu.Unlock()
		if s.indLayoutReady.Load() {
			return nil
		}
		return s.fail(ctx, err)
	case <-ctx.Done():
		return ctx.Err()
	case <-wait.C:
		return fault.New(fault.Unavailable, fault.StoreUnavailable, "individual enrollments are being moved to this build's storage layout; retry shortly")
	}
}

const (
	layoutWait  = 5 * time.Second
	layoutBatch = 500
)

// layoutLease is how long a mover holds the move without renewing it.
var layoutLease = time.Minute

// renewLease extends the move's lease if this mover (ARGV[1]) holds it
// and the move is not marked done (KEYS[2]).
var renewLease = goredis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// moveLayout moves the enrollments of an earlier build, unless the marker
// says it is done. One mover at a time holds a lease; it renews it before
// each batch's writes and stops if it lost it, so that a mover that
// stalled cannot write old copies after another finished (and an operator
// changed or deleted them). Nothing else writes individual enrollments
// until the marker is set.
func (s *Store) moveLayout(ctx context.Context) error {
	lease := s.cfgKey("ind:moving")
	holder := newEtag()
	var renewed time.Time
	for {
		n, err := s.c.Exists(ctx, s.indLayoutMarker()).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		ok, err := s.c.SetNX(ctx, lease, holder, layoutLease).Result()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select { // another replica is moving them
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Hand the lease back however the move ends, so that another replica
	// (or this one, on the next request) need not wait for it to lapse.
	defer func() {
		_ = deleteIfValue.Run(context.WithoutCancel(ctx), s.c, []string{lease}, holder).Err()
	}()
	renew := func() error {
		at := time.Now()
		ok, err := renewLease.Run(ctx, s.c, []string{lease, s.indLayoutMarker()}, holder, layoutLease.Milliseconds()).Bool()
		if err == nil && !ok {
			err = errLostLease
		}
		renewed = at
		return err
	}
	token := ""
	for {
		ids, next, err := rangePage(ctx, s.c, s.legacyIndList(), "", token, layoutBatch)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			if err := s.moveBatch(ctx, ids, renew, func() error {
				// A mover that stalled since it renewed may have lost the
				// lease to another that finished: it writes nothing.
				if time.Since(renewed) > layoutLease/2 {
					return errLostLease
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	ok, err := finishMove.Run(ctx, s.c, []string{lease, s.indLayoutMarker(), s.cfgKey("ind_dev:built")}, holder).Bool()
	if err == nil && !ok {
		err = errLostLease
	}
	return err
}

var errLostLease = errors.New("lost the lease on moving individual enrollments")

// finishMove marks the move done if this mover (ARGV[1]) still holds the
// lease, and drops the lease and the old index's marker.
var finishMove = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], '2')
redis.call('DEL', KEYS[1], KEYS[3])
return 1
`)

// moveBatch moves enrollments of the old layout: claims their values
// (adopting claims a stopped earlier move made for the same enrollment),
// lists and writes them unless already written, then deletes the old keys.
// A name another moved enrollment already claims (data from before the
// name rule, ADR 17) stays with the first, as the old index kept it. A
// record that does not decode is left where it is.
func (s *Store) moveBatch(ctx context.Context, ids []string, renew, stillHeld func() error) error {
	gets := make([]*goredis.StringCmd, len(ids))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.Get(ctx, s.legacyInd(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	type moving struct {
		id  string
		raw string
		rec record.Individual
	}
	var batch []moving
	var gone []string // listed, but the record is absent
	for i, g := range gets {
		raw, err := g.Result()
		if errors.Is(err, goredis.Nil) {
			gone = append(gone, ids[i])
			continue
		}
		if err != nil {
			return err
		}
		m := moving{id: ids[i], raw: raw}
		if decodeString(raw, &m.rec) != nil {
			continue
		}
		batch = append(batch, m)
	}
	if err := renew(); err != nil {
		return err
	}
	now := time.Now()
	if err := stillHeld(); err != nil {
		return err
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, m := range batch {
			for _, c := range s.claimsOf(&m.rec) {
				acquireClaim.Eval(ctx, p, []string{c.key}, m.id, newClaimValue(m.id, now), "1")
			}
			p.ZAdd(ctx, s.indList(indBucket(m.id)), goredis.Z{Member: m.id})
			p.SetNX(ctx, s.indKey(m.id), m.raw, 0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, m := range batch {
			p.Del(ctx, s.legacyInd(m.id), s.legacyThumb(m.rec.Thumbprint), s.legacyDev(m.id), s.legacyDev(m.rec.Device()))
			p.ZRem(ctx, s.legacyIndList(), m.id)
		}
		for _, id := range gone {
			p.ZRem(ctx, s.legacyIndList(), id)
		}
		return nil
	})
	return err
}
