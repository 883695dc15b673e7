package localstore

import (
	"fmt"
	"strconv"
	"strings"
)

// epochEntry says: from startOffset on, batches were appended by the leader
// of epoch (KIP-101 / KIP-279 leader epoch cache).
type epochEntry struct {
	epoch       int32
	startOffset int64
}

// epochCache is Kafka's LeaderEpochFileCache without the I/O: entries with
// strictly increasing epochs and start offsets. The Log persists it with
// encodeEpochCheckpoint after every change. It is a pure value type so the
// OffsetForLeaderEpoch rules can be tested on their own.
type epochCache struct {
	entries []epochEntry
}

func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].epoch
}

// assign records that epoch starts at startOffset and reports whether the
// cache changed. As in Kafka, entries that conflict with the new one (an
// epoch >= it or a start offset >= it) are removed first, so the cache stays
// strictly increasing in both.
func (c *epochCache) assign(epoch int32, startOffset int64) bool {
	if epoch < 0 {
		return false
	}
	if n := len(c.entries); n > 0 {
		last := c.entries[n-1]
		if last.epoch == epoch && last.startOffset <= startOffset {
			return false
		}
	}
	i := len(c.entries)
	for i > 0 && (c.entries[i-1].epoch >= epoch || c.entries[i-1].startOffset >= startOffset) {
		i--
	}
	c.entries = append(c.entries[:i], epochEntry{epoch: epoch, startOffset: startOffset})
	return true
}

// truncateFromEnd removes epochs that start at or after endOffset (follower
// truncation, Kafka's truncateFromEndAsyncFlush).
func (c *epochCache) truncateFromEnd(endOffset int64) bool {
	i := len(c.entries)
	for i > 0 && c.entries[i-1].startOffset >= endOffset {
		i--
	}
	changed := i != len(c.entries)
	c.entries = c.entries[:i]
	return changed
}

// truncateFromStart drops epochs that end before startOffset and moves the
// start of the epoch that contains it up to startOffset (log start offset
// advanced; Kafka's truncateFromStartAsyncFlush).
func (c *epochCache) truncateFromStart(startOffset int64) bool {
	i := 0
	for i+1 < len(c.entries) && c.entries[i+1].startOffset <= startOffset {
		i++
	}
	if len(c.entries) == 0 {
		return false
	}
	changed := i > 0
	c.entries = append(c.entries[:0], c.entries[i:]...)
	if c.entries[0].startOffset < startOffset {
		c.entries[0].startOffset = startOffset
		changed = true
	}
	return changed
}

// endOffsetFor answers OffsetForLeaderEpoch with Kafka's rules: for the
// latest epoch, the log end offset; for an older one, the largest known
// epoch <= requested and the start offset of the next higher epoch; for an
// epoch below every entry, the requested epoch and the first entry's start;
// (-1, -1) for an empty cache or an epoch above the latest.
func (c *epochCache) endOffsetFor(requested int32, logEndOffset int64) (int32, int64) {
	if requested < 0 || len(c.entries) == 0 {
		return -1, -1
	}
	if requested == c.latest() {
		return requested, logEndOffset
	}
	higher := -1
	for i, e := range c.entries {
		if e.epoch > requested {
			higher = i
			break
		}
	}
	if higher < 0 {
		return -1, -1
	}
	if higher == 0 {
		return requested, c.entries[0].startOffset
	}
	return c.entries[higher-1].epoch, c.entries[higher].startOffset
}

// encodeEpochCheckpoint renders Kafka's leader-epoch-checkpoint text format:
// version 0, the entry count, then "epoch startOffset" lines.
func encodeEpochCheckpoint(entries []epochEntry) []byte {
	var sb strings.Builder
	sb.WriteString("0\n")
	sb.WriteString(strconv.Itoa(len(entries)))
	sb.WriteByte('\n')
	for _, e := range entries {
		sb.WriteString(strconv.FormatInt(int64(e.epoch), 10))
		sb.WriteByte(' ')
		sb.WriteString(strconv.FormatInt(e.startOffset, 10))
		sb.WriteByte('\n')
	}
	return []byte(sb.String())
}

// parseEpochCheckpoint decodes a leader-epoch-checkpoint file strictly: the
// count must match, and epochs and offsets must be non-negative and strictly
// increasing.
func parseEpochCheckpoint(b []byte) ([]epochEntry, error) {
	s := strings.TrimSuffix(string(b), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) < 2 || lines[0] != "0" {
		return nil, fmt.Errorf("%w: leader-epoch-checkpoint: bad version line", ErrCorruption)
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n < 0 || n != len(lines)-2 {
		return nil, fmt.Errorf("%w: leader-epoch-checkpoint: bad entry count %q for %d lines", ErrCorruption, lines[1], len(lines)-2)
	}
	entries := make([]epochEntry, 0, n)
	for i, line := range lines[2:] {
		a, b, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%w: leader-epoch-checkpoint: line %d: %q", ErrCorruption, i+3, line)
		}
		epoch, err1 := strconv.ParseInt(a, 10, 32)
		off, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || epoch < 0 || off < 0 {
			return nil, fmt.Errorf("%w: leader-epoch-checkpoint: line %d: %q", ErrCorruption, i+3, line)
		}
		if k := len(entries); k > 0 && (int32(epoch) <= entries[k-1].epoch || off <= entries[k-1].startOffset) {
			return nil, fmt.Errorf("%w: leader-epoch-checkpoint: line %d not increasing", ErrCorruption, i+3)
		}
		entries = append(entries, epochEntry{epoch: int32(epoch), startOffset: off})
	}
	return entries, nil
}
