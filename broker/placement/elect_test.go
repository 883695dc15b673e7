package placement

import (
	"errors"
	"slices"
	"testing"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

func pm(leader int32, isr []int32, replicas ...int32) coord.PartitionMeta {
	return coord.PartitionMeta{Partition: 2, Leader: leader, LeaderEpoch: 4, PartitionEpoch: 10, Replicas: replicas, ISR: isr}
}

// live builds a live set: ids alive; negative ids alive but shutting down.
func live(ids ...int32) Live {
	l := Live{}
	for _, id := range ids {
		if id < 0 {
			l[-id] = coord.BrokerInfo{NodeID: -id, Epoch: 50, ShuttingDown: true}
		} else {
			l[id] = coord.BrokerInfo{NodeID: id, Epoch: 50}
		}
	}
	return l
}

type want struct {
	changed bool
	leader  int32
	epoch   int32
	isr     []int32
	unclean bool
}

func checkDecision(t *testing.T, before coord.PartitionMeta, d Decision, w want) {
	t.Helper()
	if d.Changed != w.changed {
		t.Fatalf("changed %v, want %v (%v)", d.Changed, w.changed, d)
	}
	m := d.Meta
	if !w.changed {
		if m.Leader != before.Leader || m.LeaderEpoch != before.LeaderEpoch || !slices.Equal(m.ISR, before.ISR) {
			t.Fatalf("no change reported but meta differs: %+v vs %+v", m, before)
		}
		return
	}
	if m.Leader != w.leader || m.LeaderEpoch != w.epoch || !slices.Equal(m.ISR, w.isr) || d.Unclean != w.unclean {
		t.Fatalf("got leader %d epoch %d isr %v unclean %v, want %+v", m.Leader, m.LeaderEpoch, m.ISR, d.Unclean, w)
	}
	if m.PartitionEpoch != before.PartitionEpoch || !slices.Equal(m.Replicas, before.Replicas) || m.Partition != before.Partition {
		t.Fatalf("decision changed more than leader/ISR: %+v", m)
	}
}

func TestElectLeader(t *testing.T) {
	all := []int32{1, 2, 3}
	tests := []struct {
		name    string
		m       coord.PartitionMeta
		live    Live
		unclean bool
		want    want
	}{
		{"all live: nothing to do", pm(1, all, 1, 2, 3), live(1, 2, 3), false, want{}},
		{"dead follower leaves the ISR", pm(1, all, 1, 2, 3), live(1, 2), false, want{true, 1, 4, []int32{1, 2}, false}},
		{"dead leader: first ISR replica takes over", pm(1, all, 1, 2, 3), live(2, 3), false, want{true, 2, 5, []int32{2, 3}, false}},
		{"replica order decides, not ISR order", pm(3, []int32{1, 2, 3}, 3, 2, 1), live(1, 2), false, want{true, 2, 5, []int32{1, 2}, false}},
		{"healthy non-preferred leader stays", pm(2, all, 1, 2, 3), live(1, 2, 3), false, want{}},
		{"shutting-down leader hands over, stays in ISR", pm(1, all, 1, 2, 3), live(-1, 2, 3), false, want{true, 2, 5, all, false}},
		{"two dead: the last one leads", pm(1, all, 1, 2, 3), live(3), false, want{true, 3, 5, []int32{3}, false}},
		{"all ISR dead: offline, ISR kept (KIP-841)", pm(1, all, 1, 2, 3), live(), false, want{true, -1, 5, all, false}},
		{"last ISR member dead, others live, clean only: offline", pm(1, []int32{1}, 1, 2, 3), live(2, 3), false, want{true, -1, 5, []int32{1}, false}},
		{"last ISR member dead, unclean allowed", pm(1, []int32{1}, 1, 2, 3), live(2, 3), true, want{true, 2, 5, []int32{2}, true}},
		{"unclean skips shutting-down replicas", pm(1, []int32{1}, 1, 2, 3), live(-2, 3), true, want{true, 3, 5, []int32{3}, true}},
		{"unclean with nobody usable: offline", pm(1, []int32{1}, 1, 2, 3), live(-2), true, want{true, -1, 5, []int32{1}, false}},
		{"offline partition: ISR member back", pm(-1, []int32{1}, 1, 2, 3), live(1, 2, 3), false, want{true, 1, 5, []int32{1}, false}},
		{"offline partition stays offline", pm(-1, []int32{1}, 1, 2, 3), live(2, 3), false, want{}},
		{"offline: a shutting-down ISR member leads, no unclean election", pm(-1, []int32{1}, 1, 2, 3), live(-1, 2), true,
			want{true, 1, 5, []int32{1}, false}},
		{"only live ISR member shutting down keeps leading", pm(1, []int32{1, 2}, 1, 2), live(-1), false, want{true, 1, 4, []int32{1}, false}},
		{"shutting-down ISR member rather than offline", pm(1, []int32{1, 2}, 1, 2), live(-2), false, want{true, 2, 5, []int32{2}, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkDecision(t, tc.m, ElectLeader(tc.m, tc.live, tc.unclean), tc.want)
		})
	}
}

func TestControlledShutdown(t *testing.T) {
	all := []int32{1, 2, 3}
	tests := []struct {
		name string
		m    coord.PartitionMeta
		id   int32
		live Live
		want want
	}{
		{"leader moves to the first other ISR replica and leaves the ISR", pm(1, all, 1, 2, 3), 1, live(-1, 2, 3), want{true, 2, 5, []int32{2, 3}, false}},
		{"skips another shutting-down broker", pm(1, all, 1, 2, 3), 1, live(-1, -2, 3), want{true, 3, 5, []int32{2, 3}, false}},
		{"follower leaves the ISR", pm(1, all, 1, 2, 3), 3, live(1, 2, -3), want{true, 1, 4, []int32{1, 2}, false}},
		{"not in the ISR: nothing", pm(1, []int32{1, 2}, 1, 2, 3), 3, live(1, 2, -3), want{}},
		{"sole ISR member keeps leading", pm(1, []int32{1}, 1, 2, 3), 1, live(-1, 2, 3), want{}},
		{"no usable ISR member to take over", pm(1, []int32{1, 2}, 1, 2, 3), 1, live(-1, -2, 3), want{}},
		{"dead ISR members are not taken", pm(1, []int32{1, 2}, 1, 2, 3), 1, live(-1, 3), want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkDecision(t, tc.m, ControlledShutdown(tc.m, tc.id, tc.live), tc.want)
		})
	}
}

