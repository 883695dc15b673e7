package partition

// Waiter is one parked long-poll fetch; C has capacity 1 so a wake never
// blocks the appender.
type Waiter struct{ C chan struct{} }

// NewWaiter returns a waiter to park on one or more partitions.
func NewWaiter() *Waiter { return &Waiter{C: make(chan struct{}, 1)} }

// AddWaiter parks w: the next append (or state change) signals it.
func (p *Partition) AddWaiter(w *Waiter) {
	p.waitMu.Lock()
	p.waiters[w] = struct{}{}
	p.waitMu.Unlock()
}

// RemoveWaiter unparks w.
func (p *Partition) RemoveWaiter(w *Waiter) {
	p.waitMu.Lock()
	delete(p.waiters, w)
	p.waitMu.Unlock()
}

// wake tells every parked fetch that new data (or a new state) is here.
func (p *Partition) wake() {
	p.waitMu.Lock()
	for w := range p.waiters {
		select {
		case w.C <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}
