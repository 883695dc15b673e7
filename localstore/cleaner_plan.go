package localstore

// The log cleaner's decisions, as pure functions of segment metadata and a
// clock: no I/O, no locks, so they are unit tested without files or sleeps
// (the etcd-raft shape STYLE.md asks for). cleaner.go gathers the metadata
// and does the I/O.

import (
	"fmt"
	"math"
	"time"
)

// CleanerConfig holds one topic's compaction settings, by Kafka's names.
// Zero fields take Kafka's defaults (EnsureDefaults).
type CleanerConfig struct {
	// DeleteRetention is delete.retention.ms: how long a tombstone (a record
	// with a null value) stays readable so that consumers reading from the
	// start see the delete. Default 1 day; zero takes the default, so
	// Kafka's 0 (drop at the first pass) is written as any negative value.
	// See tombstoneExpired for what Strata measures it from.
	DeleteRetention time.Duration
	// MinCleanableDirtyRatio is min.cleanable.dirty.ratio: clean only when
	// dirty bytes / (clean + dirty bytes) reaches it. Default 0.5. Zero
	// takes the default, so Kafka's 0 ("clean whenever anything is dirty")
	// is written as any negative value.
	MinCleanableDirtyRatio float64
	// MinCompactionLag is min.compaction.lag.ms: a segment holding any
	// record newer than this is not compacted yet. Default 0.
	MinCompactionLag time.Duration
	// MaxCompactionLag is max.compaction.lag.ms (KIP-354): when the oldest
	// dirty record is older than this, clean whatever the dirty ratio.
	// Default (and 0): never forces.
	MaxCompactionLag time.Duration
	// KeyMapBytes bounds the memory of one pass's key map, like Kafka's
	// log.cleaner.dedupe.buffer.size (default 128 MiB). The map stops
	// growing at the first segment boundary past the bound; the rest of
	// the dirty section waits for the next pass.
	KeyMapBytes int64
}

// EnsureDefaults fills zero fields with Kafka's defaults.
func (c *CleanerConfig) EnsureDefaults() {
	if c.DeleteRetention == 0 {
		c.DeleteRetention = 24 * time.Hour
	}
	if c.MinCleanableDirtyRatio == 0 {
		c.MinCleanableDirtyRatio = 0.5
	}
	if c.MaxCompactionLag == 0 {
		c.MaxCompactionLag = math.MaxInt64
	}
	if c.KeyMapBytes == 0 {
		c.KeyMapBytes = 128 << 20
	}
}

// Validate reports settings the cleaner cannot honour.
func (c CleanerConfig) Validate() error {
	switch {
	case c.MinCleanableDirtyRatio > 1:
		return fmt.Errorf("localstore: invalid cleaner config: min.cleanable.dirty.ratio %g above 1", c.MinCleanableDirtyRatio)
	case c.MinCompactionLag < 0:
		return fmt.Errorf("localstore: invalid cleaner config: min.compaction.lag.ms %v is negative", c.MinCompactionLag)
	case c.MaxCompactionLag < c.MinCompactionLag:
		return fmt.Errorf("localstore: invalid cleaner config: max.compaction.lag.ms %v below min.compaction.lag.ms %v", c.MaxCompactionLag, c.MinCompactionLag)
	case c.KeyMapBytes < 0:
		return fmt.Errorf("localstore: invalid cleaner config: key map bytes %d is negative", c.KeyMapBytes)
	}
	return nil
}

// CleanableSegment is what the planner knows about one sealed segment.
type CleanableSegment struct {
	Base, Next int64 // offsets [Base, Next)
	Size       int64
	// FirstTimestamp is the first batch's max timestamp (Kafka's estimate of
	// a segment's earliest timestamp for max.compaction.lag.ms), -1 if none.
	FirstTimestamp int64
	// MaxTimestamp is the largest batch max timestamp, -1 if none.
	MaxTimestamp int64
	// LastModified is the .log's modification time, the fallback when the
	// segment carries no timestamps.
	LastModified time.Time
}

// ageReference is the time a segment's records count as written: its
// largest timestamp, or its modification time when it has none.
func (s CleanableSegment) ageReference() time.Time {
	if s.MaxTimestamp >= 0 {
		return time.UnixMilli(s.MaxTimestamp)
	}
	return s.LastModified
}

// CleanPlan is the planner's answer for one log.
type CleanPlan struct {
	Clean  bool
	Reason string // why it cleans or does not, for logs and tests
	// FirstDirty is where the dirty section starts (the checkpoint, clamped
	// to the log); FirstUncleanable is where it ends: the active segment,
	// the high watermark, or the first segment younger than
	// min.compaction.lag.ms, whichever comes first.
	FirstDirty, FirstUncleanable int64
	CleanBytes, DirtyBytes       int64
	DirtyRatio                   float64
	// ForcedByMaxLag is set when max.compaction.lag.ms forced the pass.
	ForcedByMaxLag bool
}

