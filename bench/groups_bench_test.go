package bench

// Group coordinator benchmarks (issue 3, "Benchmarks"): offset commit rate,
// rebalance time after a member joins, and how long the coordinator takes
// to load a __consumer_offsets partition of a million commits before and
// after compaction. All run franz-go against an in-process Strata
// (testenv.StartBroker) with its data under b.TempDir().
//
//	go test ./bench/ -run '^$' -bench '^BenchmarkGroupOffsetCommit$' -benchtime=3s -count 3
//	go test ./bench/ -run '^$' -bench '^BenchmarkGroupRebalance$' -benchtime=20x
//	go test ./bench/ -run '^$' -bench '^BenchmarkGroupCoordinatorLoad$' -benchtime=1x -count 3
//
// Plain `go test ./bench/` runs only TestGroupBenchHarness (<1 s), the
// load benchmark's steps on a 40,000-record log.

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

var (
	loadCommits    = flag.Int("bench.load-commits", 1_000_000, "offset-commit records written to __consumer_offsets before the load benchmark")
	loadPartitions = flag.Int("bench.load-partitions", 100, "partitions per OffsetCommit (= distinct keys) in the load benchmark")
)

// groupSettings are the broker settings every group benchmark uses: no
// initial rebalance delay (Kafka's 3 s would dominate every rebalance), and
// one __consumer_offsets partition so the load benchmark's records all land
// in one log.
func groupSettings() map[string]string {
	return map[string]string{
		"group.initial.rebalance.delay.ms": "0",
		"offsets.topic.num.partitions":     "1",
	}
}

func newClient(tb testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

func partitionOffsets(topic string, parts int, offset int64) kadm.Offsets {
	offsets := kadm.Offsets{}
	for p := range parts {
		offsets.Add(kadm.Offset{Topic: topic, Partition: int32(p), At: offset, LeaderEpoch: -1})
	}
	return offsets
}

// BenchmarkGroupOffsetCommit: one group, one committer (kadm.CommitOffsets,
// an admin commit to an Empty group, so generation -1), each iteration
// committing every partition of the topic in one OffsetCommit request and
// waiting for the answer. Each commit is one batch appended to the group's
// __consumer_offsets partition before the broker answers.
func BenchmarkGroupOffsetCommit(b *testing.B) {
	for _, parts := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("parts=%d", parts), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			srv := testenv.StartBroker(b, broker.Options{DataDir: b.TempDir(), Settings: groupSettings()})
			if err := createTopic(ctx, srv.Addr, "commits", int32(parts)); err != nil {
				b.Fatal(err)
			}
			adm := kadm.NewClient(newClient(b, srv.Addr))
			commit := func(i int) {
				resp, err := adm.CommitOffsets(ctx, "bench-commit", partitionOffsets("commits", parts, int64(i)))
				if err == nil {
					err = resp.Error()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			commit(0) // creates __consumer_offsets and the group; warms the connection
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				commit(i + 1)
				lat = append(lat, time.Since(t0))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
			b.ReportMetric(float64(b.N*parts)/elapsed.Seconds(), "partition-offsets/s")
			b.ReportMetric(ms(pct(lat, 0.50)), "p50-ms")
			b.ReportMetric(ms(pct(lat, 0.99)), "p99-ms")
		})
	}
}

