package redis

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// The index of registrations by the certificates of their identity's
// X.509 chain (ADR 23), which a CRL's disabling pass walks. A chain
// c[0..n-1] (leaf first; c[i].Issuer is the issuer ID of c[i+1], or of
// the anchor) costs one sorted-set member per device:
//
//	n == 1: ix:crt:<c[0].Issuer>  c[0].Serial NUL key
//	n >= 2: ix:pth:<path(c[1:])>  c[0].Serial NUL key
//
// and, shared by every device under the same certificates, its path:
//
//	ix:lp:<c[0].Issuer>   path(c[1:])                 paths whose leaves that key issued
//	ix:sub:<c[i].Issuer>  c[i].Serial NUL path(c[i:]) (i >= 1) paths that begin with c[i]
//	ix:kid:<path(c[i:])>  path(c[i-1:])               (i >= 2) paths one certificate longer
//
// Earlier builds wrote a member "c[i].Serial NUL key" in ix:crt:<c[i].Issuer>
// for every certificate of the chain, once per device (about 130 bytes
// each in a large sorted set: issue #17). Those are still read, and
// dropped when the registration is next written. A path names its
// certificates all the way up, so a certificate's walk reaches exactly
// the devices whose chain holds it: one certified twice (cross-certified,
// or re-issued) is two paths, and revoking one certificate reads nothing
// of the devices under the other.

func (s *Store) idxCert(issuer string) string   { return s.prefix + ":ix:crt:" + issuer }
func (s *Store) idxPath(path string) string     { return s.prefix + ":ix:pth:" + path }
func (s *Store) idxLeafPaths(key string) string { return s.prefix + ":ix:lp:" + key }
func (s *Store) idxSub(issuer string) string    { return s.prefix + ":ix:sub:" + issuer }
func (s *Store) idxKids(path string) string     { return s.prefix + ":ix:kid:" + path }

func certMember(ref registry.CertRef, key string) string { return ref.Serial + "\x00" + key }

