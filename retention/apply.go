package retention

import (
	"context"
	"time"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/tiering"
)

// Local is a partition's local log as retention sees it. DeleteLocalBefore
// must checkpoint the new local start before it deletes files.
type Local interface {
	Segments() []localstore.SegmentInfo
	LocalLogStartOffset() int64
	DeleteLocalBefore(offset int64) error
}

// Remote is a tiered partition's remote side (tiering.Partition).
type Remote interface {
	Manifest() *tiering.Manifest
	AdvanceLogStart(ctx context.Context, start int64) (tiering.DeleteStats, error)
}

var _ Remote = (*tiering.Partition)(nil)

// FromLocal maps localstore's segment facts to a retention Segment.
func FromLocal(s localstore.SegmentInfo) Segment {
	return Segment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size,
		MaxTimestamp: s.MaxTimestamp, AppendedAt: s.LastModified, Sealed: s.Sealed}
}

// WholeLog is the whole log oldest first, remote and local, without overlap:
// the bucket's readable segments (clipped at its log start), then the local
// segments above what the bucket holds.
func WholeLog(local []localstore.SegmentInfo, m *tiering.Manifest) []Segment {
	var segs []Segment
	remoteEnd := int64(-1)
	if m != nil {
		for _, s := range m.Readable() {
			segs = append(segs, Segment{BaseOffset: max(s.BaseOffset, m.LogStartOffset), NextOffset: s.LastOffset + 1,
				Size: s.Size, MaxTimestamp: s.MaxTimestamp, AppendedAt: time.UnixMilli(s.AppendedAtMs), Sealed: true})
		}
		remoteEnd = m.EndOffset()
	}
	for _, s := range local {
		if s.BaseOffset < remoteEnd {
			continue // also in the bucket, counted there
		}
		segs = append(segs, FromLocal(s))
	}
	return segs
}

// Delete moves a partition's log start to offset in both tiers and deletes
// what lies wholly below it, in the crash-safe order: the remote log start is
// committed in the manifest (and remote objects deleted) first, then the
// local start is checkpointed and local files deleted. A crash in between
// leaves data that is unreadable and deleted again by the next pass, never
// readable data that was meant to be gone. remote is nil for an untiered
// partition. Retention and DeleteRecords share it.
func Delete(ctx context.Context, local Local, remote Remote, offset int64) error {
	if remote != nil {
		if _, err := remote.AdvanceLogStart(ctx, offset); err != nil {
			return err
		}
	}
	return local.DeleteLocalBefore(offset)
}

// Apply runs retention.ms / retention.bytes over the whole log of one
// partition: it computes Cutoff over WholeLog and, if that passes
// logStart, deletes up to it with Delete. It returns the new log start and
// whether anything moved.
func Apply(ctx context.Context, local Local, remote Remote, logStart int64, lim Limits, now time.Time) (int64, bool, error) {
	var m *tiering.Manifest
	if remote != nil {
		m = remote.Manifest()
	}
	cut := Cutoff(WholeLog(local.Segments(), m), lim, now)
	if cut <= logStart {
		return logStart, false, nil
	}
	if err := Delete(ctx, local, remote, cut); err != nil {
		return logStart, false, err
	}
	return cut, true, nil
}

// ApplyLocal runs local.retention.* for a tiered partition: local segments
// that are safely in the bucket (below the manifest's end, committed before)
// and past the local limits are deleted. It returns the new local start and
// whether anything moved.
func ApplyLocal(local Local, remote Remote, lim Limits, now time.Time) (int64, bool, error) {
	start := local.LocalLogStartOffset()
	remoteEnd := remote.Manifest().EndOffset()
	if remoteEnd < 0 {
		return start, false, nil
	}
	segs := local.Segments()
	if len(segs) == 0 {
		return start, false, nil
	}
	rs := make([]Segment, len(segs))
	for i, s := range segs {
		rs[i] = FromLocal(s)
	}
	cut := LocalCutoff(rs, lim, remoteEnd, now)
	if cut <= start {
		return start, false, nil
	}
	if err := local.DeleteLocalBefore(cut); err != nil {
		return start, false, err
	}
	return cut, true, nil
}
