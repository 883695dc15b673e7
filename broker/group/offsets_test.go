package group

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOffsetExpiry is offsets.retention.minutes on the fake clock (Kafka's
// computeExpiredOffsets, KIP-211): a group that never had members expires
// each offset that long after its commit; a consumer group's offsets expire
// that long after it became Empty. An Empty group left with no offsets is
// deleted, tombstones and all.
func TestOffsetExpiry(t *testing.T) {
	h := newMemHost(1)
	f := newFixture(t, h, func(o *Options) {
		o.OffsetsRetention, o.RetentionCheckInterval = 60*time.Minute, time.Minute
	})
	for _, e := range f.commit("simple-old", "", -1, "t", map[int32]int64{0: 5}) {
		wantErr(t, "commit", e, errNone)
	}
	// A consumer group commits at 0 and empties at 1 min, when its
	// member's session ends.
	id, gen := f.stableMember("consumers", time.Minute, time.Minute)
	for _, e := range f.commit("consumers", id, gen, "t", map[int32]int64{1: 9}) {
		wantErr(t, "member commit", e, errNone)
	}
	f.clock.Advance(30 * time.Minute)
	for _, e := range f.commit("simple-new", "", -1, "t", map[int32]int64{0: 7}) {
		wantErr(t, "commit", e, errNone)
	}
	present := func(g string) bool {
		o, err := f.fetch(g)
		if err != nil {
			t.Fatalf("fetch %s: %v", g, err)
		}
		return len(o) > 0
	}

	f.clock.Advance(30*time.Minute - time.Millisecond) // 1 ms before simple-old's offset is 60 min old
	if !present("simple-old") || !present("consumers") || !present("simple-new") {
		t.Fatal("an offset expired early")
	}
	f.clock.Advance(time.Millisecond)
	if present("simple-old") || !present("consumers") || !present("simple-new") {
		t.Fatal("at 60 min only simple-old's offset (committed at 0) expires")
	}
	if d := f.describe("simple-old"); d.State != "Dead" {
		t.Fatalf("the emptied simple group was not deleted: %s", d.State)
	}
	f.clock.Advance(time.Minute) // 61 min: 60 min after the consumer group emptied
	if present("consumers") || !present("simple-new") {
		t.Fatal("at 61 min the consumer group's offsets expire, not the newer simple group's")
	}
	f.clock.Advance(29 * time.Minute)
	if present("simple-new") {
		t.Fatal("simple-new's offset outlived its retention")
	}

	// What reached the log: the deletions are tombstones (nil values).
	tombstones := 0
	for _, r := range h.logs[0].records(t) {
		if r.Value == nil {
			tombstones++
		}
	}
	if tombstones != 6 { // an offset and the group, for each of the three groups
		t.Fatalf("%d tombstones written, want 6", tombstones)
	}
}

// TestCommitAppendFailures: a failed write changes nothing in memory and
// maps as Kafka's GroupMetadataManager does.
func TestCommitAppendFailures(t *testing.T) {
	h := newMemHost(1)
	f := newFixture(t, h, nil)
	for _, c := range []struct {
		err  error
		want *kerr.Error
	}{
		{fmt.Errorf("%w: partition moved", ErrNotLeader), kerr.NotCoordinator},
		{kerr.NotLeaderForPartition, kerr.NotCoordinator},
		{kerr.NotEnoughReplicas, kerr.CoordinatorNotAvailable},
		{errors.New("disk on fire"), kerr.CoordinatorNotAvailable},
	} {
		h.logs[0].setAppendErr(c.err)
		wantErr(t, fmt.Sprintf("commit with append error %v", c.err), f.commit("g", "", -1, "t", map[int32]int64{0: 1})[0], c.want)
		if o, err := f.fetch("g"); err != nil || len(o) != 0 {
			t.Fatalf("after a failed commit: %v %v", o, err)
		}
	}
	h.logs[0].setAppendErr(nil)
	wantErr(t, "commit", f.commit("g", "", -1, "t", map[int32]int64{0: 1})[0], errNone)
	if o, _ := f.fetch("g"); o["t"][0] != 1 {
		t.Fatalf("committed offset not fetched: %v", o)
	}
}

// TestCommitValidation covers the per-partition and group checks Kafka makes
// before writing.
func TestCommitValidation(t *testing.T) {
	f := newFixture(t, newMemHost(1), func(o *Options) { o.OffsetMetadataMaxBytes = 8 })
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation = 8, "g", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	for _, p := range []struct {
		partition int32
		metadata  string
	}{{0, "short"}, {1, "far too long"}, {4, ""}, {-1, ""}} {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata = p.partition, 1, kmsg.StringPtr(p.metadata)
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	got := f.c.OffsetCommit(ctx, req).Topics[0].Partitions
	for i, want := range []*kerr.Error{errNone, kerr.OffsetMetadataTooLarge, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition} {
		wantErr(t, fmt.Sprintf("partition %d", got[i].Partition), errFor(got[i].ErrorCode), want)
	}
	id, gen := f.stableMember("members", 30*time.Second, 5*time.Second)
	wantErr(t, "admin commit to a group with members", f.commit("members", "", -1, "t", map[int32]int64{0: 1})[0], kerr.UnknownMemberID)
	wantErr(t, "stale generation", f.commit("members", id, gen-1, "t", map[int32]int64{0: 1})[0], kerr.IllegalGeneration)
	wantErr(t, "member commit", f.commit("members", id, gen, "t", map[int32]int64{0: 1})[0], errNone)
	wantErr(t, "commit to a group that is gone", f.commit("gone", "m", 3, "t", map[int32]int64{0: 1})[0], kerr.IllegalGeneration)
}
