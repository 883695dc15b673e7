package localstore

import (
	"errors"
	"testing"
)

// TestAppendAsFollowerKeepsLeaderOffsetsAndEpochs: a follower copies the
// leader's batches byte for byte; its epoch cache then answers
// OffsetForLeaderEpoch as the leader's does, and a batch that does not start
// at the log end is refused.
func TestAppendAsFollowerKeepsLeaderOffsetsAndEpochs(t *testing.T) {
	leader := openTestLog(t, t.TempDir(), testConfig(newFakeClock()))
	follower := openTestLog(t, t.TempDir(), testConfig(newFakeClock()))
	var copied [][]byte
	for i, epoch := range []int32{0, 0, 3, 3, 5} {
		b := buildBatch(plain(2, int64(1000+i)))
		if _, err := leader.Append(b, epoch, false); err != nil {
			t.Fatal(err)
		}
		copied = append(copied, append([]byte(nil), b...))
	}
	infos, err := follower.AppendAsFollower(copied[:3])
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].BaseOffset != 0 || infos[2].LastOffset != 5 {
		t.Fatalf("follower infos: %+v", infos)
	}
	if _, err := follower.AppendAsFollower(copied[4:]); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("a gap in the copied log was accepted: %v", err)
	}
	if _, err := follower.AppendAsFollower(copied[3:]); err != nil {
		t.Fatal(err)
	}
	if follower.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("log end: follower %d leader %d", follower.LogEndOffset(), leader.LogEndOffset())
	}
	for _, e := range []int32{0, 1, 3, 4, 5} {
		le, lo := leader.EndOffsetForEpoch(e)
		fe, fo := follower.EndOffsetForEpoch(e)
		if le != fe || lo != fo {
			t.Fatalf("epoch %d: leader (%d,%d) follower (%d,%d)", e, le, lo, fe, fo)
		}
	}
	lb, err := leader.ReadBytes(0, 1<<20, leader.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	fb, err := follower.ReadBytes(0, 1<<20, follower.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if string(lb) != string(fb) {
		t.Fatal("follower bytes differ from the leader's")
	}
}
