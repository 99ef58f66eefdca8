package redis

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// Device IDs (ADR 7). A device ID is held by at most one registration.
// Its home is the registration key enrollment.Key(deviceID), the slot of
// the registration whose ID it is (case folded). A registration at its
// device ID's home, one whose device ID is its registration ID (every
// group device), holds it by its record alone. Any other holds it by a
// claim in the home's slot, {<prefix>:r:<home>}:d:<device ID>, so that a
// home registration's write and another registration's claim are decided
// in one slot, atomically, on Redis Cluster too. A claim names the
// registration that holds the device ID. A creator writes its
// registration only while its claim is younger than claimFreshFor;
// another registration (or the home's) may take over a claim only when it
// is older than claimStaleAfter and its holder has no registration with
// that device ID. With replica clocks within (claimStaleAfter -
// claimFreshFor) of each other, two registrations never hold one device
// ID. Builds before issue #17 claimed every device ID at
// {<prefix>:d:<device ID>} (legacyClaimKey): those claims are honoured by
// the same rules and never written again.
const (
	claimFreshFor   = time.Minute
	claimStaleAfter = 2 * time.Minute
)

func (s *Store) regKey(key string) string { return "{" + s.prefix + ":r:" + key + "}" }
func (s *Store) claimKey(deviceID string) string {
	return s.regKey(enrollment.Key(deviceID)) + ":d:" + deviceID
}
func (s *Store) legacyClaimKey(deviceID string) string {
	return "{" + s.prefix + ":d:" + deviceID + "}"
}

// atHome reports whether the registration key is deviceID's home: such a
// registration holds its device ID without a claim.
func atHome(key, deviceID string) bool { return enrollment.Key(deviceID) == key }

func (s *Store) idxShard(id string) string { return s.prefix + ":ix:shard:" + id }
func (s *Store) idxGroup(id string) string { return s.prefix + ":ix:grp:" + id }

// idxCert is the index of registrations by the certificates of their
// identity's X.509 chain (ADR 23): one sorted set per issuer, members
// serial NUL registration key.
func (s *Store) idxCert(issuer string) string { return s.prefix + ":ix:crt:" + issuer }

func certMember(ref registry.CertRef, key string) string { return ref.Serial + "\x00" + key }

func (s *Store) loadDevice(ctx context.Context, c goredis.Cmdable, key string) (*device, error) {
	raw, err := c.Get(ctx, s.regKey(key)).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, fault.NotFoundf("registration %q not found", key)
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return decodeDevice(raw)
}

// addIndexes records key in the list indexes, and the write's outbox mark,
// before the registration is written: a failure between the two leaves an
// entry that lists skip (and a mark the sweeper drops).
func (s *Store) addIndexes(ctx context.Context, key, shard, group string, certs []registry.CertRef, mark goredis.Z) error {
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZAdd(ctx, s.outboxIndex(), mark)
		p.ZAdd(ctx, s.idxShard(shard), goredis.Z{Member: key})
		if group != "" {
			p.ZAdd(ctx, s.idxGroup(group), goredis.Z{Member: key})
		}
		for _, ref := range certs {
			p.ZAdd(ctx, s.idxCert(ref.Issuer), goredis.Z{Member: certMember(ref, key)})
		}
		return nil
	})
	return s.fail(ctx, err)
}

// dropIndexes removes key from the indexes named (best effort: a leftover
// entry is skipped by lists).
func (s *Store) dropIndexes(ctx context.Context, key, shard, group string, certs []registry.CertRef) {
	_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if shard != "" {
			p.ZRem(ctx, s.idxShard(shard), key)
		}
		if group != "" {
			p.ZRem(ctx, s.idxGroup(group), key)
		}
		for _, ref := range certs {
			p.ZRem(ctx, s.idxCert(ref.Issuer), certMember(ref, key))
		}
		return nil
	})
}

