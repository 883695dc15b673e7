package replica

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

var t0 = time.Unix(1_000_000, 0)

const lag = 10 * time.Second

func at(d time.Duration) time.Time { return t0.Add(d) }

func meta(isr []int32, replicas ...int32) coord.PartitionMeta {
	return coord.PartitionMeta{Partition: 0, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 7, Replicas: replicas, ISR: isr}
}

// harness drives one Leader; followers are registered alive with epoch
// 100+id unless changed.
type harness struct {
	t   *testing.T
	l   *Leader
	reg map[int32]Registration
}

func newHarness(t *testing.T, m coord.PartitionMeta, leo, hw, epochStart int64) *harness {
	t.Helper()
	l, err := NewLeader(Config{Meta: m, NodeID: 1, LogEndOffset: leo, HighWatermark: hw,
		LeaderEpochStartOffset: epochStart, LagTimeMax: lag, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, l: l, reg: map[int32]Registration{}}
	for _, id := range m.Replicas {
		h.reg[id] = Registration{Alive: true, Epoch: 100 + int64(id)}
	}
	return h
}

func (h *harness) fetch(id int32, off int64, when time.Duration) Result {
	h.t.Helper()
	r, err := h.l.FollowerFetch(Fetch{ReplicaID: id, BrokerEpoch: 100 + int64(id), FetchOffset: off, Registered: h.reg[id], Now: at(when)})
	if err != nil {
		h.t.Fatalf("fetch %d@%d: %v", id, off, err)
	}
	return r
}

func (h *harness) appendTo(leo int64, when time.Duration) Result {
	h.t.Helper()
	r, err := h.l.LeaderAppend(leo, at(when))
	if err != nil {
		h.t.Fatalf("append to %d: %v", leo, err)
	}
	return r
}

func (h *harness) wantHW(want int64) {
	h.t.Helper()
	if got := h.l.HighWatermark(); got != want {
		h.t.Fatalf("high watermark %d, want %d", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Meta: meta([]int32{1, 2}, 1, 2, 3), NodeID: 1, LogEndOffset: 10, HighWatermark: 5, LeaderEpochStartOffset: 8, Now: t0}
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"other leader", func(c *Config) { c.Meta.Leader = 2 }, false},
		{"not a replica", func(c *Config) { c.NodeID = 9; c.Meta.Leader = 9; c.Meta.ISR = []int32{9} }, false},
		{"not in ISR", func(c *Config) { c.Meta.ISR = []int32{2} }, false},
		{"negative LEO", func(c *Config) { c.LogEndOffset = -1; c.HighWatermark = -1; c.LeaderEpochStartOffset = 0 }, false},
		{"epoch start beyond LEO", func(c *Config) { c.LeaderEpochStartOffset = 11 }, false},
		{"negative epoch start", func(c *Config) { c.LeaderEpochStartOffset = -1 }, false},
		{"negative lag", func(c *Config) { c.LagTimeMax = -time.Second }, false},
		{"HW above LEO is lowered, not refused", func(c *Config) { c.HighWatermark = 50 }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Meta = ok.Meta.Clone()
			tc.change(&c)
			l, err := NewLeader(c)
			if (err == nil) != tc.ok {
				t.Fatalf("NewLeader err = %v, want ok=%v", err, tc.ok)
			}
			if err == nil && l.HighWatermark() > l.LogEndOffset() {
				t.Fatalf("high watermark %d above log end %d", l.HighWatermark(), l.LogEndOffset())
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{HighWatermark: 9, LogEndOffset: 4}
	c.EnsureDefaults()
	if c.LagTimeMax != DefaultLagTimeMax || c.HighWatermark != 4 {
		t.Fatalf("defaults: lag %v hw %d", c.LagTimeMax, c.HighWatermark)
	}
}

// With the leader alone in the ISR the high watermark is its log end offset,
// from the start and after every append.
func TestHWLeaderAlone(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 10, 3, 10)
	h.wantHW(10)
	r := h.appendTo(15, time.Second)
	if !r.HWAdvanced || r.HighWatermark != 15 {
		t.Fatalf("append: %+v", r)
	}
	if r := h.appendTo(15, 2*time.Second); r.HWAdvanced {
		t.Fatalf("same LEO advanced the HW: %+v", r)
	}
	if _, err := h.l.LeaderAppend(14, at(3*time.Second)); err == nil {
		t.Fatal("log end offset going back accepted")
	}
}

// The high watermark is the smallest log end offset over the ISR, never
// goes back, never exceeds the leader's end.
func TestHWMinOverISR(t *testing.T) {
	h := newHarness(t, meta([]int32{1, 2, 3}, 1, 2, 3), 100, 40, 90)
	h.wantHW(40) // followers' LEOs unknown: nothing moves
	steps := []struct {
		id      int32
		off     int64
		wantHW  int64
		advance bool
	}{
		{2, 95, 40, false}, // 3 still unknown
		{3, 60, 60, true},
		{3, 97, 95, true},
		{2, 99, 97, true},
		{2, 50, 97, false}, // a follower going back does not move the HW back
		{3, 100, 97, false},
		{2, 100, 100, true},
	}
	for i, s := range steps {
		r := h.fetch(s.id, s.off, time.Duration(i)*time.Second)
		if r.HighWatermark != s.wantHW || r.HWAdvanced != s.advance {
			t.Fatalf("step %d fetch %d@%d: %+v, want hw %d advanced %v", i, s.id, s.off, r, s.wantHW, s.advance)
		}
		if r.HighWatermark > h.l.LogEndOffset() {
			t.Fatalf("hw above LEO")
		}
	}
}

// Kafka's lastCaughtUpTime rule: the fetch time if the fetch reached the
// leader's current end, else the previous fetch's time if it reached the
// leader's end as of the previous fetch, else unchanged.
func TestLastCaughtUp(t *testing.T) {
	type step struct {
		leo  int64 // leader end before the fetch
		off  int64
		at   time.Duration
		want time.Duration // -1: never caught up
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"at the end", []step{{10, 10, 1 * time.Second, 1 * time.Second}}},
		{"behind, no previous fetch", []step{{10, 5, 1 * time.Second, -1}}},
		{"reached the end as of the previous fetch", []step{
			{10, 5, 1 * time.Second, -1},
			{20, 10, 3 * time.Second, 1 * time.Second}, // leader was at 10 at the previous fetch
		}},
		{"steady producer: always behind, still caught up", []step{
			{10, 8, 1 * time.Second, -1},
			{12, 10, 2 * time.Second, 1 * time.Second},
			{14, 12, 3 * time.Second, 2 * time.Second},
			{16, 14, 4 * time.Second, 3 * time.Second},
		}},
		{"falling behind keeps the old time", []step{
			{10, 10, 1 * time.Second, 1 * time.Second},
			{50, 12, 2 * time.Second, 1 * time.Second}, // reached 10 = previous leader end: time of previous fetch
			{90, 20, 3 * time.Second, 1 * time.Second}, // previous leader end was 50
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, meta([]int32{1}, 1, 2), 0, 0, 0)
			for i, s := range tc.steps {
				h.appendTo(s.leo, s.at-time.Millisecond)
				h.fetch(2, s.off, s.at)
				got := h.l.Followers()[0].LastCaughtUp
				want := time.Time{}
				if s.want >= 0 {
					want = at(s.want)
				}
				if !got.Equal(want) {
					t.Fatalf("step %d: last caught up %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestExpandEligibility(t *testing.T) {
	tests := []struct {
		name       string
		hw         int64 // leader: LEO 100, epoch start 90
		off        int64
		reg        Registration
		fetchEpoch int64
		want       bool
	}{
		{"caught up to HW and epoch start", 80, 90, Registration{Alive: true, Epoch: 102}, 102, true},
		{"at HW but below epoch start", 80, 85, Registration{Alive: true, Epoch: 102}, 102, false},
		{"below HW", 95, 92, Registration{Alive: true, Epoch: 102}, 102, false},
		{"KIP-903: registered epoch is newer than the fetch's", 80, 100, Registration{Alive: true, Epoch: 103}, 102, false},
		{"KIP-903: fetch epoch newer than the cached registration", 80, 100, Registration{Alive: true, Epoch: 101}, 102, false},
		{"no broker epoch in the fetch", 80, 100, Registration{Alive: true, Epoch: 102}, -1, false},
		{"not registered (dead)", 80, 100, Registration{}, 102, false},
		{"shutting down", 80, 100, Registration{Alive: true, Epoch: 102, ShuttingDown: true}, 102, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// ISR follower 3 pins the high watermark at tc.hw.
			h := newHarness(t, meta([]int32{1, 3}, 1, 2, 3), 100, 0, 90)
			h.fetch(3, tc.hw, 0)
			h.wantHW(tc.hw)
			r, err := h.l.FollowerFetch(Fetch{ReplicaID: 2, BrokerEpoch: tc.fetchEpoch, FetchOffset: tc.off, Registered: tc.reg, Now: at(time.Second)})
			if err != nil {
				if tc.want || tc.reg.Epoch <= tc.fetchEpoch {
					t.Fatalf("fetch refused: %v", err)
				}
				if !errors.Is(err, kerr.NotLeaderForPartition) {
					t.Fatalf("stale broker epoch refused with %v", err)
				}
				return
			}
			if got := r.Proposal != nil; got != tc.want {
				t.Fatalf("proposal %+v, want one: %v", r.Proposal, tc.want)
			}
			if tc.want {
				p := r.Proposal
				want := []int32{1, 3, 2}
				if p.Kind != Expand || p.Added != 2 || !slices.Equal(p.Meta.ISR, want) ||
					p.Meta.PartitionEpoch != 7 || p.Meta.Leader != 1 || p.Meta.LeaderEpoch != 5 ||
					!slices.Equal(p.Meta.Replicas, []int32{1, 2, 3}) {
					t.Fatalf("proposal %+v", p)
				}
			}
		})
	}
}

// A follower whose registration has a different broker epoch never joins,
// however long it fetches at the end of the log; once the registration
// matches its fetches, it joins.
func TestStaleBrokerEpochNeverExpands(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 50, 50, 50)
	h.reg[2] = Registration{Alive: true, Epoch: 99} // the leader's cache knows an older registration
	for i := range 20 {
		leo := int64(50 + i)
		h.appendTo(leo, time.Duration(i)*time.Second)
		if r := h.fetch(2, leo, time.Duration(i)*time.Second); r.Proposal != nil {
			t.Fatalf("fetch %d: proposed %+v for a broker whose epoch does not match", i, r.Proposal)
		}
	}
	h.reg[2] = Registration{Alive: true, Epoch: 102}
	if r := h.fetch(2, 69, 30*time.Second); r.Proposal == nil || r.Proposal.Added != 2 {
		t.Fatalf("matching epoch: %+v", r)
	}
}

func TestFetchRefused(t *testing.T) {
	h := newHarness(t, meta([]int32{1, 2}, 1, 2), 10, 0, 10)
	cases := []struct {
		name string
		f    Fetch
		want *kerr.Error
	}{
		{"not a replica", Fetch{ReplicaID: 7, BrokerEpoch: 1, FetchOffset: 10, Registered: Registration{Alive: true, Epoch: 1}}, kerr.UnknownLeaderEpoch},
		{"the leader itself", Fetch{ReplicaID: 1, BrokerEpoch: 1, FetchOffset: 10}, kerr.UnknownLeaderEpoch},
		{"beyond the log end", Fetch{ReplicaID: 2, BrokerEpoch: 102, FetchOffset: 11, Registered: h.reg[2]}, kerr.OffsetOutOfRange},
		{"negative offset", Fetch{ReplicaID: 2, BrokerEpoch: 102, FetchOffset: -1, Registered: h.reg[2]}, kerr.OffsetOutOfRange},
		{"stale broker epoch", Fetch{ReplicaID: 2, BrokerEpoch: 101, FetchOffset: 10, Registered: h.reg[2]}, kerr.NotLeaderForPartition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.Now = at(time.Second)
			_, err := h.l.FollowerFetch(tc.f)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			// Refused fetches change nothing: follower 2 has never fetched.
			if f := h.l.Followers()[0]; f.LogEndOffset != -1 {
				t.Fatalf("refused fetch recorded: %+v", f)
			}
			h.wantHW(0)
		})
	}
}

// KIP-497's maximal ISR: a pending expansion is counted for the high
// watermark at once (adding a replica only makes the HW stricter; not
// counting it could leave the new ISR member without data below the HW once
// the change commits).
func TestPendingExpandCountsForHW(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 100, 100, 100)
	h.appendTo(110, time.Second)
	h.wantHW(110)
	r := h.fetch(2, 110, 2*time.Second)
	if r.Proposal == nil || r.Proposal.Kind != Expand {
		t.Fatalf("no expansion: %+v", r)
	}
	if got := h.l.MaximalISR(); !slices.Equal(got, []int32{1, 2}) {
		t.Fatalf("maximal ISR %v", got)
	}
	if h.l.ISRSize() != 1 {
		t.Fatalf("committed ISR size %d before the commit", h.l.ISRSize())
	}
	h.appendTo(120, 3*time.Second)
	h.wantHW(110) // waits for follower 2 although the change is not committed
	h.fetch(2, 115, 4*time.Second)
	h.wantHW(115)
	// Long past the lag time follower 2 no longer counts as "about to
	// join", but the pending addition still holds the high watermark.
	if r := h.l.Tick(at(time.Minute)); r.HWAdvanced {
		t.Fatalf("HW passed a pending ISR addition: %+v", r)
	}
	r = h.l.Committed(storedAs(r.Proposal.Meta), at(time.Minute))
	if r.Role != Leading || h.l.ISRSize() != 2 {
		t.Fatalf("commit: %+v, isr %v", r, h.l.Meta().ISR)
	}
	h.wantHW(115)
}

// PendingShrinkIsr: the followers being removed still hold the high
// watermark until the shrink commits.
func TestPendingShrinkStillCounts(t *testing.T) {
	h := newHarness(t, meta([]int32{1, 2, 3}, 1, 2, 3), 100, 100, 100)
	h.fetch(2, 100, 0)
	h.fetch(3, 100, 0)
	h.appendTo(150, time.Second)
	h.fetch(2, 150, 2*time.Second)
	h.wantHW(100) // 3 is at 100
	// Follower 3 stops fetching. After the lag time it is out of sync.
	if r := h.l.Tick(at(5 * time.Second)); r.Proposal != nil {
		t.Fatalf("shrink before the lag time: %+v", r.Proposal)
	}
	r := h.l.Tick(at(12 * time.Second))
	if r.Proposal == nil || r.Proposal.Kind != Shrink || !slices.Equal(r.Proposal.Removed, []int32{3}) ||
		!slices.Equal(r.Proposal.Meta.ISR, []int32{1, 2}) {
		t.Fatalf("shrink: %+v", r.Proposal)
	}
	p := *r.Proposal
	h.appendTo(160, 13*time.Second)
	h.fetch(2, 160, 13*time.Second)
	h.wantHW(100) // removal pending: 3 still counts
	r = h.l.Committed(storedAs(p.Meta), at(14*time.Second))
	if !r.HWAdvanced || r.HighWatermark != 160 {
		t.Fatalf("after the shrink commits: %+v", r)
	}
}

// storedAs is m as coord stores it: PartitionEpoch+1.
func storedAs(m coord.PartitionMeta) coord.PartitionMeta {
	m = m.Clone()
	m.PartitionEpoch++
	return m
}
