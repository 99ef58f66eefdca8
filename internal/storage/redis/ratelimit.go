package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Hit implements ratelimit.Counter: INCR a key named for the window, which
// expires a second after the window ends, in one transaction.
func (s *Store) Hit(ctx context.Context, key string, start time.Time, window time.Duration) (int64, error) {
	k := s.prefix + ":rl:" + key + ":" + strconv.FormatInt(start.Unix(), 36)
	var incr *goredis.IntCmd
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		p.ExpireAt(ctx, k, start.Add(window+time.Second))
		return nil
	})
	if err != nil {
		return 0, s.fail(ctx, err)
	}
	return incr.Val(), nil
}