// hasCert reports whether an identity's chain holds the certificate.
func hasCert(id *registry.Identity, ref registry.CertRef) bool {
	return slices.Contains(id.Credential.X509Chain, ref)
}

// A claim's value is the holder's registration key and, after a NUL, when
// it was stamped (Unix milliseconds, base 36); an enrollment's claim adds
// a NUL and a nonce (individual.go).
func parseClaim(v string) (owner string, at time.Time) {
	owner, rest, _ := strings.Cut(v, "\x00")
	ts, _, _ := strings.Cut(rest, "\x00")
	n, _ := strconv.ParseInt(ts, 36, 64)
	return owner, time.UnixMilli(n)
}

// othersClaim decides on claim value v of deviceID, read by registration
// key: nil when key holds it or may take it over, DEVICE_ID_CONFLICT while
// its holder's registration uses the device ID, while the holder's events
// wait in its outbox (its deletion is not yet in the log: another's
// creation must not reach the hubs first), or while the claim is younger
// than claimStaleAfter. The holder's record and outbox are read in one
// transaction (one slot): a deletion removes the one and fills the other
// in one.
func (s *Store) othersClaim(ctx context.Context, deviceID, v, key string) error {
	owner, at := parseClaim(v)
	if owner == key {
		return nil
	}
	var rec *goredis.StringCmd
	var pending *goredis.IntCmd
	if _, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		rec = p.Get(ctx, s.regKey(owner))
		pending = p.Exists(ctx, s.outboxKey(owner))
		return nil
	}); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	if err := pending.Err(); err != nil {
		return err
	}
	if raw, err := rec.Result(); err == nil {
		other, err := decodeDevice(raw)
		if err != nil {
			return err
		}
		if other.I.DeviceID == deviceID {
			return fault.New(fault.AlreadyExists, fault.DeviceIDConflict, "device ID %q belongs to another registration", deviceID)
		}
	}
	switch {
	case pending.Val() > 0:
		return fault.New(fault.AlreadyExists, fault.DeviceIDConflict, "device ID %q is being released by another registration; retry once its events are in the log", deviceID)
	case time.Since(at) < claimStaleAfter:
		return fault.New(fault.AlreadyExists, fault.DeviceIDConflict, "device ID %q is being claimed by another registration", deviceID)
	}
	return nil
}

// claimDevice makes key, a registration away from deviceID's home, the
// holder of its claim, or fails with DEVICE_ID_CONFLICT: while the home
// registration holds the device ID, or its events (a deletion of it, say)
// are not yet in the log, or another registration holds the claim. It
// returns when the claim was (re)stamped.
func (s *Store) claimDevice(ctx context.Context, deviceID, key string) (time.Time, error) {
	ck, home := s.claimKey(deviceID), s.regKey(enrollment.Key(deviceID))
	var stamped time.Time
	err := s.watch(ctx, func(tx *goredis.Tx) error {
		raw, err := getString(ctx, tx, home)
		if err != nil {
			return err
		}
		if raw != "" {
			d, err := decodeDevice(raw)
			if err != nil {
				return err
			}
			if d.I.DeviceID == deviceID {
				return fault.New(fault.AlreadyExists, fault.DeviceIDConflict, "device ID %q belongs to registration %q", deviceID, d.R.RegistrationID)
			}
		}
		// The other side of DeleteRegistration's rule: a device ID is free
		// for another registration only once its deletion is in the log.
		if n, err := tx.Exists(ctx, s.outboxKey(enrollment.Key(deviceID))).Result(); err != nil {
			return err
		} else if n > 0 {
			return fault.New(fault.AlreadyExists, fault.DeviceIDConflict, "device ID %q is being released by registration %q; retry once its events are in the log", deviceID, enrollment.Key(deviceID))
		}
		v, err := getString(ctx, tx, ck)
		if err != nil {
			return err
		}
		if v != "" {
			if owner, at := parseClaim(v); owner == key && time.Since(at) < claimFreshFor/2 {
				stamped = at // a concurrent registration of the same device claimed it just now
				return nil
			}
			if err := s.othersClaim(ctx, deviceID, v, key); err != nil {
				return err
			}
		}
		stamped = time.Now()
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, ck, key+"\x00"+strconv.FormatInt(stamped.UnixMilli(), 36), 0)
			return nil
		})
		return err
	}, ck, home, s.outboxKey(enrollment.Key(deviceID)))
	return stamped, err
}