// pathID names a chain's certificates from c[0] up: 128 bits of SHA-256,
// hex (listByCert checks each registration's chain, so even a collision
// would list nothing that does not hold the certificate).
func pathID(chain []registry.CertRef) string {
	h := sha256.New()
	for _, ref := range chain {
		h.Write([]byte(ref.Issuer + "\x00" + ref.Serial + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// hasCert reports whether an identity's chain holds the certificate.
func hasCert(id *registry.Identity, ref registry.CertRef) bool {
	return slices.Contains(id.Credential.X509Chain, ref)
}

// entry is a member of a sorted set.
type entry struct{ zkey, member string }

// deviceCert is the one certificate-index member of a device with chain.
func (s *Store) deviceCert(chain []registry.CertRef, key string) (entry, bool) {
	switch len(chain) {
	case 0:
		return entry{}, false
	case 1:
		return entry{s.idxCert(chain[0].Issuer), certMember(chain[0], key)}, true
	default:
		return entry{s.idxPath(pathID(chain[1:])), certMember(chain[0], key)}, true
	}
}

// chainIndex is what a device with chain adds to the certificate index:
// its member and its path's entries (already there for every device but
// the first under the same certificates).
func (s *Store) chainIndex(chain []registry.CertRef, key string) []entry {
	e, ok := s.deviceCert(chain, key)
	if !ok {
		return nil
	}
	out := []entry{e}
	if len(chain) < 2 {
		return out
	}
	paths := make([]string, len(chain)) // paths[i] = pathID(chain[i:]), i >= 1
	for i := len(chain) - 1; i >= 1; i-- {
		paths[i] = pathID(chain[i:])
	}
	out = append(out, entry{s.idxLeafPaths(chain[0].Issuer), paths[1]})
	for i := 1; i < len(chain); i++ {
		out = append(out, entry{s.idxSub(chain[i].Issuer), certMember(chain[i], paths[i])})
		if i >= 2 {
			out = append(out, entry{s.idxKids(paths[i]), paths[i-1]})
		}
	}
	return out
}

// staleCertMembers is what goes from the certificate index when a
// device's chain changes from chain to next (nil: the device is deleted):
// its member, unless next has the same, and every member an earlier build
// wrote for chain. Paths stay: they are shared, and one without devices
// lists nothing.
func (s *Store) staleCertMembers(chain, next []registry.CertRef, key string) []entry {
	var out []entry
	keep, _ := s.deviceCert(next, key)
	add := func(e entry) {
		if e != keep && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if e, ok := s.deviceCert(chain, key); ok {
		add(e)
	}
	for _, ref := range chain {
		add(entry{s.idxCert(ref.Issuer), certMember(ref, key)})
	}
	return out
}

// maxCertPaths bounds the paths a walk under one certificate reads (every
// chain of a manufacturer's hierarchy through it).
const maxCertPaths = 10000

// certSource is where listByCert reads: a sorted set and the prefix of
// its members that hold ref; id orders sources and names one in a token.
type certSource struct{ id, zkey, prefix string }

// listByCert pages through the registrations whose identity's chain holds
// ref: ref's members in ix:crt (a leaf straight under its anchor, or any
// certificate of a chain an earlier build indexed), then ref as a leaf
// under longer paths, then every path that begins with ref, and the paths
// below those. Its token is the source and the last member read; a page
// may hold fewer than limit registrations.
func (s *Store) listByCert(ctx context.Context, ref registry.CertRef, token string, limit int) ([]*registry.Registration, string, error) {
	from, after := "", ""
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		src, last, ok := strings.Cut(string(raw), "\x00")
		if err != nil || !ok {
			return nil, "", fault.Invalidf("page_token is not valid")
		}
		from, after = src, last
	}
	sources, err := s.certSources(ctx, ref)
	if err != nil {
		return nil, "", err
	}
	type found struct{ key, source string }
	var cands []found
	next := ""
	for i, src := range sources {
		if src.id < from {
			continue
		}
		inner := ""
		if src.id == from {
			inner = base64.RawURLEncoding.EncodeToString([]byte(src.prefix + after))
		}
		members, more, err := rangePage(ctx, s.c, src.zkey, src.prefix, inner, limit-len(cands))
		if err != nil {
			return nil, "", s.fail(ctx, err)
		}
		for _, m := range members {
			key := m[len(src.prefix):]
			if src.prefix == "" {
				_, key, _ = strings.Cut(m, "\x00") // a path's member: leaf serial NUL key
			}
			cands = append(cands, found{key, src.id})
		}
		if len(cands) == limit {
			if more != "" || i < len(sources)-1 {
				next = base64.RawURLEncoding.EncodeToString([]byte(src.id + "\x00" + members[len(members)-1][len(src.prefix):]))
			}
			break
		}
	}
	// A registration an earlier build indexed has a member in ix:crt for
	// ref as well as one elsewhere if this build wrote it since and could
	// not drop the old one: list it from ix:crt only.
	args := []any{"ZMSCORE", s.idxCert(ref.Issuer)}
	keys := make([]string, len(cands))
	for i, c := range cands {
		keys[i] = c.key
		if c.source != directSource {
			args = append(args, certMember(ref, keys[i]))
		}
	}
	var listed []any
	if len(args) > 2 {
		if listed, err = s.c.Do(ctx, args...).Slice(); err != nil {
			return nil, "", s.fail(ctx, err)
		}
		if len(listed) != len(args)-2 {
			return nil, "", fault.New(fault.Internal, fault.InternalError, "ZMSCORE answered %d scores for %d members", len(listed), len(args)-2)
		}
	}
	devs, err := s.loadDevices(ctx, keys)
	if err != nil {
		return nil, "", err
	}
	var out []*registry.Registration
	j := 0
	for i, d := range devs {
		if cands[i].source != directSource {
			j++
			if listed[j-1] != nil {
				continue
			}
		}
		if d == nil || !hasCert(d.I, ref) {
			continue
		}
		out = append(out, d.R)
	}
	return out, next, nil
}

// directSource is ref's own members in ix:crt: it sorts first.
const directSource = "c"

// certSources lists, in order, where listByCert reads for ref: ix:crt,
// ref as a leaf in each path its issuer's key issued leaves under ("l"
// and the path), and every path that begins with ref or below one that
// does ("s" and the path). Each level below is one round trip.
func (s *Store) certSources(ctx context.Context, ref registry.CertRef) ([]certSource, error) {
	prefix := certMember(ref, "")
	var leafPaths, starts *goredis.StringSliceCmd
	if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		leafPaths = p.ZRange(ctx, s.idxLeafPaths(ref.Issuer), 0, maxCertPaths)
		starts = p.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.idxSub(ref.Issuer), Start: "[" + prefix, Stop: "(" + prefix + "\xff",
			ByLex: true, Count: maxCertPaths + 1})
		return nil
	}); err != nil {
		return nil, s.fail(ctx, err)
	}
	tooMany := fault.New(fault.Internal, fault.InternalError, "more than %d certificate paths under %s/%s", maxCertPaths, ref.Issuer, ref.Serial)
	out := []certSource{{directSource, s.idxCert(ref.Issuer), prefix}}
	if len(leafPaths.Val()) > maxCertPaths {
		return nil, tooMany
	}
	for _, p := range leafPaths.Val() {
		out = append(out, certSource{"l" + p, s.idxPath(p), prefix})
	}
	var level []string
	for _, m := range starts.Val() {
		level = append(level, m[len(prefix):])
	}
	var below []certSource
	for len(level) > 0 {
		if len(below)+len(level) > maxCertPaths {
			return nil, tooMany
		}
		cmds := make([]*goredis.StringSliceCmd, len(level))
		if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, path := range level {
				below = append(below, certSource{"s" + path, s.idxPath(path), ""})
				cmds[i] = p.ZRange(ctx, s.idxKids(path), 0, maxCertPaths)
			}
			return nil
		}); err != nil {
			return nil, s.fail(ctx, err)
		}
		level = nil
		for _, c := range cmds {
			level = append(level, c.Val()...)
		}
	}
	slices.SortFunc(below, func(a, b certSource) int { return strings.Compare(a.id, b.id) })
	return append(out, below...), nil
}
