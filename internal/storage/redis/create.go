package redis

import (
	"context"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// A new registration in one round trip (issue #17). On a standalone Redis
// or one behind Sentinel every key is on the one server, so a script can
// do what CreateRegistration otherwise does in a dozen round trips (check,
// claim the device ID, index, write, push to the outbox, relay) atomically:
// refuse an existing registration, hold the device ID (at its home by the
// record alone; elsewhere by a claim in the home's slot), add the index
// entries, write the device and append its events to their shards' logs.
// There is no outbox and no mark: nothing is left half done. It declines
// (and the general path below runs) when another registration holds a
// claim on the device ID (new or an earlier build's), whose rules need
// the holder's record; when, away from home, the home registration exists
// or its events wait in an outbox; and when an outbox of an earlier
// registration under this key is still being relayed, whose events must
// reach the log first. On Redis Cluster the keys are in different slots,
// so the general path always runs.
//
// KEYS: record, its outbox, the device ID's claim, an earlier build's
// claim, the home's record and outbox, then the indexes, then each
// event's log and sequence. ARGV: record, key, the claim's value (empty at
// home), indexes, events, the log's retention, then index members and
// events.
var createDevice = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'decline' end
local function others(k)
  local claim = redis.call('GET', k)
  if not claim then return false end
  local nul = string.find(claim, '\0', 1, true)
  local owner = claim
  if nul then owner = string.sub(claim, 1, nul - 1) end
  return owner ~= ARGV[2]
end
if others(KEYS[3]) or others(KEYS[4]) then return 'decline' end
if ARGV[3] ~= '' then
  if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('EXISTS', KEYS[6]) == 1 then return 'decline' end
  redis.call('SET', KEYS[3], ARGV[3])
end
redis.call('DEL', KEYS[4])
local k, a = 7, 7
local indexes = tonumber(ARGV[4])
for i = 1, indexes do
  redis.call('ZADD', KEYS[k], 0, ARGV[a])
  k, a = k + 1, a + 1
end
redis.call('SET', KEYS[1], ARGV[1])
local events = tonumber(ARGV[5])
for i = 1, events do
  local seq = redis.call('INCR', KEYS[k + 1])
  redis.call('XADD', KEYS[k], 'MAXLEN', ARGV[6], seq .. '-0', 'e', ARGV[a])
  k, a = k + 2, a + 1
end
return 'ok'`)

// createAtOnce runs createDevice: done reports whether it wrote the
// registration; false (with a nil error) when the general path must.
func (s *Store) createAtOnce(ctx context.Context, key string, raw []byte, reg *registry.Registration, id *registry.Identity, events []any) (done bool, err error) {
	if _, cluster := s.c.(*goredis.ClusterClient); cluster {
		return false, nil
	}
	home := enrollment.Key(id.DeviceID)
	keys := []string{s.regKey(key), s.outboxKey(key), s.claimKey(id.DeviceID), s.legacyClaimKey(id.DeviceID),
		s.regKey(home), s.outboxKey(home), s.idxShard(reg.Shard)}
	members := []any{key}
	if reg.GroupID != "" {
		keys = append(keys, s.idxGroup(reg.GroupID))
		members = append(members, key)
	}
	for _, ref := range id.Credential.X509Chain {
		keys = append(keys, s.idxCert(ref.Issuer))
		members = append(members, certMember(ref, key))
	}
	var bodies []any
	for _, e := range events {
		shard, body, ok := strings.Cut(e.(string), "\x00")
		if !ok || shard == "" {
			return false, fault.New(fault.Internal, fault.InternalError, "an event without its shard")
		}
		keys = append(keys, s.logKey(shard), s.logSeqKey(shard))
		bodies = append(bodies, body)
	}
	claim := ""
	if home != key {
		claim = key + "\x00" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	args := append([]any{raw, key, claim, len(members), len(bodies), s.eventRetention()}, members...)
	args = append(args, bodies...)
	res, err := createDevice.Run(ctx, s.c, keys, args...).Text()
	if err != nil {
		return false, s.fail(ctx, err)
	}
	switch res {
	case "ok":
		if len(bodies) > 0 {
			s.changes.Notify()
		}
		return true, nil
	case "exists":
		return false, fault.Existsf("registration %q already exists", reg.RegistrationID)
	default:
		return false, nil
	}
}
