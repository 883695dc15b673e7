package replica

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestStartTruncation(t *testing.T) {
	withEpochs := build([2]int{0, 3}, [2]int{2, 2})
	withEpochs.hw = 2
	if got := StartTruncation(withEpochs.view()); got.Done || got.NextEpoch != 2 || got.Offset != 5 {
		t.Fatalf("with epochs: %v", got)
	}
	// No epochs: truncate to the high watermark, nothing to ask.
	noEpochs := FollowerLog{LatestEpoch: UndefinedEpoch, LogEndOffset: 9, HighWatermark: 4}
	if got := StartTruncation(noEpochs); !got.Done || got.Offset != 4 {
		t.Fatalf("without epochs: %v", got)
	}
}

func TestTruncateToEpochEnd(t *testing.T) {
	// Follower: epoch 0 at [0,3), epoch 2 at [3,5), epoch 4 at [5,8); HW 2.
	f := build([2]int{0, 3}, [2]int{2, 2}, [2]int{4, 3})
	f.hw = 2
	tests := []struct {
		name   string
		leader EpochEndOffset
		want   Truncation
	}{
		{"leader agrees up to our end", EpochEndOffset{4, 8}, Truncation{Offset: 8, Done: true}},
		{"leader's epoch 4 ended earlier", EpochEndOffset{4, 6}, Truncation{Offset: 6, Done: true}},
		{"leader's epoch 4 runs past our end", EpochEndOffset{4, 20}, Truncation{Offset: 8, Done: true}},
		{"leader answers epoch 2 (it has no 4): our epoch 2 ends at 5", EpochEndOffset{2, 9}, Truncation{Offset: 5, Done: true}},
		{"leader's epoch 2 ended at 4", EpochEndOffset{2, 4}, Truncation{Offset: 4, Done: true}},
		{"leader answers epoch 3 which we skipped: truncate to our epoch 2's end, ask about 2", EpochEndOffset{3, 6},
			Truncation{Offset: 5, NextEpoch: 2}},
		{"leader answers epoch 1 which we skipped: ask about 0", EpochEndOffset{1, 4}, Truncation{Offset: 3, NextEpoch: 0}},
		{"answer about an epoch above ours (asked before a truncation): ask again about our latest", EpochEndOffset{6, 9},
			Truncation{Offset: 8, NextEpoch: 4}},
		{"leader knows no end offset: high watermark", EpochEndOffset{UndefinedEpoch, UndefinedOffset}, Truncation{Offset: 2, Done: true}},
		{"undefined offset with an epoch: high watermark", EpochEndOffset{3, UndefinedOffset}, Truncation{Offset: 2, Done: true}},
		{"offset without epoch (old protocol): leader's offset", EpochEndOffset{UndefinedEpoch, 6}, Truncation{Offset: 6, Done: true}},
		{"offset without epoch beyond our end", EpochEndOffset{UndefinedEpoch, 60}, Truncation{Offset: 8, Done: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := TruncateToEpochEnd(f.view(), tc.leader)
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if div := TruncateOnDivergingEpoch(f.view(), tc.leader); div != got {
				t.Fatalf("diverging-epoch path %v differs from %v", div, got)
			}
		})
	}
	// A follower that knows no epoch at or below the answer: leader's offset.
	late := build([2]int{5, 4}) // epochs start at 5 (older data deleted)
	late.epochs = []simEpoch{{5, 0}}
	if got := TruncateToEpochEnd(late.view(), EpochEndOffset{3, 2}); got != (Truncation{Offset: 0, Done: true}) {
		// endOffsetFor(3) on a cache starting at epoch 5 answers (3, 0):
		// Kafka's "epoch below every entry" rule: truncate to min(0, 2).
		t.Fatalf("below every epoch: %v", got)
	}
	nolookup := FollowerLog{LatestEpoch: 5, LogEndOffset: 9, HighWatermark: 1,
		EndOffsetForEpoch: func(int32) (int32, int64) { return UndefinedEpoch, UndefinedOffset }}
	if got := TruncateToEpochEnd(nolookup, EpochEndOffset{3, 4}); got != (Truncation{Offset: 4, Done: true}) {
		t.Fatalf("follower cache cannot answer: %v", got)
	}
}

// reconcile runs a follower's truncation against leader with
// OffsetForLeaderEpoch round trips until done, and returns how many.
// A caller may or may not truncate to the log end before the first
// question (truncateFirst); both must work.
func reconcile(t *testing.T, f, leader *simLog, truncateFirst bool) int {
	t.Helper()
	tr := StartTruncation(f.view())
	if tr.Done || truncateFirst {
		f.truncate(tr.Offset)
	}
	rounds := 0
	for !tr.Done {
		rounds++
		if rounds > 100 {
			t.Fatalf("truncation does not converge: %v", tr)
		}
		e, o := leader.endOffsetFor(tr.NextEpoch)
		tr = TruncateToEpochEnd(f.view(), EpochEndOffset{e, o})
		f.truncate(tr.Offset)
	}
	return rounds
}

