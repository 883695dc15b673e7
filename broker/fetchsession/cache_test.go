package fetchsession

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

var t0 = time.Unix(1_700_000_000, 0)

func part(topic string, p int32, offset int64) Partition {
	return Partition{Key: Key{Topic: topic, Partition: p}, Params: Params{FetchOffset: offset, LogStartOffset: -1, MaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1}}
}

func newCache(t *testing.T, o Options) *Cache {
	t.Helper()
	ids := int32(100)
	if o.NewID == nil {
		o.NewID = func() int32 { ids++; return ids }
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// quiet is an outcome with nothing new: the given high watermark, no records.
func quiet(hw int64) Outcome {
	return Outcome{HighWatermark: hw, LastStableOffset: hw, LogStartOffset: 0}
}

func outcomes(n int, hw int64) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = quiet(hw)
	}
	return out
}

// open creates a session for parts with a full fetch and returns its id.
func open(t *testing.T, c *Cache, follower bool, now time.Time, parts ...Partition) int32 {
	t.Helper()
	ctx := c.NewContext(Request{SessionID: 0, Epoch: InitialEpoch, Follower: follower, Partitions: parts}, now)
	if ctx.Kind != Full {
		t.Fatalf("full fetch got a %v context", ctx.Kind)
	}
	id, err := c.Finish(ctx, outcomes(len(parts), 10), now)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func names(ps []Partition) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%s-%d", p.Topic, p.Partition))
	}
	return strings.Join(s, " ")
}

func sent(os []Outcome) string {
	var s []string
	for i, o := range os {
		if o.Send {
			s = append(s, fmt.Sprint(i))
		}
	}
	return strings.Join(s, " ")
}

// A session's life: created by a full fetch, fetched incrementally with
// only changed partitions answered, partitions added, updated and
// forgotten, then closed by a FINAL_EPOCH fetch.
func TestSessionLifecycle(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 10})
	id := open(t, c, false, t0, part("a", 0, 5), part("a", 1, 7), part("b", 0, 0))
	if id <= 0 {
		t.Fatalf("session id %d", id)
	}
	if st := c.Stats(); st.Sessions != 1 || st.Partitions != 3 {
		t.Fatalf("stats %+v", st)
	}

	// Epoch 1, nothing in the request: every session partition is read at
	// its cached offset; only those with news are answered.
	ctx := c.NewContext(Request{SessionID: id, Epoch: 1}, t0.Add(time.Second))
	if ctx.Kind != Incremental || names(ctx.Partitions) != "a-0 a-1 b-0" || ctx.Partitions[1].FetchOffset != 7 {
		t.Fatalf("incremental context %v %s %+v", ctx.Kind, names(ctx.Partitions), ctx.Partitions)
	}
	os := []Outcome{quiet(10), quiet(11), {HighWatermark: 10, LastStableOffset: 10, HasRecords: true}}
	if sid, err := c.Finish(ctx, os, t0.Add(time.Second)); sid != id || err != nil {
		t.Fatalf("finish: %d %v", sid, err)
	}
	if got := sent(os); got != "1 2" {
		t.Fatalf("sent partitions %q, want the moved high watermark (1) and the records (2)", got)
	}

	// Epoch 2: a-0 moves on (the client says so), c-0 joins, b-0 is
	// forgotten. Partitions answered with records went to the back.
	ctx = c.NewContext(Request{SessionID: id, Epoch: 2, Partitions: []Partition{part("a", 0, 9), part("c", 0, 0)},
		Forgotten: []Key{{Topic: "b", Partition: 0}, {Topic: "zz", Partition: 3}}}, t0.Add(2*time.Second))
	if ctx.Kind != Incremental || names(ctx.Partitions) != "a-0 a-1 c-0" || ctx.Partitions[0].FetchOffset != 9 {
		t.Fatalf("after add/forget: %v %s", ctx.Kind, names(ctx.Partitions))
	}
	os = []Outcome{quiet(10), quiet(11), quiet(0)}
	c.Finish(ctx, os, t0.Add(2*time.Second))
	if got := sent(os); got != "2" {
		t.Fatalf("sent %q, want only the new partition", got)
	}
	if st := c.Stats(); st.Partitions != 3 {
		t.Fatalf("stats %+v", st)
	}

	// FINAL_EPOCH: a sessionless full fetch that closes the session.
	ctx = c.NewContext(Request{SessionID: id, Epoch: FinalEpoch, Partitions: []Partition{part("a", 0, 9)}}, t0.Add(3*time.Second))
	if ctx.Kind != Sessionless || names(ctx.Partitions) != "a-0" {
		t.Fatalf("final epoch: %v %s", ctx.Kind, names(ctx.Partitions))
	}
	os = outcomes(1, 10)
	if sid, err := c.Finish(ctx, os, t0); sid != InvalidSessionID || err != nil || !os[0].Send {
		t.Fatalf("sessionless finish: %d %v %+v", sid, err, os)
	}
	if st := c.Stats(); st.Sessions != 0 || st.Partitions != 0 {
		t.Fatalf("after close: %+v", st)
	}
	if ctx := c.NewContext(Request{SessionID: id, Epoch: 3}, t0); ctx.Err != kerr.FetchSessionIDNotFound {
		t.Fatalf("closed session: %v", ctx.Err)
	}
}

