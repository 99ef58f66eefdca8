package redis

import (
	"context"
	"errors"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Hit implements ratelimit.Counter: INCR a key named for the window, which
// expires a second after the window ends. A count made ahead with a registration's reads (ReadAhead) is taken
// instead: it is this request's count.
func (s *Store) Hit(ctx context.Context, key string, start time.Time, window time.Duration) (int64, error) {
	if n, ok := s.countedAhead(ctx, key); ok {
		return n, nil
	}
	var incr *goredis.IntCmd
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		incr = s.hit(ctx, p, key, start, window)
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) { // SET NX answers nil when the counter exists
		return 0, s.fail(ctx, err)
	}
	n, err := incr.Result()
	if err != nil {
		return 0, s.fail(ctx, err)
	}
	return n, nil
}

// hit queues a count on p: the counter is made with its expiry (SET NX
// EXAT), then incremented (INCR keeps the expiry), so a counter never
// lives without one, in a transaction or not.
func (s *Store) hit(ctx context.Context, p goredis.Pipeliner, key string, start time.Time, window time.Duration) *goredis.IntCmd {
	k := s.prefix + ":rl:" + key + ":" + strconv.FormatInt(start.Unix(), 36)
	p.SetArgs(ctx, k, 0, goredis.SetArgs{Mode: "NX", ExpireAt: start.Add(window + time.Second)})
	return p.Incr(ctx, k)
}
