package broker

import "testing"

// TestFrameCapLeavesRoomToGrow: a read buffer sized for one frame takes the
// next, slightly larger ones (franz-go's Produce requests grow a few KB at a
// time), never goes past socket.request.max.bytes, and is never smaller than
// the frame.
func TestFrameCapLeavesRoomToGrow(t *testing.T) {
	const limit = 100 << 20
	allocs, capacity := 0, 0
	for _, n := range []int{7627925, 15568011, 15936249, 15992319, 15993082, 16001000, 16100000} {
		if n > capacity {
			allocs++
			capacity = frameCap(n, limit)
		}
	}
	if allocs > 2 {
		t.Fatalf("%d buffers for a slowly growing Produce size, want at most 2", allocs)
	}
	for _, n := range []int{8, 100, 64 << 10, 1 << 20, limit - 1, limit} {
		c := frameCap(n, limit)
		if c < n || c > limit {
			t.Fatalf("frameCap(%d) = %d: outside [n, limit]", n, c)
		}
	}
	if c := frameCap(200, 100); c != 200 {
		t.Fatalf("a frame over the limit (rejected before this) got %d", c)
	}
}
