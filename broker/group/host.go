package group

import (
	"context"
	"errors"
)

// OffsetsTopic is Kafka's internal topic holding group metadata and
// committed offsets.
const OffsetsTopic = "__consumer_offsets"

// OffsetsTopicConfigs are the topic configs __consumer_offsets is created
// with, as Kafka's GroupMetadataManager.offsetsTopicConfigs: compacted, so
// only the newest record per key survives, with Kafka's
// offsets.topic.segment.bytes default (100 MiB) so the cleaner compacts
// committed offsets early.
func OffsetsTopicConfigs() map[string]string {
	return map[string]string{
		"cleanup.policy": "compact",
		"segment.bytes":  "104857600",
	}
}

// ErrNotLeader is what a Log returns (wrapped) when this broker no longer
// leads the partition or the partition is closing. The coordinator answers
// NOT_COORDINATOR for the write, as Kafka's GroupMetadataManager maps
// NOT_LEADER_OR_FOLLOWER, so clients look the coordinator up again.
var ErrNotLeader = errors.New("group: not the leader of the __consumer_offsets partition")

// Host is what the coordinator needs from the broker. Its methods are called
// with no coordinator or group lock held, and may call Elected or Resigned.
type Host interface {
	// OffsetsPartitions is the partition count of __consumer_offsets,
	// creating the topic on first need (OffsetsTopicConfigs,
	// offsets.topic.num.partitions) as Kafka does when a client first looks
	// for a group coordinator. The count of an existing topic wins over any
	// setting, so records are always found where they were written. When a
	// created partition is led by this broker, the Host calls Elected for
	// it before returning.
	OffsetsPartitions(ctx context.Context) (int32, error)
	// OffsetsLog is partition p of __consumer_offsets if this broker leads
	// it, else nil. The coordinator asks once per Elected and uses the Log
	// until Resigned.
	OffsetsLog(p int32) Log
	// TopicPartitions is the partition count of a topic from the broker's
	// metadata, 0 for an unknown topic: OffsetCommit and OffsetDelete answer
	// UNKNOWN_TOPIC_OR_PARTITION beyond it.
	TopicPartitions(topic string) int32
	// HighWatermark is the in-memory high watermark of a topic partition
	// this broker hosts (ok false otherwise). The metrics collector reads it
	// at scrape time to compute lag; it must not do I/O.
	HighWatermark(topic string, partition int32) (hw int64, ok bool)
}

// Record is one record read back from __consumer_offsets, with what its
// batch says about transactions: TxnOffsetCommit writes offsets in
// transactional batches of the producer (ProducerID, Transactional), and the
// transaction coordinator's marker (Control, Commit; no key or value) later
// commits or aborts them (KIP-98).
type Record struct {
	Key, Value []byte
	// Offset is the record's offset in the partition.
	Offset int64
	// ProducerID is the batch's producer id, -1 for none.
	ProducerID int64
	// Transactional: the batch belongs to the producer's transaction.
	Transactional bool
	// Control: a transaction marker for ProducerID; Commit says which.
	Control bool
	Commit  bool
}

// Log is one __consumer_offsets partition this broker leads.
type Log interface {
	// Append writes batch, one uncompressed RecordBatch v2 whose base
	// offset and leader epoch the log assigns, and returns once the write
	// is committed: with acks=all semantics, in a cluster replicated to the
	// in-sync replicas. The wait is bounded by the Log (Kafka's
	// offsets.commit.timeout.ms) and by ctx, which ends when the coordinator
	// closes. An error means the batch may or may not be in the log; wrap
	// ErrNotLeader when this broker no longer leads the partition. It
	// returns the offset the batch's first record got.
	Append(ctx context.Context, batch []byte) (int64, error)
	// AppendTxn is Append for a transactional batch of TxnOffsetCommit
	// records (KIP-98): the log refuses a producer epoch older than it
	// has seen (kerr.InvalidProducerEpoch, wrapped) and a batch that would
	// start the producer's transaction without verification
	// (kerr.InvalidTxnState); verification is the caller's opaque KIP-890
	// guard, passed through from TxnOffsetCommit.
	AppendTxn(ctx context.Context, batch []byte, verification any) (int64, error)
	// StartOffset is the first offset in the log.
	StartOffset() int64
	// EndOffset is the offset the next append gets. Loading replays up to
	// it, not to the high watermark, as Kafka's loader reads to the log
	// end: a newly elected leader's high watermark can trail records the
	// previous leader had already acknowledged.
	EndOffset() int64
	// Read calls fn for every record of the data batches and for every
	// transaction marker (one Record with Control set) starting at offset from, a batch boundary, for up to a few
	// MiB and never past upTo, and returns the offset after the last whole
	// batch read. next > from with an error means a batch whose records
	// did not decode was skipped and reading can go on from next; next <=
	// from means nothing more can be read. fn must not keep the slices.
	Read(ctx context.Context, from, upTo int64, fn func(Record)) (next int64, err error)
}