func TestBrokerGoneAndRejoined(t *testing.T) {
	all := []int32{1, 2, 3}
	tests := []struct {
		name   string
		rejoin bool
		m      coord.PartitionMeta
		id     int32
		live   Live
		want   want
	}{
		{"gone follower", false, pm(1, all, 1, 2, 3), 2, live(1, 3), want{true, 1, 4, []int32{1, 3}, false}},
		{"gone leader", false, pm(1, all, 1, 2, 3), 1, live(2, 3), want{true, 2, 5, []int32{2, 3}, false}},
		{"gone last member: offline, kept", false, pm(1, []int32{1}, 1, 2, 3), 1, live(2, 3), want{true, -1, 5, []int32{1}, false}},
		{"gone, live set not yet updated: still counted dead", false, pm(1, all, 1, 2, 3), 2, live(1, 2, 3), want{true, 1, 4, []int32{1, 3}, false}},
		{"gone non-member: nothing", false, pm(1, []int32{1, 2}, 1, 2, 3), 3, live(1, 2), want{}},
		{"KIP-903: rejoined follower must catch up again", true, pm(1, all, 1, 2, 3), 3, live(1, 2, 3), want{true, 1, 4, []int32{1, 2}, false}},
		{"rejoined leader hands over", true, pm(1, all, 1, 2, 3), 1, live(1, 2, 3), want{true, 2, 5, []int32{2, 3}, false}},
		{"rejoined sole member leads at a new epoch", true, pm(1, []int32{1}, 1, 2, 3), 1, live(1, 2, 3), want{true, 1, 5, []int32{1}, false}},
		{"rejoined sole member of an offline partition leads", true, pm(-1, []int32{1}, 1, 2, 3), 1, live(1, 2, 3), want{true, 1, 5, []int32{1}, false}},
		{"rejoined leader prefers a shutting-down member with intact data", true, pm(1, []int32{1, 2}, 1, 2, 3), 1, live(1, -2, 3),
			want{true, 2, 5, []int32{2}, false}},
		{"rejoined non-member: nothing", true, pm(1, []int32{1, 2}, 1, 2, 3), 3, live(1, 2, 3), want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Decision
			if tc.rejoin {
				d = BrokerRejoined(tc.m, tc.id, tc.live, false)
			} else {
				d = BrokerGone(tc.m, tc.id, tc.live, false)
			}
			checkDecision(t, tc.m, d, tc.want)
		})
	}
}

