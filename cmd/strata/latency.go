package main

import (
	"math"
	"math/bits"
	"time"
)

// latencyHistogram records durations in log-linear buckets, the layout HDR
// histograms use: values below 2*subBuckets microseconds are exact, and
// every power-of-two range above is split into subBuckets equal buckets, so
// a reported percentile is within 1/subBuckets (1.6%) of the true value
// while memory stays fixed (under 4k counters) however many samples arrive.
// Count, sum, min and max are exact. Not safe for concurrent use.
type latencyHistogram struct {
	counts []int64
	count  int64
	sumUS  int64
	minUS  int64
	maxUS  int64
}

const (
	subBucketBits = 6
	subBuckets    = 1 << subBucketBits         // buckets per power of two
	exactLimit    = 2 * subBuckets             // values below this have their own bucket
	numBuckets    = exactLimit + 57*subBuckets // enough for any non-negative int64
)

func newLatencyHistogram() *latencyHistogram {
	return &latencyHistogram{counts: make([]int64, numBuckets), minUS: math.MaxInt64}
}

// bucketIndex maps a value (microseconds, >= 0) to its bucket.
func bucketIndex(v int64) int {
	if v < exactLimit {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (subBucketBits + 1)
	mantissa := v >> shift // in [subBuckets, 2*subBuckets)
	return exactLimit + (shift-1)*subBuckets + int(mantissa-subBuckets)
}

// bucketUpper is the largest value that falls in bucket i.
func bucketUpper(i int) int64 {
	if i < exactLimit {
		return int64(i)
	}
	shift := (i-exactLimit)/subBuckets + 1
	mantissa := int64((i-exactLimit)%subBuckets + subBuckets)
	return (mantissa+1)<<shift - 1
}

// Record adds one sample; negative durations count as zero.
func (h *latencyHistogram) Record(d time.Duration) {
	v := d.Microseconds()
	if v < 0 {
		v = 0
	}
	h.counts[bucketIndex(v)]++
	h.count++
	h.sumUS += v
	h.minUS = min(h.minUS, v)
	h.maxUS = max(h.maxUS, v)
}

// Count returns how many samples were recorded.
func (h *latencyHistogram) Count() int64 { return h.count }

// Max returns the largest sample, or 0 with no samples.
func (h *latencyHistogram) Max() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.maxUS) * time.Microsecond
}

// Mean returns the average sample, or 0 with no samples.
func (h *latencyHistogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sumUS/h.count) * time.Microsecond
}

// Percentile returns the smallest recorded value v such that at least p
// percent of samples are <= v (nearest-rank), reported as its bucket's upper
// bound and never above the true maximum. p is in [0, 100].
func (h *latencyHistogram) Percentile(p float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := int64(math.Ceil(p / 100 * float64(h.count)))
	rank = max(rank, 1)
	if rank >= h.count {
		return h.Max()
	}
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := min(max(bucketUpper(i), h.minUS), h.maxUS)
			return time.Duration(v) * time.Microsecond
		}
	}
	return h.Max()
}

// Merge adds every sample of o to h.
func (h *latencyHistogram) Merge(o *latencyHistogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.count += o.count
	h.sumUS += o.sumUS
	h.minUS = min(h.minUS, o.minUS)
	h.maxUS = max(h.maxUS, o.maxUS)
}
