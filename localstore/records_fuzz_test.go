package localstore

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzWalkRecords runs the record walker — produce validation, the cleaner,
// group replay and dump-log all use it — with decompression first, on
// arbitrary records sections: it must never panic, and what it accepts must
// be exactly as many records as the header claims.
func FuzzWalkRecords(f *testing.F) {
	rec := kmsg.NewRecord()
	rec.Key, rec.Value = []byte("k"), []byte("value")
	rec.Headers = []kmsg.Header{{Key: "h", Value: []byte("v")}}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	body := rec.AppendTo(nil)
	f.Add(int8(0), int32(1), body)
	f.Add(int8(3), int32(1), []byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7})
	f.Add(int8(1), int32(2), []byte{0x1f, 0x8b, 8, 0})
	f.Add(int8(2), int32(1), append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}, 0, 0, 0, 5, 1, 2, 3))
	f.Fuzz(func(t *testing.T, codec int8, n int32, data []byte) {
		h := BatchHeader{NumRecords: n, LastOffsetDelta: n - 1}
		plain, release, err := DecompressPooled(codec&7, data)
		defer release()
		if err != nil {
			return
		}
		for _, rule := range []DeltaRule{DenseDeltas, IncreasingDeltas} {
			var count int32
			err := WalkRecords(plain, h, rule, func(r Record) bool {
				count++
				// Differential: franz-go's own decoder must read the same
				// record from the same bytes.
				var kr kmsg.Record
				if kerr := kr.ReadFrom(r.Raw); kerr != nil {
					t.Fatalf("walker accepted a record kmsg rejects: %v", kerr)
				}
				if kr.OffsetDelta != r.OffsetDelta || kr.TimestampDelta64 != r.TimestampDelta ||
					string(kr.Key) != string(r.Key) || (kr.Key == nil) != (r.Key == nil) ||
					string(kr.Value) != string(r.Value) || (kr.Value == nil) != (r.Value == nil) ||
					int(r.NumHeaders) != len(kr.Headers) {
					t.Fatalf("walker and kmsg disagree: %+v vs %+v", r, kr)
				}
				i := 0
				r.EachHeader(func(k, v []byte) {
					if string(k) != kr.Headers[i].Key || string(v) != string(kr.Headers[i].Value) {
						t.Fatalf("header %d: %q=%q vs %q=%q", i, k, v, kr.Headers[i].Key, kr.Headers[i].Value)
					}
					i++
				})
				return true
			})
			if err == nil && count != n {
				t.Fatalf("walk accepted %d records, header says %d", count, n)
			}
			if err != nil && !errors.Is(err, ErrCorruption) {
				t.Fatalf("walk error does not wrap ErrCorruption: %v", err)
			}
		}
	})
}
