package placement

import "slices"

// balanceLeaders moves preferred leaderships between the replicas of the
// new partitions while that evens them out: within the topic first, then
// over the cluster without making the topic less even. A move shifts one
// leadership along a chain (partition 1's leader hands it to one of its
// replicas, which hands one of its own to one of that partition's
// replicas, ...), so brokers in between keep their counts; a chain is
// taken when its first broker leads at least two more partitions of the
// topic than its last, or one more and at least two more in the cluster.
// Each move lowers the sum of squared counts, so it ends; when no chain is
// left the assignment cannot be evened further by such moves (the
// optimality condition of semi-matchings).
func (s *placer) balanceLeaders(sets [][]int) {
	for s.moveLeadership(sets) {
	}
}

func (s *placer) moveLeadership(sets [][]int) bool {
	n := len(s.brokers)
	better := func(a, b int) bool {
		dt := s.topic[a].Leaders - s.topic[b].Leaders
		dg := s.global[a].Leaders - s.global[b].Leaders
		return dt >= 2 || (dt == 1 && dg >= 2)
	}
	via := make([]int, n) // partition through which a broker was reached
	for a := range n {
		for i := range via {
			via[i] = -1
		}
		seen := make([]bool, n)
		seen[a] = true
		queue := []int{a}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for p, set := range sets {
				if set[0] != x {
					continue
				}
				for _, y := range set[1:] {
					if seen[y] {
						continue
					}
					seen[y] = true
					via[y] = p
					if better(a, y) {
						s.shiftAlong(sets, via, a, y)
						return true
					}
					queue = append(queue, y)
				}
			}
		}
	}
	return false
}

// shiftAlong makes y lead the partition it was reached through, and so on
// back to a: a loses one leadership, y gains one.
func (s *placer) shiftAlong(sets [][]int, via []int, a, y int) {
	s.topic[a].Leaders--
	s.global[a].Leaders--
	s.topic[y].Leaders++
	s.global[y].Leaders++
	for y != a {
		set := sets[via[y]]
		x := set[0]
		k := slices.Index(set, y)
		set[0], set[k] = y, x
		y = x
	}
}

// placer is the working state of one Place call; brokers are referred to
// by their index in the id-sorted list, racks by a dense index.
type placer struct {
	brokers    []Broker
	global     []Load // over all topics, including what this call placed
	topic      []Load // this topic, including Existing
	rackOf     []int
	rackSize   []int
	rackTopic  []int // this topic's replicas per rack
	rackGlobal []int // all replicas per rack
	rackUsed   []int // replicas per rack in the partition being placed
}

func (s *placer) addReplica(i int) {
	s.topic[i].Replicas++
	s.global[i].Replicas++
	s.rackTopic[s.rackOf[i]]++
	s.rackGlobal[s.rackOf[i]]++
}

// partition chooses one replica set (broker indexes, leader first); rot is
// the tie-break rotation.
func (s *placer) partition(rf, rot int) []int {
	n := len(s.brokers)
	order := func(i int) int { return (i - rot + n) % n }
	clear(s.rackUsed)
	chosen := make([]int, 0, rf)
	for range rf {
		best := -1
		for i := range s.brokers {
			if slices.Contains(chosen, i) {
				continue
			}
			if best < 0 || s.replicaLess(i, best, order) {
				best = i
			}
		}
		chosen = append(chosen, best)
		s.rackUsed[s.rackOf[best]]++
	}
	lead := 0
	for j := 1; j < len(chosen); j++ {
		if s.leaderLess(chosen[j], chosen[lead], order) {
			lead = j
		}
	}
	chosen[0], chosen[lead] = chosen[lead], chosen[0]
	for _, i := range chosen {
		s.addReplica(i)
	}
	s.topic[chosen[0]].Leaders++
	s.global[chosen[0]].Leaders++
	return chosen
}

func (s *placer) replicaLess(a, b int, order func(int) int) bool {
	ra, rb := s.rackOf[a], s.rackOf[b]
	if x, y := s.rackUsed[ra], s.rackUsed[rb]; x != y {
		return x < y
	}
	if c := s.rackCmp(ra, rb, s.rackTopic); c != 0 {
		return c < 0
	}
	if x, y := s.topic[a].Replicas, s.topic[b].Replicas; x != y {
		return x < y
	}
	if c := s.rackCmp(ra, rb, s.rackGlobal); c != 0 {
		return c < 0
	}
	if x, y := s.global[a].Replicas, s.global[b].Replicas; x != y {
		return x < y
	}
	return order(a) < order(b)
}

// rackCmp compares two racks' load per broker (sign of la/na - lb/nb).
func (s *placer) rackCmp(ra, rb int, load []int) int {
	if ra == rb {
		return 0
	}
	return load[ra]*s.rackSize[rb] - load[rb]*s.rackSize[ra]
}

func (s *placer) leaderLess(a, b int, order func(int) int) bool {
	if x, y := s.topic[a].Leaders, s.topic[b].Leaders; x != y {
		return x < y
	}
	if x, y := s.global[a].Leaders, s.global[b].Leaders; x != y {
		return x < y
	}
	return order(a) < order(b)
}
