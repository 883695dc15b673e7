package coord_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/strata-broker/strata/coord"
)

// Tests of the Consul coordinator's sessions and registrations: the session
// bound to the broker's own check, lapses, epochs, takeover by a restarted
// process, fencing of a broker whose session is gone. Each test runs on its
// own prefix of the shared agent.

func TestConsulSessionBoundToItsOwnCheck(t *testing.T) {
	cl := newCluster(t, nil)
	c := cl.open(1)
	register(t, c, 1, "a")
	info, _, err := cl.api.Session().Info(coord.SessionID(c), nil)
	if err != nil || info == nil {
		t.Fatalf("session: %+v %v", info, err)
	}
	// Not serfHealth: it is the agent's, shared by every broker using it.
	if len(info.NodeChecks) != 0 || len(info.Checks) != 0 {
		t.Fatalf("session bound to node checks %v / %v", info.NodeChecks, info.Checks)
	}
	if len(info.ServiceChecks) != 1 || info.ServiceChecks[0].ID != coord.CheckID(c) {
		t.Fatalf("session bound to %+v, want only %s", info.ServiceChecks, coord.CheckID(c))
	}
	if info.Behavior != api.SessionBehaviorDelete || info.LockDelay != time.Millisecond {
		t.Fatalf("behavior %q, lock delay %v", info.Behavior, info.LockDelay)
	}
	if p := cl.get("brokers/1"); p == nil || p.Session != info.ID {
		t.Fatalf("registration key %+v not held by the session", p)
	}
	if !c.SessionValidUntil().After(time.Now()) {
		t.Fatalf("session valid until %v, already past", c.SessionValidUntil())
	}
}