// reconcileByFetch does the same with Fetch's LastFetchedEpoch /
// DivergingEpoch, the leader deciding with CheckFetchEpoch.
func reconcileByFetch(t *testing.T, f, leader *simLog) int {
	t.Helper()
	if f.latestEpoch() < 0 {
		f.truncate(StartTruncation(f.view()).Offset)
	}
	for rounds := 1; ; rounds++ {
		if rounds > 100 {
			t.Fatal("fetch truncation does not converge")
		}
		chk, err := CheckFetchEpoch(f.latestEpoch(), f.leo(), 0, leader.endOffsetFor)
		if err != nil {
			t.Fatalf("fetch check: %v", err)
		}
		if !chk.Diverging {
			return rounds
		}
		f.truncate(TruncateOnDivergingEpoch(f.view(), chk.EpochEndOffset).Offset)
	}
}

// The two scenarios of KIP-101's motivation, and KIP-279's.
func TestKIP101Scenarios(t *testing.T) {
	tests := []struct {
		name      string
		leader    *simLog
		follower  *simLog
		followHW  int64
		wantTrunc int64
	}{
		{
			// Scenario 1 (data loss by truncating to the HW): the follower
			// has m2, but its HW (1) trailed the leader's when it restarted.
			// Truncating to the HW would lose m2, acknowledged. With epochs
			// the leader (still epoch 0, or re-elected at 1 with m2) says
			// epoch 0 ends at 2: keep it.
			name:      "restarted follower keeps data above its HW",
			leader:    withEpochStart(build([2]int{0, 2}), 1),
			follower:  build([2]int{0, 2}),
			followHW:  1,
			wantTrunc: 2,
		},
		{
			// Scenario 2 (divergence): both crash; B comes back first with
			// only m1 and is elected at epoch 1, writing m3 at offset 1. A
			// (m1, m2 at epoch 0) returns as follower: epoch 0 ended at 1 on
			// B, so A drops m2 and takes m3.
			name:      "old leader's unreplicated tail is dropped",
			leader:    build([2]int{0, 1}, [2]int{1, 1}),
			follower:  build([2]int{0, 2}),
			followHW:  1,
			wantTrunc: 1,
		},
		{
			// KIP-279: fast leader changes. A led epoch 1 (m1, m2); B took m1
			// only, led epoch 2 (m3 at offset 1) and died; A, elected at 3
			// without seeing m3, wrote m4. B asks about 2; A answers epoch 1
			// ending at 2. Under KIP-101 alone B would keep m3 (offset 1 < 2)
			// and diverge; B checks its own end of epoch 1 (1) and truncates
			// there.
			name:      "fast leader change (KIP-279)",
			leader:    build([2]int{1, 2}, [2]int{3, 1}),
			follower:  build([2]int{1, 1}, [2]int{2, 1}),
			followHW:  0,
			wantTrunc: 1,
		},
		{
			// KIP-279's extra round trip: the follower has epochs 0, 2; the
			// leader 0, 1, 3. Asked about 2, the leader answers epoch 1,
			// unknown to the follower: truncate to its epoch 0's end and ask
			// about 0; the leader's epoch 0 ended earlier.
			name:      "skipped epoch: ask again",
			leader:    build([2]int{0, 2}, [2]int{1, 2}, [2]int{3, 2}),
			follower:  build([2]int{0, 3}, [2]int{2, 2}),
			followHW:  0,
			wantTrunc: 2,
		},
	}
	for _, tc := range tests {
		for _, path := range []string{"OffsetForLeaderEpoch", "DivergingEpoch"} {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				f := tc.follower.clone()
				f.hw = tc.followHW
				if path == "OffsetForLeaderEpoch" {
					reconcile(t, f, tc.leader, true)
				} else {
					reconcileByFetch(t, f, tc.leader)
				}
				if f.leo() != tc.wantTrunc {
					t.Fatalf("follower truncated to %d, want %d", f.leo(), tc.wantTrunc)
				}
				if cp := commonPrefix(f, tc.leader); cp != f.leo() {
					t.Fatalf("follower log not a prefix of the leader's (common %d, follower %d)", cp, f.leo())
				}
			})
		}
	}
}

// Found by TestTruncationRandomHistories: the follower was elected at
// epoch 9 and appended nothing, leaving an epoch entry at its log end; the
// real leader never had epoch 9 and its epoch 6 data differs from the
// follower's epoch 4 record at offset 0. Whether the caller truncates to
// the log end first (dropping the empty epoch) or not, and by either
// protocol, the follower ends with nothing of its own.
func TestTrailingEmptyEpoch(t *testing.T) {
	follower := &simLog{recs: []simRec{{4, 3}}, epochs: []simEpoch{{4, 0}, {9, 1}}}
	leader := &simLog{epochs: []simEpoch{{6, 0}, {8, 5}, {13, 9}}}
	for i := range 17 {
		leader.recs = append(leader.recs, simRec{epoch: 6, id: 100 + i})
	}
	for _, first := range []bool{false, true} {
		f := follower.clone()
		reconcile(t, f, leader, first)
		if f.leo() != 0 {
			t.Fatalf("OffsetForLeaderEpoch (truncate first %v): follower kept %d records", first, f.leo())
		}
	}
	f := follower.clone()
	reconcileByFetch(t, f, leader)
	if f.leo() != 0 {
		t.Fatalf("DivergingEpoch: follower kept %d records", f.leo())
	}
}