// Every (id, epoch) combination, against one live session.
func TestSessionIDAndEpochRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		id       func(live int32) int32
		epoch    int32
		topicIDs bool
		kind     Kind
		err      *kerr.Error
		closes   bool // the live session is gone afterwards
		creates  bool // a new session is created at Finish
	}{
		{"new session (0, 0)", func(int32) int32 { return 0 }, 0, false, Full, nil, false, true},
		{"sessionless (0, -1)", func(int32) int32 { return 0 }, -1, false, Sessionless, nil, false, false},
		{"kafka-go sessionless (-1, -1)", func(int32) int32 { return -1 }, -1, false, Sessionless, nil, false, false},
		{"reopen (live, 0)", func(l int32) int32 { return l }, 0, false, Full, nil, true, true},
		{"close (live, -1)", func(l int32) int32 { return l }, -1, false, Sessionless, nil, true, false},
		{"close unknown (7, -1)", func(int32) int32 { return 7 }, -1, false, Sessionless, nil, false, false},
		{"incremental (live, 1)", func(l int32) int32 { return l }, 1, false, Incremental, nil, false, false},
		{"stale epoch (live, 5)", func(l int32) int32 { return l }, 5, false, Failed, kerr.InvalidFetchSessionEpoch, false, false},
		{"negative epoch (live, -2)", func(l int32) int32 { return l }, -2, false, Failed, kerr.InvalidFetchSessionEpoch, false, false},
		{"unknown id (7, 1)", func(int32) int32 { return 7 }, 1, false, Failed, kerr.FetchSessionIDNotFound, false, false},
		{"no id (0, 1)", func(int32) int32 { return 0 }, 1, false, Failed, kerr.FetchSessionIDNotFound, false, false},
		{"topic ids in a name session", func(l int32) int32 { return l }, 1, true, Failed, kerr.FetchSessionTopicIDError, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, Options{MaxSessions: 10})
			live := open(t, c, false, t0, part("a", 0, 0))
			ctx := c.NewContext(Request{SessionID: tc.id(live), Epoch: tc.epoch, TopicIDs: tc.topicIDs, Partitions: []Partition{part("a", 0, 0)}}, t0)
			if ctx.Kind != tc.kind || ctx.Err != tc.err {
				t.Fatalf("got %v %v, want %v %v", ctx.Kind, ctx.Err, tc.kind, tc.err)
			}
			sid, err := c.Finish(ctx, outcomes(len(ctx.Partitions), 10), t0)
			if err != tc.err {
				t.Fatalf("finish error %v, want %v", err, tc.err)
			}
			if tc.creates != (sid != InvalidSessionID && sid != live) {
				t.Fatalf("finish answered session %d (live %d)", sid, live)
			}
			_, stillThere := c.mu.sessions[live]
			if stillThere == tc.closes {
				t.Fatalf("live session still there: %v, want closed: %v", stillThere, tc.closes)
			}
		})
	}
}

func TestSessionTopicIDSessionRefusesNames(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 10})
	p := Partition{Key: Key{TopicID: [16]byte{1}, Partition: 0}}
	ctx := c.NewContext(Request{Epoch: 0, TopicIDs: true, Partitions: []Partition{p}}, t0)
	id, _ := c.Finish(ctx, outcomes(1, 0), t0)
	if ctx := c.NewContext(Request{SessionID: id, Epoch: 1, TopicIDs: false}, t0); ctx.Err != kerr.FetchSessionTopicIDError {
		t.Fatalf("name request on an id session: %v", ctx.Err)
	}
	if ctx := c.NewContext(Request{SessionID: id, Epoch: 1, TopicIDs: true}, t0); ctx.Kind != Incremental || ctx.Partitions[0].TopicID != [16]byte{1} {
		t.Fatalf("id request: %v %+v", ctx.Kind, ctx.Partitions)
	}
}

