package testenv

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestRequestLatencyOneDrawPerRequest: the chunks of one request share one
// delay; a chunk after a quiet gap is a new request with a new draw.
func TestRequestLatencyOneDrawPerRequest(t *testing.T) {
	draws := []time.Duration{30 * time.Millisecond, 21 * time.Millisecond, 39 * time.Millisecond}
	n := 0
	draw := func() time.Duration { d := draws[n]; n++; return d }
	var st requestLatencyState
	gap := 10 * time.Millisecond
	t0 := time.Unix(1000, 0)
	cases := []struct {
		at   time.Duration // arrival after t0
		want time.Duration // release after t0
	}{
		{0, 30 * time.Millisecond}, // request 1 starts
		{100 * time.Microsecond, 30*time.Millisecond + 100*time.Microsecond}, // same request: same delay
		{2 * time.Millisecond, 32 * time.Millisecond},
		{80 * time.Millisecond, 101 * time.Millisecond}, // quiet gap: request 2
		{85 * time.Millisecond, 106 * time.Millisecond},
		{200 * time.Millisecond, 239 * time.Millisecond}, // request 3
	}
	for i, c := range cases {
		if got := st.release(t0.Add(c.at), gap, draw); !got.Equal(t0.Add(c.want)) {
			t.Fatalf("chunk %d at +%v released at +%v, want +%v", i, c.at, got.Sub(t0), c.want)
		}
	}
	if n != 3 {
		t.Fatalf("%d draws for 3 requests", n)
	}
	lat := &requestLatency{LatencyUs: 30_000, JitterUs: 10_000}
	for range 1000 {
		if d := lat.draw(); d < 20*time.Millisecond || d > 40*time.Millisecond {
			t.Fatalf("draw %v outside 30 ms ± 10 ms", d)
		}
	}
	if g := lat.gap(); g != 10*time.Millisecond {
		t.Fatalf("gap %v, want half of latency − jitter", g)
	}
}

// TestToxiproxyForwardsAndDelays: bytes go through the S3-like proxy
// unchanged in both directions, and a request's answer never comes back
// sooner than latency − jitter (a lower bound: load only adds time).
func TestToxiproxyForwardsAndDelays(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }() // echo
		}
	}()
	tp := StartToxiproxy(t, ln.Addr().String(), S3Like)
	if err := tp.reachable(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", tp.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("strata-replay "), 50_000) // 700 kB: many chunks
	for round := range 3 {
		start := time.Now()
		go c.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("round %d: bytes changed through the proxy", round)
		}
		if el := time.Since(start); el < S3Like.Latency-S3Like.Jitter {
			t.Fatalf("round %d answered in %v, below the injected %v", round, el, S3Like.Latency-S3Like.Jitter)
		}
	}
}
