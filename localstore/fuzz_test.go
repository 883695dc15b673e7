package localstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func FuzzBatch(f *testing.F) {
	one := buildBatch(plain(3, 100))
	f.Add(one)
	f.Add(append(append([]byte(nil), one...), buildBatch(batchSpec{records: 1, producerID: 4, baseSeq: 9, valueSize: 0})...))
	f.Add(one[:BatchHeaderSize])
	f.Add(one[:len(one)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, perr := ParseBatchHeader(b)
		vh, verr := ValidateBatch(b)
		if verr == nil {
			if perr != nil || vh != h || vh.Size() != len(b) {
				t.Fatalf("ValidateBatch ok but ParseBatchHeader %v / size %d", perr, vh.Size())
			}
			parts, err := SplitBatches(b)
			if err != nil || len(parts) != 1 || !bytes.Equal(parts[0], b) {
				t.Fatalf("SplitBatches of a valid batch: %v %d", err, len(parts))
			}
			// Rewriting outside-CRC fields keeps it valid; LogAppendTime
			// recomputes the CRC.
			c := append([]byte(nil), b...)
			SetBaseOffset(c, 12345)
			SetPartitionLeaderEpoch(c, 7)
			SetLogAppendTime(c, 999)
			if h2, err := ValidateBatch(c); err != nil || h2.BaseOffset != 12345 || h2.MaxTimestamp != 999 || h2.TimestampType() != 1 {
				t.Fatalf("rewritten batch invalid: %v", err)
			}
		} else if !errors.Is(verr, ErrCorruption) {
			t.Fatalf("error does not wrap ErrCorruption: %v", verr)
		}
		parts, err := SplitBatches(b)
		if err == nil {
			total := 0
			for _, p := range parts {
				ph, err := ParseBatchHeader(p)
				if err != nil || ph.Size() != len(p) {
					t.Fatalf("split part does not parse: %v", err)
				}
				total += len(p)
			}
			if total != len(b) {
				t.Fatalf("split covers %d of %d bytes", total, len(b))
			}
		}
	})
}

func FuzzOffsetIndex(f *testing.F) {
	f.Add(appendOffsetEntries(nil, []offsetEntry{{1, 100}, {5, 900}}), int64(10), int64(1000))
	f.Add([]byte{0, 0, 0}, int64(-1), int64(-1))
	f.Add(bytes.Repeat([]byte{0xff}, 16), int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, maxRel, logSize int64) {
		entries, err := decodeOffsetIndex(b, maxRel, logSize)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		if !bytes.Equal(appendOffsetEntries(nil, entries), b) {
			t.Fatal("round trip differs")
		}
		for i := 1; i < len(entries); i++ {
			if entries[i].rel <= entries[i-1].rel || entries[i].pos <= entries[i-1].pos {
				t.Fatal("accepted non-increasing entries")
			}
		}
		_ = lookupOffset(entries, maxRel)
	})
}

func FuzzTimeIndex(f *testing.F) {
	f.Add(appendTimeEntries(nil, []timeEntry{{100, 1}, {200, 5}}), int64(10), int64(150))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, maxRel, ts int64) {
		entries, err := decodeTimeIndex(b, maxRel)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		if !bytes.Equal(appendTimeEntries(nil, entries), b) {
			t.Fatal("round trip differs")
		}
		// The scan start must come from an entry whose timestamp is below ts.
		if rel := lookupTime(entries, ts); rel >= 0 {
			ok := false
			for _, e := range entries {
				ok = ok || (int64(e.rel) == rel && e.ts < ts)
			}
			if !ok {
				t.Fatalf("lookup start %d has no entry below %d", rel, ts)
			}
		}
	})
}

func FuzzProducerSnapshot(f *testing.F) {
	t := producerTable{}
	t.update(BatchHeader{ProducerID: 1, ProducerEpoch: 2, BaseSequence: 5, LastOffsetDelta: 3, BaseOffset: 10, MaxTimestamp: 77})
	t.update(BatchHeader{ProducerID: 9, ProducerEpoch: 0, BaseSequence: -1, Attributes: attrControl})
	tx := BatchHeader{ProducerID: 4, ProducerEpoch: 1, BaseSequence: 0, BaseOffset: 20, Attributes: attrTransactional}
	t.apply(tx, nil)
	t.apply(BatchHeader{ProducerID: 1, BaseOffset: 30, Attributes: attrControl | attrTransactional}, &controlMarker{commit: true, coordinatorEpoch: 6})
	f.Add(encodeProducerSnapshot(t))
	f.Add(encodeProducerSnapshot(producerTable{}))
	f.Add(encodeV1Snapshot(t))
	f.Add([]byte("STPS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		table, err := decodeProducerSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		enc := encodeProducerSnapshot(table)
		if binary.BigEndian.Uint16(b[4:]) == snapshotVersion {
			if !bytes.Equal(enc, b) {
				t.Fatal("round trip differs")
			}
			return
		}
		// Version 1 is read, never written: it re-encodes as version 2
		// with no transaction state.
		again, err := decodeProducerSnapshot(enc)
		if err != nil || len(again) != len(table) {
			t.Fatalf("v1 → v2: %v", err)
		}
		for pid, e := range table {
			if a := again[pid]; a == nil || !equalEntries(*a, *e) || a.CurrentTxnFirstOffset != -1 || a.CoordinatorEpoch != -1 {
				t.Fatalf("v1 → v2 changed producer %d: %+v → %+v", pid, e, a)
			}
		}
	})
}

