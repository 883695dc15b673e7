package group

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/clock"
)

// Close at any moment (issue 10): nothing is started after it, and it
// waits for what was started.

func closeWithin(t *testing.T, c *Coordinator) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

func TestCloseDuringLoad(t *testing.T) {
	h := newMemHost(1)
	writeState(t, h)
	l := h.logs[0]
	l.gate, l.readStarted = make(chan struct{}), make(chan struct{}, 1) // never opened
	f := newFixture(t, h, nil)
	<-l.readStarted
	closeWithin(t, f.c) // its context ends the blocked Read
	if f.waitLoad(0) {
		t.Fatal("a load finished after Close")
	}
	f.c.Elected(0, 9)
	if _, reads := l.counts(); reads != 1 {
		t.Fatalf("%d reads: Elected after Close started a load", reads)
	}
	if _, err := f.fetch("offsets"); err != kerr.NotCoordinator {
		t.Fatalf("fetch after Close: %v", err)
	}
}

func TestCloseStopsTimersAndAnswersParked(t *testing.T) {
	h := newMemHost(1)
	f := newFixture(t, h, func(o *Options) { o.InitialRebalanceDelay = 3 * time.Second })
	a := f.join(joinReq("delayed", "", 30*time.Second, 10*time.Second)) // parked in the initial delay
	for _, e := range f.commit("simple", "", -1, "t", map[int32]int64{0: 1}) {
		wantErr(t, "commit", e, errNone)
	}
	req := joinReq("pending", "", 30*time.Second, 10*time.Second)
	req.Version = 9
	mustRecv(t, "KIP-394 join", f.join(req)) // arms a pending-member timer
	if n := f.clock.Pending(); n < 3 {
		t.Fatalf("only %d timers armed before Close", n)
	}
	appends, _ := h.logs[0].counts()

	closeWithin(t, f.c)
	wantErr(t, "parked join", errFor(mustRecv(t, "parked join", a).ErrorCode), kerr.NotCoordinator)
	if n := f.clock.Pending(); n != 0 {
		t.Fatalf("%d timers still armed after Close", n)
	}
	f.clock.Advance(24 * time.Hour) // past every session, delay and expiry
	if got, _ := h.logs[0].counts(); got != appends {
		t.Fatalf("%d appends after Close", got-appends)
	}
	wantErr(t, "commit after Close", f.commit("simple", "", -1, "t", map[int32]int64{0: 2})[0], kerr.NotCoordinator)
}

// churn runs members that join, sync, heartbeat, commit and leave against c
// until stop closes, on groups spread over the host's partitions.
func churn(c *Coordinator, stop <-chan struct{}, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := fmt.Sprintf("churn-%d", w%3)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, wait := c.startJoin(ctx, joinReq(g, "", 5*time.Millisecond, 5*time.Millisecond), "c", "/h")
				if resp == nil {
					select {
					case resp = <-wait:
					case <-stop:
						return
					}
				}
				if resp.ErrorCode != 0 {
					continue
				}
				sr := syncFor(g, resp.MemberID, resp.Generation)
				if sresp, swait := c.startSync(ctx, sr); sresp == nil {
					select {
					case <-swait:
					case <-stop:
						return
					}
				}
				c.Heartbeat(ctx, heartbeatFor(g, resp.MemberID, resp.Generation))
				c.OffsetCommit(ctx, commitFor(g, resp.MemberID, resp.Generation, int64(i)))
				if i%2 == 0 {
					c.LeaveGroup(ctx, leaveFor(g, resp.MemberID))
				}
			}
		}()
	}
	return &wg
}

