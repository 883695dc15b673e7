package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketIndexRoundTrip(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64} {
		i := bucketIndex(v)
		if i < prev || i >= numBuckets {
			t.Fatalf("bucketIndex(%d) = %d (previous %d, buckets %d)", v, i, prev, numBuckets)
		}
		prev = i
		up := bucketUpper(i)
		if up < v {
			t.Errorf("bucketUpper(bucketIndex(%d)) = %d, below the value", v, up)
		}
		if v >= exactLimit && float64(up-v) > float64(v)/subBuckets {
			t.Errorf("bucket of %d reaches %d: wider than 1/%d", v, up, subBuckets)
		}
		if i > 0 && bucketUpper(i-1) >= v {
			t.Errorf("value %d also fits the previous bucket (upper %d)", v, bucketUpper(i-1))
		}
	}
}

// exactPercentile is the nearest-rank percentile of sorted samples.
func exactPercentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestPercentilesMatchSortedSample(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := newLatencyHistogram()
	var samples []time.Duration
	for range 20000 {
		// Log-normal-ish: mostly a few ms, with a long tail.
		d := time.Duration(math.Exp(r.NormFloat64()*1.2+8) * float64(time.Microsecond))
		h.Record(d)
		samples = append(samples, d.Truncate(time.Microsecond))
	}
	slices.Sort(samples)
	for _, p := range []float64{0, 1, 50, 90, 99, 99.9, 99.99, 100} {
		want := exactPercentile(samples, p)
		got := h.Percentile(p)
		if diff := math.Abs(float64(got - want)); diff > float64(want)/subBuckets+float64(time.Microsecond) {
			t.Errorf("p%v = %v, want %v (±1/%d)", p, got, want, subBuckets)
		}
	}
	if h.Max() != samples[len(samples)-1] {
		t.Errorf("max = %v, want %v", h.Max(), samples[len(samples)-1])
	}
	if h.Count() != int64(len(samples)) {
		t.Errorf("count = %d", h.Count())
	}
}

func TestPercentileSmallExact(t *testing.T) {
	h := newLatencyHistogram()
	if h.Percentile(99) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for p, want := range map[float64]time.Duration{50: 50, 99: 99, 99.9: 100, 100: 100, 1: 1, 0: 1} {
		if got := h.Percentile(p); got != want*time.Microsecond {
			t.Errorf("p%v = %v, want %vµs", p, got, int64(want))
		}
	}
	if h.Mean() != 50*time.Microsecond { // 50.5 truncated to whole µs
		t.Errorf("mean = %v", h.Mean())
	}
	h.Record(-time.Second)
	if h.Percentile(0) != 0 {
		t.Error("negative sample must count as zero")
	}
}

func TestHistogramMerge(t *testing.T) {
	a, b := newLatencyHistogram(), newLatencyHistogram()
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	a.Merge(b)
	if a.Count() != 2 || a.Max() != 3*time.Millisecond || a.Mean() != 2*time.Millisecond {
		t.Errorf("merged: count %d max %v mean %v", a.Count(), a.Max(), a.Mean())
	}
}

func TestThrottleWait(t *testing.T) {
	for _, tc := range []struct {
		sent    int64
		elapsed time.Duration
		rate    float64
		want    time.Duration
	}{
		{0, 0, 100, 0},
		{10, 0, 100, 100 * time.Millisecond},
		{10, 40 * time.Millisecond, 100, 60 * time.Millisecond},
		{10, time.Second, 100, 0},
		{1000, 0, -1, 0},
		{3, 0, 2, 1500 * time.Millisecond},
	} {
		if got := throttleWait(tc.sent, tc.elapsed, tc.rate); got != tc.want {
			t.Errorf("throttleWait(%d, %v, %v) = %v, want %v", tc.sent, tc.elapsed, tc.rate, got, tc.want)
		}
	}
}

func TestBenchMeterSummary(t *testing.T) {
	start := time.Unix(1000, 0)
	m := newBenchMeter(start)
	for range 4 {
		m.done(bytesPerMB/4, 2*time.Millisecond)
	}
	m.failed(errTest)
	line := m.progressLine(start.Add(2*time.Second), "sent")
	if want := "4 records sent, 2.0 records/sec (0.50 MB/sec), 2.0 ms avg latency, 2.0 ms max latency."; line != want {
		t.Errorf("progress line:\n got %q\nwant %q", line, want)
	}
	if line := m.progressLine(start.Add(3*time.Second), "sent"); line[:15] != "0 records sent," {
		t.Errorf("window not reset: %q", line)
	}
	s := m.summary("produce", "t", start.Add(4*time.Second))
	if s.Records != 4 || s.Errors != 1 || s.RecordsPerSec != 1 || s.MBPerSec != 0.25 || s.LatencyP99MS != 2 {
		t.Errorf("summary = %+v", s)
	}
}
