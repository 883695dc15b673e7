package localstore

import (
	"math"
	"strings"
	"testing"
	"time"
)

// segsAt builds sealed segment metadata: each entry is (base, size, max
// timestamp in ms); Next is the following base, the last ends at end.
func segsAt(end int64, specs ...[3]int64) []CleanableSegment {
	out := make([]CleanableSegment, len(specs))
	for i, s := range specs {
		next := end
		if i+1 < len(specs) {
			next = specs[i+1][0]
		}
		out[i] = CleanableSegment{Base: s[0], Next: next, Size: s[1], FirstTimestamp: s[2], MaxTimestamp: s[2], LastModified: time.UnixMilli(0)}
	}
	return out
}

func TestPlanClean(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	old := int64(1_000) // far older than any lag below
	segs := segsAt(400, [3]int64{0, 100, old}, [3]int64{100, 100, old}, [3]int64{200, 100, old}, [3]int64{300, 100, old})
	cases := []struct {
		name                   string
		segs                   []CleanableSegment
		logStart, ckpt, maxOff int64
		cfg                    CleanerConfig
		clean                  bool
		firstDirty, firstUncl  int64
		cleanBytes, dirtyBytes int64
		reason                 string
	}{
		{name: "no sealed segments", segs: nil, ckpt: -1, maxOff: math.MaxInt64, reason: "no sealed segments"},
		{name: "never cleaned: all dirty", segs: segs, ckpt: -1, maxOff: math.MaxInt64,
			clean: true, firstDirty: 0, firstUncl: 400, dirtyBytes: 400},
		{name: "ratio 0.5 met exactly", segs: segs, ckpt: 200, maxOff: math.MaxInt64,
			clean: true, firstDirty: 200, firstUncl: 400, cleanBytes: 200, dirtyBytes: 200},
		{name: "ratio below", segs: segs, ckpt: 300, maxOff: math.MaxInt64,
			firstDirty: 300, firstUncl: 400, cleanBytes: 300, dirtyBytes: 100, reason: "min.cleanable.dirty.ratio"},
		{name: "ratio below but configured lower", segs: segs, ckpt: 300, maxOff: math.MaxInt64, cfg: CleanerConfig{MinCleanableDirtyRatio: 0.25},
			clean: true, firstDirty: 300, firstUncl: 400, cleanBytes: 300, dirtyBytes: 100},
		{name: "nothing dirty", segs: segs, ckpt: 400, maxOff: math.MaxInt64, cfg: alwaysClean,
			firstDirty: 400, firstUncl: 400, cleanBytes: 400, reason: "nothing dirty"},
		{name: "checkpoint below log start resets to it", segs: segs, logStart: 150, ckpt: 50, maxOff: math.MaxInt64,
			clean: true, firstDirty: 150, firstUncl: 400, dirtyBytes: 300},
		{name: "checkpoint beyond the end (truncated) resets", segs: segs, ckpt: 900, maxOff: math.MaxInt64,
			clean: true, firstDirty: 0, firstUncl: 400, dirtyBytes: 400},
		{name: "high watermark inside a segment stops before it", segs: segs, ckpt: -1, maxOff: 250,
			clean: true, firstDirty: 0, firstUncl: 200, dirtyBytes: 200},
		{name: "min.compaction.lag stops at the first young segment", ckpt: -1, maxOff: math.MaxInt64,
			segs:  segsAt(400, [3]int64{0, 100, old}, [3]int64{100, 100, old}, [3]int64{200, 100, now.UnixMilli() - 10}, [3]int64{300, 100, old}),
			cfg:   CleanerConfig{MinCompactionLag: time.Minute},
			clean: true, firstDirty: 0, firstUncl: 200, dirtyBytes: 200},
		{name: "min.compaction.lag: everything young", ckpt: -1, maxOff: math.MaxInt64,
			segs: segsAt(200, [3]int64{0, 100, now.UnixMilli()}, [3]int64{100, 100, now.UnixMilli()}),
			cfg:  CleanerConfig{MinCompactionLag: time.Minute}, reason: "nothing dirty"},
		{name: "max.compaction.lag forces a low ratio", segs: segs, ckpt: 300, maxOff: math.MaxInt64,
			cfg:   CleanerConfig{MaxCompactionLag: time.Hour},
			clean: true, firstDirty: 300, firstUncl: 400, cleanBytes: 300, dirtyBytes: 100, reason: "max.compaction.lag.ms"},
		{name: "max.compaction.lag not reached", ckpt: 100, maxOff: math.MaxInt64,
			segs: segsAt(200, [3]int64{0, 900, old}, [3]int64{100, 100, now.UnixMilli() - 1000}),
			cfg:  CleanerConfig{MaxCompactionLag: time.Hour}, firstDirty: 100, firstUncl: 200, cleanBytes: 900, dirtyBytes: 100, reason: "min.cleanable.dirty.ratio"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := PlanClean(c.segs, c.logStart, c.ckpt, c.maxOff, now, c.cfg)
			if p.Clean != c.clean || (len(c.segs) > 0 && (p.FirstDirty != c.firstDirty || p.FirstUncleanable != c.firstUncl ||
				p.CleanBytes != c.cleanBytes || p.DirtyBytes != c.dirtyBytes)) {
				t.Fatalf("got %+v", p)
			}
			if c.reason != "" && !strings.Contains(p.Reason, c.reason) {
				t.Fatalf("reason %q, want it to mention %q", p.Reason, c.reason)
			}
		})
	}
}

