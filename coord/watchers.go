package coord

import "sync"

// watchers delivers events to Watch callbacks: each watcher has its own
// goroutine and unbounded queue, so events reach it in order, never from the
// goroutine that made the change (a writer holding its own locks cannot
// deadlock against a callback), and a slow watcher delays only itself.
type watchers struct {
	mu     sync.Mutex
	list   map[*watcher]struct{}
	closed bool
}

type watcher struct {
	fn   func(Event)
	mu   sync.Mutex
	cond *sync.Cond
	q    []Event
	stop bool
	done chan struct{}
}

// add starts a watcher whose first events are initial. The returned cancel
// stops it and waits for a callback in progress to return (unless called
// from inside the callback itself, which would wait forever).
func (ws *watchers) add(fn func(Event), initial []Event) func() {
	w := &watcher{fn: fn, q: initial, done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	ws.mu.Lock()
	if ws.list == nil {
		ws.list = map[*watcher]struct{}{}
	}
	if ws.closed {
		w.stop = true
	}
	ws.list[w] = struct{}{}
	ws.mu.Unlock()
	go w.run()
	var once sync.Once
	return func() {
		once.Do(func() {
			ws.mu.Lock()
			delete(ws.list, w)
			ws.mu.Unlock()
			w.halt()
			<-w.done
		})
	}
}

// send queues ev for every watcher. Callers may hold their own locks.
func (ws *watchers) send(ev Event) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.list {
		w.mu.Lock()
		if !w.stop {
			w.q = append(w.q, ev)
			w.cond.Signal()
		}
		w.mu.Unlock()
	}
}

// closeAll stops every watcher after it has drained what is queued.
func (ws *watchers) closeAll() {
	ws.mu.Lock()
	ws.closed = true
	list := ws.list
	ws.list = nil
	ws.mu.Unlock()
	for w := range list {
		w.mu.Lock()
		w.stop = true
		w.cond.Signal()
		w.mu.Unlock()
	}
}

func (w *watcher) halt() {
	w.mu.Lock()
	w.stop = true
	w.q = nil
	w.cond.Signal()
	w.mu.Unlock()
}

func (w *watcher) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		for len(w.q) == 0 && !w.stop {
			w.cond.Wait()
		}
		if len(w.q) == 0 {
			w.mu.Unlock()
			return
		}
		ev := w.q[0]
		w.q[0] = Event{}
		w.q = w.q[1:]
		w.mu.Unlock()
		w.fn(ev)
	}
}