func TestPreferredLeader(t *testing.T) {
	tests := []struct {
		name string
		m    coord.PartitionMeta
		live Live
		err  *kerr.Error
		want want
	}{
		{"preferred takes over", pm(2, []int32{1, 2, 3}, 1, 2, 3), live(1, 2, 3), nil, want{true, 1, 5, []int32{1, 2, 3}, false}},
		{"already leads", pm(1, []int32{1, 2, 3}, 1, 2, 3), live(1, 2, 3), kerr.ElectionNotNeeded, want{}},
		{"not in ISR", pm(2, []int32{2, 3}, 1, 2, 3), live(1, 2, 3), kerr.PreferredLeaderNotAvailable, want{}},
		{"dead", pm(2, []int32{1, 2, 3}, 1, 2, 3), live(2, 3), kerr.PreferredLeaderNotAvailable, want{}},
		{"shutting down", pm(2, []int32{1, 2, 3}, 1, 2, 3), live(-1, 2, 3), kerr.PreferredLeaderNotAvailable, want{}},
		{"offline partition, preferred back", pm(-1, []int32{1}, 1, 2, 3), live(1), nil, want{true, 1, 5, []int32{1}, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := PreferredLeader(tc.m, tc.live)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			checkDecision(t, tc.m, d, tc.want)
		})
	}
}

func TestChangedBrokers(t *testing.T) {
	prev := []coord.BrokerInfo{{NodeID: 1, Epoch: 5}, {NodeID: 2, Epoch: 6}, {NodeID: 3, Epoch: 7}, {NodeID: 4, Epoch: 8, Incarnation: "a"}}
	next := []coord.BrokerInfo{{NodeID: 1, Epoch: 5}, {NodeID: 3, Epoch: 9}, {NodeID: 4, Epoch: 8, Incarnation: "b"},
		{NodeID: 5, Epoch: 10, ShuttingDown: true}}
	next[0].ShuttingDown = true
	c := ChangedBrokers(prev, next)
	if !slices.Equal(c.Gone, []int32{2}) || !slices.Equal(c.Rejoined, []int32{3, 4, 5}) || !slices.Equal(c.ShuttingDown, []int32{1, 5}) {
		t.Fatalf("%+v", c)
	}
	if c := ChangedBrokers(prev, prev); len(c.Gone)+len(c.Rejoined)+len(c.ShuttingDown) != 0 {
		t.Fatalf("no change: %+v", c)
	}
}

// Reconcile: one decision for a whole BrokersChanged, with one leader epoch
// bump at most.
func TestReconcile(t *testing.T) {
	m := pm(1, []int32{1, 2, 3, 4}, 1, 2, 3, 4)
	prev := []coord.BrokerInfo{{NodeID: 1, Epoch: 1}, {NodeID: 2, Epoch: 2}, {NodeID: 3, Epoch: 3}, {NodeID: 4, Epoch: 4}}
	// 1 (leader) is gone, 2 shuts down, 3 restarted.
	next := []coord.BrokerInfo{{NodeID: 2, Epoch: 2, ShuttingDown: true}, {NodeID: 3, Epoch: 30}, {NodeID: 4, Epoch: 4}}
	d := Reconcile(m, LiveOf(next), ChangedBrokers(prev, next), false)
	checkDecision(t, m, d, want{true, 4, 5, []int32{4}, false})

	if d := Reconcile(m, LiveOf(prev), ChangedBrokers(prev, prev), false); d.Changed {
		t.Fatalf("nothing changed, got %v", d)
	}
}
