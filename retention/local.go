package retention

import "time"

// Segment is what a retention decision needs to know about one segment.
type Segment struct {
	BaseOffset   int64
	NextOffset   int64 // exclusive end
	Size         int64
	MaxTimestamp int64     // largest record timestamp, -1 if none
	AppendedAt   time.Time // when the broker last appended to it (file time)
	Sealed       bool
}

// Limits are a retention policy: -1 means unlimited.
type Limits struct {
	Ms    int64
	Bytes int64
}

// EffectiveLocal resolves local.retention.* against retention.*: -2 means
// "same as the whole-log setting" (KIP-405). A local limit never exceeds the
// whole-log one.
func EffectiveLocal(localMs, localBytes, ms, bytes int64) Limits {
	l := Limits{Ms: localMs, Bytes: localBytes}
	if l.Ms == -2 {
		l.Ms = ms
	}
	if l.Bytes == -2 {
		l.Bytes = bytes
	}
	if ms >= 0 && (l.Ms < 0 || l.Ms > ms) {
		l.Ms = ms
	}
	if bytes >= 0 && (l.Bytes < 0 || l.Bytes > bytes) {
		l.Bytes = bytes
	}
	return l
}

// RetentionTime is the time a segment's age is measured from: its largest
// record timestamp, but never later than when the broker appended it. The
// bound defuses the future-timestamp trap: one record stamped a year ahead
// must not keep its segment — and everything after it — for a year.
func RetentionTime(s Segment) time.Time {
	t := time.UnixMilli(s.MaxTimestamp)
	if s.MaxTimestamp < 0 || (!s.AppendedAt.IsZero() && s.AppendedAt.Before(t)) {
		t = s.AppendedAt
	}
	return t
}

// LocalCutoff returns the offset below which local segments of a tiered
// partition may be deleted: oldest first, only sealed segments wholly copied
// to remote storage (NextOffset <= remoteEnd), while a segment is older than
// lim.Ms or the local log is larger than lim.Bytes. It returns
// segs[0].BaseOffset (delete nothing) when none qualifies. The active segment
// is never deleted.
func LocalCutoff(segs []Segment, lim Limits, remoteEnd int64, now time.Time) int64 {
	return cutoff(segs, lim, now, func(s Segment) bool { return s.Sealed && s.NextOffset <= remoteEnd })
}

// Cutoff returns the offset below which the whole log (remote and local
// segments, oldest first, not overlapping) may be deleted by retention.ms and
// retention.bytes: delete the oldest segments while one is older than lim.Ms
// (by RetentionTime) or the log is larger than lim.Bytes. The active (last,
// unsealed) segment is never deleted. It returns segs[0].BaseOffset when
// nothing qualifies, 0 for an empty log.
func Cutoff(segs []Segment, lim Limits, now time.Time) int64 {
	return cutoff(segs, lim, now, func(s Segment) bool { return s.Sealed })
}

// cutoff walks segments oldest first, deleting while deletable(s) holds and
// s is past the time limit or the log is past the size limit.
func cutoff(segs []Segment, lim Limits, now time.Time, deletable func(Segment) bool) int64 {
	if len(segs) == 0 {
		return 0
	}
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	cut := segs[0].BaseOffset
	for _, s := range segs {
		if !deletable(s) {
			break
		}
		byTime := lim.Ms >= 0 && now.Sub(RetentionTime(s)) > time.Duration(lim.Ms)*time.Millisecond
		bySize := lim.Bytes >= 0 && total > lim.Bytes
		if !byTime && !bySize {
			break
		}
		total -= s.Size
		cut = s.NextOffset
	}
	return cut
}
