package broker

import (
	"slices"
	"testing"

	"github.com/strata-broker/strata/broker/placement"
	"github.com/strata-broker/strata/coord"
)

// TestControllerRejoinsAreRestarts: of the brokers whose registration
// changed, the controller treats as rejoined (out of every ISR, leaderships
// moved) those that came back as another process or were not registered
// before — not those that only replaced their session, as every broker does
// after a Consul outage longer than the session timeout.
func TestControllerRejoinsAreRestarts(t *testing.T) {
	b := func(id int32, epoch int64, inc string) coord.BrokerInfo {
		return coord.BrokerInfo{NodeID: id, Epoch: epoch, Incarnation: inc}
	}
	for _, tc := range []struct {
		name      string
		prev, now []coord.BrokerInfo
		want      []int32
	}{
		{"every session replaced after a Consul outage",
			[]coord.BrokerInfo{b(1, 25, "a"), b(2, 24, "b"), b(3, 23, "c")},
			[]coord.BrokerInfo{b(1, 47, "a"), b(2, 49, "b"), b(3, 46, "c")}, nil},
		{"one broker restarted, one replaced its session",
			[]coord.BrokerInfo{b(1, 25, "a"), b(2, 24, "b"), b(3, 23, "c")},
			[]coord.BrokerInfo{b(1, 47, "a2"), b(2, 49, "b"), b(3, 23, "c")}, []int32{1}},
		{"a broker back after it was gone",
			[]coord.BrokerInfo{b(2, 24, "b"), b(3, 23, "c")},
			[]coord.BrokerInfo{b(1, 47, "a"), b(2, 24, "b"), b(3, 23, "c")}, []int32{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := placement.ChangedBrokers(tc.prev, tc.now)
			if got := restarted(all.Rejoined, tc.prev, tc.now); !slices.Equal(got, tc.want) {
				t.Fatalf("rejoined %v of placement's %v, want %v", got, all.Rejoined, tc.want)
			}
		})
	}
}