// TestCloseRacesTimersOnFakeClock: timers fire (in the stepping goroutine)
// while members churn and Close arrives; once Close returns nothing more is
// written however far the clock moves. Run with -race.
func TestCloseRacesTimersOnFakeClock(t *testing.T) {
	for round := 0; round < 20; round++ {
		h := newMemHost(2)
		fake := clock.NewFake(epoch0)
		opts := testOptions(h, fake, prometheus.NewRegistry())
		opts.MinSessionTimeout, opts.RetentionCheckInterval, opts.OffsetsRetention = time.Millisecond, time.Millisecond, 3*time.Millisecond
		c, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		c.Elected(0, 0)
		c.Elected(1, 0)
		stop := make(chan struct{})
		members := churn(c, stop, 4)
		var stepping sync.WaitGroup
		stepping.Add(1)
		go func() {
			defer stepping.Done()
			for {
				select {
				case <-stop:
					return
				default:
					fake.Advance(time.Millisecond)
				}
			}
		}()
		for h.logs[0].EndOffset()+h.logs[1].EndOffset() < int64(5+round) {
			runtime.Gosched() // let the churn write a little first; the stepper keeps time moving
		}
		closeWithin(t, c)
		a0, _ := h.logs[0].counts()
		a1, _ := h.logs[1].counts()
		fake.Advance(time.Hour)
		close(stop)
		members.Wait()
		stepping.Wait()
		fake.Advance(time.Hour)
		if b0, _ := h.logs[0].counts(); b0 != a0 {
			t.Fatalf("round %d: %d appends to partition 0 after Close", round, b0-a0)
		}
		if b1, _ := h.logs[1].counts(); b1 != a1 {
			t.Fatalf("round %d: %d appends to partition 1 after Close", round, b1-a1)
		}
		if n := fake.Pending(); n != 0 {
			t.Fatalf("round %d: %d timers armed after Close", round, n)
		}
	}
}

// trackingClock is the wall clock counting timers armed and not yet
// finished or stopped, so a test can wait for every real timer to settle.
type trackingClock struct {
	clock.Real
	outstanding sync.WaitGroup
	armed       atomic.Int64
}

type trackedTimer struct {
	t    clock.Timer
	done *sync.WaitGroup
	once *sync.Once
}

func (c *trackingClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.outstanding.Add(1)
	c.armed.Add(1)
	once := new(sync.Once)
	tt := &trackedTimer{done: &c.outstanding, once: once}
	tt.t = c.Real.AfterFunc(d, func() {
		defer once.Do(c.outstanding.Done)
		f()
	})
	return tt
}

func (t *trackedTimer) Stop() bool {
	if t.t.Stop() {
		t.once.Do(t.done.Done)
		return true
	}
	return false
}

// TestCloseRacesTimersOnWallClock: the same churn with millisecond sessions
// on real timers; after Close returns and every timer armed before it has
// fired or been stopped, nothing was written after Close. Run with -race.
func TestCloseRacesTimersOnWallClock(t *testing.T) {
	for round := 0; round < 10; round++ {
		h := newMemHost(2)
		clk := &trackingClock{}
		opts := testOptions(h, clk, prometheus.NewRegistry())
		opts.MinSessionTimeout, opts.RetentionCheckInterval, opts.OffsetsRetention = time.Millisecond, time.Millisecond, 3*time.Millisecond
		c, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		c.Elected(0, 0)
		c.Elected(1, 0)
		stop := make(chan struct{})
		members := churn(c, stop, 4)
		for clk.armed.Load() < int64(20+round*5) {
			runtime.Gosched() // let the churn arm some timers first
		}
		closeWithin(t, c)
		a0, _ := h.logs[0].counts()
		a1, _ := h.logs[1].counts()
		close(stop)
		members.Wait()
		settled := make(chan struct{})
		go func() { clk.outstanding.Wait(); close(settled) }()
		select {
		case <-settled:
		case <-time.After(10 * time.Second):
			t.Fatal("timers armed before Close never settled")
		}
		if b0, _ := h.logs[0].counts(); b0 != a0 {
			t.Fatalf("round %d: %d appends to partition 0 after Close", round, b0-a0)
		}
		if b1, _ := h.logs[1].counts(); b1 != a1 {
			t.Fatalf("round %d: %d appends to partition 1 after Close", round, b1-a1)
		}
	}
}