// BenchmarkGroupRebalance: a group of N consumers (kgo, one client each)
// is stable on a 24-partition topic; one more consumer joins, and the clock
// runs from its first JoinGroup request written until every member holds its
// final assignment (seen through OnPartitionsAssigned/Revoked/Lost: the
// N+1 members' partitions are disjoint, cover the topic, and each has
// ⌊24/(N+1)⌋ or ⌈24/(N+1)⌉ of them).
//
// Existing members learn of a rebalance from their next heartbeat, so the
// heartbeat interval (100 ms here; kgo's default is 3 s) is part of what is
// measured. The members' heartbeat timers all restart when the previous
// rebalance ends, so the new member starts after a random 0–100 ms pause:
// otherwise every run would wait exactly one full interval. protocol-ms is
// the rest: from the last JoinGroup any member wrote to all assigned (the
// final JoinGroup/SyncGroup round, no heartbeat wait). eager = range
// assignor (everyone revokes everything, one round); cooperative =
// cooperative-sticky (KIP-429: a second round hands over the revoked
// partitions, and members that revoked nothing learn of it by heartbeat).
func BenchmarkGroupRebalance(b *testing.B) {
	const parts = 24
	for _, proto := range []string{"eager", "cooperative"} {
		for _, n := range []int{2, 4, 8} {
			b.Run(fmt.Sprintf("protocol=%s/members=%d", proto, n), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				srv := testenv.StartBroker(b, broker.Options{DataDir: b.TempDir(), Settings: groupSettings()})
				if err := createTopic(ctx, srv.Addr, "rebalance", parts); err != nil {
					b.Fatal(err)
				}
				var total, protocol []time.Duration
				var joins int
				b.ResetTimer()
				b.StopTimer()
				for i := 0; i < b.N; i++ {
					r := rebalanceOnce(b, srv.Addr, fmt.Sprintf("bench-rebalance-%d", i), proto, n, parts)
					total = append(total, r.total)
					protocol = append(protocol, r.protocol)
					joins += r.joins
				}
				var sum time.Duration
				for _, d := range total {
					sum += d
				}
				b.ReportMetric(0, "ns/op") // the timer is off: every iteration is mostly waiting
				b.ReportMetric(ms(sum)/float64(b.N), "rebalance-ms")
				b.ReportMetric(ms(pct(total, 0.5)), "p50-ms")
				b.ReportMetric(ms(slices.Max(total)), "max-ms")
				b.ReportMetric(ms(pct(protocol, 0.5)), "protocol-p50-ms")
				b.ReportMetric(float64(joins)/float64(b.N), "joins/op")
			})
		}
	}
}

// assignments tracks which partitions every member holds, from kgo's
// rebalance callbacks.
type assignments struct {
	mu      sync.Mutex
	held    []map[int32]bool
	changed chan struct{}
}

func newAssignments(members int) *assignments {
	a := &assignments{changed: make(chan struct{}, 1)}
	for range members {
		a.held = append(a.held, map[int32]bool{})
	}
	return a
}

func (a *assignments) update(member int, ps map[string][]int32, add bool) {
	a.mu.Lock()
	for _, list := range ps {
		for _, p := range list {
			if add {
				a.held[member][p] = true
			} else {
				delete(a.held[member], p)
			}
		}
	}
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// balanced reports whether the first members members hold disjoint sets
// covering all parts partitions, each ⌊parts/members⌋ or ⌈parts/members⌉.
func (a *assignments) balanced(members, parts int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	lo, hi := parts/members, (parts+members-1)/members
	seen := map[int32]bool{}
	for m := range members {
		n := len(a.held[m])
		if n < lo || n > hi {
			return false
		}
		for p := range a.held[m] {
			if seen[p] {
				return false
			}
			seen[p] = true
		}
	}
	return len(seen) == parts
}

func (a *assignments) waitBalanced(ctx context.Context, members, parts int) (time.Time, error) {
	for !a.balanced(members, parts) {
		select {
		case <-a.changed:
		case <-ctx.Done():
			a.mu.Lock()
			defer a.mu.Unlock()
			counts := make([]int, len(a.held))
			for i, h := range a.held {
				counts[i] = len(h)
			}
			return time.Time{}, fmt.Errorf("members never balanced; partitions held: %v", counts)
		}
	}
	return time.Now(), nil
}

// joinHook records when clients write JoinGroup requests.
type joinHook struct {
	mu    sync.Mutex
	times []time.Time
}

func (h *joinHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.JoinGroup) && err == nil {
		h.mu.Lock()
		h.times = append(h.times, time.Now())
		h.mu.Unlock()
	}
}

// since returns the JoinGroup writes at or after t.
func (h *joinHook) since(t time.Time) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []time.Time
	for _, at := range h.times {
		if !at.Before(t) {
			out = append(out, at)
		}
	}
	return out
}

