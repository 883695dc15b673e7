package testenv

import (
	"math/rand/v2"
	"time"

	"github.com/Shopify/toxiproxy/v2/toxics"
)

// requestLatencyType is the toxic StartToxiproxy puts on the upstream side.
const requestLatencyType = "strata_request_latency"

// requestLatency delays each request on a connection by one draw of
// latency ± jitter, and every byte of that request by the same amount.
//
// Why not toxiproxy's own "latency" toxic: it delays every chunk of a stream
// by a fresh draw measured from when the chunk was read, so a 4 MiB response
// (128 chunks of 32 KiB) is held until the largest of 128 draws, close to
// latency + jitter, and the jitter is never seen. S3 GETs are request /
// response: what a reader pays is one wait for the first byte of each
// response, after which the body streams at the link's bandwidth. Holding the
// request once gives exactly that: the server answers latency ± jitter later
// and the response flows unhindered (apart from the bandwidth toxic).
//
// A new request is a chunk that arrives after a quiet gap on the connection.
// HTTP/1.1 clients (the AWS SDK, minio-go) send the next request on a
// connection only after reading the previous response, which itself waited
// at least latency − jitter, so any gap shorter than that separates requests
// and never splits one: half of it is used. An upload's body sent after
// "100 Continue" counts as a second request, as it costs a second round trip
// on S3 too.
type requestLatency struct {
	LatencyUs int64 `json:"latency_us"`
	JitterUs  int64 `json:"jitter_us"`
}

type requestLatencyState struct {
	last  time.Time     // when the previous chunk arrived
	delay time.Duration // the current request's draw
}

var (
	_ toxics.Toxic         = (*requestLatency)(nil)
	_ toxics.StatefulToxic = (*requestLatency)(nil)
	_ toxics.BufferedToxic = (*requestLatency)(nil)
)

func init() { toxics.Register(requestLatencyType, new(requestLatency)) }

// NewState is per link: one connection, one direction.
func (t *requestLatency) NewState() interface{} { return &requestLatencyState{} }

// GetBufferSize lets the proxy keep reading while a request is held, so
// arrival times (which decide where requests start) stay accurate.
func (t *requestLatency) GetBufferSize() int { return 1024 }

func (t *requestLatency) gap() time.Duration {
	return max(time.Millisecond, time.Duration(t.LatencyUs-t.JitterUs)*time.Microsecond/2)
}

func (t *requestLatency) draw() time.Duration {
	d := t.LatencyUs
	if t.JitterUs > 0 {
		d += rand.Int64N(2*t.JitterUs+1) - t.JitterUs
	}
	return time.Duration(max(d, 0)) * time.Microsecond
}

// release is when a chunk that arrived at ts may go on: a chunk after a quiet
// gap starts a request and takes a new draw; the rest of the request keeps it.
func (st *requestLatencyState) release(ts time.Time, gap time.Duration, draw func() time.Duration) time.Time {
	if st.last.IsZero() || ts.Sub(st.last) > gap {
		st.delay = draw()
	}
	st.last = ts
	return ts.Add(st.delay)
}

func (t *requestLatency) Pipe(stub *toxics.ToxicStub) {
	st, _ := stub.State.(*requestLatencyState)
	if st == nil {
		st = &requestLatencyState{}
	}
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if wait := time.Until(st.release(c.Timestamp, t.gap(), t.draw)); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-timer.C:
				case <-stub.Interrupt:
					timer.Stop()
					stub.Output <- c // never drop bytes
					return
				}
			}
			stub.Output <- c
		}
	}
}