// A duplicate request: two requests at one epoch, or one finishing after
// a later one began, gets INVALID_FETCH_SESSION_EPOCH.
func TestSessionDuplicateRequest(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 10})
	id := open(t, c, false, t0, part("a", 0, 0))
	first := c.NewContext(Request{SessionID: id, Epoch: 1}, t0)
	if dup := c.NewContext(Request{SessionID: id, Epoch: 1}, t0); dup.Err != kerr.InvalidFetchSessionEpoch {
		t.Fatalf("same epoch twice: %v", dup.Err)
	}
	second := c.NewContext(Request{SessionID: id, Epoch: 2}, t0)
	if second.Kind != Incremental {
		t.Fatalf("next epoch: %v", second.Kind)
	}
	if sid, err := c.Finish(first, outcomes(1, 10), t0); err != kerr.InvalidFetchSessionEpoch || sid != id {
		t.Fatalf("finishing the overtaken request: %d %v", sid, err)
	}
	if _, err := c.Finish(second, outcomes(1, 10), t0); err != nil {
		t.Fatalf("finishing the current request: %v", err)
	}
}

// An error leaves the partition's high watermark unknown, so it is sent
// again when the error is gone even if nothing else changed; the log start
// offset and last stable offset count as news too.
func TestSessionResendsAfterErrorsAndOffsets(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 10})
	id := open(t, c, false, t0, part("a", 0, 0), part("a", 1, 0), part("a", 2, 0))
	step := func(epoch int32, os []Outcome) string {
		ctx := c.NewContext(Request{SessionID: id, Epoch: epoch}, t0)
		if _, err := c.Finish(ctx, os, t0); err != nil {
			t.Fatal(err)
		}
		return sent(os)
	}
	if got := step(1, []Outcome{{HighWatermark: 10, LastStableOffset: 10, Error: true}, quiet(10), quiet(10)}); got != "0" {
		t.Fatalf("error: sent %q", got)
	}
	lsoMoved, startMoved := quiet(10), quiet(10)
	lsoMoved.LastStableOffset, startMoved.LogStartOffset = 8, 4
	if got := step(2, []Outcome{quiet(10), lsoMoved, startMoved}); got != "0 1 2" {
		t.Fatalf("after the error, with moved offsets: sent %q", got)
	}
	if got := step(3, []Outcome{quiet(10), lsoMoved, startMoved}); got != "" {
		t.Fatalf("nothing new: sent %q", got)
	}
	if got := step(4, []Outcome{quiet(10), {HighWatermark: 10, LastStableOffset: 8, LogStartOffset: 4, Diverging: true}, startMoved}); got != "1" {
		t.Fatalf("diverging: sent %q", got)
	}
}

// Partitions answered with records go to the back of the order, so the
// next fetch's byte budget reaches the others first (Kafka's fairness).
func TestSessionRotatesPartitionsWithData(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 10})
	id := open(t, c, false, t0, part("a", 0, 0), part("a", 1, 0), part("a", 2, 0), part("a", 3, 0))
	ctx := c.NewContext(Request{SessionID: id, Epoch: 1}, t0)
	os := outcomes(4, 10)
	os[0].HasRecords, os[2].HasRecords = true, true
	c.Finish(ctx, os, t0)
	ctx = c.NewContext(Request{SessionID: id, Epoch: 2}, t0)
	if got := names(ctx.Partitions); got != "a-1 a-3 a-0 a-2" {
		t.Fatalf("order %q", got)
	}
}

// Removing every partition closes the session: the fetch is sessionless.
func TestSessionEmptiedIsClosed(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 10})
	id := open(t, c, false, t0, part("a", 0, 0))
	ctx := c.NewContext(Request{SessionID: id, Epoch: 1, Forgotten: []Key{{Topic: "a", Partition: 0}}}, t0)
	if ctx.Kind != Sessionless || len(ctx.Partitions) != 0 {
		t.Fatalf("emptied: %v %v", ctx.Kind, ctx.Partitions)
	}
	if st := c.Stats(); st.Sessions != 0 || st.Partitions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNextEpochWraps(t *testing.T) {
	for in, want := range map[int32]int32{0: 1, 1: 2, math.MaxInt32: 1, -1: -1, -5: -1} {
		if got := nextEpoch(in); got != want {
			t.Errorf("nextEpoch(%d) = %d, want %d", in, got, want)
		}
	}
	c := newCache(t, Options{MaxSessions: 1})
	id := open(t, c, false, t0, part("a", 0, 0))
	c.mu.sessions[id].epoch = math.MaxInt32
	ctx := c.NewContext(Request{SessionID: id, Epoch: math.MaxInt32}, t0)
	c.Finish(ctx, outcomes(1, 10), t0)
	if ctx := c.NewContext(Request{SessionID: id, Epoch: 1}, t0); ctx.Kind != Incremental {
		t.Fatalf("after the wrap: %v %v", ctx.Kind, ctx.Err)
	}
}

