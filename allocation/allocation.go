// Package allocation decides which hub shard a device is assigned to. It
// knows shards (hostname, weight, state) and policies: weighted rendezvous
// hashing, which moves only the devices it must when shards come and go, and
// static assignment.
//
// It is a domain package: standard library and internal/fault only. Shards'
// storage interface lives here because this package owns the shard type.
package allocation

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// State is a shard's admission state.
type State string

// Shard states.
const (
	// Active shards take new devices.
	Active State = "active"
	// Draining shards keep their devices and take no new ones.
	Draining State = "draining"
	// Disabled shards take no devices at all.
	Disabled State = "disabled"
)

// Weight bounds.
const (
	MinWeight = 1
	MaxWeight = 1000
	// MaxHostnameLength is the DNS limit.
	MaxHostnameLength = 253
)

// Shard is one hub shard devices can be assigned to.
type Shard struct {
	ID       string
	Hostname string
	Weight   int
	State    State
	// Region names where the shard runs, for the geo policy ("" = none).
	Region string
	// Cluster is the hub cluster that owns the shard ("" = none yet).
	Cluster string
	// Capacity bounds the devices assigned to the shard; 0 is unlimited.
	Capacity int
	// Devices is how many devices are assigned (filled by AllShards for
	// shards with a capacity; on Redis an upper bound).
	Devices int
	Etag    string
	Created time.Time
	Updated time.Time
}

// MaxRegionLength bounds a region name.
const MaxRegionLength = 64

// Full reports whether the shard has reached its capacity.
func (s *Shard) Full() bool { return s.Capacity > 0 && s.Devices >= s.Capacity }

// takesNew reports whether the shard takes new devices.
func (s *Shard) takesNew() bool { return s.State == Active && s.Weight > 0 && !s.Full() }

// ValidateRegion checks a region name: 1-64 of [a-z0-9-].
func ValidateRegion(r string) error {
	if r == "" || len(r) > MaxRegionLength {
		return fault.Invalidf("region %q must be 1-%d characters", r, MaxRegionLength)
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fault.Invalidf("region %q contains %q; only a-z, 0-9 and - are allowed", r, c)
		}
	}
	return nil
}

// Validate checks the operator-supplied fields (not the ID).
func (s *Shard) Validate() error {
	if err := ValidateHostname(s.Hostname); err != nil {
		return err
	}
	if s.Weight < MinWeight || s.Weight > MaxWeight {
		return fault.Invalidf("shard weight %d is outside %d-%d", s.Weight, MinWeight, MaxWeight)
	}
	switch s.State {
	case Active, Draining, Disabled:
	default:
		return fault.Invalidf("shard state %q is not one of active, draining, disabled", s.State)
	}
	if s.Capacity < 0 {
		return fault.Invalidf("shard capacity %d is negative (0 is unlimited)", s.Capacity)
	}
	if s.Region != "" {
		return ValidateRegion(s.Region)
	}
	return nil
}

// ValidateHostname checks a DNS hostname: labels of letters, digits and
// hyphens, 1-63 characters each, not starting or ending with a hyphen.
func ValidateHostname(h string) error {
	if h == "" {
		return fault.Invalidf("shard hostname is required")
	}
	if len(h) > MaxHostnameLength {
		return fault.Invalidf("shard hostname is longer than %d characters", MaxHostnameLength)
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 || h[i-1] == '-' {
				return fault.Invalidf("shard hostname %q has an empty label or a label ending in '-'", h)
			}
			label = 0
			continue
		case c == '-':
			if label == 0 {
				return fault.Invalidf("shard hostname %q has a label starting with '-'", h)
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return fault.Invalidf("shard hostname %q contains %q", h, c)
		}
		label++
		if label > 63 {
			return fault.Invalidf("shard hostname %q has a label over 63 characters", h)
		}
	}
	if label == 0 || h[len(h)-1] == '-' {
		return fault.Invalidf("shard hostname %q ends with an empty label or '-'", h)
	}
	return nil
}

// Store keeps shards. NotFound, AlreadyExists and Conflict (etag) as in the
// enrollment stores; DeleteShard is FailedPrecondition (RESOURCE_IN_USE)
// while any registration is assigned to the shard.
type Store interface {
	CreateShard(ctx context.Context, s *Shard) (etag string, err error)
	GetShard(ctx context.Context, id string) (*Shard, error)
	// ListShards pages through shards ordered by ID; token "" starts.
	ListShards(ctx context.Context, token string, limit int) (shards []*Shard, next string, err error)
	// AllShards returns every shard, for allocation.
	AllShards(ctx context.Context) ([]*Shard, error)
	UpdateShard(ctx context.Context, s *Shard) (etag string, err error)
	DeleteShard(ctx context.Context, id, etag string) error
}

// Hashed picks among shards by weighted rendezvous hashing of key: each
// active shard scores -weight/ln(u), where u in (0,1) is a hash of the shard
// ID and key, and the highest score wins. The result is deterministic,
// proportional to weights, and adding or removing a shard moves only the
// devices that must move. Draining, disabled and full shards are skipped.
func Hashed(key string, shards []*Shard) (*Shard, error) {
	var best *Shard
	bestScore := math.Inf(-1)
	for _, s := range shards {
		if !s.takesNew() {
			continue
		}
		score := -float64(s.Weight) / math.Log(unitHash(s.ID, key))
		if score > bestScore || score == bestScore && best != nil && s.ID < best.ID {
			best, bestScore = s, score
		}
	}
	if best == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.NoShardAvailable, "no active shard with room is available to the enrollment")
	}
	return best, nil
}

// Geo picks the nearest region that has a shard taking new devices, then
// hashes among that region's shards. regions lists the client's region
// first and the others in order of preference; shards of any other region
// (or none) are the last resort.
func Geo(key string, regions []string, shards []*Shard) (*Shard, error) {
	for _, r := range regions {
		var in []*Shard
		for _, s := range shards {
			if s.Region == r {
				in = append(in, s)
			}
		}
		if sh, err := Hashed(key, in); err == nil {
			return sh, nil
		}
	}
	return Hashed(key, shards)
}

// Static returns the named shard if it is active.
func Static(id string, shards []*Shard) (*Shard, error) {
	for _, s := range shards {
		if s.ID == id {
			if s.State != Active {
				return nil, fault.New(fault.FailedPrecondition, fault.NoShardAvailable, "the enrollment's static shard %q is %s", id, s.State)
			}
			if s.Full() {
				return nil, fault.New(fault.FailedPrecondition, fault.NoShardAvailable, "the enrollment's static shard %q is full (%d devices)", id, s.Capacity)
			}
			return s, nil
		}
	}
	return nil, fault.New(fault.FailedPrecondition, fault.NoShardAvailable, "the enrollment's static shard %q does not exist", id)
}

// unitHash maps (shard, key) to a float in (0, 1).
func unitHash(shard, key string) float64 {
	h := sha256.New()
	h.Write([]byte(shard))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	v := binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) >> 11 // 53 bits
	return (float64(v) + 0.5) / (1 << 53)
}
