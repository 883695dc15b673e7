package fetchsession

import "time"

// evictForLocked makes room for a new session of size partitions, Kafka's
// FetchSessionCache.tryEvict:
//
//  1. the least recently used session goes if it has been unused for
//     longer than EvictionAge (stale);
//  2. otherwise the least valuable evictable session goes if the newcomer
//     is worth more. Value orders by (privileged, size): a follower's
//     session outranks any consumer's, then more partitions outrank fewer,
//     and a tie keeps the incumbent. A consumer's session is evictable by a
//     follower at any age, by anyone once older than EvictionAge; a
//     follower's only once older than EvictionAge.
//
// The cache holds at most MaxSessions (Kafka's default 1000) sessions, so a
// linear scan, done only when the cache is full, is cheap enough.
func (c *Cache) evictForLocked(follower bool, size int, now time.Time) bool {
	var lru *session
	for _, s := range c.mu.sessions {
		if lru == nil || s.lastUsed.Before(lru.lastUsed) || (s.lastUsed.Equal(lru.lastUsed) && s.id < lru.id) {
			lru = s
		}
	}
	if lru == nil {
		return false
	}
	if now.Sub(lru.lastUsed) > c.opts.EvictionAge {
		c.evictLocked(lru)
		return true
	}
	var victim *session
	for _, s := range c.mu.sessions {
		old := now.Sub(s.created) > c.opts.EvictionAge
		if !old && !(follower && !s.follower) {
			continue
		}
		if victim == nil || lessValuable(s, victim) {
			victim = s
		}
	}
	if victim == nil || !worthMore(follower, size, victim) {
		return false
	}
	c.evictLocked(victim)
	return true
}

// lessValuable orders sessions by (privileged, size, id), Kafka's
// EvictableKey.
func lessValuable(a, b *session) bool {
	if a.follower != b.follower {
		return !a.follower
	}
	if len(a.parts) != len(b.parts) {
		return len(a.parts) < len(b.parts)
	}
	return a.id < b.id
}

// worthMore reports whether a newcomer outranks s: its key (privileged,
// size, id 0) compares greater than or equal to s's, and since session ids
// are positive a tie on privilege and size never wins.
func worthMore(follower bool, size int, s *session) bool {
	if follower != s.follower {
		return follower
	}
	return size > len(s.parts)
}

func (c *Cache) evictLocked(s *session) {
	c.removeLocked(s)
	c.mu.evictions++
}
