package replica

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

// world drives a Leader with a model of everything around it: the
// followers' logs, coord's stored partition state with its check-and-set
// and leader fence, a controller that removes ISR members, broker
// registrations that change, and a caller that writes proposals, sometimes
// loses the answer, and retries. After every step it checks the
// invariants the leader state must keep.
type world struct {
	l        *Leader
	now      time.Time
	leo      int64           // the leader's log end
	follower map[int32]int64 // each follower's log end = its last fetch offset
	regEpoch map[int32]int64 // registered broker epochs
	down     map[int32]bool  // not registered
	stopping map[int32]bool  // shutting down
	stored   coord.PartitionMeta
	inFlight *Proposal // proposal the caller holds (written or not)
	hw       int64
	// lastEligibleFetch records, per follower, whether its latest accepted
	// fetch passed KIP-903's check.
	lastEligibleFetch map[int32]bool
	log               []string
}

func (w *world) fail(format string, args ...any) error {
	return fmt.Errorf("%s\nafter:\n  %s", fmt.Sprintf(format, args...), joinTail(w.log, 25))
}

func joinTail(s []string, n int) string {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "\n  "
		}
		out += x
	}
	return out
}

func newWorld(data []byte) (*world, []byte, error) {
	b := func() byte {
		if len(data) == 0 {
			return 0
		}
		x := data[0]
		data = data[1:]
		return x
	}
	n := 2 + int(b()%4) // replicas 1..n
	replicas := make([]int32, n)
	for i := range replicas {
		replicas[i] = int32(i + 1)
	}
	isr := []int32{1}
	for _, id := range replicas[1:] {
		if b()%2 == 0 {
			isr = append(isr, id)
		}
	}
	leo := int64(b())
	hw := leo - int64(b())%(leo+1)
	w := &world{
		now:               t0,
		leo:               leo,
		follower:          map[int32]int64{},
		regEpoch:          map[int32]int64{},
		down:              map[int32]bool{},
		stopping:          map[int32]bool{},
		lastEligibleFetch: map[int32]bool{},
		stored:            coord.PartitionMeta{Partition: 3, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, Replicas: replicas, ISR: isr},
	}
	for _, id := range replicas[1:] {
		w.regEpoch[id] = 10
		// ISR members hold everything below the checkpointed HW; others
		// may be anywhere up to the leader's end.
		if slices.Contains(isr, id) {
			w.follower[id] = hw + int64(b())%(leo-hw+1)
		} else {
			w.follower[id] = int64(b()) % (leo + 1)
		}
	}
	epochStart := hw + int64(b())%(leo-hw+1)
	l, err := NewLeader(Config{Meta: w.stored, NodeID: 1, LogEndOffset: leo, HighWatermark: hw,
		LeaderEpochStartOffset: epochStart, LagTimeMax: lag, Now: w.now})
	if err != nil {
		return nil, nil, err
	}
	w.l = l
	w.hw = l.HighWatermark()
	return w, data, nil
}

// write applies a proposal to the stored state as coord.UpdatePartition
// with AsLeader does.
func (w *world) write(p coord.PartitionMeta) (coord.PartitionMeta, error) {
	if w.stored.PartitionEpoch != p.PartitionEpoch {
		return w.stored.Clone(), coord.ErrConflict
	}
	if w.stored.Leader != 1 || w.stored.LeaderEpoch != p.LeaderEpoch {
		return w.stored.Clone(), coord.ErrFenced
	}
	np := p.Clone()
	np.PartitionEpoch++
	w.stored = np
	return np.Clone(), nil
}

func (w *world) take(r Result) error {
	if r.Proposal == nil {
		return nil
	}
	p := r.Proposal
	if w.inFlight != nil {
		return w.fail("second proposal %+v while %+v is in flight", p, w.inFlight)
	}
	m := w.l.Meta()
	if p.Meta.Leader != 1 || p.Meta.LeaderEpoch != m.LeaderEpoch || p.Meta.PartitionEpoch != m.PartitionEpoch ||
		!slices.Equal(p.Meta.Replicas, m.Replicas) || !slices.Contains(p.Meta.ISR, 1) {
		return w.fail("proposal %+v not based on committed %+v", p, m)
	}
	if p.Kind == Expand && !w.lastEligibleFetch[p.Added] {
		return w.fail("expansion of %d whose last fetch was not KIP-903-eligible", p.Added)
	}
	w.inFlight = p
	return nil
}