// rebalanceRun is one measured join.
type rebalanceRun struct {
	total    time.Duration // the new member's first JoinGroup → all assigned
	protocol time.Duration // the last JoinGroup written by anyone → all assigned
	joins    int           // JoinGroup requests written meanwhile (all members)
}

func rebalanceOnce(b *testing.B, addr, group, proto string, n, parts int) rebalanceRun {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newAssignments(n + 1)
	balancer := kgo.RangeBalancer()
	if proto == "cooperative" {
		balancer = kgo.CooperativeStickyBalancer()
	}
	var clients []*kgo.Client
	defer func() {
		var wg sync.WaitGroup
		for _, cl := range clients {
			wg.Go(cl.Close)
		}
		wg.Wait()
	}()
	hook := &joinHook{}
	start := func(m int) {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(addr),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics("rebalance"),
			kgo.Balancers(balancer),
			kgo.HeartbeatInterval(100*time.Millisecond),
			kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { a.update(m, ps, true) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { a.update(m, ps, false) }),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { a.update(m, ps, false) }),
			kgo.WithHooks(hook),
		)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cl)
	}
	for m := range n {
		start(m)
	}
	if _, err := a.waitBalanced(ctx, n, parts); err != nil {
		b.Fatalf("group of %d: %v", n, err)
	}
	time.Sleep(rand.N(100 * time.Millisecond))
	t0 := time.Now()
	start(n)
	done, err := a.waitBalanced(ctx, n+1, parts)
	if err != nil {
		b.Fatalf("after member %d joined: %v", n+1, err)
	}
	joins := hook.since(t0)
	if len(joins) == 0 {
		b.Fatalf("no JoinGroup written after the new member started")
	}
	return rebalanceRun{total: done.Sub(joins[0]), protocol: done.Sub(slices.MaxFunc(joins, time.Time.Compare)), joins: len(joins)}
}

// BenchmarkGroupCoordinatorLoad: fill one __consumer_offsets partition with
// -bench.load-commits offset-commit records (OffsetCommits of
// -bench.load-partitions partitions each, all for one group, so there are
// that many distinct keys), stop the broker, and time a restart until the
// group's OffsetFetch answers without COORDINATOR_LOAD_IN_PROGRESS; then
// compact (Broker.CleanLogs) and time the reload again. __consumer_offsets
// gets segment.bytes=1 MiB so the log is sealed segments the cleaner may
// touch; min.compaction.lag.ms is held at one hour while filling and for
// the first reload, so the broker's own cleaner loop (every 15 s) leaves the
// log alone until the measured pass. Run with -benchtime=1x.
func BenchmarkGroupCoordinatorLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := coordinatorLoad(b, *loadCommits, *loadPartitions)
		b.ReportMetric(float64(r.records), "records")
		b.ReportMetric(r.fillRate, "fill-records/s")
		b.ReportMetric(float64(r.before.logBytes), "bytes-before")
		b.ReportMetric(float64(r.after.logBytes), "bytes-after")
		b.ReportMetric(float64(r.before.segments), "segments-before")
		b.ReportMetric(float64(r.after.segments), "segments-after")
		b.ReportMetric(ms(r.before.ready), "load-ms-before")
		b.ReportMetric(ms(r.after.ready), "load-ms-after")
		b.ReportMetric(ms(r.before.replay), "replay-ms-before")
		b.ReportMetric(ms(r.after.replay), "replay-ms-after")
		b.ReportMetric(ms(r.before.open), "open-ms-before")
		b.ReportMetric(ms(r.after.open), "open-ms-after")
		b.ReportMetric(ms(r.clean), "clean-ms")
	}
}

// loadResult is one coordinatorLoad run.
type loadResult struct {
	records       int
	fillRate      float64 // records/s while filling
	before, after reload
	clean         time.Duration // the CleanLogs pass
}

// reload is one restart: the log as it was on disk, and how long the broker
// took.
type reload struct {
	logBytes int64 // __consumer_offsets-0/*.log
	segments int
	open     time.Duration // broker.New (open every log, start the load)
	replay   time.Duration // the coordinator's replay of the partition (its "loaded groups" log line)
	ready    time.Duration // broker.New → first OffsetFetch without COORDINATOR_LOAD_IN_PROGRESS
}

