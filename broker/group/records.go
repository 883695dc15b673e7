package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The __consumer_offsets record formats are Kafka's, encoded and decoded with
// kmsg only (OffsetCommitKey/Value, GroupMetadataKey/Value), so Kafka's own
// tools (kafka-console-consumer with the offsets formatter, kafka-dump-log
// --offsets-decoder) read what Strata writes.
//
//	key version 0/1  OffsetCommitKey   → value OffsetCommitValue (we write v3: leader epoch, no expiry)
//	key version 2    GroupMetadataKey  → value GroupMetadataValue (we write v3: static members, KIP-345)
//	key version ≥3   KIP-848 and share-group records: skipped on load
//
// A nil value is a tombstone: the offset or the group is gone. Compaction
// (cleanup.policy=compact) keeps only the newest record per key.

const (
	offsetCommitKeyVersion   = 1
	offsetCommitValueVersion = 3
	groupMetadataKeyVersion  = 2
	groupMetadataValVersion  = 3
)

// committedOffset is one partition's committed position.
type committedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  int64 // ms since epoch, broker clock
	// logOffset is where the commit's record is in __consumer_offsets (set
	// on every commit and every load): a transactional commit that completes later replaces the
	// committed offset only if it was written after it (Kafka's
	// CommitRecordMetadataAndOffset.olderThan).
	logOffset int64
	// expireTime is set only by OffsetCommit v1–v4's retention time or a
	// loaded OffsetCommitValue v1; -1 means "use offsets.retention.minutes".
	expireTime int64
}

// groupRecord is one key/value pair for __consumer_offsets.
type groupRecord struct{ key, value []byte }

func offsetCommitRecord(group, topic string, partition int32, o committedOffset) groupRecord {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = offsetCommitKeyVersion, group, topic, partition
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetCommitValueVersion
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.offset, o.leaderEpoch, o.metadata, o.commitTime
	if o.expireTime >= 0 {
		// Only value v1 carries an expiry; Kafka writes v1 for commits
		// with an explicit retention time (OffsetCommit v2–v4).
		v.Version, v.ExpireTimestamp = 1, o.expireTime
	}
	return groupRecord{key: k.AppendTo(nil), value: v.AppendTo(nil)}
}

func offsetTombstone(group, topic string, partition int32) groupRecord {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = offsetCommitKeyVersion, group, topic, partition
	return groupRecord{key: k.AppendTo(nil)}
}

func groupMetadataKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = groupMetadataKeyVersion, group
	return k.AppendTo(nil)
}

func groupMetadataRecord(group string, v *kmsg.GroupMetadataValue) groupRecord {
	v.Version = groupMetadataValVersion
	return groupRecord{key: groupMetadataKey(group), value: v.AppendTo(nil)}
}

func groupTombstone(group string) groupRecord { return groupRecord{key: groupMetadataKey(group)} }

// RecordBatch v2 framing (Kafka's DefaultRecordBatch): Length counts the
// bytes after the base offset and the length field, and the CRC-32C sits
// after the partition leader epoch and magic and covers everything from the
// attributes on. The log assigns the base offset and leader epoch, which
// lie outside the CRC.
const (
	batchLengthPos      = 8             // after baseOffset
	batchLengthOverhead = 8 + 4         // baseOffset, length
	batchCRCPos         = 8 + 4 + 4 + 1 // baseOffset, length, partitionLeaderEpoch, magic
	batchCRCEnd         = batchCRCPos + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// buildGroupBatch encodes records as one uncompressed RecordBatch v2 with
// kmsg's types.
func buildGroupBatch(recs []groupRecord, nowMs int64) []byte {
	return buildBatch(recs, nowMs, -1, -1, false)
}

// attrTransactional is RecordBatch v2's transactional attribute bit.
const attrTransactional = 0x10

// buildTxnGroupBatch encodes TxnOffsetCommit records as a transactional
// batch of the producer (Kafka's storeOffsets with a producer id): no
// sequence, since the coordinator, not the producer, writes it.
func buildTxnGroupBatch(recs []groupRecord, nowMs, producerID int64, producerEpoch int16) []byte {
	return buildBatch(recs, nowMs, producerID, producerEpoch, true)
}

func buildBatch(recs []groupRecord, nowMs, producerID int64, producerEpoch int16, transactional bool) []byte {
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
		inner := rec.AppendTo(nil)
		// AppendTo writes Length first; it was 0 (one byte), so the
		// record's true length is everything after it.
		rec.Length = int32(len(inner) - 1)
		body = rec.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       nowMs,
		MaxTimestamp:         nowMs,
		ProducerID:           producerID,
		ProducerEpoch:        producerEpoch,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	if transactional {
		rb.Attributes |= attrTransactional
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[batchLengthPos:], uint32(len(b)-batchLengthOverhead))
	binary.BigEndian.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchCRCEnd:], castagnoli))
	return b
}

// groupLogEntry is one decoded __consumer_offsets record.
type groupLogEntry struct {
	group string
	// Exactly one of the following kinds is set.
	isOffset  bool
	topic     string
	partition int32
	offset    *committedOffset // nil: tombstone

	isMetadata bool
	metadata   *kmsg.GroupMetadataValue // nil: tombstone
}

var errBadGroupRecord = errors.New("group: bad __consumer_offsets record")

// decodeGroupRecord decodes one record's key and value. ok is false for keys
// we deliberately skip (KIP-848 / share-group record types).
func decodeGroupRecord(key, value []byte) (e groupLogEntry, ok bool, err error) {
	if len(key) < 2 {
		return e, false, fmt.Errorf("%w: key of %d bytes", errBadGroupRecord, len(key))
	}
	switch ver := int16(binary.BigEndian.Uint16(key)); ver {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return e, false, fmt.Errorf("%w: offset key: %v", errBadGroupRecord, err)
		}
		e = groupLogEntry{group: k.Group, isOffset: true, topic: k.Topic, partition: k.Partition}
		if value == nil {
			return e, true, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return e, false, fmt.Errorf("%w: offset value: %v", errBadGroupRecord, err)
		}
		o := committedOffset{offset: v.Offset, leaderEpoch: -1, metadata: v.Metadata, commitTime: v.CommitTimestamp, expireTime: -1}
		if v.Version >= 3 {
			o.leaderEpoch = v.LeaderEpoch
		}
		if v.Version == 1 {
			o.expireTime = v.ExpireTimestamp
		}
		e.offset = &o
		return e, true, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return e, false, fmt.Errorf("%w: group key: %v", errBadGroupRecord, err)
		}
		e = groupLogEntry{group: k.Group, isMetadata: true}
		if value == nil {
			return e, true, nil
		}
		v := new(kmsg.GroupMetadataValue)
		if err := v.ReadFrom(value); err != nil {
			return e, false, fmt.Errorf("%w: group value: %v", errBadGroupRecord, err)
		}
		e.metadata = v
		return e, true, nil
	default:
		if ver < 0 {
			return e, false, fmt.Errorf("%w: key version %d", errBadGroupRecord, ver)
		}
		return e, false, nil
	}
}
