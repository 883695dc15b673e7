package localstore

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
)

// offsetEntrySize is the size of one .index entry: int32 offset relative to
// the segment's base offset, int32 byte position in the .log. This is Kafka's
// OffsetIndex format, so Kafka's DumpLogSegments can read our files.
const offsetEntrySize = 8

// offsetEntry is one sparse offset index entry. Like Kafka, the offset is the
// last offset of the batch that starts at pos, so every batch at or after pos
// ends at or after the offset.
type offsetEntry struct {
	rel int32 // offset - segment base
	pos int32 // byte position of the batch in the .log
}

// OffsetIndexEntry is a decoded offset index entry with an absolute offset,
// for dump tools.
type OffsetIndexEntry struct {
	Offset   int64
	Position int64
}

// decodeOffsetIndex parses .index bytes and checks Kafka's invariants:
// whole entries, strictly increasing offsets and positions, offsets that fit
// the segment (below maxRel, if maxRel >= 0) and positions inside the .log
// (below logSize, if logSize >= 0).
func decodeOffsetIndex(b []byte, maxRel int64, logSize int64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("%w: offset index size %d is not a multiple of %d", ErrCorruption, len(b), offsetEntrySize)
	}
	entries := make([]offsetEntry, 0, len(b)/offsetEntrySize)
	for i := 0; i < len(b); i += offsetEntrySize {
		e := offsetEntry{
			rel: int32(binary.BigEndian.Uint32(b[i:])),
			pos: int32(binary.BigEndian.Uint32(b[i+4:])),
		}
		switch {
		case e.rel < 0 || e.pos < 0:
			return nil, fmt.Errorf("%w: offset index entry %d is negative (%d, %d)", ErrCorruption, i/offsetEntrySize, e.rel, e.pos)
		case maxRel >= 0 && int64(e.rel) >= maxRel:
			return nil, fmt.Errorf("%w: offset index entry %d offset %d beyond segment end", ErrCorruption, i/offsetEntrySize, e.rel)
		case logSize >= 0 && int64(e.pos) >= logSize:
			return nil, fmt.Errorf("%w: offset index entry %d position %d beyond log size %d", ErrCorruption, i/offsetEntrySize, e.pos, logSize)
		}
		if n := len(entries); n > 0 && (e.rel <= entries[n-1].rel || e.pos <= entries[n-1].pos) {
			return nil, fmt.Errorf("%w: offset index entry %d not increasing", ErrCorruption, i/offsetEntrySize)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// appendOffsetEntries encodes entries onto dst.
func appendOffsetEntries(dst []byte, entries []offsetEntry) []byte {
	for _, e := range entries {
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.rel))
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.pos))
	}
	return dst
}

// lookupOffset returns the position to start scanning from to find rel: the
// position of the largest entry whose offset is <= rel, or 0. This is Kafka's
// OffsetIndex.lookup.
func lookupOffset(entries []offsetEntry, rel int64) int64 {
	i := sort.Search(len(entries), func(i int) bool { return int64(entries[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(entries[i-1].pos)
}

// ReadOffsetIndexFile reads and checks a .index file for dump tools.
// Corruption (a partial entry, non-increasing entries) is reported as an
// error wrapping ErrCorruption.
func ReadOffsetIndexFile(path string, baseOffset int64) ([]OffsetIndexEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("localstore: read offset index: %w", err)
	}
	entries, err := decodeOffsetIndex(b, -1, -1)
	if err != nil {
		return nil, fmt.Errorf("localstore: %s: %w", path, err)
	}
	out := make([]OffsetIndexEntry, len(entries))
	for i, e := range entries {
		out[i] = OffsetIndexEntry{Offset: baseOffset + int64(e.rel), Position: int64(e.pos)}
	}
	return out, nil
}