// PlanClean decides whether to clean a log, as Kafka's LogCleanerManager
// (grabFilthiestCompactedLog / cleanableOffsets) does. segs are the sealed
// segments in offset order (never the active one); checkpoint is the
// stored first dirty offset (-1 if none); maxOffset is the highest offset the
// cleaner may look at, exclusive (the high watermark: nothing a follower
// might still truncate is compacted).
//
// The dirty section is [FirstDirty, FirstUncleanable) at segment
// granularity: a segment is clean when it ends at or before FirstDirty,
// dirty when it starts before FirstUncleanable. Kafka's ratio is dirty bytes
// over clean plus dirty bytes.
func PlanClean(segs []CleanableSegment, logStart, checkpoint, maxOffset int64, now time.Time, cfg CleanerConfig) CleanPlan {
	cfg.EnsureDefaults()
	var p CleanPlan
	if len(segs) == 0 {
		p.Reason = "no sealed segments"
		return p
	}
	first := segs[0].Base
	end := segs[len(segs)-1].Next
	// Kafka resets a checkpoint below the log start offset or beyond the
	// log end (after truncation) to the log start.
	p.FirstDirty = checkpoint
	if p.FirstDirty < logStart || p.FirstDirty < first || p.FirstDirty > end {
		p.FirstDirty = max(logStart, first)
	}
	p.FirstUncleanable = min(end, maxOffset)
	lagHorizon := now.Add(-cfg.MinCompactionLag)
	for _, s := range segs {
		if s.Next > p.FirstUncleanable {
			// Not wholly below the high watermark.
			p.FirstUncleanable = min(p.FirstUncleanable, s.Base)
			break
		}
		if s.Next > p.FirstDirty && cfg.MinCompactionLag > 0 && s.ageReference().After(lagHorizon) {
			p.FirstUncleanable = s.Base
			break
		}
	}
	var firstDirtySeg *CleanableSegment
	for i := range segs {
		s := &segs[i]
		switch {
		case s.Next <= p.FirstDirty:
			if s.Next > logStart {
				p.CleanBytes += s.Size
			}
		case s.Base < p.FirstUncleanable:
			p.DirtyBytes += s.Size
			if firstDirtySeg == nil {
				firstDirtySeg = s
			}
		}
	}
	if p.FirstUncleanable <= p.FirstDirty || firstDirtySeg == nil {
		p.Reason = "nothing dirty below the first uncleanable offset"
		return p
	}
	if total := p.CleanBytes + p.DirtyBytes; total > 0 {
		p.DirtyRatio = float64(p.DirtyBytes) / float64(total)
	}
	if cfg.MaxCompactionLag != math.MaxInt64 {
		ts := firstDirtySeg.FirstTimestamp
		earliest := firstDirtySeg.LastModified
		if ts >= 0 {
			earliest = time.UnixMilli(ts)
		}
		if now.Sub(earliest) > cfg.MaxCompactionLag {
			p.Clean, p.ForcedByMaxLag = true, true
			p.Reason = "max.compaction.lag.ms exceeded"
			return p
		}
	}
	if p.DirtyRatio < cfg.MinCleanableDirtyRatio || p.DirtyBytes == 0 {
		p.Reason = fmt.Sprintf("dirty ratio %.3f below min.cleanable.dirty.ratio %.3f", p.DirtyRatio, cfg.MinCleanableDirtyRatio)
		return p
	}
	p.Clean = true
	p.Reason = fmt.Sprintf("dirty ratio %.3f", p.DirtyRatio)
	return p
}

// tombstoneExpired reports whether tombstones in a batch whose max
// timestamp is batchMaxTs, in segment s, may be dropped: the batch is older
// than delete.retention.ms.
//
// Where Strata differs from Kafka: Kafka before 3.1 measured from the
// modification time of the last segment already cleaned (the "delete
// horizon"), and KIP-534 (3.1+) stamps each batch with the time it was first
// cleaned. Strata measures from the batch's max timestamp (falling back to
// the segment's largest timestamp, then its modification time, when the
// batch has none), compared with the log's clock (Config.Now). Per batch
// rather than per segment, so that merging segments never delays a
// tombstone's removal. For LogAppendTime topics that is exactly when the
// tombstone was written; for CreateTime it trusts the producer's clock,
// which message.timestamp.before.max.ms / after.max.ms bound.
func tombstoneExpired(batchMaxTs int64, s CleanableSegment, now time.Time, deleteRetention time.Duration) bool {
	ref := s.ageReference()
	if batchMaxTs >= 0 {
		ref = time.UnixMilli(batchMaxTs)
	}
	return !ref.Add(deleteRetention).After(now)
}

// groupForCleaning splits the segments to rewrite (offset order) into runs
// that are merged into one cleaned segment each, as Kafka's
// groupSegmentsBySize does: a run's input bytes stay within maxBytes
// (segment.bytes; the output is never larger than the input) and its offsets
// within int32 of its base, as the indexes require. It returns each group's
// [start, end) indexes into segs.
func groupForCleaning(segs []CleanableSegment, maxBytes int64) [][2]int {
	var groups [][2]int
	for i := 0; i < len(segs); {
		j, size := i+1, segs[i].Size
		for j < len(segs) && size+segs[j].Size <= maxBytes && segs[j].Next-1-segs[i].Base <= maxRelativeOffset {
			size += segs[j].Size
			j++
		}
		groups = append(groups, [2]int{i, j})
		i = j
	}
	return groups
}