// TestConsulRegistrationLapses stops a broker's heartbeats as a SIGSTOP
// would: another broker sees its registration go within the session timeout
// (plus Consul's own delay), the lease stops advancing, and once heartbeats
// resume the broker is back under a new session with a greater epoch.
func TestConsulRegistrationLapses(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.open(1)
	first := register(t, a, 1, "a")
	obs := cl.open(2)
	events := watch(t, obs)
	waitEvent(t, events, "with node 1 registered", func(e coord.Event) bool {
		_, ok := brokerIn(e.Brokers, 1)
		return e.Kind == coord.BrokersChanged && ok
	})
	oldSession := coord.SessionID(a)
	timeout := coord.ConsulOptionsOf(a).SessionTimeout

	coord.PauseHeartbeats(a, true)
	paused := time.Now()
	// When Consul deleted the key, as opposed to when the observer saw it.
	keyGone := make(chan time.Duration, 1)
	go func() {
		for time.Since(paused) < time.Minute {
			if p, _, err := cl.api.KV().Get(cl.prefix+"brokers/1", nil); err == nil && p == nil {
				keyGone <- time.Since(paused)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	waitEvent(t, events, "without node 1", func(e coord.Event) bool {
		_, ok := brokerIn(e.Brokers, 1)
		return e.Kind == coord.BrokersChanged && !ok
	})
	lapse := time.Since(paused)
	var gone time.Duration
	select {
	case gone = <-keyGone:
	case <-time.After(45 * time.Second):
		t.Fatal("the registration key is still in Consul after the observer saw it go")
	}
	t.Logf("heartbeats stopped -> key deleted by Consul after %v, seen gone by another broker after %v (session timeout %v)",
		gone.Round(time.Millisecond), lapse.Round(time.Millisecond), timeout)
	if lapse > 3*timeout {
		// Not a failure (the machine may be loaded), but worth seeing why.
		t.Logf("slow lapse; Consul's log:\n%s", cl.agent.Log())
	}
	if until := a.SessionValidUntil(); until.After(paused.Add(timeout)) {
		t.Fatalf("lease %v runs past the last heartbeat plus the timeout (%v)", until, paused.Add(timeout))
	}

	coord.PauseHeartbeats(a, false)
	e := waitEvent(t, events, "with node 1 back", func(e coord.Event) bool {
		_, ok := brokerIn(e.Brokers, 1)
		return e.Kind == coord.BrokersChanged && ok
	})
	back, _ := brokerIn(e.Brokers, 1)
	if back.Epoch <= first.Epoch || back.Incarnation != "a" {
		t.Fatalf("re-registration %+v, first was %+v", back, first)
	}
	waitFor(t, "Self to show the new registration", func() bool { return a.Self().Epoch == back.Epoch })
	if coord.SessionID(a) == oldSession {
		t.Fatal("the lapsed session was kept")
	}
	waitFor(t, "the lease to run again", func() bool { return a.SessionValidUntil().After(time.Now()) })
}

func TestConsulEpochIncreasesOnReregistration(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.open(1)
	e1 := register(t, a, 1, "a").Epoch
	e2 := register(t, a, 1, "a").Epoch
	if e2 <= e1 {
		t.Fatalf("second registration epoch %d, first %d", e2, e1)
	}
	// Controlled shutdown rewrites the registration but keeps the epoch.
	if err := a.SetShuttingDown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := a.Self(); !s.ShuttingDown || s.Epoch != e2 {
		t.Fatalf("after SetShuttingDown: %+v (epoch was %d)", s, e2)
	}
	a.Close()
	if p := cl.get("brokers/1"); p != nil {
		t.Fatalf("registration survives Close: %+v", p)
	}
	b := cl.open(1)
	e3 := register(t, b, 1, "b").Epoch
	if e3 <= e2 {
		t.Fatalf("epoch after restart %d, before %d", e3, e2)
	}
	bs, _ := b.Brokers(context.Background())
	if got, ok := brokerIn(bs, 1); !ok || got.Epoch != e3 || got.Incarnation != "b" || got.ShuttingDown {
		t.Fatalf("brokers after restart: %+v", bs)
	}
}

// TestConsulRestartTakesOverNodeID: a new process with the node id of one
// that still runs (stalled: its heartbeats and watch are paused) takes the
// registration at once by destroying the old session, which fences the old
// process's writes; the old process, when it wakes, does not take it back.
func TestConsulRestartTakesOverNodeID(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	old := cl.open(1)
	oldReg := register(t, old, 1, "old")
	oldTerm := campaign(t, old)
	top, err := old.CreateTopic(ctx, coord.TopicMeta{Name: "t", Partitions: onePartition(1, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	oldSession := coord.SessionID(old)
	coord.PauseWatch(old, true)
	coord.PauseHeartbeats(old, true)

	nw := cl.open(1)
	newReg := register(t, nw, 1, "new")
	if newReg.Epoch <= oldReg.Epoch {
		t.Fatalf("new epoch %d, old %d", newReg.Epoch, oldReg.Epoch)
	}
	if p := cl.get("brokers/1"); p == nil || p.Session != coord.SessionID(nw) {
		t.Fatalf("registration key after the takeover: %+v", p)
	}
	if info, _, err := cl.api.Session().Info(oldSession, nil); err != nil || info != nil {
		t.Fatalf("old session still exists: %+v %v", info, err)
	}

	// The old process still believes it leads partition 0; its ISR write is
	// refused by Consul and lands nothing.
	p := top.Partitions[0].Clone()
	p.ISR = []int32{1}
	if _, err := old.UpdatePartition(ctx, "t", p, coord.AsLeader); !errors.Is(err, coord.ErrFenced) {
		t.Fatalf("leader write of the fenced process: %v", err)
	}
	if got := decodeISR(t, cl.get("partitions/t/0")); len(got) != 2 {
		t.Fatalf("fenced write landed: isr %v", got)
	}
	// Its controller lock went with its session.
	newTerm := campaign(t, nw)
	if newTerm.Epoch <= oldTerm.Epoch {
		t.Fatalf("new controller epoch %d, old %d", newTerm.Epoch, oldTerm.Epoch)
	}

	// The old process wakes: it loses its term, makes a new session, and
	// leaves the registration to the newer process.
	before := coord.Heartbeats(old)
	coord.PauseWatch(old, false)
	coord.PauseHeartbeats(old, false)
	select {
	case <-oldTerm.Done:
	case <-time.After(45 * time.Second):
		t.Fatal("the old controller term did not end")
	}
	waitFor(t, "the old process to have a new session and heartbeat on", func() bool {
		s := coord.SessionID(old)
		return s != "" && s != oldSession && coord.Heartbeats(old) >= before+3
	})
	if p := cl.get("brokers/1"); p == nil || p.Session != coord.SessionID(nw) {
		t.Fatalf("the old process took the registration back: %+v", p)
	}
	bs, _ := nw.Brokers(ctx)
	if b, ok := brokerIn(bs, 1); !ok || b.Incarnation != "new" || b.Epoch != newReg.Epoch {
		t.Fatalf("brokers: %+v", bs)
	}
}

func decodeISR(t *testing.T, p *api.KVPair) []int32 {
	t.Helper()
	if p == nil {
		t.Fatal("partition key missing")
	}
	var m coord.PartitionMeta
	if err := json.Unmarshal(p.Value, &m); err != nil {
		t.Fatal(err)
	}
	return m.ISR
}

// TestConsulLeaderWriteNeedsLiveSession: a leader whose session is gone
// (it has not noticed) cannot change its ISR.
func TestConsulLeaderWriteNeedsLiveSession(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	a := cl.open(1)
	register(t, a, 1, "a")
	campaign(t, a)
	top, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "t", Partitions: onePartition(1, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	coord.PauseWatch(a, true)
	coord.PauseHeartbeats(a, true)
	cl.destroySession(coord.SessionID(a))
	p := top.Partitions[0].Clone()
	p.ISR = []int32{1}
	if _, err := a.UpdatePartition(ctx, "t", p, coord.AsLeader); !errors.Is(err, coord.ErrFenced) {
		t.Fatalf("ISR write without a session: %v", err)
	}
	if got := decodeISR(t, cl.get("partitions/t/0")); len(got) != 2 {
		t.Fatalf("write landed: isr %v", got)
	}
}

// TestConsulLeaseWaitsForTheView: a broker whose session lapsed gets a new
// session and registration at its next heartbeat, but SessionValidUntil
// stays in the past until its watch has caught up with the new
// registration. Its view from before the lapse may be stale — another
// leader elected while it was away — and until it sees the present it must
// not acknowledge acks=0/1 writes as leader (e2e TestClusterConsulOutage
// saw a broker do so for 200 ms after an outage, its watch still backing
// off, and lose those records to truncation).
func TestConsulLeaseWaitsForTheView(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.open(1)
	first := register(t, a, 1, "a")
	old := coord.SessionID(a)
	coord.PauseWatch(a, true)
	coord.PauseHeartbeats(a, true)
	waitFor(t, "the lapsed session to be gone", func() bool {
		info, _, err := cl.api.Session().Info(old, nil)
		return err == nil && info == nil
	})
	coord.PauseHeartbeats(a, false)
	waitFor(t, "a new registration", func() bool {
		p := cl.get("brokers/1")
		return p != nil && p.Session != old && p.CreateIndex > uint64(first.Epoch)
	})
	n := coord.Heartbeats(a)
	waitFor(t, "three more heartbeat rounds", func() bool { return coord.Heartbeats(a) >= n+3 })
	if until := a.SessionValidUntil(); until.After(time.Now()) {
		t.Fatalf("session valid until %v with the view still from before the lapse", until)
	}
	coord.PauseWatch(a, false)
	waitFor(t, "the lease once the view caught up", func() bool { return a.SessionValidUntil().After(time.Now()) })
	if self := a.Self(); self.Epoch <= first.Epoch {
		t.Fatalf("epoch %d after the lapse, was %d", self.Epoch, first.Epoch)
	}
}