func FuzzEpochCheckpoint(f *testing.F) {
	f.Add([]byte("0\n2\n0 0\n3 100\n"))
	f.Add([]byte("0\n0\n"))
	f.Add([]byte("1\n1\n0 0\n"))
	f.Add([]byte("0\n1\n5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseEpochCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		again, err := parseEpochCheckpoint(encodeEpochCheckpoint(entries))
		if err != nil || len(again) != len(entries) {
			t.Fatalf("re-encode: %v", err)
		}
		c := epochCache{entries: entries}
		for _, e := range entries {
			c.endOffsetFor(e.epoch, 1<<40)
			c.endOffsetFor(e.epoch-1, 1<<40)
		}
	})
}

// FuzzOpenSegment feeds arbitrary bytes to recovery as a .log file: Open must
// never panic or fail on corruption, and what survives must read back.
func FuzzOpenSegment(f *testing.F) {
	a := buildBatch(plain(2, 5))
	b := buildBatch(batchSpec{records: 3, baseTs: 9, producerID: 3, baseSeq: 0, valueSize: 4})
	SetBaseOffset(b, 2)
	f.Add(append(append([]byte(nil), a...), b...))
	f.Add(append(append([]byte(nil), a...), b[:30]...))
	f.Add(a[:70])
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.log"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, recoveryConfig())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		end := l.LogEndOffset()
		for off := int64(0); off < end; {
			buf, err := l.ReadBytes(off, 1<<20, end)
			if err != nil {
				t.Fatalf("read %d: %v", off, err)
			}
			parts, err := SplitBatches(buf)
			if err != nil || len(parts) == 0 {
				t.Fatalf("split at %d: %v", off, err)
			}
			for _, p := range parts {
				h, err := ValidateBatch(p)
				if err != nil {
					t.Fatalf("recovered batch invalid: %v", err)
				}
				off = h.LastOffset() + 1
			}
		}
	})
}

// encodeV1Snapshot writes the pre-transaction snapshot format, for seeds.
func encodeV1Snapshot(t producerTable) []byte {
	b := encodeProducerSnapshot(t)
	var out []byte
	out = append(out, b[:4]...)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = append(out, b[6:snapshotHeader]...)
	rest := b[snapshotHeader : len(b)-4]
	for len(rest) > 0 {
		n := int(rest[snapshotEntryHead-1])
		out = append(out, rest[:snapshotEntryHeadV1-1]...)
		out = append(out, byte(n))
		rest = rest[snapshotEntryHead:]
		out = append(out, rest[:n*snapshotBatchSize]...)
		rest = rest[n*snapshotBatchSize:]
	}
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// FuzzTxnIndex feeds arbitrary bytes to the .txnindex decoder: errors are
// corruption, never a panic; what decodes re-encodes to the same bytes and
// obeys the rules the search relies on.
func FuzzTxnIndex(f *testing.F) {
	good := AppendTxnIndex(nil, []AbortedTxn{
		{ProducerID: 1, FirstOffset: 3, LastOffset: 10, LastStableOffset: 5},
		{ProducerID: 2, FirstOffset: 0, LastOffset: 12, LastStableOffset: 13},
	})
	f.Add(good, int64(0), int64(20))
	f.Add(good[:40], int64(0), int64(20))
	f.Add(good, int64(11), int64(20))
	f.Add([]byte{}, int64(5), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, base, next int64) {
		entries, err := DecodeTxnIndex(b, base, next)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		if !bytes.Equal(AppendTxnIndex(nil, entries), b) {
			t.Fatal("round trip differs")
		}
		prev := int64(math.MinInt64)
		for _, e := range entries {
			if e.LastOffset <= prev || e.FirstOffset > e.LastOffset || e.LastOffset < base || (next >= 0 && e.LastOffset >= next) {
				t.Fatalf("accepted %+v", e)
			}
			prev = e.LastOffset
		}
		out, _ := CollectAbortedTxns(nil, entries, base, base+10)
		for _, e := range out {
			if e.LastOffset < base || e.FirstOffset >= base+10 {
				t.Fatalf("collected %+v outside [%d, %d)", e, base, base+10)
			}
		}
	})
}

// FuzzControlBatch: arbitrary bytes as a marker never panic the decoder;
// a marker it accepts says what BuildControlBatch would have written.
func FuzzControlBatch(f *testing.F) {
	f.Add(BuildControlBatch(7, 2, 11, true, 1700000000000))
	f.Add(BuildControlBatch(1, 0, 0, false, 0))
	bad := BuildControlBatch(7, 2, 11, true, 5)
	f.Add(bad[:70])
	f.Fuzz(func(t *testing.T, b []byte) {
		commit, epoch, err := ParseControlBatch(b)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("not corruption: %v", err)
			}
			return
		}
		h, _ := ParseBatchHeader(b)
		again := BuildControlBatch(h.ProducerID, h.ProducerEpoch, epoch, commit, h.MaxTimestamp)
		c2, e2, err := ParseControlBatch(again)
		if err != nil || c2 != commit || e2 != epoch {
			t.Fatalf("rebuilt marker reads %v %d %v", c2, e2, err)
		}
	})
}