// CreateRegistration implements registry.Store: in one script where the
// keys allow (create.go); otherwise claim the device ID, add the index
// entries, then write registration and identity as one key.
func (s *Store) CreateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (string, error) {
	if reg.DeviceID != id.DeviceID {
		return "", fault.New(fault.Internal, fault.InternalError, "registration and identity name different devices")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	key := enrollment.Key(reg.RegistrationID)
	etag := newEtag()
	raw, err := encodeDevice(reg, etag, id)
	if err != nil {
		return "", err
	}
	events, err := outboxEntries(nil, id)
	if err != nil {
		return "", err
	}
	if done, err := s.createAtOnce(ctx, key, raw, reg, id, events); err != nil {
		return "", err
	} else if done {
		return etag, nil
	}
	// Refuse an existing registration, or a device ID an earlier build
	// claimed for another, before touching claims or indexes. Such claims
	// are never written again, so a check apart from the write holds.
	var exists *goredis.IntCmd
	var legacy *goredis.StringCmd
	if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		exists = p.Exists(ctx, s.regKey(key))
		legacy = p.Get(ctx, s.legacyClaimKey(id.DeviceID))
		return nil
	}); err != nil && !errors.Is(err, goredis.Nil) {
		return "", s.fail(ctx, err)
	}
	if exists.Val() > 0 {
		return "", fault.Existsf("registration %q already exists", reg.RegistrationID)
	}
	legacyOwn := ""
	if v, err := legacy.Result(); err == nil {
		if err := s.othersClaim(ctx, id.DeviceID, v, key); err != nil {
			return "", err
		}
		// Another's, stale and unused with its events logged: gone, if
		// still as read. This key's own stays until the create is
		// written: it holds the device ID meanwhile (a deletion of this
		// key's may still wait in the outbox).
		if owner, _ := parseClaim(v); owner != key {
			_ = deleteIfValue.Run(ctx, s.c, []string{s.legacyClaimKey(id.DeviceID)}, v).Err()
		} else {
			legacyOwn = v
		}
	}
	home := atHome(key, id.DeviceID)
	var claimed time.Time
	if !home {
		if claimed, err = s.claimDevice(ctx, id.DeviceID, key); err != nil {
			return "", err
		}
	}
	mark := s.newMark(key)
	if err := s.addIndexes(ctx, key, reg.Shard, reg.GroupID, id.Credential.X509Chain, mark); err != nil {
		return "", err
	}
	ck := s.claimKey(id.DeviceID)
	watched := []string{s.regKey(key)}
	if home {
		watched = append(watched, ck)
	}
	var outbox *goredis.StringSliceCmd
	err = s.watch(ctx, func(tx *goredis.Tx) error {
		n, err := tx.Exists(ctx, s.regKey(key)).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return fault.Existsf("registration %q already exists", reg.RegistrationID)
		}
		// At home the record holds the device ID, decided here against a
		// claim another registration may have made (same slot): one that
		// may be taken over (stale, unused, its holder's events logged)
		// goes.
		takeOver := false
		if home {
			v, err := getString(ctx, tx, ck)
			if err != nil {
				return err
			}
			if v != "" {
				if err := s.othersClaim(ctx, id.DeviceID, v, key); err != nil {
					return err
				}
				takeOver = true
			}
		} else if time.Since(claimed) > claimFreshFor {
			return fault.New(fault.Unavailable, fault.StoreUnavailable, "registration took too long; retry")
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			if takeOver {
				p.Del(ctx, ck)
			}
			p.Set(ctx, s.regKey(key), raw, 0)
			outbox = s.pushOutbox(ctx, p, key, events)
			return nil
		})
		return err
	}, watched...)
	s.relay(ctx, key, outbox, mark, err)
	if err != nil {
		return "", err
	}
	if legacyOwn != "" {
		_ = deleteIfValue.Run(ctx, s.c, []string{s.legacyClaimKey(id.DeviceID)}, legacyOwn).Err()
	}
	return etag, nil
}