// Eviction as Kafka's tryEvict: stale sessions go first; otherwise a
// newcomer must outrank the least valuable evictable session — privileged
// (follower) over not, then more partitions — and young sessions are
// protected from newcomers of their own rank.
func TestEviction(t *testing.T) {
	parts := func(n int) []Partition {
		var out []Partition
		for i := range n {
			out = append(out, part("t", int32(i), 0))
		}
		return out
	}
	type step struct {
		at       time.Duration // since t0
		follower bool
		size     int
		use      int32 // >0: an incremental fetch of the session created in step use-1
		created  bool  // for a full fetch: whether it got a session
	}
	for _, tc := range []struct {
		name      string
		steps     []step
		evictions uint64
	}{
		{"full cache, young incumbent, consumer newcomer", []step{{0, false, 2, 0, true}, {time.Second, false, 9, 0, false}}, 0},
		{"stale incumbent goes even for a smaller newcomer", []step{{0, false, 5, 0, true}, {3 * time.Minute, false, 1, 0, true}}, 1},
		{"old, active incumbent; bigger newcomer", []step{{0, false, 2, 0, true}, {170 * time.Second, false, 0, 1, true}, {3 * time.Minute, false, 3, 0, true}}, 1},
		{"old, active incumbent; same-size newcomer", []step{{0, false, 2, 0, true}, {170 * time.Second, false, 0, 1, true}, {3 * time.Minute, false, 2, 0, false}}, 0},
		{"follower evicts a young consumer session", []step{{0, false, 9, 0, true}, {time.Second, true, 1, 0, true}}, 1},
		{"consumer cannot evict a young follower session", []step{{0, true, 1, 0, true}, {time.Second, false, 9, 0, false}}, 0},
		{"consumer cannot evict an old, active follower session", []step{{0, true, 1, 0, true}, {170 * time.Second, false, 0, 1, true}, {3 * time.Minute, false, 9, 0, false}}, 0},
		{"follower evicts an old follower session with fewer partitions", []step{{0, true, 1, 0, true}, {170 * time.Second, true, 0, 1, true}, {3 * time.Minute, true, 2, 0, true}}, 1},
		{"follower cannot evict a young follower session", []step{{0, true, 1, 0, true}, {time.Second, true, 5, 0, false}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, Options{MaxSessions: 1})
			ids := map[int]int32{}
			epochs := map[int32]int32{}
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.use > 0 {
					id := ids[int(s.use)-1]
					epochs[id]++
					ctx := c.NewContext(Request{SessionID: id, Epoch: epochs[id], Follower: s.follower}, now)
					if ctx.Kind != Incremental {
						t.Fatalf("step %d: using session %d: %v %v", i, id, ctx.Kind, ctx.Err)
					}
					c.Finish(ctx, outcomes(len(ctx.Partitions), 10), now)
					continue
				}
				ctx := c.NewContext(Request{Epoch: InitialEpoch, Follower: s.follower, Partitions: parts(s.size)}, now)
				id, _ := c.Finish(ctx, outcomes(s.size, 10), now)
				if (id != InvalidSessionID) != s.created {
					t.Fatalf("step %d: session %d, want created=%v", i, id, s.created)
				}
				ids[i] = id
			}
			if st := c.Stats(); st.Evictions != tc.evictions || st.Sessions != 1 {
				t.Fatalf("stats %+v, want %d evictions and a full cache", st, tc.evictions)
			}
		})
	}
}

func TestNoSessionsWhenDisabled(t *testing.T) {
	c := newCache(t, Options{MaxSessions: 0})
	if id := open(t, c, true, t0, part("a", 0, 0)); id != InvalidSessionID {
		t.Fatalf("a session with zero slots: %d", id)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{MaxSessions: -1}, {EvictionAge: -time.Second}} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o := Options{}
	o.EnsureDefaults()
	if o.EvictionAge != DefaultEvictionAge || o.NewID() <= 0 {
		t.Fatalf("defaults %+v", o)
	}
}

// BenchmarkIncremental is the per-request cost of a session on the fetch
// path: NewContext and Finish of an incremental fetch of 16 partitions, one
// of which moved (as a consumer's steady state).
func BenchmarkIncremental(b *testing.B) {
	c, _ := New(Options{MaxSessions: 10})
	var parts []Partition
	for i := range 16 {
		parts = append(parts, part("t", int32(i), 0))
	}
	ctx := c.NewContext(Request{Epoch: InitialEpoch, Partitions: parts}, t0)
	id, _ := c.Finish(ctx, outcomes(16, 10), t0)
	epoch := int32(1)
	os := make([]Outcome, 16)
	moved := []Partition{part("t", 3, 0)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		moved[0].FetchOffset = int64(i)
		ctx := c.NewContext(Request{SessionID: id, Epoch: epoch, Partitions: moved}, t0)
		for j := range os {
			os[j] = quiet(10)
		}
		os[3].HasRecords = true
		if _, err := c.Finish(ctx, os, t0); err != nil {
			b.Fatal(err)
		}
		epoch = nextEpoch(epoch)
	}
}
