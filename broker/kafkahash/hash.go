// Package kafkahash places keys on internal-topic partitions exactly as
// Kafka does, so Kafka's own tools find a group's or a transactional id's
// records where they expect them: the group coordinator
// (__consumer_offsets) and the transaction coordinator
// (__transaction_state) both use it.
package kafkahash

// JavaStringHashCode is Java's String.hashCode over UTF-16 code units.
func JavaStringHashCode(s string) int32 {
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

// PartitionFor is Kafka's partitionFor (GroupMetadataManager,
// TransactionStateManager): Utils.abs(key.hashCode) % n, where Utils.abs
// maps Integer.MIN_VALUE to 0.
func PartitionFor(key string, n int32) int32 {
	h := JavaStringHashCode(key)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % n
}