// UpdateRegistration implements registry.Store.
func (s *Store) UpdateRegistration(ctx context.Context, reg *registry.Registration, id *registry.Identity) (string, error) {
	if reg.DeviceID != id.DeviceID {
		return "", fault.New(fault.Internal, fault.InternalError, "registration and identity name different devices")
	}
	key := enrollment.Key(reg.RegistrationID)
	etag := newEtag()
	raw, err := encodeDevice(reg, etag, id)
	if err != nil {
		return "", err
	}
	if _, err := s.loadDevice(ctx, s.c, key); err != nil {
		return "", err
	}
	mark := s.newMark(key)
	if err := s.addIndexes(ctx, key, reg.Shard, reg.GroupID, id.Credential.X509Chain, mark); err != nil {
		return "", err
	}
	var old *device
	var outbox *goredis.StringSliceCmd
	err = s.watch(ctx, func(tx *goredis.Tx) error {
		d, err := s.loadDevice(ctx, tx, key)
		if err != nil {
			return err
		}
		if err := checkEtag("registration", reg.RegistrationID, reg.Etag, d.R.Etag); err != nil {
			return err
		}
		if d.R.DeviceID != reg.DeviceID {
			return fault.Invalidf("the device ID of registration %q cannot change", reg.RegistrationID)
		}
		old = d
		events, err := outboxEntries(d.I, id)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, s.regKey(key), raw, 0)
			outbox = s.pushOutbox(ctx, p, key, events)
			return nil
		})
		return err
	}, s.regKey(key))
	s.relay(ctx, key, outbox, mark, err)
	if err != nil {
		return "", err
	}
	shard, group := "", ""
	if old.R.Shard != reg.Shard {
		shard = old.R.Shard
	}
	if old.R.GroupID != reg.GroupID {
		group = old.R.GroupID
	}
	var certs []registry.CertRef
	for _, ref := range old.I.Credential.X509Chain {
		if !hasCert(id, ref) {
			certs = append(certs, ref)
		}
	}
	s.dropIndexes(ctx, key, shard, group, certs)
	return etag, nil
}

// GetRegistration implements registry.Store.
func (s *Store) GetRegistration(ctx context.Context, registrationID string) (*registry.Registration, error) {
	key := enrollment.Key(registrationID)
	if raw, exists, ok := s.readAhead(ctx, s.regKey(key)); ok {
		if !exists {
			return nil, fault.NotFoundf("registration %q not found", key)
		}
		d, err := decodeDevice(raw)
		if err != nil {
			return nil, err
		}
		return d.R, nil
	}
	d, err := s.loadDevice(ctx, s.c, key)
	if err != nil {
		return nil, err
	}
	return d.R, nil
}

