package txn

// Partition placement, as Kafka's partitionFor: Utils.abs(id.hashCode) % n.
// javaStringHashCode is a copy of the broker's (broker/group_coordinator.go,
// for groups): this package must not import broker, and the function is
// four lines.

// javaStringHashCode is Java's String.hashCode over UTF-16 code units.
func javaStringHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// partitionFor is Utils.abs(hashCode) % n, where Utils.abs maps
// Integer.MIN_VALUE to 0.
func partitionFor(id string, n int32) int32 {
	h := javaStringHashCode(id)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % n
}

// OffsetsTopic is the internal topic AddOffsetsToTxn adds a partition of.
const OffsetsTopic = "__consumer_offsets"

// StateTopic is the internal topic the coordinator's records go to.
const StateTopic = "__transaction_state"
