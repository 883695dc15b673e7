package fetchsession

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
)

// FuzzSessions drives the cache with arbitrary requests — session ids,
// epochs, partitions and forgotten partitions all come from clients — and
// the handler against it, checking the cache's invariants after every step:
// no panic, the partition count matches the sessions, a session's order and
// map agree, at most MaxSessions sessions, every partition sent on a full
// or sessionless fetch.
func FuzzSessions(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 0, 0, 0, 0, 101, 0, 0, 0, 1, 1, 4, 1, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 9, 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		ids := int32(100)
		c, err := New(Options{MaxSessions: 3, EvictionAge: time.Minute, NewID: func() int32 { ids++; return 100 + ids%7 }})
		if err != nil {
			t.Fatal(err)
		}
		var h Handler
		now := t0
		rd := kbin.Reader{Src: script}
		for step := 0; rd.Ok() && len(rd.Src) > 0 && step < 64; step++ {
			id, epoch := rd.Int32(), rd.Int32()
			var req Request
			req.SessionID, req.Epoch = id, epoch
			req.Follower = epoch%2 == 0
			for n := int(rd.Int8()) & 7; n > 0 && rd.Ok(); n-- {
				req.Partitions = append(req.Partitions, part("t", int32(rd.Int8())&7, int64(rd.Int8())))
			}
			for n := int(rd.Int8()) & 3; n > 0 && rd.Ok(); n-- {
				req.Forgotten = append(req.Forgotten, Key{Topic: "t", Partition: int32(rd.Int8()) & 7})
			}
			if id == 0 && epoch == 0 && len(req.Partitions) > 0 {
				// Now and then, the fetching side's own requests.
				b := h.Build(req.Partitions)
				req = Request{SessionID: b.SessionID, Epoch: b.Epoch, Partitions: b.Partitions, Forgotten: b.Forgotten}
				ctx := c.NewContext(req, now)
				sid, ferr := c.Finish(ctx, outcomes(len(ctx.Partitions), int64(step)), now)
				code := int16(0)
				if ferr != nil {
					code = ferr.Code
				}
				h.Handle(b, code, sid)
			} else {
				ctx := c.NewContext(req, now)
				os := outcomes(len(ctx.Partitions), int64(step%3))
				for i := range os {
					os[i].HasRecords = (i+step)%3 == 0
				}
				c.Finish(ctx, os, now)
				if ctx.Kind == Full || ctx.Kind == Sessionless {
					for i, o := range os {
						if !o.Send {
							t.Fatalf("step %d: %v fetch did not send partition %d", step, ctx.Kind, i)
						}
					}
				}
			}
			now = now.Add(time.Duration(step%5) * 20 * time.Second)
			c.mu.Lock()
			total := 0
			for sid, s := range c.mu.sessions {
				if sid != s.id || sid <= 0 || len(s.order) != len(s.parts) {
					t.Fatalf("step %d: session %d (id %d) has %d in order, %d in map", step, sid, s.id, len(s.order), len(s.parts))
				}
				for _, cp := range s.order {
					if s.parts[cp.Key] != cp {
						t.Fatalf("step %d: session %d order and map disagree on %+v", step, sid, cp.Key)
					}
				}
				total += len(s.parts)
			}
			if total != c.mu.partitions || len(c.mu.sessions) > c.opts.MaxSessions {
				t.Fatalf("step %d: %d partitions counted, %d held; %d sessions", step, c.mu.partitions, total, len(c.mu.sessions))
			}
			c.mu.Unlock()
		}
	})
}
