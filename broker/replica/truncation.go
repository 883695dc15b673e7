package replica

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// UndefinedEpoch and UndefinedOffset are Kafka's UNDEFINED_EPOCH and
// UNDEFINED_EPOCH_OFFSET: "no answer" in OffsetForLeaderEpoch responses and
// epoch lookups, and "absent" for a fetch's LastFetchedEpoch.
const (
	UndefinedEpoch  int32 = -1
	UndefinedOffset int64 = -1
)

// EpochLookup answers OffsetForLeaderEpoch from one log's leader-epoch cache
// (Kafka's LeaderEpochFileCache.endOffsetFor): the largest epoch <= epoch
// the log knows and the offset where it ended (the start of the next higher
// epoch, or the log end offset for the latest); (UndefinedEpoch,
// UndefinedOffset) when it cannot say. (*localstore.Log).EndOffsetForEpoch
// has exactly this shape.
type EpochLookup func(epoch int32) (leaderEpoch int32, endOffset int64)

// EpochEndOffset is a leader's answer about an epoch: an OffsetForLeaderEpoch
// response partition, or a Fetch response's DivergingEpoch.
type EpochEndOffset struct {
	Epoch     int32
	EndOffset int64
}

// FollowerLog is what a follower knows of its own log when it reconciles it
// with a new leader.
type FollowerLog struct {
	// LatestEpoch is the newest epoch in its leader-epoch cache,
	// UndefinedEpoch if the cache is empty.
	LatestEpoch int32
	// LogEndOffset is its log end offset.
	LogEndOffset int64
	// HighWatermark is its high watermark (checkpoint).
	HighWatermark int64
	// EndOffsetForEpoch looks up its own leader-epoch cache.
	EndOffsetForEpoch EpochLookup
}

// Truncation says what a follower does next to reconcile its log with the
// leader's (Kafka's OffsetTruncationState).
type Truncation struct {
	// Offset is where to truncate the log to (nothing to do when it is not
	// below the log end offset); fetching resumes there.
	Offset int64
	// Always truncate, even to the log end offset: like Kafka's
	// UnifiedLog.truncateTo the log must then still drop leader-epoch
	// entries that start at or after Offset (one left by an election
	// without appends would make the follower claim an epoch it has no data
	// of).
	//
	// Done: the log now matches the leader's up to Offset. When false, ask
	// the leader again about NextEpoch — an OffsetForLeaderEpoch request, or
	// a Fetch with LastFetchedEpoch = NextEpoch (the log's latest epoch once
	// truncated to Offset; reading the log's latest epoch instead is as
	// good).
	Done      bool
	NextEpoch int32
}

func (t Truncation) String() string {
	if t.Done {
		return fmt.Sprintf("truncate to %d", t.Offset)
	}
	return fmt.Sprintf("truncate to %d, then ask about epoch %d", t.Offset, t.NextEpoch)
}

// StartTruncation is a follower's first step after it learns of a new
// leader (Kafka's AbstractFetcherThread truncating state). With leader
// epochs in its log it asks the leader about its latest epoch (KIP-101),
// truncating nothing yet. With none (an empty cache: a new or wiped replica,
// or data older than epochs) it cannot, and truncates to its high watermark,
// as Kafka's truncateToHighWatermark does.
func StartTruncation(f FollowerLog) Truncation {
	if f.LatestEpoch < 0 {
		return Truncation{Offset: min(f.HighWatermark, f.LogEndOffset), Done: true}
	}
	return Truncation{Offset: f.LogEndOffset, NextEpoch: f.LatestEpoch}
}

// TruncateToEpochEnd decides the truncation after the leader answered an
// OffsetForLeaderEpoch request (Kafka's getOffsetTruncationState,
// KIP-101 and KIP-279):
//
//   - the leader knows no end offset (UndefinedOffset: it knows no epoch at
//     or below the one asked about): truncate to the high watermark;
//   - the leader gave an offset but no epoch (a pre-KIP-279 answer):
//     truncate to that offset;
//   - the follower knows the epoch the leader answered with: truncate to the
//     smaller of the two logs' ends of that epoch — everything after it
//     differs (KIP-101's rule);
//   - the follower does not know that epoch (the leader answered with a
//     lower epoch than asked, which the follower skipped): truncate to the
//     end of the follower's largest epoch below it, and ask again about that
//     epoch (KIP-279's extra round trips, which stop the divergence that
//     successive leader changes caused under KIP-101);
//   - the follower knows no epoch at or below it: truncate to the leader's
//     offset;
//   - the answer names an epoch above the follower's latest (the question
//     was about an epoch a truncation has since dropped): ask again about
//     the latest, truncating nothing (Kafka avoids this by always asking
//     about the log's current latest epoch; this keeps a stale NextEpoch
//     harmless).
//
// The offset is never above the follower's log end offset.
func TruncateToEpochEnd(f FollowerLog, leader EpochEndOffset) Truncation {
	leo := f.LogEndOffset
	switch {
	case leader.EndOffset == UndefinedOffset:
		return Truncation{Offset: min(f.HighWatermark, leo), Done: true}
	case leader.Epoch == UndefinedEpoch:
		return Truncation{Offset: min(leader.EndOffset, leo), Done: true}
	}
	if f.LatestEpoch >= 0 && leader.Epoch > f.LatestEpoch {
		// The answer is about an epoch this log no longer has: the question
		// was asked before a truncation dropped it (an epoch entry at the log
		// end that held no data goes with any truncation, Kafka's truncateTo).
		// Looking it up would find nothing and keep a divergent tail; ask
		// again about the latest epoch the log has now.
		return Truncation{Offset: leo, NextEpoch: f.LatestEpoch}
	}
	fe, fo := UndefinedEpoch, UndefinedOffset
	if f.EndOffsetForEpoch != nil {
		fe, fo = f.EndOffsetForEpoch(leader.Epoch)
	}
	switch {
	case fo == UndefinedOffset:
		return Truncation{Offset: min(leader.EndOffset, leo), Done: true}
	case fe != leader.Epoch:
		return Truncation{Offset: min(fo, leo), NextEpoch: fe}
	}
	return Truncation{Offset: min(fo, leader.EndOffset, leo), Done: true}
}

