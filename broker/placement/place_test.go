package placement

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

func brokersN(n int) []Broker {
	b := make([]Broker, n)
	for i := range b {
		b[i] = Broker{ID: int32(i + 1)}
	}
	return b
}

func TestPlaceErrors(t *testing.T) {
	tests := []struct {
		name string
		r    Request
		want *kerr.Error
		text string
	}{
		{"zero replication factor", Request{Brokers: brokersN(3), Partitions: 1, ReplicationFactor: 0}, kerr.InvalidReplicationFactor, "must be larger than 0"},
		{"negative replication factor", Request{Brokers: brokersN(3), Partitions: 1, ReplicationFactor: -1}, kerr.InvalidReplicationFactor, "must be larger than 0"},
		{"more replicas than brokers", Request{Brokers: brokersN(2), Partitions: 1, ReplicationFactor: 3}, kerr.InvalidReplicationFactor,
			"the target replication factor of 3 cannot be reached because only 2 broker(s) are available"},
		{"no brokers", Request{Partitions: 1, ReplicationFactor: 1}, kerr.InvalidReplicationFactor, "no brokers"},
		{"no partitions", Request{Brokers: brokersN(3), Partitions: 0, ReplicationFactor: 1}, kerr.InvalidPartitions, "partitions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(tc.r)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err %v, want %v containing %q", err, tc.want, tc.text)
			}
			if got != nil {
				t.Fatalf("result %v with an error", got)
			}
		})
	}
	if _, err := Place(Request{Brokers: []Broker{{ID: 1}, {ID: 1}}, Partitions: 1, ReplicationFactor: 1}); err == nil {
		t.Fatal("duplicate broker accepted")
	}
}

// Exact outcomes of small cases, worked out from the rules.
func TestPlaceExamples(t *testing.T) {
	tests := []struct {
		name string
		r    Request
		want [][]int32
	}{
		{"three brokers, three partitions, rf 3: leaders stripe",
			Request{Brokers: brokersN(3), Partitions: 3, ReplicationFactor: 3},
			[][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}}},
		{"two racks: one replica on each",
			Request{Brokers: []Broker{{1, "a"}, {2, "b"}, {3, "a"}, {4, "b"}}, Partitions: 2, ReplicationFactor: 2},
			[][]int32{{1, 2}, {3, 4}}},
		{"offset rotates the start",
			Request{Brokers: brokersN(3), Partitions: 1, ReplicationFactor: 1, Offset: 2},
			[][]int32{{3}}},
		{"a new, empty broker is preferred and leads",
			Request{Brokers: brokersN(4), Partitions: 1, ReplicationFactor: 3,
				Load: map[int32]Load{1: {10, 4}, 2: {10, 4}, 3: {10, 3}}},
			[][]int32{{4, 1, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal[[]int32]) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// The result is a function of the request: not of the order brokers are
// listed in, nor of anything else.
func TestPlaceDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 50 {
		sh := randomShape(rng)
		load := map[int32]Load{}
		for _, b := range sh.brokers {
			load[b.ID] = Load{Replicas: rng.IntN(5), Leaders: rng.IntN(2)}
		}
		r := Request{Brokers: sh.brokers, Load: load, Partitions: 1 + rng.IntN(10),
			ReplicationFactor: 1 + rng.IntN(len(sh.brokers)), Offset: rng.Uint64()}
		a, err := Place(r)
		if err != nil {
			t.Fatal(err)
		}
		r.Brokers = slices.Clone(r.Brokers)
		rng.Shuffle(len(r.Brokers), func(i, j int) { r.Brokers[i], r.Brokers[j] = r.Brokers[j], r.Brokers[i] })
		b, err := Place(r)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(a, b, slices.Equal[[]int32]) {
			t.Fatalf("%s: %v vs %v with brokers reordered", sh.name, a, b)
		}
	}
}

func TestLoadOfAndBrokersOf(t *testing.T) {
	load := LoadOf([]coord.TopicMeta{
		{Partitions: []coord.PartitionMeta{{Replicas: []int32{1, 2}}, {Replicas: []int32{2, 3}}}},
		{Partitions: []coord.PartitionMeta{{Replicas: []int32{2}}}},
	})
	want := map[int32]Load{1: {1, 1}, 2: {3, 2}, 3: {1, 0}}
	if len(load) != len(want) {
		t.Fatalf("load %v", load)
	}
	for id, l := range want {
		if load[id] != l {
			t.Fatalf("broker %d: %+v, want %+v", id, load[id], l)
		}
	}
	got := BrokersOf([]coord.BrokerInfo{{NodeID: 1, Rack: "a"}, {NodeID: 2, ShuttingDown: true}, {NodeID: 3}})
	if !slices.Equal(got, []Broker{{1, "a"}, {3, ""}}) {
		t.Fatalf("BrokersOf %v", got)
	}
}