// GetIdentity implements registry.Store: the registration at the device
// ID's home if its record names the device ID, else the holder of its
// claim (or of a claim an earlier build made), if its record names it.
func (s *Store) GetIdentity(ctx context.Context, deviceID string) (*registry.Identity, error) {
	var rec, claim, legacy *goredis.StringCmd
	if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		rec = p.Get(ctx, s.regKey(enrollment.Key(deviceID)))
		claim = p.Get(ctx, s.claimKey(deviceID))
		legacy = p.Get(ctx, s.legacyClaimKey(deviceID))
		return nil
	}); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.fail(ctx, err)
	}
	// A pipeline reports its first error only: an absent key must not
	// hide another's failure.
	for _, c := range []*goredis.StringCmd{rec, claim, legacy} {
		if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return nil, s.fail(ctx, err)
		}
	}
	if raw, err := rec.Result(); err == nil {
		d, err := decodeDevice(raw)
		if err != nil {
			return nil, err
		}
		if d.I.DeviceID == deviceID {
			return d.I, nil
		}
	}
	for _, c := range []*goredis.StringCmd{claim, legacy} {
		v, err := c.Result()
		if err != nil {
			continue
		}
		owner, _ := parseClaim(v)
		d, err := s.loadDevice(ctx, s.c, owner)
		if err == nil && d.I.DeviceID == deviceID {
			return d.I, nil
		}
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return nil, err
		}
	}
	return nil, fault.NotFoundf("identity %q not found", deviceID)
}

// DeleteRegistration implements registry.Store.
func (s *Store) DeleteRegistration(ctx context.Context, registrationID, etag string) error {
	key := enrollment.Key(registrationID)
	mark := s.newMark(key)
	if err := s.c.ZAdd(ctx, s.outboxIndex(), mark).Err(); err != nil {
		return s.fail(ctx, err)
	}
	var old *device
	var outbox *goredis.StringSliceCmd
	err := s.watch(ctx, func(tx *goredis.Tx) error {
		d, err := s.loadDevice(ctx, tx, key)
		if err != nil {
			return err
		}
		if etag != "" {
			if err := checkEtag("registration", registrationID, etag, d.R.Etag); err != nil {
				return err
			}
		}
		old = d
		events, err := outboxEntries(d.I, nil)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, s.regKey(key))
			outbox = s.pushOutbox(ctx, p, key, events)
			return nil
		})
		return err
	}, s.regKey(key))
	relayed := s.relay(ctx, key, outbox, mark, err)
	if err != nil {
		return err
	}
	s.dropIndexes(ctx, key, old.R.Shard, old.R.GroupID, old.I.Credential.X509Chain)
	// The device ID is free for another registration only once the
	// deletion is in the log: otherwise the other's creation could reach
	// the hubs first, and the late deletion remove the live identity. A
	// claim left behind is taken over only once the deletion is in the
	// log (othersClaim); at home, claimDevice waits for the same.
	if relayed {
		if !atHome(key, old.I.DeviceID) {
			s.releaseClaim(ctx, s.claimKey(old.I.DeviceID), key)
		}
		s.releaseClaim(ctx, s.legacyClaimKey(old.I.DeviceID), key)
	}
	return nil
}

// releaseClaim deletes the claim ck if key still holds it (best effort: a
// leftover claim is taken over once stale).
func (s *Store) releaseClaim(ctx context.Context, ck, key string) {
	_ = s.watch(ctx, func(tx *goredis.Tx) error {
		v, err := tx.Get(ctx, ck).Result()
		if err != nil {
			return nil
		}
		if owner, _ := parseClaim(v); owner != key {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, ck)
			return nil
		})
		return err
	}, ck)
}

// ListRegistrations implements registry.Store. It walks the certificate
// index, or the group index, or the shard index, or (unfiltered) every shard's index in shard order,
// and reads the registrations in one pipeline per page; entries whose
// registration is gone or no longer matches are skipped, so a page may
// hold fewer than limit items.
func (s *Store) ListRegistrations(ctx context.Context, f registry.Filter, token string, limit int) ([]*registry.Registration, string, error) {
	var keys []string
	var next string
	var err error
	switch {
	case f.Cert != nil:
		prefix := certMember(*f.Cert, "")
		keys, next, err = rangePage(ctx, s.c, s.idxCert(f.Cert.Issuer), prefix, token, limit)
		for i, k := range keys {
			keys[i] = k[len(prefix):]
		}
	case f.GroupID != "":
		keys, next, err = rangePage(ctx, s.c, s.idxGroup(f.GroupID), "", token, limit)
	case f.Shard != "":
		keys, next, err = rangePage(ctx, s.c, s.idxShard(f.Shard), "", token, limit)
	default:
		keys, next, err = s.pageAcrossShards(ctx, token, limit)
	}
	if err != nil {
		return nil, "", s.fail(ctx, err)
	}
	devs, err := s.loadDevices(ctx, keys)
	if err != nil {
		return nil, "", err
	}
	var out []*registry.Registration
	for _, d := range devs {
		if d == nil || f.GroupID != "" && d.R.GroupID != f.GroupID || f.Shard != "" && d.R.Shard != f.Shard || f.Cert != nil && !hasCert(d.I, *f.Cert) {
			continue
		}
		out = append(out, d.R)
	}
	return out, next, nil
}

