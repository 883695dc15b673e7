package localstore

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkWalkRecords walks an uncompressed section of 100 records of 1 KiB
// values with a key and no headers, as produce validation does.
//
//	go test ./localstore -run '^$' -bench WalkRecords -count 5
func BenchmarkWalkRecords(b *testing.B) {
	var plain []byte
	val := make([]byte, 1024)
	for i := 0; i < 100; i++ {
		r := kmsg.NewRecord()
		r.OffsetDelta, r.TimestampDelta64 = int32(i), int64(i)
		r.Key, r.Value = []byte("key-0001"), val
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		plain = r.AppendTo(plain)
	}
	h := BatchHeader{NumRecords: 100, LastOffsetDelta: 99}
	b.SetBytes(int64(len(plain)))
	var sum int64
	for b.Loop() {
		if err := WalkRecords(plain, h, DenseDeltas, func(r Record) bool { sum += r.TimestampDelta; return true }); err != nil {
			b.Fatal(err)
		}
	}
	_ = sum
}
