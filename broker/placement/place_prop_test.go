package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-broker/strata/coord"
)

type shape struct {
	name    string
	brokers []Broker
	// even: no racks, or racks of equal size — shapes where every broker
	// can get an equal share.
	even bool
}

func randomShape(rng *rand.Rand) shape {
	switch rng.IntN(3) {
	case 0:
		n := 1 + rng.IntN(12)
		var b []Broker
		for _, id := range rng.Perm(40)[:n] {
			b = append(b, Broker{ID: int32(id)})
		}
		return shape{fmt.Sprintf("%d brokers without racks", n), b, true}
	case 1:
		racks, per := 1+rng.IntN(4), 1+rng.IntN(4)
		var b []Broker
		for i, id := range rng.Perm(60)[:racks*per] {
			b = append(b, Broker{ID: int32(id), Rack: fmt.Sprintf("rack-%d", i%racks)})
		}
		return shape{fmt.Sprintf("%d racks of %d", racks, per), b, true}
	default:
		n, racks := 1+rng.IntN(12), 1+rng.IntN(4)
		var b []Broker
		for _, id := range rng.Perm(40)[:n] {
			b = append(b, Broker{ID: int32(id), Rack: fmt.Sprintf("rack-%d", rng.IntN(racks))})
		}
		return shape{fmt.Sprintf("%d brokers on up to %d racks of any size", n, racks), b, false}
	}
}

// spreadOf is max - min of count over brokers.
func spreadOf(count func(int32) int, brokers []Broker) int {
	lo, hi := int(^uint(0)>>1), -1
	for _, b := range brokers {
		v := count(b.ID)
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi - lo
}

func racksOf(brokers []Broker) map[string][]Broker {
	m := map[string][]Broker{}
	for _, b := range brokers {
		m[b.Rack] = append(m[b.Rack], b)
	}
	return m
}

// checkPartition: distinct live brokers, and racks spread as far as they
// allow: a rack holds fewer than the fullest rack's count minus one only
// when all its brokers are already used.
func checkPartition(t *testing.T, where string, list []int32, rf int, brokers []Broker) {
	t.Helper()
	if len(list) != rf {
		t.Fatalf("%s: %v has %d replicas, want %d", where, list, len(list), rf)
	}
	rack := map[int32]string{}
	for _, b := range brokers {
		rack[b.ID] = b.Rack
	}
	seen := map[int32]bool{}
	perRack := map[string]int{}
	for _, id := range list {
		if seen[id] {
			t.Fatalf("%s: %v places two replicas on broker %d", where, list, id)
		}
		r, ok := rack[id]
		if !ok {
			t.Fatalf("%s: %v uses unknown broker %d", where, list, id)
		}
		seen[id] = true
		perRack[r]++
	}
	racks := racksOf(brokers)
	most := 0
	for _, c := range perRack {
		most = max(most, c)
	}
	for r, members := range racks {
		if c := perRack[r]; c < most-1 && c < len(members) {
			t.Fatalf("%s: %v puts %d replicas on rack %s (of %d brokers) while another rack has %d", where, list, c, r, len(members), most)
		}
	}
	if want := min(rf, len(racks)); len(perRack) != want {
		t.Fatalf("%s: %v uses %d racks, want %d", where, list, len(perRack), want)
	}
}

// Placement over many random cluster shapes, 100 topics each with random
// partition counts and replication factors, each placed against the load
// of the ones before. Checked: every partition (distinct brokers, rack
// spread); in shapes where brokers can share equally, replicas differ by at
// most one per broker within every topic and over the whole cluster, and
// preferred leaderships by at most one within every topic; within any rack,
// replicas differ by at most one; preferred leaderships over the cluster
// stay within a few of each other (they are exact per topic and can only be
// evened across topics through which brokers get a topic's extra ones).
func TestPlaceBalanceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(2024, 11))
	for run := range 150 {
		sh := randomShape(rng)
		var topics []coord.TopicMeta
		for ti := range 100 {
			rf := 1 + rng.IntN(min(len(sh.brokers), 4))
			np := 1 + rng.IntN(12)
			lists, err := Place(Request{Brokers: sh.brokers, Load: LoadOf(topics), Partitions: np,
				ReplicationFactor: rf, Offset: rng.Uint64()})
			if err != nil {
				t.Fatalf("%s: %v", sh.name, err)
			}
			where := fmt.Sprintf("run %d (%s) topic %d rf %d", run, sh.name, ti, rf)
			tm := coord.TopicMeta{Name: fmt.Sprint(ti)}
			replicas, leaders := map[int32]int{}, map[int32]int{}
			for i, l := range lists {
				checkPartition(t, where, l, rf, sh.brokers)
				tm.Partitions = append(tm.Partitions, coord.PartitionMeta{Partition: int32(i), Replicas: l})
				for j, id := range l {
					replicas[id]++
					if j == 0 {
						leaders[id]++
					}
				}
			}
			topics = append(topics, tm)
			if sh.even {
				if d := spreadOf(func(id int32) int { return replicas[id] }, sh.brokers); d > 1 {
					t.Fatalf("%s: replicas within the topic differ by %d: %v", where, d, lists)
				}
				if d := spreadOf(func(id int32) int { return leaders[id] }, sh.brokers); d > 1 {
					t.Fatalf("%s: leaders within the topic differ by %d: %v", where, d, lists)
				}
			}
			load := LoadOf(topics)
			if sh.even {
				if d := spreadOf(func(id int32) int { return load[id].Replicas }, sh.brokers); d > 1 {
					t.Fatalf("%s: replicas over the cluster differ by %d", where, d)
				}
			}
			for r, members := range racksOf(sh.brokers) {
				if d := spreadOf(func(id int32) int { return load[id].Replicas }, members); d > 1 {
					t.Fatalf("%s: replicas within rack %s differ by %d", where, r, d)
				}
			}
			if d := spreadOf(func(id int32) int { return load[id].Leaders }, sh.brokers); d > 4 {
				t.Fatalf("%s: preferred leaderships over the cluster differ by %d", where, d)
			}
		}
	}
}