// TruncateOnDivergingEpoch decides the truncation after a Fetch response
// carried DivergingEpoch (Fetch v12+, the field KIP-595 added; Kafka's
// replica fetchers use it from IBP 2.7 on instead of a separate
// OffsetForLeaderEpoch round trip, through the same
// getOffsetTruncationState). When not Done, the next Fetch carries
// LastFetchedEpoch = NextEpoch and the leader checks again.
func TruncateOnDivergingEpoch(f FollowerLog, diverging EpochEndOffset) Truncation {
	return TruncateToEpochEnd(f, diverging)
}

// FetchCheck is the leader's verdict on a follower fetch's LastFetchedEpoch.
type FetchCheck struct {
	// Diverging: answer with DivergingEpoch{Epoch, EndOffset} and no records;
	// do not record the fetch (Leader.FollowerFetch) either.
	Diverging bool
	EpochEndOffset
}

// CheckFetchEpoch is the leader's side of a Fetch carrying LastFetchedEpoch
// (Kafka's Partition.readRecords): the follower's log ends at fetchOffset
// with a batch of lastFetchedEpoch. If the leader's log ends that epoch
// earlier, or only knows a lower epoch, the logs diverge and the follower
// gets DivergingEpoch = the leader's (largest epoch <= lastFetchedEpoch,
// its end offset) to truncate to. lastFetchedEpoch < 0 (absent, older
// fetch versions or a follower without epochs) skips the check. Errors wrap
// OFFSET_OUT_OF_RANGE: the leader cannot place the epoch, or fetchOffset is
// below its log start (whether or not the epochs diverge).
func CheckFetchEpoch(lastFetchedEpoch int32, fetchOffset, logStartOffset int64, lookup EpochLookup) (FetchCheck, error) {
	if lastFetchedEpoch < 0 {
		return FetchCheck{}, nil
	}
	le, lo := lookup(lastFetchedEpoch)
	if le == UndefinedEpoch || lo == UndefinedOffset {
		return FetchCheck{}, fmt.Errorf("replica: cannot find the end offset of last fetched epoch %d: %w",
			lastFetchedEpoch, kerr.OffsetOutOfRange)
	}
	if fetchOffset < logStartOffset {
		return FetchCheck{}, fmt.Errorf("replica: fetch offset %d is below the log start offset %d: %w",
			fetchOffset, logStartOffset, kerr.OffsetOutOfRange)
	}
	if le < lastFetchedEpoch || lo < fetchOffset {
		return FetchCheck{Diverging: true, EpochEndOffset: EpochEndOffset{Epoch: le, EndOffset: lo}}, nil
	}
	return FetchCheck{}, nil
}

// OutOfRangeReset is what a follower does after OFFSET_OUT_OF_RANGE.
type OutOfRangeReset struct {
	// FetchOffset is where to fetch from next.
	FetchOffset int64
	// Truncate: truncate the log to FetchOffset first (the leader's log ends
	// before ours).
	Truncate bool
	// StartOver: delete the whole log and start it empty at FetchOffset (the
	// leader's log starts after ours ends).
	StartOver bool
}

// ResetOutOfRange is Kafka's fetchOffsetAndTruncate: with the leader's log
// ending before the follower's (an unclean election left the follower
// ahead), truncate to the leader's end; with the leader's log starting after
// the follower's end (retention moved it while the follower was away),
// start over at the leader's start; otherwise keep the log and fetch from
// its end.
func ResetOutOfRange(followerLogEnd, leaderLogStart, leaderLogEnd int64) OutOfRangeReset {
	switch {
	case leaderLogEnd < followerLogEnd:
		return OutOfRangeReset{FetchOffset: leaderLogEnd, Truncate: true}
	case leaderLogStart > followerLogEnd:
		return OutOfRangeReset{FetchOffset: leaderLogStart, StartOver: true}
	}
	return OutOfRangeReset{FetchOffset: followerLogEnd}
}