func TestTombstoneExpired(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	seg := CleanableSegment{MaxTimestamp: 500_000}
	if tombstoneExpired(now.UnixMilli()-59_999, seg, now, time.Minute) {
		t.Fatal("expired before delete.retention.ms")
	}
	if !tombstoneExpired(now.UnixMilli()-60_000, seg, now, time.Minute) {
		t.Fatal("not expired at delete.retention.ms")
	}
	// No batch timestamp: the segment's; none either: its mtime.
	if !tombstoneExpired(-1, seg, now, time.Minute) {
		t.Fatal("segment max timestamp not used")
	}
	seg = CleanableSegment{MaxTimestamp: -1, LastModified: now}
	if tombstoneExpired(-1, seg, now, time.Minute) {
		t.Fatal("mtime not used")
	}
}

func TestGroupForCleaning(t *testing.T) {
	segs := segsAt(600, [3]int64{0, 100, 0}, [3]int64{100, 100, 0}, [3]int64{200, 250, 0}, [3]int64{300, 40, 0}, [3]int64{400, 300, 0}, [3]int64{500, 10, 0})
	got := groupForCleaning(segs, 300)
	want := [][2]int{{0, 2}, {2, 4}, {4, 5}, {5, 6}}
	if len(got) != len(want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("groups %v, want %v", got, want)
		}
	}
	// Relative offsets must fit in int32 even when bytes would allow more.
	far := []CleanableSegment{{Base: 0, Next: 10, Size: 1}, {Base: 10, Next: math.MaxInt32 + 5, Size: 1}}
	if g := groupForCleaning(far, 1<<30); len(g) != 2 {
		t.Fatalf("merged past the int32 relative offset limit: %v", g)
	}
}

func TestCleanerConfigValidate(t *testing.T) {
	bad := []CleanerConfig{
		{MinCleanableDirtyRatio: 1.5},
		{MinCompactionLag: -1},
		{MinCompactionLag: time.Hour, MaxCompactionLag: time.Minute},
	}
	for _, c := range bad {
		c.EnsureDefaults()
		if c.Validate() == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
	var c CleanerConfig
	c.EnsureDefaults()
	again := c
	again.EnsureDefaults()
	if c.Validate() != nil || c != again || c.MinCleanableDirtyRatio != 0.5 || c.DeleteRetention != 24*time.Hour {
		t.Fatalf("defaults %+v", c)
	}
}