// Growing a topic (CreatePartitions) balances the new partitions against
// the existing ones: the topic's replicas stay within one per broker, its
// preferred leaderships within two (replica balance comes first, so the
// new partitions cannot always include the brokers that lead least).
func TestPlaceGrowProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for run := range 500 {
		n := 2 + rng.IntN(9)
		var brokers []Broker
		for i := range n {
			brokers = append(brokers, Broker{ID: int32(i + 1)})
		}
		rf := 1 + rng.IntN(min(n, 3))
		first, err := Place(Request{Brokers: brokers, Partitions: 1 + rng.IntN(8), ReplicationFactor: rf})
		if err != nil {
			t.Fatal(err)
		}
		load := LoadOf([]coord.TopicMeta{topicOf(first)})
		more, err := Place(Request{Brokers: brokers, Load: load, Existing: first, Partitions: 1 + rng.IntN(8), ReplicationFactor: rf})
		if err != nil {
			t.Fatal(err)
		}
		all := append(slices.Clone(first), more...)
		tl := LoadOf([]coord.TopicMeta{topicOf(all)})
		if d := spreadOf(func(id int32) int { return tl[id].Replicas }, brokers); d > 1 {
			t.Fatalf("run %d: grown topic replicas differ by %d: %v + %v", run, d, first, more)
		}
		if d := spreadOf(func(id int32) int { return tl[id].Leaders }, brokers); d > 2 {
			t.Fatalf("run %d: grown topic leaders differ by %d: %v + %v", run, d, first, more)
		}
	}
}

func topicOf(lists [][]int32) coord.TopicMeta {
	t := coord.TopicMeta{Name: "t"}
	for i, l := range lists {
		t.Partitions = append(t.Partitions, coord.PartitionMeta{Partition: int32(i), Replicas: l})
	}
	return t
}