// pageAcrossShards pages through every shard's index, shards in ID order;
// its token is the shard and the last key, so a registration that moves
// between shards during a walk may be seen twice or not at all, as with any
// paged list under concurrent change.
func (s *Store) pageAcrossShards(ctx context.Context, token string, limit int) ([]string, string, error) {
	ids, err := s.c.ZRange(ctx, shards.list(s), 0, -1).Result()
	if err != nil {
		return nil, "", err
	}
	startShard, after := "", ""
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		sh, k, ok := strings.Cut(string(raw), "\x00")
		if err != nil || !ok {
			return nil, "", fault.Invalidf("page_token is not valid")
		}
		startShard, after = sh, k
	}
	var keys []string
	for _, sh := range ids {
		if sh < startShard {
			continue
		}
		inner := ""
		if sh == startShard && after != "" {
			inner = base64.RawURLEncoding.EncodeToString([]byte(after))
		}
		got, more, err := rangePage(ctx, s.c, s.idxShard(sh), "", inner, limit-len(keys))
		if err != nil {
			return nil, "", err
		}
		keys = append(keys, got...)
		if len(keys) == limit {
			last := keys[len(keys)-1]
			if more == "" && sh == ids[len(ids)-1] {
				return keys, "", nil
			}
			return keys, base64.RawURLEncoding.EncodeToString([]byte(sh + "\x00" + last)), nil
		}
	}
	return keys, "", nil
}

// loadDevices reads registrations in one pipeline (they live in different
// slots); absent ones come back nil.
func (s *Store) loadDevices(ctx context.Context, keys []string) ([]*device, error) {
	vals, err := s.getAll(ctx, keys, s.regKey)
	if err != nil {
		return nil, err
	}
	out := make([]*device, len(keys))
	for i, v := range vals {
		if v == nil {
			continue
		}
		if out[i], err = decodeDevice(*v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// getAll reads the keys that name gives keys: one MGET on a single
// server, a pipeline on a cluster (they are in different slots: one batch
// per node); absent ones come back nil.
func (s *Store) getAll(ctx context.Context, keys []string, name func(string) string) ([]*string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	out := make([]*string, len(keys))
	if _, cluster := s.c.(*goredis.ClusterClient); !cluster {
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = name(k)
		}
		vals, err := s.c.MGet(ctx, names...).Result()
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				out[i] = &str
			}
		}
		return out, nil
	}
	cmds := make([]*goredis.StringCmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, name(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.fail(ctx, err)
	}
	for i, c := range cmds {
		v, err := c.Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out[i] = &v
	}
	return out, nil
}

// shardInUse reports whether any registration is assigned to the shard.
func (s *Store) shardInUse(ctx context.Context, id string) (bool, error) {
	token := ""
	for {
		keys, next, err := rangePage(ctx, s.c, s.idxShard(id), "", token, 100)
		if err != nil {
			return false, s.fail(ctx, err)
		}
		devs, err := s.loadDevices(ctx, keys)
		if err != nil {
			return false, err
		}
		for _, d := range devs {
			if d != nil && d.R.Shard == id {
				return true, nil
			}
		}
		if next == "" {
			return false, nil
		}
		token = next
	}
}