// withEpochStart records a new leader epoch at the log end (a re-elected
// leader's cache entry before it writes, Kafka's maybeAssignEpochStartOffset).
func withEpochStart(l *simLog, epoch int32) *simLog {
	l.assign(epoch, l.leo())
	return l
}

// Random histories: three replicas, random appends, partial replication
// and leader changes to any replica (clean or not). Whenever a follower
// reconciles with the leader, by either path, its log ends up exactly the
// longest common prefix of the two logs: nothing the leader has is
// dropped, nothing that differs is kept.
func TestTruncationRandomHistories(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 300 {
		logs := []*simLog{{}, {}, {}}
		leader, epoch, maxEpoch := 0, int32(0), int32(0)
		logs[0].assign(0, 0)
		nextID := 0
		for step := range 60 {
			switch k := rng.IntN(10); {
			case k < 4: // leader appends
				for range 1 + rng.IntN(3) {
					nextID++
					logs[leader].append(simRec{epoch: epoch, id: nextID})
				}
			case k < 8: // a follower reconciles and copies some records
				fi := rng.IntN(3)
				if fi == leader {
					continue
				}
				f, l := logs[fi], logs[leader]
				before := f.clone()
				want := commonPrefix(before, l)
				var rounds int
				switch rng.IntN(3) {
				case 0:
					rounds = reconcile(t, f, l, false)
				case 1:
					rounds = reconcile(t, f, l, true)
				default:
					rounds = reconcileByFetch(t, f, l)
				}
				if f.leo() != want || commonPrefix(f, l) != want {
					t.Fatalf("run %d step %d: follower %d truncated to %d after %d rounds, want the common prefix %d\nfollower %v %v\nleader %v %v",
						run, step, fi, f.leo(), rounds, want, before.recs, before.epochs, l.recs, l.epochs)
				}
				n := min(int64(rng.IntN(4)), l.leo()-f.leo())
				f.append(l.recs[f.leo() : f.leo()+n]...)
			default: // a new leader, any replica
				leader = rng.IntN(3)
				maxEpoch++
				epoch = maxEpoch
				logs[leader].assign(epoch, logs[leader].leo())
			}
		}
	}
}

func TestCheckFetchEpoch(t *testing.T) {
	// Leader: epoch 1 at [0,4), epoch 3 at [4,7), epoch 5 at [7,9); log start 2.
	l := build([2]int{1, 4}, [2]int{3, 3}, [2]int{5, 2})
	tests := []struct {
		name     string
		epoch    int32
		offset   int64
		want     FetchCheck
		wantErr  bool
		logStart int64
	}{
		{"no last fetched epoch", -1, 3, FetchCheck{}, false, 2},
		{"consistent, latest epoch", 5, 8, FetchCheck{}, false, 2},
		{"consistent, at the end of an older epoch", 3, 7, FetchCheck{}, false, 2},
		{"consistent, inside an older epoch", 3, 5, FetchCheck{}, false, 2},
		{"follower's epoch 3 runs past the leader's", 3, 8, FetchCheck{true, EpochEndOffset{3, 7}}, false, 2},
		{"follower has an epoch the leader skipped", 4, 8, FetchCheck{true, EpochEndOffset{3, 7}}, false, 2},
		{"follower has an epoch the leader skipped, short log", 2, 3, FetchCheck{true, EpochEndOffset{1, 4}}, false, 2},
		{"below the log start", 1, 1, FetchCheck{}, true, 2},
		{"epoch above any the leader knows", 9, 9, FetchCheck{}, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckFetchEpoch(tc.epoch, tc.offset, tc.logStart, l.endOffsetFor)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, kerr.OffsetOutOfRange) {
				t.Fatalf("err %v is not OFFSET_OUT_OF_RANGE", err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestResetOutOfRange(t *testing.T) {
	tests := []struct {
		followerEnd, leaderStart, leaderEnd int64
		want                                OutOfRangeReset
	}{
		{100, 0, 80, OutOfRangeReset{FetchOffset: 80, Truncate: true}},   // unclean: leader behind
		{10, 50, 90, OutOfRangeReset{FetchOffset: 50, StartOver: true}},  // retention passed us
		{60, 50, 90, OutOfRangeReset{FetchOffset: 60}},                   // keep, retry
		{50, 50, 50, OutOfRangeReset{FetchOffset: 50}},                   // equal ends
		{0, 0, 0, OutOfRangeReset{FetchOffset: 0}},                       // empty
		{100, 120, 90, OutOfRangeReset{FetchOffset: 90, Truncate: true}}, // behind end wins
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.followerEnd, tc.leaderStart, tc.leaderEnd), func(t *testing.T) {
			if got := ResetOutOfRange(tc.followerEnd, tc.leaderStart, tc.leaderEnd); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
