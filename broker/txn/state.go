package txn

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a transactional id's state, with Kafka's ids (the value stored
// in __transaction_state) and names (what DescribeTransactions and
// ListTransactions report).
type State int8

const (
	Empty             State = 0
	Ongoing           State = 1
	PrepareCommit     State = 2
	PrepareAbort      State = 3
	CompleteCommit    State = 4
	CompleteAbort     State = 5
	Dead              State = 6 // being expired; never written
	PrepareEpochFence State = 7 // bumping the epoch to fence a producer; never written
)

// String is Kafka's name for the state.
func (s State) String() string { return kmsg.TransactionState(s).String() }

// validPrevious is Kafka's TransactionState.validPreviousStates.
func (s State) validPrevious(from State) bool {
	switch s {
	case Empty:
		return from == Empty || from == CompleteCommit || from == CompleteAbort
	case Ongoing:
		return from == Ongoing || from == Empty || from == CompleteCommit || from == CompleteAbort
	case PrepareCommit:
		return from == Ongoing
	case PrepareAbort:
		return from == Ongoing || from == PrepareEpochFence
	case CompleteCommit:
		return from == PrepareCommit
	case CompleteAbort:
		return from == PrepareAbort
	case Dead:
		return from == Empty || from == CompleteCommit || from == CompleteAbort
	case PrepareEpochFence:
		return from == Ongoing
	}
	return false
}

// expirationAllowed: only ids with no transaction in flight may expire
// (Kafka's isExpirationAllowed).
func (s State) expirationAllowed() bool {
	return s == Empty || s == CompleteCommit || s == CompleteAbort
}

// ParseState reads a state name as ListTransactions filters give it
// (case-insensitive); ok is false for unknown names.
func ParseState(name string) (State, bool) {
	s, err := kmsg.ParseTransactionState(name)
	if err != nil {
		return 0, false
	}
	return State(s), true
}

// TopicPartition names one partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Metadata is what the coordinator knows about one transactional id
// (Kafka's TransactionMetadata), as a value: callers get copies.
type Metadata struct {
	TransactionalID string
	ProducerID      int64
	// PrevProducerID is the producer id before the last rotation (epoch
	// exhaustion), -1 if none: KIP-360 lets a producer that missed the
	// rotation's response retry with it.
	PrevProducerID int64
	ProducerEpoch  int16
	// LastProducerEpoch is the epoch before the last bump by
	// InitProducerId, -1 if none: a retry of a bump that succeeded
	// (KIP-360). Kafka does not persist it; neither does Strata.
	LastProducerEpoch int16
	TimeoutMs         int32
	State             State
	Partitions        []TopicPartition // sorted
	StartTimeMs       int64            // when the first partition was added, -1 when no transaction
	LastUpdateMs      int64
}

func (m Metadata) clone() Metadata {
	m.Partitions = append([]TopicPartition(nil), m.Partitions...)
	return m
}

func (m Metadata) has(tp TopicPartition) bool {
	i := sort.Search(len(m.Partitions), func(i int) bool { return !lessTP(m.Partitions[i], tp) })
	return i < len(m.Partitions) && m.Partitions[i] == tp
}

// withPartitions returns the sorted union of m's partitions and add.
func withPartitions(cur, add []TopicPartition) []TopicPartition {
	seen := make(map[TopicPartition]bool, len(cur)+len(add))
	out := make([]TopicPartition, 0, len(cur)+len(add))
	for _, list := range [][]TopicPartition{cur, add} {
		for _, tp := range list {
			if !seen[tp] {
				seen[tp] = true
				out = append(out, tp)
			}
		}
	}
	sortTPs(out)
	return out
}

func lessTP(a, b TopicPartition) bool {
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}

func sortTPs(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool { return lessTP(tps[i], tps[j]) })
}

func subset(a, b []TopicPartition) bool {
	m := Metadata{Partitions: b}
	for _, tp := range a {
		if !m.has(tp) {
			return false
		}
	}
	return true
}

func equalTPs(a, b []TopicPartition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
