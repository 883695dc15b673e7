package placement

import (
	"fmt"
	"slices"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Broker is a broker that may receive new replicas.
type Broker struct {
	ID int32
	// Rack is broker.rack; brokers without one form one rack together, as in
	// Kafka's StripedReplicaPlacer.
	Rack string
}

// BrokersOf turns coord's live broker list into placement candidates.
// Brokers in controlled shutdown are left out: like fenced brokers in
// Kafka, they are about to go away and get no new replicas.
func BrokersOf(live []coord.BrokerInfo) []Broker {
	out := make([]Broker, 0, len(live))
	for _, b := range live {
		if !b.ShuttingDown {
			out = append(out, Broker{ID: b.NodeID, Rack: b.Rack})
		}
	}
	return out
}

// Load is how many replicas and preferred leaderships a broker holds.
type Load struct {
	Replicas int
	// Leaders counts partitions whose first replica (preferred leader) it
	// is: that is where leadership settles after preferred-leader elections.
	Leaders int
}

// LoadOf counts every broker's replicas and preferred leaderships over all
// partitions of topics (the cluster's whole metadata, including the topic
// being grown).
func LoadOf(topics []coord.TopicMeta) map[int32]Load {
	load := map[int32]Load{}
	for _, t := range topics {
		for _, p := range t.Partitions {
			for i, id := range p.Replicas {
				l := load[id]
				l.Replicas++
				if i == 0 {
					l.Leaders++
				}
				load[id] = l
			}
		}
	}
	return load
}

// Request asks for the replica lists of new partitions of one topic.
type Request struct {
	// Brokers are the brokers that may receive replicas (BrokersOf).
	Brokers []Broker
	// Load is every broker's current load over all topics (LoadOf),
	// including Existing; brokers missing from it hold nothing.
	Load map[int32]Load
	// Partitions is how many new partitions to place.
	Partitions int
	// ReplicationFactor is replicas per partition.
	ReplicationFactor int
	// Existing are the replica lists of the topic's current partitions, when
	// it grows (CreatePartitions): new partitions balance against them.
	Existing [][]int32
	// Offset rotates the order in which equally loaded brokers are taken,
	// in place of Kafka's random start offset (e.g. a hash of the topic
	// name): the result is a function of the request alone.
	Offset uint64
}

// Place returns one replica list per new partition, first replica = the
// preferred leader. The rules, in priority order:
//
//  1. replicas of a partition are on distinct brokers (mandatory);
//  2. they spread over racks first: a partition uses as many racks as it
//     has replicas while there are racks enough, and racks evenly beyond
//     that, as far as their brokers allow (Kafka's rack-aware placement;
//     a rack with fewer brokers therefore gets more per broker, as in
//     Kafka);
//  3. replicas spread evenly within the topic (its partitions are usually
//     about equally busy) — over racks per broker, then over brokers — and
//     then over all topics (Load), so a cluster filled topic by topic stays
//     even and a newly added broker is preferred;
//  4. preferred leaderships spread evenly within the topic, then over the
//     cluster: each partition's leader is the replica with the fewest, then
//     leaderships are shifted between replicas while that evens them out
//     (placer.balanceLeaders).
//
// Remaining ties go by broker id rotated by Offset plus the partition
// index, which stripes partitions over brokers as Kafka's placers do. The
// result depends only on the request (not on the order of Brokers).
// Errors wrap kerr.InvalidReplicationFactor or kerr.InvalidPartitions.
func Place(r Request) ([][]int32, error) {
	brokers := slices.Clone(r.Brokers)
	slices.SortFunc(brokers, func(a, b Broker) int { return int(a.ID) - int(b.ID) })
	for i := 1; i < len(brokers); i++ {
		if brokers[i].ID == brokers[i-1].ID {
			return nil, fmt.Errorf("placement: broker %d listed twice", brokers[i].ID)
		}
	}
	switch {
	case r.ReplicationFactor <= 0:
		return nil, fmt.Errorf("placement: invalid replication factor %d: it must be larger than 0: %w",
			r.ReplicationFactor, kerr.InvalidReplicationFactor)
	case len(brokers) == 0:
		return nil, fmt.Errorf("placement: unable to replicate the partition %d time(s): no brokers are available: %w",
			r.ReplicationFactor, kerr.InvalidReplicationFactor)
	case r.ReplicationFactor > len(brokers):
		return nil, fmt.Errorf("placement: unable to replicate the partition %d time(s): the target replication factor of %d cannot be reached because only %d broker(s) are available: %w",
			r.ReplicationFactor, r.ReplicationFactor, len(brokers), kerr.InvalidReplicationFactor)
	case r.Partitions <= 0:
		return nil, fmt.Errorf("placement: invalid number of partitions %d: it must be larger than 0: %w",
			r.Partitions, kerr.InvalidPartitions)
	}

	n := len(brokers)
	s := placer{
		brokers: brokers,
		global:  make([]Load, n),
		topic:   make([]Load, n),
		rackOf:  make([]int, n),
	}
	index := map[int32]int{}
	racks := map[string]int{}
	for i, b := range brokers {
		index[b.ID] = i
		s.global[i] = r.Load[b.ID]
		rk, ok := racks[b.Rack]
		if !ok {
			rk = len(racks)
			racks[b.Rack] = rk
		}
		s.rackOf[i] = rk
	}
	s.rackUsed = make([]int, len(racks))
	s.rackSize = make([]int, len(racks))
	s.rackTopic = make([]int, len(racks))
	s.rackGlobal = make([]int, len(racks))
	for i := range brokers {
		s.rackSize[s.rackOf[i]]++
		s.rackGlobal[s.rackOf[i]] += s.global[i].Replicas
	}
	for _, replicas := range r.Existing {
		for j, id := range replicas {
			if i, ok := index[id]; ok {
				s.topic[i].Replicas++
				s.rackTopic[s.rackOf[i]]++
				if j == 0 {
					s.topic[i].Leaders++
				}
			}
		}
	}

	sets := make([][]int, r.Partitions)
	for p := range sets {
		rot := (r.Offset + uint64(len(r.Existing)) + uint64(p)) % uint64(n)
		sets[p] = s.partition(r.ReplicationFactor, int(rot))
	}
	s.balanceLeaders(sets)
	out := make([][]int32, len(sets))
	for p, set := range sets {
		out[p] = make([]int32, len(set))
		for j, i := range set {
			out[p][j] = brokers[i].ID
		}
	}
	return out, nil
}