const (
	loadGroup = "bench-load"
	loadTopic = "load"
)

func coordinatorLoad(tb testing.TB, commits, parts int) loadResult {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := filepath.Join(tb.TempDir(), "data")
	srv := testenv.StartBroker(tb, broker.Options{DataDir: dir, Settings: groupSettings()})
	if err := createTopic(ctx, srv.Addr, loadTopic, int32(parts)); err != nil {
		tb.Fatal(err)
	}
	cl := newClient(tb, srv.Addr)
	adm := kadm.NewClient(cl)
	// The first commit creates __consumer_offsets; then its segments shrink
	// and cleaning is held off.
	if resp, err := adm.CommitOffsets(ctx, loadGroup, partitionOffsets(loadTopic, parts, 0)); err != nil || resp.Error() != nil {
		tb.Fatalf("first commit: %v %v", err, resp.Error())
	}
	alterOffsetsTopic(ctx, tb, adm, map[string]*string{
		"segment.bytes":         kadm.StringPtr("1048576"),
		"min.compaction.lag.ms": kadm.StringPtr("3600000"),
	})

	// Fill: requests is rounded up so at least commits records are written;
	// four committers keep the broker busy while each waits for its answer.
	requests := (commits + parts - 1) / parts
	res := loadResult{records: requests * parts}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	fillStart := time.Now()
	for range 4 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(requests) {
					return
				}
				req := commitRequest(loadGroup, loadTopic, parts, i)
				resp, err := req.RequestWith(ctx, cl)
				if err == nil {
					err = commitErr(resp)
				}
				if err != nil {
					errc <- fmt.Errorf("commit %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	res.fillRate = float64(res.records) / time.Since(fillStart).Seconds()
	select {
	case err := <-errc:
		tb.Fatal(err)
	default:
	}
	// Every partition's latest commit is the last request that carried it;
	// committers race, so read what the broker holds as the expected state.
	want := fetchOffsets(ctx, tb, adm)
	cl.Close()
	if err := srv.Stop(); err != nil {
		tb.Fatal(err)
	}

	var srv2 *testenv.InProcess
	res.before, srv2 = restartAndLoad(ctx, tb, dir, want)
	cl2 := newClient(tb, srv2.Addr)
	adm2 := kadm.NewClient(cl2)
	alterOffsetsTopic(ctx, tb, adm2, map[string]*string{"min.compaction.lag.ms": nil})
	t0 := time.Now()
	if err := srv2.CleanLogs(ctx); err != nil {
		tb.Fatal(err)
	}
	res.clean = time.Since(t0)
	cl2.Close()
	if err := srv2.Stop(); err != nil {
		tb.Fatal(err)
	}
	var srv3 *testenv.InProcess
	res.after, srv3 = restartAndLoad(ctx, tb, dir, want)
	if err := srv3.Stop(); err != nil {
		tb.Fatal(err)
	}
	if res.after.logBytes >= res.before.logBytes {
		tb.Fatalf("compaction left %d bytes of %d", res.after.logBytes, res.before.logBytes)
	}
	return res
}

// commitRequest is an admin OffsetCommit (generation -1) of every partition
// at offset i.
func commitRequest(group, topic string, parts int, i int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for p := range parts {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition = int32(p)
		rp.Offset = i
		rp.LeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func commitErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

func alterOffsetsTopic(ctx context.Context, tb testing.TB, adm *kadm.Client, set map[string]*string) {
	tb.Helper()
	var alters []kadm.AlterConfig
	for k, v := range set {
		op := kadm.SetConfig
		if v == nil {
			op = kadm.DeleteConfig
		}
		alters = append(alters, kadm.AlterConfig{Op: op, Name: k, Value: v})
	}
	resp, err := adm.AlterTopicConfigs(ctx, alters, "__consumer_offsets")
	if err == nil {
		_, err = resp.On("__consumer_offsets", nil)
	}
	if err != nil {
		tb.Fatalf("alter __consumer_offsets configs: %v", err)
	}
}

func fetchOffsets(ctx context.Context, tb testing.TB, adm *kadm.Client) map[int32]int64 {
	tb.Helper()
	resp, err := adm.FetchOffsets(ctx, loadGroup)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
	return out
}

// restartAndLoad starts a broker on dir and polls OffsetFetch directly (no
// client retry backoff) until the group's offsets are served, then checks
// they are the ones committed.
func restartAndLoad(ctx context.Context, tb testing.TB, dir string, want map[int32]int64) (reload, *testenv.InProcess) {
	tb.Helper()
	var r reload
	r.logBytes, r.segments = logBytes(tb, filepath.Join(dir, "__consumer_offsets-0"))
	h := &loadLogHandler{}
	t0 := time.Now()
	srv := testenv.StartBroker(tb, broker.Options{DataDir: dir, Settings: groupSettings(), Logger: slog.New(h)})
	r.open = time.Since(t0)
	cl := newClient(tb, srv.Addr)
	defer cl.Close()
	// Straight to the broker (node 0, the only one): kgo's coordinator
	// path would retry COORDINATOR_LOAD_IN_PROGRESS itself after its
	// retry backoff (~250 ms), which is the client's time, not the load's.
	node := cl.Broker(0)
	// The multi-group form (v8+, KIP-709), which kgo negotiates with
	// Strata (v0–v9); all topics of the group.
	req := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = loadGroup
	req.Groups = append(req.Groups, rg)
	for {
		kresp, err := node.Request(ctx, req)
		var resp kmsg.OffsetFetchResponseGroup
		if err == nil {
			if gs := kresp.(*kmsg.OffsetFetchResponse).Groups; len(gs) == 1 {
				resp = gs[0]
			} else {
				err = fmt.Errorf("OffsetFetch answered %d groups (version %d)", len(gs), kresp.GetVersion())
			}
		}
		if err == nil && resp.ErrorCode == kerr.CoordinatorLoadInProgress.Code {
			time.Sleep(time.Millisecond)
			continue
		}
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err != nil {
			tb.Fatalf("OffsetFetch after restart: %v", err)
		}
		r.ready = time.Since(t0)
		got := map[int32]int64{}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				got[p.Partition] = p.Offset
			}
		}
		if len(got) != len(want) {
			tb.Fatalf("after restart: %d partitions committed, want %d", len(got), len(want))
		}
		for p, o := range want {
			if got[p] != o {
				tb.Fatalf("after restart: partition %d at %d, want %d", p, got[p], o)
			}
		}
		break
	}
	// The coordinator logs the replay just after it starts serving.
	for deadline := time.Now().Add(5 * time.Second); h.took() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	r.replay = h.took()
	if errs := h.errors(); errs != "" {
		tb.Fatalf("broker logged: %s", errs)
	}
	return r, srv
}

func logBytes(tb testing.TB, dir string) (n int64, segments int) {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		segments++
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n, segments
}

// loadLogHandler keeps the group coordinator's "loaded groups" duration and
// any warning or error the broker logs.
type loadLogHandler struct {
	mu   sync.Mutex
	dur  time.Duration
	errs []string
}

func (h *loadLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *loadLogHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *loadLogHandler) WithGroup(string) slog.Handler                { return h }

func (h *loadLogHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		h.errs = append(h.errs, r.Message)
	}
	if r.Message == "loaded groups" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "took" {
				h.dur = a.Value.Duration()
			}
			return true
		})
	}
	return nil
}

func (h *loadLogHandler) took() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dur
}

func (h *loadLogHandler) errors() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.errs, "; ")
}

// TestGroupBenchHarness runs the load benchmark's steps on a small log
// (plain `go test ./bench/` runs it): the restart serves exactly the
// committed offsets, and compaction shrinks the log.
func TestGroupBenchHarness(t *testing.T) {
	r := coordinatorLoad(t, 40_000, 10)
	if r.records != 40_000 || r.before.segments < 2 || r.after.logBytes >= r.before.logBytes || r.before.replay <= 0 {
		t.Fatalf("%+v", r)
	}
	t.Logf("%+v", r)
}
