package broker_test

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// batchSpec describes a RecordBatch v2 built by hand for raw-protocol tests.
type batchSpec struct {
	values        [][]byte
	keys          [][]byte // keys[i] is record i's key; nil (or short) = a null key
	timestamp     int64    // first record's timestamp
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	transactional bool // KIP-98's attribute bit (0x10)
}

// makeBatch encodes an uncompressed RecordBatch v2 with kmsg and a correct CRC.
func makeBatch(s batchSpec) []byte {
	if s.producerID == 0 {
		s.producerID = -1
		s.producerEpoch = -1
		s.baseSequence = -1
	}
	var recs []byte
	for i, v := range s.values {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = v
		if i < len(s.keys) {
			r.Key = s.keys[i]
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // everything after the 1-byte varint 0
		body := r.AppendTo(nil)
		recs = append(recs, body...)
	}
	rb := kmsg.NewRecordBatch()
	rb.Magic = 2
	rb.LastOffsetDelta = int32(len(s.values) - 1)
	rb.FirstTimestamp = s.timestamp
	rb.MaxTimestamp = s.timestamp
	rb.ProducerID = s.producerID
	rb.ProducerEpoch = s.producerEpoch
	rb.FirstSequence = s.baseSequence
	rb.NumRecords = int32(len(s.values))
	rb.Records = recs
	if s.transactional {
		rb.Attributes |= 0x10
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func crcC(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
