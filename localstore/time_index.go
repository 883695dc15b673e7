package localstore

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
)

// timeEntrySize is the size of one .timeindex entry: int64 largest timestamp
// seen so far in the segment, int32 relative offset of the batch that carried
// it. This is Kafka's TimeIndex format (KIP-33).
const timeEntrySize = 12

// timeEntry is one sparse time index entry.
type timeEntry struct {
	ts  int64
	rel int32
}

// TimeIndexEntry is a decoded time index entry with an absolute offset, for
// dump tools.
type TimeIndexEntry struct {
	Timestamp int64
	Offset    int64
}

// decodeTimeIndex parses .timeindex bytes. Kafka only appends an entry when
// the maximum timestamp grew, so timestamps and offsets never decrease; an
// index that violates that is corrupt. Offsets must be below maxRel when
// maxRel >= 0.
func decodeTimeIndex(b []byte, maxRel int64) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("%w: time index size %d is not a multiple of %d", ErrCorruption, len(b), timeEntrySize)
	}
	entries := make([]timeEntry, 0, len(b)/timeEntrySize)
	for i := 0; i < len(b); i += timeEntrySize {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i:])),
			rel: int32(binary.BigEndian.Uint32(b[i+8:])),
		}
		switch {
		case e.rel < 0:
			return nil, fmt.Errorf("%w: time index entry %d has negative offset %d", ErrCorruption, i/timeEntrySize, e.rel)
		case maxRel >= 0 && int64(e.rel) >= maxRel:
			return nil, fmt.Errorf("%w: time index entry %d offset %d beyond segment end", ErrCorruption, i/timeEntrySize, e.rel)
		}
		if n := len(entries); n > 0 && (e.ts < entries[n-1].ts || e.rel < entries[n-1].rel) {
			return nil, fmt.Errorf("%w: time index entry %d not increasing", ErrCorruption, i/timeEntrySize)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// appendTimeEntries encodes entries onto dst.
func appendTimeEntries(dst []byte, entries []timeEntry) []byte {
	for _, e := range entries {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.rel))
	}
	return dst
}

// lookupTime returns the relative offset to start scanning from to find the
// first batch with maxTimestamp >= ts. Every batch at or before the offset of
// an entry with timestamp < ts has a smaller max timestamp, so the largest
// such entry is a safe starting point; with none, scan from the start (-1).
func lookupTime(entries []timeEntry, ts int64) int64 {
	i := sort.Search(len(entries), func(i int) bool { return entries[i].ts >= ts })
	if i == 0 {
		return -1
	}
	return int64(entries[i-1].rel)
}

// ReadTimeIndexFile reads and checks a .timeindex file for dump tools.
func ReadTimeIndexFile(path string, baseOffset int64) ([]TimeIndexEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("localstore: read time index: %w", err)
	}
	entries, err := decodeTimeIndex(b, -1)
	if err != nil {
		return nil, fmt.Errorf("localstore: %s: %w", path, err)
	}
	out := make([]TimeIndexEntry, len(entries))
	for i, e := range entries {
		out[i] = TimeIndexEntry{Timestamp: e.ts, Offset: baseOffset + int64(e.rel)}
	}
	return out, nil
}