func (w *world) check() error {
	l := w.l
	hw := l.HighWatermark()
	if hw < w.hw {
		return w.fail("high watermark went back from %d to %d", w.hw, hw)
	}
	w.hw = hw
	if hw > w.leo {
		return w.fail("high watermark %d above the leader's end %d", hw, w.leo)
	}
	if l.Role() != Leading {
		return nil
	}
	for _, isr := range [][]int32{l.Meta().ISR, l.MaximalISR(), w.stored.ISR} {
		if len(isr) == 0 || !slices.Contains(isr, 1) {
			return w.fail("ISR %v empty or without the leader", isr)
		}
	}
	// The safety property: everything below the high watermark is on every
	// member of the ISR as stored in coord (which can be elected) and of
	// the leader's maximal ISR.
	for _, isr := range [][]int32{w.stored.ISR, l.MaximalISR()} {
		for _, id := range isr {
			if id != 1 && w.follower[id] < hw {
				return w.fail("ISR member %d has only %d, high watermark %d (stored ISR %v, maximal %v)",
					id, w.follower[id], hw, w.stored.ISR, l.MaximalISR())
			}
		}
	}
	if _, ok := l.InFlight(); ok != (w.inFlight != nil) {
		return w.fail("caller holds %v, state in flight %v", w.inFlight, ok)
	}
	return nil
}

