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
	k := s.prefix + ":rl:" + key + ":" + strconv.FormatInt(start.Unix(), 36)
	n, err := hitScript.Run(ctx, s.c, []string{k}, start.Add(window+time.Second).UnixMilli()).Int64()
	if err != nil {
		return 0, s.fail(ctx, err)
	}
	return n, nil
}

// hitScript counts and, when the counter has no expiry yet, gives it one:
// atomically, so no counter ever lives without one (an expiry already past,
// by a replica's slow clock or a delayed request, deletes it at once).
var hitScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end
return n`)

// hit queues a count on p (EVAL: a pipeline cannot fall back on NOSCRIPT).
func (s *Store) hit(ctx context.Context, p goredis.Pipeliner, key string, start time.Time, window time.Duration) *goredis.Cmd {
	k := s.prefix + ":rl:" + key + ":" + strconv.FormatInt(start.Unix(), 36)
	return hitScript.Eval(ctx, p, []string{k}, start.Add(window+time.Second).UnixMilli())
}
