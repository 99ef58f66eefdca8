package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Hit implements ratelimit.Counter: INCR a key named for the window, which
// expires a second after the window ends. A count made ahead with a
// registration's reads (ReadAhead) is taken instead: it is this request's
// count.
func (s *Store) Hit(ctx context.Context, key string, start time.Time, window time.Duration) (int64, error) {
	if n, ok := s.countedAhead(ctx, key); ok {
		return n, nil
	}
	k, ttl := s.hitArgs(key, start, window)
	n, err := hitScript.Run(ctx, s.c, []string{k}, ttl).Int64()
	if err != nil {
		return 0, s.fail(ctx, err)
	}
	return n, nil
}

// hitScript counts and, when the counter has no expiry yet, gives it one,
// atomically, so no counter ever lives without one. The expiry is a time
// to live timed by Redis's clock (ARGV[1] ms), so a replica whose clock is
// behind, or a delayed request, still counts against the limit.
var hitScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

// hitArgs are the counter's key and its time to live: until a second
// after the window ends by this replica's clock, and at least a second.
func (s *Store) hitArgs(key string, start time.Time, window time.Duration) (string, int64) {
	k := s.prefix + ":rl:" + key + ":" + strconv.FormatInt(start.Unix(), 36)
	return k, max(time.Second, time.Until(start.Add(window+time.Second))).Milliseconds()
}

// hit queues a count on p (EVAL: a pipeline cannot fall back on NOSCRIPT).
func (s *Store) hit(ctx context.Context, p goredis.Pipeliner, key string, start time.Time, window time.Duration) *goredis.Cmd {
	k, ttl := s.hitArgs(key, start, window)
	return hitScript.Eval(ctx, p, []string{k}, ttl)
}