// step runs one operation chosen by the next bytes.
func (w *world) step(op, x, y byte) error {
	l := w.l
	w.now = w.now.Add(time.Duration(y%8) * time.Second / 2)
	followers := w.stored.Replicas[1:]
	id := followers[int(x)%len(followers)]
	switch op % 9 {
	case 0, 1: // leader appends
		w.leo += int64(x % 5)
		r, err := l.LeaderAppend(w.leo, w.now)
		w.log = append(w.log, fmt.Sprintf("append -> leo %d: %+v %v", w.leo, r, err))
		if err != nil && l.Role() == Leading {
			return w.fail("append: %v", err)
		}
		return w.take(r)
	case 2, 3: // a follower fetches, moving forward by up to y%4 records
		if w.down[id] {
			return nil
		}
		off := min(w.follower[id]+int64(y%4), w.leo)
		epoch := w.regEpoch[id]
		if x&0x80 != 0 && epoch > 10 {
			epoch-- // a fetch from the broker's previous incarnation
		}
		reg := Registration{Alive: true, Epoch: w.regEpoch[id], ShuttingDown: w.stopping[id]}
		r, err := l.FollowerFetch(Fetch{ReplicaID: id, BrokerEpoch: epoch, FetchOffset: off, Registered: reg, Now: w.now})
		w.log = append(w.log, fmt.Sprintf("fetch %d@%d epoch %d (reg %d): %+v %v", id, off, epoch, reg.Epoch, r, err))
		switch {
		case epoch < reg.Epoch:
			if !errors.Is(err, kerr.NotLeaderForPartition) {
				return w.fail("stale broker epoch fetch accepted: %v", err)
			}
			return nil
		case l.Role() != Leading:
			return nil
		case !slices.Contains(w.l.Meta().Replicas, id):
			return nil
		case err != nil:
			return w.fail("fetch refused: %v", err)
		}
		w.follower[id] = off
		w.lastEligibleFetch[id] = !w.stopping[id]
		return w.take(r)
	case 4: // time passes
		r := l.Tick(w.now)
		w.log = append(w.log, fmt.Sprintf("tick %v: %+v", w.now.Sub(t0), r))
		return w.take(r)
	case 5: // the caller writes (or rewrites) the proposal it holds
		if w.inFlight == nil {
			return nil
		}
		p := w.inFlight
		if y%4 == 0 { // lost before reaching coord
			q, ok := l.Failed()
			w.log = append(w.log, fmt.Sprintf("write lost: failed -> %+v %v", q.Meta.ISR, ok))
			if !ok {
				w.inFlight = nil
				return nil
			}
			w.inFlight = &q
			return nil
		}
		stored, err := w.write(p.Meta)
		var r Result
		switch {
		case err == nil && y%4 == 1: // landed, answer lost
			q, ok := l.Failed()
			w.log = append(w.log, fmt.Sprintf("write %v landed, answer lost -> %v", p.Meta.ISR, ok))
			if ok {
				w.inFlight = &q
			} else {
				w.inFlight = nil
			}
			return nil
		case err == nil:
			r = l.Committed(stored, w.now)
		default:
			r = l.Rejected(stored, w.now)
		}
		w.log = append(w.log, fmt.Sprintf("write %v: %v stored %v@%d: %+v", p.Meta.ISR, err, stored.ISR, stored.PartitionEpoch, r))
		w.inFlight = nil
		return w.take(r)
	case 6: // the controller removes a follower from the ISR (it died)
		if id == 1 || !slices.Contains(w.stored.ISR, id) {
			return nil
		}
		m := w.stored.Clone()
		m.ISR = slices.DeleteFunc(m.ISR, func(v int32) bool { return v == id })
		m.PartitionEpoch++
		w.stored = m
		w.log = append(w.log, fmt.Sprintf("controller removes %d: %v@%d", id, m.ISR, m.PartitionEpoch))
		return nil
	case 7: // the Watch delivers the stored state
		r := l.ApplyMeta(w.stored, w.now)
		w.log = append(w.log, fmt.Sprintf("watch %v@%d: %+v", w.stored.ISR, w.stored.PartitionEpoch, r))
		if _, ok := l.InFlight(); !ok && w.inFlight != nil {
			w.inFlight = nil // resolved by the newer state; the caller drops its copy
		}
		return w.take(r)
	case 8: // a follower restarts (new broker epoch) or starts/ends a shutdown
		switch y % 3 {
		case 0:
			w.regEpoch[id]++
		case 1:
			w.stopping[id] = !w.stopping[id]
		case 2:
			w.down[id] = !w.down[id]
		}
		w.log = append(w.log, fmt.Sprintf("broker %d: epoch %d stopping %v down %v", id, w.regEpoch[id], w.stopping[id], w.down[id]))
	}
	return nil
}

func runWorld(data []byte) error {
	w, rest, err := newWorld(data)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := w.check(); err != nil {
		return err
	}
	for len(rest) >= 3 {
		if err := w.step(rest[0], rest[1], rest[2]); err != nil {
			return err
		}
		rest = rest[3:]
		if err := w.check(); err != nil {
			return err
		}
	}
	return nil
}

// FuzzLeader drives the leader state with arbitrary sequences of appends,
// fetches, ticks, proposal outcomes, controller changes and registration
// changes, and checks that the high watermark never goes back nor above the
// leader's end, that it never passes a member of the stored or maximal ISR,
// that the ISR is never empty and always holds the leader, and that at most
// one change is in flight.
func FuzzLeader(f *testing.F) {
	f.Add([]byte{1, 0, 0, 20, 5, 0, 0, 0, 0, 2, 0, 3, 5, 1, 1, 4, 0, 30})
	f.Add([]byte{3, 1, 0, 1, 50, 10, 1, 2, 3, 4, 0, 1, 2, 1, 3, 4, 0, 40, 5, 0, 1, 6, 1, 0, 7, 0, 0, 5, 0, 2})
	rng := rand.New(rand.NewPCG(7, 7))
	for range 8 {
		b := make([]byte, 120)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := runWorld(data); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLeaderRandomWorlds runs the fuzz driver over seeded random
// sequences, so the invariants are checked on every `go test`.
func TestLeaderRandomWorlds(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	for run := range 2000 {
		b := make([]byte, 16+rng.IntN(400))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if err := runWorld(b); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
}
