package tiering

import (
	"context"
	"sync"
)

// budget is the readers' memory outside the chunk cache, in bytes: every
// chunk a reader fetches or holds unread is charged here from the moment its
// GET is issued until the reader is past it (or gives it up), so the cache's
// MaxCost plus capacity bounds what remote reads can hold.
//
// Fetching ahead only takes what is free (tryAcquire) and never while a
// reader waits for the chunk it needs (acquire), so read-ahead can delay a
// reader by at most the chunks already in flight, never starve it.
type budget struct {
	capacity int64

	mu struct {
		sync.Mutex
		used, maxUsed int64
		waiters       int
		wake          chan struct{} // closed (and replaced) on every release
	}
}

func newBudget(capacity int64) *budget {
	b := &budget{capacity: capacity}
	b.mu.wake = make(chan struct{})
	return b
}

func (b *budget) takeLocked(n int64) {
	b.mu.used += n
	b.mu.maxUsed = max(b.mu.maxUsed, b.mu.used)
}

// tryAcquire takes n bytes if they are free and nobody is waiting.
func (b *budget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.waiters > 0 || b.mu.used+n > b.capacity {
		return false
	}
	b.takeLocked(n)
	return true
}

// acquire waits until n bytes are free. Before each wait it calls reclaim,
// which may release memory held by readers that stopped reading.
func (b *budget) acquire(ctx context.Context, n int64, reclaim func()) error {
	n = min(n, b.capacity) // one chunk always fits (Options.Validate)
	b.mu.Lock()
	for b.mu.used+n > b.capacity {
		b.mu.waiters++
		wake := b.mu.wake
		b.mu.Unlock()
		reclaim()
		var err error
		select {
		case <-wake:
		case <-ctx.Done():
			err = ctx.Err()
		}
		b.mu.Lock()
		b.mu.waiters--
		if err != nil {
			b.mu.Unlock()
			return err
		}
	}
	b.takeLocked(n)
	b.mu.Unlock()
	return nil
}

func (b *budget) release(n int64) {
	n = min(n, b.capacity)
	b.mu.Lock()
	b.mu.used -= n
	if b.mu.used < 0 {
		panic("tiering: reader budget released more than it held")
	}
	close(b.mu.wake)
	b.mu.wake = make(chan struct{})
	b.mu.Unlock()
}

// poke wakes whoever watches the budget (Manager.waitUntil) without
// changing it: a GET finished.
func (b *budget) poke() {
	b.mu.Lock()
	close(b.mu.wake)
	b.mu.wake = make(chan struct{})
	b.mu.Unlock()
}

func (b *budget) watch() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.wake
}

func (b *budget) usage() (used, maxUsed int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.used, b.mu.maxUsed
}
