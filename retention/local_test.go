package retention

import (
	"testing"
	"time"
)

func TestLocalCutoff(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	mk := func(base, next, size, ageMs int64, sealed bool) Segment {
		ts := now.UnixMilli() - ageMs
		return Segment{BaseOffset: base, NextOffset: next, Size: size, MaxTimestamp: ts, AppendedAt: time.UnixMilli(ts), Sealed: sealed}
	}
	segs := []Segment{mk(0, 100, 1000, 5000, true), mk(100, 200, 1000, 4000, true), mk(200, 300, 1000, 3000, true), mk(300, 350, 500, 10, false)}
	cases := []struct {
		name      string
		lim       Limits
		remoteEnd int64
		want      int64
	}{
		{"unlimited keeps all", Limits{-1, -1}, 300, 0},
		{"by time", Limits{Ms: 3500, Bytes: -1}, 300, 200},
		{"by time, not copied yet", Limits{Ms: 3500, Bytes: -1}, 100, 100},
		{"nothing copied", Limits{Ms: 0, Bytes: 0}, -1, 0},
		{"by size", Limits{Ms: -1, Bytes: 1600}, 300, 200},
		{"size zero keeps the active segment", Limits{Ms: -1, Bytes: 0}, 1000, 300},
		{"time zero stops at the active segment", Limits{Ms: 0, Bytes: -1}, 1000, 300},
	}
	for _, c := range cases {
		if got := LocalCutoff(segs, c.lim, c.remoteEnd, now); got != c.want {
			t.Errorf("%s: cutoff %d, want %d", c.name, got, c.want)
		}
	}
}

func TestRetentionTimeBoundsFutureTimestamps(t *testing.T) {
	appended := time.UnixMilli(1_700_000_000_000)
	s := Segment{MaxTimestamp: appended.Add(365 * 24 * time.Hour).UnixMilli(), AppendedAt: appended}
	if got := RetentionTime(s); !got.Equal(appended) {
		t.Fatalf("a year-ahead timestamp counts from %v, want the append time %v", got, appended)
	}
	s = Segment{MaxTimestamp: appended.Add(-time.Hour).UnixMilli(), AppendedAt: appended}
	if got := RetentionTime(s); !got.Equal(appended.Add(-time.Hour)) {
		t.Fatalf("an old timestamp counts from %v", got)
	}
}

func TestEffectiveLocal(t *testing.T) {
	if l := EffectiveLocal(-2, -2, 1000, 5000); l != (Limits{1000, 5000}) {
		t.Errorf("-2 inherits: %+v", l)
	}
	if l := EffectiveLocal(60000, -1, 1000, -1); l != (Limits{1000, -1}) {
		t.Errorf("local above total is capped: %+v", l)
	}
	if l := EffectiveLocal(100, 10, -1, -1); l != (Limits{100, 10}) {
		t.Errorf("explicit local: %+v", l)
	}
}

func TestCutoff(t *testing.T) {
	now := time.UnixMilli(50_000_000)
	mk := func(base, next, size, ageMs int64, sealed bool) Segment {
		ts := now.UnixMilli() - ageMs
		return Segment{BaseOffset: base, NextOffset: next, Size: size, MaxTimestamp: ts, AppendedAt: time.UnixMilli(ts), Sealed: sealed}
	}
	// Two remote segments, two local ones, the active one last.
	segs := []Segment{mk(0, 100, 1000, 9000, true), mk(100, 200, 1000, 8000, true), mk(200, 300, 1000, 2000, true), mk(300, 400, 1000, 1000, true), mk(400, 410, 100, 0, false)}
	cases := []struct {
		name string
		lim  Limits
		want int64
	}{
		{"unlimited", Limits{-1, -1}, 0},
		{"time", Limits{Ms: 5000, Bytes: -1}, 200},
		{"size", Limits{Ms: -1, Bytes: 2100}, 200},
		{"both, size wins", Limits{Ms: 8500, Bytes: 1500}, 300},
		{"never the active segment", Limits{Ms: 0, Bytes: 0}, 400},
	}
	for _, c := range cases {
		if got := Cutoff(segs, c.lim, now); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// A year-ahead timestamp does not keep its segment alive.
	future := segs[0]
	future.MaxTimestamp = now.Add(365 * 24 * time.Hour).UnixMilli()
	if got := Cutoff([]Segment{future, segs[4]}, Limits{Ms: 5000, Bytes: -1}, now); got != 100 {
		t.Errorf("future timestamp kept its segment: cutoff %d", got)
	}
	if got := Cutoff(nil, Limits{0, 0}, now); got != 0 {
		t.Errorf("empty log: %d", got)
	}
}
