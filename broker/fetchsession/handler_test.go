package fetchsession

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// The fetching side against the broker side, round after round: the
// handler's requests keep the cache's session in step, and each side's view
// of the session's partitions and offsets agrees.
func TestHandlerAgainstCache(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 4})
	var h Handler
	round := func(want ...Partition) (Build, *Context) {
		t.Helper()
		b := h.Build(want)
		ctx := c.NewContext(Request{SessionID: b.SessionID, Epoch: b.Epoch, Follower: true, Partitions: b.Partitions, Forgotten: b.Forgotten}, t0)
		id, err := c.Finish(ctx, outcomes(len(ctx.Partitions), 10), t0)
		code := int16(0)
		if err != nil {
			code = err.Code
		}
		h.Handle(b, code, id)
		return b, ctx
	}

	b, ctx := round(part("a", 0, 5), part("a", 1, 0))
	if !b.Full || b.Epoch != 0 || len(b.Partitions) != 2 || ctx.Kind != Full || h.SessionID() <= 0 {
		t.Fatalf("first round: %+v, context %v, session %d", b, ctx.Kind, h.SessionID())
	}
	// Nothing changed: an empty incremental request, the session's
	// partitions read at their cached offsets.
	b, ctx = round(part("a", 0, 5), part("a", 1, 0))
	if b.Full || b.Epoch != 1 || len(b.Partitions) != 0 || len(b.Forgotten) != 0 || ctx.Kind != Incremental || names(ctx.Partitions) != "a-0 a-1" {
		t.Fatalf("quiet round: %+v, context %v %s", b, ctx.Kind, names(ctx.Partitions))
	}
	// a-0 moved, a-1 is no longer wanted, b-0 is new.
	b, ctx = round(part("a", 0, 9), part("b", 0, 0))
	if b.Epoch != 2 || names(b.Partitions) != "a-0 b-0" || len(b.Forgotten) != 1 || b.Forgotten[0].Partition != 1 {
		t.Fatalf("changed round: %+v", b)
	}
	if names(ctx.Partitions) != "a-0 b-0" || ctx.Partitions[0].FetchOffset != 9 {
		t.Fatalf("broker reads %s %+v", names(ctx.Partitions), ctx.Partitions)
	}

	// The broker lost the session (evicted, restarted): NOT_FOUND, then a
	// fresh full fetch with no id.
	id := h.SessionID()
	c.mu.Lock()
	c.removeLocked(c.mu.sessions[id])
	c.mu.Unlock()
	b, ctx = round(part("a", 0, 9), part("b", 0, 0))
	if ctx.Err != kerr.FetchSessionIDNotFound || h.SessionID() != InvalidSessionID {
		t.Fatalf("lost session: %v, handler session %d", ctx.Err, h.SessionID())
	}
	b, ctx = round(part("a", 0, 9), part("b", 0, 0))
	if !b.Full || b.SessionID != InvalidSessionID || ctx.Kind != Full || h.SessionID() <= 0 || h.SessionID() == id {
		t.Fatalf("after NOT_FOUND: %+v %v session %d", b, ctx.Kind, h.SessionID())
	}

	// A duplicate or lost response leaves the epochs apart: the handler
	// starts over under its old id, which closes the old session.
	old := h.SessionID()
	c.mu.Lock()
	c.mu.sessions[old].epoch += 5
	c.mu.Unlock()
	_, ctx = round(part("a", 0, 9))
	if ctx.Err != kerr.InvalidFetchSessionEpoch {
		t.Fatalf("epoch apart: %v", ctx.Err)
	}
	b, ctx = round(part("a", 0, 9))
	if !b.Full || b.SessionID != old || ctx.Kind != Full || h.SessionID() == old {
		t.Fatalf("start over: %+v %v, session %d (old %d)", b, ctx.Kind, h.SessionID(), old)
	}
	if _, exists := c.mu.sessions[old]; exists {
		t.Fatal("the old session was not closed")
	}

	// A failed round trip: Reset, and the next request is full.
	h.Reset()
	if b := h.Build([]Partition{part("a", 0, 9)}); !b.Full || b.SessionID != h.SessionID() {
		t.Fatalf("after reset: %+v", b)
	}
	// A broker with no room answers id 0: the handler keeps asking with
	// full fetches.
	full := newCache(t, Options{MaxSessions: 0})
	var h2 Handler
	for range 2 {
		b := h2.Build([]Partition{part("a", 0, 0)})
		ctx := full.NewContext(Request{SessionID: b.SessionID, Epoch: b.Epoch, Partitions: b.Partitions}, t0)
		id, _ := full.Finish(ctx, outcomes(1, 0), t0)
		if !b.Full || !h2.Handle(b, 0, id) || h2.SessionID() != InvalidSessionID {
			t.Fatalf("no room: %+v, session %d", b, h2.SessionID())
		}
	}
}
