package localstore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func FuzzCleanerCheckpoint(f *testing.F) {
	f.Add(encodeCleanerCheckpoint(0))
	f.Add(encodeCleanerCheckpoint(1234567))
	f.Add([]byte("0\n-1\n"))
	f.Add([]byte("1\n5\n"))
	f.Add([]byte("0\n5"))
	f.Fuzz(func(t *testing.T, b []byte) {
		off, err := decodeCleanerCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		if off < 0 {
			t.Fatalf("negative offset %d accepted", off)
		}
		again, err := decodeCleanerCheckpoint(encodeCleanerCheckpoint(off))
		if err != nil || again != off {
			t.Fatalf("round trip %d → %d %v", off, again, err)
		}
	})
}

func FuzzCleanerSwapDescriptor(f *testing.F) {
	f.Add(encodeSwapDescriptor(0, 10))
	f.Add(encodeSwapDescriptor(100, 101))
	f.Add([]byte("0\n5 5\n"))
	f.Add([]byte("0\n5\n"))
	f.Add([]byte("0\n-1 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		base, end, err := decodeSwapDescriptor(b)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		if base < 0 || end <= base {
			t.Fatalf("bad range [%d, %d) accepted", base, end)
		}
		b2, e2, err := decodeSwapDescriptor(encodeSwapDescriptor(base, end))
		if err != nil || b2 != base || e2 != end {
			t.Fatalf("round trip: %d %d %v", b2, e2, err)
		}
	})
}

// FuzzCleanerRecords feeds arbitrary batch bytes (as read from a segment
// file) to the cleaner's record decoder: it must never panic, must report
// corruption as ErrCorruption, and whatever it decodes must survive a
// rebuild with every record kept, and with every other one.
func FuzzCleanerRecords(f *testing.F) {
	lz4 := kgo.Lz4Compression()
	gz := kgo.GzipCompression()
	sn := kgo.SnappyCompression()
	plainSpec := keyed(5, rec("a", "1"), tomb("b"), kv{value: []byte("keyless")})
	lz4Spec := keyed(5, rec("a", "1"), rec("b", "2"))
	lz4Spec.codec = &lz4
	gzSpec := keyed(5, rec("x", "y"))
	gzSpec.codec = &gz
	snSpec := keyed(5, rec("s", "n"), tomb("s"))
	snSpec.codec = &sn
	for _, s := range []keyedSpec{plainSpec, lz4Spec, gzSpec, snSpec} {
		f.Add(buildKeyedBatch(f, s))
	}
	f.Add(buildBatch(plain(3, 7)))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ValidateBatch(b)
		if err != nil {
			return
		}
		recs, err := decodeRecords(b, h)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		for _, keep := range [][]cleanerRecord{recs, everyOther(recs)} {
			nb, err := rebuildBatch(b, keep)
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			nh, err := ValidateBatch(nb)
			if err != nil {
				t.Fatalf("rebuilt batch invalid: %v", err)
			}
			if nh.BaseOffset != h.BaseOffset || nh.LastOffsetDelta != h.LastOffsetDelta || nh.ProducerID != h.ProducerID ||
				nh.BaseSequence != h.BaseSequence || int(nh.NumRecords) != len(keep) {
				t.Fatalf("rebuilt header %+v from %+v", nh, h)
			}
			got, err := decodeRecords(nb, nh)
			if err != nil {
				t.Fatalf("rebuilt batch does not decode: %v", err)
			}
			if len(got) != len(keep) {
				t.Fatalf("%d records back, kept %d", len(got), len(keep))
			}
			for i := range got {
				if got[i].offset != keep[i].offset || !bytes.Equal(got[i].raw, keep[i].raw) || got[i].tombstone != keep[i].tombstone {
					t.Fatalf("record %d differs", i)
				}
			}
		}
	})
}

func everyOther(recs []cleanerRecord) []cleanerRecord {
	var out []cleanerRecord
	for i := 0; i < len(recs); i += 2 {
		out = append(out, recs[i])
	}
	return out
}
