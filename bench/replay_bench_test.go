package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering"
)

var (
	replayMiB      = flag.Int("bench.replay-mib", 1024, "MiB of each replay topic in the bucket (one partition; and 16 partitions)")
	replaySegMiB   = flag.Int("bench.replay-segment-mib", 128, "segment.bytes of the replay topics, MiB")
	replayCopyMiB  = flag.Int("bench.replay-copy-mib", 512, "MiB copied by the copy case")
	replayProfiles = flag.String("bench.replay-profiles", "s3like,loopback", "links to MinIO: s3like (toxiproxy, testenv.S3Like), loopback (direct)")
	replaySweep    = flag.String("bench.replay-sweep", "1,4,8,16,32", "concurrencies of the raw ranged-GET reference")
	replayCases    = flag.String("bench.replay-cases", "copy,reference,first-byte,kgo,rdkafka", "cases to run")
	replayPprof    = flag.String("bench.replay-pprof", "", "directory: each replay case saves a 2 s CPU profile of the broker, taken 0.5 s into the replay")
	replayBaseline = flag.String("bench.replay-baseline", "", "a strata binary of an older build: the first-byte and replay cases also run it (target=baseline, build=baseline), each right after this tree's, in the same run")
)

const replayBucket = "strata-replay"

// replayTopic is a topic whose every offset is in the bucket.
type replayTopic struct {
	name    string
	parts   int
	objects []rawObject // every partition's .log objects, partition by partition
	bytes   int64
	records int64
	ends    []int64 // per partition: the remote end offset
}

type rawObject struct {
	key  string
	size int64
}

type replayEnv struct {
	mc       *testenv.MinIO
	direct   string // --remote URL straight to MinIO (seeding)
	dataDir  string // a broker data dir with both topics restored from the bucket
	one      *replayTopic
	sixteen  *replayTopic
	copyLog  *localstore.Log
	copySeg  []localstore.SegmentInfo
	rdkafka  string
	minioPid int
	refs     map[string]refResult // "profile/topic" → best raw reference, same run
}

type refResult struct {
	mbps        float64
	concurrency int
	getsPerGiB  float64
	getMs       float64 // one 4 MiB GET, p50, cold object
	chainCPU    float64 // CPU-s per GB of MinIO + this process
}

// BenchmarkReplay measures issue 14's workload: a tiered topic with ≥ 1 GiB
// in the bucket and no local copies, replayed from offset 0 by a cold
// `strata serve` process (empty chunk cache) over an S3-like link (toxiproxy:
// 30 ms ± 10 ms per request, 80 MB/s per connection) and over plain loopback,
// next to the bucket's own speed in the same run: raw parallel ranged GETs
// of the same objects through the same link, same chunk size, at the
// concurrency that moves the most bytes.
//
//	<profile>/copy/target=raw|tiering    PutObject per segment vs CopyOnce
//	<profile>/reference/topic=1p|16p     raw GET sweep (each concurrency, best)
//	<profile>/first-byte/target=raw|strata  one cold 4 MiB GET vs one cold Fetch
//	<profile>/replay/client=kgo|rdkafka/partitions=1|16
//
// Run with -benchtime=1x; bench/run-replay.sh runs the passes.
func BenchmarkReplay(b *testing.B) {
	env := setupReplay(b)
	cases := map[string]bool{}
	for _, c := range strings.Split(*replayCases, ",") {
		cases[c] = true
	}
	for _, prof := range strings.Split(*replayProfiles, ",") {
		link := replayLink(b, env, prof)
		if cases["copy"] {
			b.Run(prof+"/copy/target=raw", func(b *testing.B) { benchReplayCopy(b, env, link, false) })
			b.Run(prof+"/copy/target=tiering", func(b *testing.B) { benchReplayCopy(b, env, link, true) })
		}
		for _, t := range []*replayTopic{env.one, env.sixteen} {
			if cases["reference"] {
				b.Run(fmt.Sprintf("%s/reference/topic=%dp", prof, t.parts), func(b *testing.B) { benchReference(b, env, link, prof, t) })
			}
		}
		if cases["first-byte"] {
			b.Run(prof+"/first-byte/target=raw", func(b *testing.B) { benchFirstByteRawGET(b, env, link, prof) })
			b.Run(prof+"/first-byte/target=strata", func(b *testing.B) { benchFirstByteFetch(b, env, link, prof, "") })
			if *replayBaseline != "" {
				b.Run(prof+"/first-byte/target=baseline", func(b *testing.B) { benchFirstByteFetch(b, env, link, prof, *replayBaseline) })
			}
		}
		for _, client := range []string{"kgo", "rdkafka"} {
			if !cases[client] {
				continue
			}
			for _, t := range []*replayTopic{env.one, env.sixteen} {
				b.Run(fmt.Sprintf("%s/replay/client=%s/partitions=%d", prof, client, t.parts), func(b *testing.B) {
					benchColdReplay(b, env, link, prof, client, t, "")
				})
				if *replayBaseline != "" {
					b.Run(fmt.Sprintf("%s/replay/client=%s/partitions=%d/build=baseline", prof, client, t.parts), func(b *testing.B) {
						benchColdReplay(b, env, link, prof, client, t, *replayBaseline)
					})
				}
			}
		}
	}
}

// link is how the broker and the raw reference reach MinIO in one profile.
type link struct {
	endpoint string
	url      string // --remote
	proxy    *testenv.Toxiproxy
}

func replayLink(b *testing.B, env *replayEnv, prof string) link {
	switch prof {
	case "loopback":
		return link{endpoint: env.mc.Endpoint, url: env.direct}
	case "s3like":
		tp := testenv.StartToxiproxy(b, env.mc.Addr, testenv.S3Like)
		u := strings.Replace(env.direct, urlEscape(env.mc.Endpoint), urlEscape(tp.Endpoint), 1)
		return link{endpoint: tp.Endpoint, url: u, proxy: tp}
	}
	b.Fatalf("unknown profile %q", prof)
	return link{}
}

func urlEscape(s string) string { return strings.NewReplacer(":", "%3A", "/", "%2F").Replace(s) }

// openStore opens the bucket through a link, counting requests.
func openStore(b *testing.B, url string) (remotestore.Storage, *remotestore.Counters) {
	b.Helper()
	loc, err := remotestore.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	s, err := loc.Open()
	if err != nil {
		b.Fatal(err)
	}
	c := &remotestore.Counters{}
	return remotestore.WithCounters(s, c), c
}

// setupReplay starts MinIO and fills the bucket (untimed, straight to
// MinIO): topic replay-1p (one partition) and replay-16p (16), each
// -bench.replay-mib in segments of -bench.replay-segment-mib, copied by
// tiering itself, then restores both into a broker data dir whose local logs
// start where the bucket ends.
func setupReplay(b *testing.B) *replayEnv {
	ctx := context.Background()
	env := &replayEnv{refs: map[string]refResult{}}
	env.mc = testenv.StartMinIO(b)
	env.mc.CreateBucket(b, replayBucket)
	env.mc.SetAWSEnv(b)
	env.minioPid = pidOf(env.mc.DataDir)
	env.direct = env.mc.URL(replayBucket, "")
	store, _ := openStore(b, env.direct)
	mgr, err := tiering.NewManager(tiering.Options{Store: store, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Close()
	total := int64(*replayMiB) << 20
	seg := int64(*replaySegMiB) << 20
	start := time.Now()
	env.one = seedTopic(b, mgr, "replay-1p", 1, total, seg)
	env.sixteen = seedTopic(b, mgr, "replay-16p", 16, total, seg)
	b.Logf("bucket seeded in %v: %s %d B in %d objects, %s %d B in %d objects", time.Since(start).Round(time.Second),
		env.one.name, env.one.bytes, len(env.one.objects), env.sixteen.name, env.sixteen.bytes, len(env.sixteen.objects))
	spec := tierLogSpec{total: int64(*replayCopyMiB) << 20, segmentBytes: seg, batchRecords: 64, recordSize: 1024}
	env.copyLog, env.copySeg = buildTierLog(b, b.TempDir(), spec)

	// Restore both topics into a data dir (through a broker on the direct
	// link); every replay case starts a new process on it.
	env.dataDir = b.TempDir()
	p := startReplayBroker(b, env, env.direct)
	adm := kadm.NewClient(testenv.Client(b, p.Addr))
	for _, t := range []*replayTopic{env.one, env.sixteen} {
		res, err := adm.CreateTopic(ctx, -1, -1, map[string]*string{"strata.remote.restore": ptr("true")}, t.name)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			b.Fatalf("restore %s: %v\n%s", t.name, err, p.LogTail(30))
		}
	}
	p.Kill()
	if path, err := exec.Command("bash", "bench/rdkafka/build.sh").Output(); err == nil {
		env.rdkafka = strings.TrimSpace(string(path))
	} else if path, err := exec.Command("bash", "rdkafka/build.sh").Output(); err == nil {
		env.rdkafka = strings.TrimSpace(string(path))
	}
	return env
}

func ptr(s string) *string { return &s }

// seedTopic builds each partition's log on local disk, copies it with
// CopyOnce, stores the topic config, and deletes the local files.
func seedTopic(b *testing.B, mgr *tiering.Manager, name string, parts int, total, segBytes int64) *replayTopic {
	ctx := context.Background()
	t := &replayTopic{name: name, parts: parts}
	for i := range parts {
		dir := b.TempDir()
		per := total / int64(parts)
		l, _ := buildTierLog(b, dir, tierLogSpec{total: per, segmentBytes: segBytes, batchRecords: 64, recordSize: 1024})
		tp := mgr.Partition(name, int32(i), l)
		if err := tp.Load(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := tp.CopyOnce(ctx); err != nil {
			b.Fatal(err)
		}
		m := tp.Manifest()
		for _, s := range m.Readable() {
			t.objects = append(t.objects, rawObject{key: s.LogKey(tp.Prefix()), size: s.Size})
			t.bytes += s.Size
		}
		t.ends = append(t.ends, m.EndOffset())
		t.records += m.EndOffset()
		l.Close()
		os.RemoveAll(dir)
	}
	id := make([]byte, 16)
	rand.Read(id)
	tc := tiering.TopicConfig{Name: name, ID: fmt.Sprintf("%x", id), Partitions: parts, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": strconv.FormatInt(segBytes, 10), "local.retention.bytes": "1",
	}}
	if err := mgr.PutTopicConfig(ctx, tc); err != nil {
		b.Fatal(err)
	}
	return t
}

// startReplayBroker starts `strata serve` on the restored data dir with the
// given --remote and a metrics listener.
func startReplayBroker(b *testing.B, env *replayEnv, remoteURL string) *replayBroker {
	return startReplayBrokerBinary(b, env, remoteURL, "")
}

// startReplayBrokerBinary is startReplayBroker running bin ("": this tree's).
func startReplayBrokerBinary(b *testing.B, env *replayEnv, remoteURL, bin string) *replayBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	metrics := ln.Addr().String()
	ln.Close()
	p := testenv.StartProcess(b, testenv.ProcessOptions{DataDir: env.dataDir, Binary: bin,
		Args: []string{"--remote", remoteURL, "--metrics-listen", metrics}})
	return &replayBroker{Process: p, metrics: "http://" + metrics + "/metrics"}
}

type replayBroker struct {
	*testenv.Process
	metrics string
}

// waitNoGets waits until the broker has no chunk GET in flight.
func (p *replayBroker) waitNoGets(b *testing.B) {
	deadline := time.Now().Add(time.Minute)
	for p.scrape(b)["strata_tiering_reader_inflight_gets"] != 0 {
		if time.Now().After(deadline) {
			b.Fatal("chunk GETs still in flight a minute after their reader went")
		}
		time.Sleep(time.Millisecond)
	}
}

// scrape reads the broker's Prometheus metrics: name{labels} → value.
func (p *replayBroker) scrape(b *testing.B) map[string]float64 {
	resp, err := http.Get(p.metrics)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// pidOf finds the process whose command line contains needle (MinIO, by
// its data directory), 0 if none.
func pidOf(needle string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(raw), needle) {
			return pid
		}
	}
	return 0
}

// chainCPU is the CPU time used so far by MinIO and this process (the
// proxy, the raw GET loop or the kgo client), plus the given processes:
// what one replay costs the whole machine.
func chainCPU(env *replayEnv, pids ...int) time.Duration {
	var total time.Duration
	for _, pid := range append([]int{env.minioPid, os.Getpid()}, pids...) {
		if pid == 0 {
			continue
		}
		if st, err := testenv.ReadProcStat(pid); err == nil {
			total += st.CPU
		}
	}
	return total
}

// peakRSS is VmHWM from /proc/PID/status, bytes.
func peakRSS(pid int) int64 {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func benchReplayCopy(b *testing.B, env *replayEnv, lk link, tiered bool) {
	ctx := context.Background()
	store, counts := openStore(b, lk.url)
	bytes := segBytes(env.copySeg)
	var el time.Duration
	var reqs remotestore.RequestCounts
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("copy-%d-%d", time.Now().UnixNano(), i)
		before := counts.Snapshot()
		if !tiered {
			start := time.Now()
			if err := rawCopy(ctx, store, prefix+"/", env.copySeg); err != nil {
				b.Fatal(err)
			}
			el += time.Since(start)
		} else {
			mgr := newTierManager(b, store, tierChunk, 0, 0)
			p := mgr.Partition(prefix, 0, env.copyLog)
			if err := p.Load(ctx); err != nil {
				b.Fatal(err)
			}
			before = counts.Snapshot()
			start := time.Now()
			n, err := p.CopyOnce(ctx)
			el += time.Since(start)
			if err != nil || n != len(env.copySeg) {
				b.Fatalf("copied %d of %d segments: %v", n, len(env.copySeg), err)
			}
			mgr.Close()
		}
		reqs = addCounts(reqs, counts.Snapshot().Sub(before))
		b.StopTimer()
		deletePrefix(b, store, prefix+"/")
		b.StartTimer()
	}
	mb := mbps(int64(b.N)*bytes, el)
	b.ReportMetric(mb, "MB/s")
	reportRequests(b, reqs, float64(b.N*len(env.copySeg)), "segment")
	key := "copy/" + lk.endpoint
	if !tiered {
		env.refs[key] = refResult{mbps: mb}
	} else if ref, ok := env.refs[key]; ok {
		b.ReportMetric(100*mb/ref.mbps, "%raw")
	}
}

// rawGets reads every chunk of objs with conc ranged GETs in flight, each
// chunk read to its end into a per-worker buffer, and returns the bytes.
func rawGets(ctx context.Context, store remotestore.Storage, objs []rawObject, chunk int64, conc int) (int64, error) {
	type job struct {
		key      string
		pos, len int64
	}
	jobs := make(chan job, conc)
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			buf := make([]byte, chunk)
			for j := range jobs {
				if err := getRange(ctx, store, j.key, j.pos, buf[:j.len]); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				n.Add(j.len)
			}
		})
	}
	for _, o := range objs {
		for pos := int64(0); pos < o.size; pos += chunk {
			jobs <- job{o.key, pos, min(chunk, o.size-pos)}
		}
	}
	close(jobs)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return n.Load(), *e
	}
	return n.Load(), nil
}

func benchReference(b *testing.B, env *replayEnv, lk link, prof string, t *replayTopic) {
	ctx := context.Background()
	store, counts := openStore(b, lk.url)
	var best refResult
	for _, cs := range strings.Split(*replaySweep, ",") {
		conc, err := strconv.Atoi(cs)
		if err != nil {
			b.Fatal(err)
		}
		before := counts.Snapshot()
		cpu0 := chainCPU(env)
		start := time.Now()
		n, err := rawGets(ctx, store, t.objects, tierChunk, conc)
		el := time.Since(start)
		if err != nil || n != t.bytes {
			b.Fatalf("raw GETs: %d of %d bytes: %v", n, t.bytes, err)
		}
		r := refResult{mbps: mbps(n, el), concurrency: conc, getsPerGiB: float64(counts.Snapshot().Sub(before).Get) / (float64(n) / (1 << 30)),
			chainCPU: (chainCPU(env) - cpu0).Seconds() / (float64(n) / 1e9)}
		b.ReportMetric(r.mbps, fmt.Sprintf("MB/s@%d", conc))
		if r.mbps > best.mbps {
			best = r
		}
	}
	best.getMs = env.refs[prof+"/"+t.name].getMs
	env.refs[prof+"/"+t.name] = best
	b.ReportMetric(best.mbps, "MB/s")
	b.ReportMetric(float64(best.concurrency), "best-concurrency")
	b.ReportMetric(best.getsPerGiB, "GET/GiB")
	b.ReportMetric(best.chainCPU, "chain-CPU-s/GB")
}

// benchFirstByteRawGET: one ranged GET of the first 4 MiB of distinct
// objects (cold in MinIO's and the link's view), time to the last byte —
// what a broker must have before it can answer from that chunk — and to the
// response headers.
func benchFirstByteRawGET(b *testing.B, env *replayEnv, lk link, prof string) {
	ctx := context.Background()
	store, _ := openStore(b, lk.url)
	buf := make([]byte, tierChunk)
	var full, hdr []time.Duration
	objs := append(append([]rawObject(nil), env.sixteen.objects...), env.one.objects...)
	for i := 0; i < b.N; i++ {
		for _, o := range objs {
			n := min(tierChunk, o.size)
			start := time.Now()
			rc, err := store.Get(ctx, o.key, 0, n)
			if err != nil {
				b.Fatal(err)
			}
			hdr = append(hdr, time.Since(start))
			_, err = io.ReadFull(rc, buf[:n])
			rc.Close()
			if err != nil {
				b.Fatal(err)
			}
			full = append(full, time.Since(start))
		}
	}
	reportLatency(b, full)
	b.ReportMetric(ms(pct(hdr, 0.5)), "headers-p50-ms")
	for _, t := range []*replayTopic{env.one, env.sixteen} {
		r := env.refs[prof+"/"+t.name]
		r.getMs = ms(pct(full, 0.5))
		env.refs[prof+"/"+t.name] = r
	}
}

// benchFirstByteFetch: a cold broker; each sample is a new connection's
// Fetch at offset 0 of a partition nothing has read yet (one chunk GET, no
// index needed), then Fetches at offsets inside segments nothing has read
// (index bundle + chunk), timed to the response's first byte.
func benchFirstByteFetch(b *testing.B, env *replayEnv, lk link, prof, bin string) {
	ctx := context.Background()
	var starts, mids []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := startReplayBrokerBinary(b, env, lk.url, bin)
		ids := topicIDs(b, p.Addr)
		b.StartTimer()
		sample := func(topic string, part int32, off int64) time.Duration {
			// The previous sample's connection is gone; wait until what
			// its stream fetched ahead has stopped, so each sample is a
			// cold fetch on an idle broker, as each raw GET is on an idle
			// link.
			p.waitNoGets(b)
			el, err := fetchFirstByte(ctx, p.Addr, topic, ids[topic], part, off)
			if err != nil {
				b.Fatal(err)
			}
			return el
		}
		for part := range env.sixteen.parts {
			starts = append(starts, sample(env.sixteen.name, int32(part), 0))
		}
		starts = append(starts, sample(env.one.name, 0, 0))
		// Inside segments of replay-1p that nothing has read.
		segs := len(env.one.objects)
		for s := 1; s < segs; s++ {
			off := env.one.ends[0] * int64(s) / int64(segs) // roughly segment s's start …
			off += env.one.ends[0] / int64(segs) / 2        // … plus half a segment
			mids = append(mids, sample(env.one.name, 0, off))
		}
		b.StopTimer()
		p.Kill()
		b.StartTimer()
	}
	reportLatency(b, starts)
	b.ReportMetric(ms(pct(mids, 0.5)), "mid-segment-p50-ms")
	b.ReportMetric(ms(pct(mids, 0.9)), "mid-segment-p90-ms")
	if r := env.refs[prof+"/"+env.one.name]; r.getMs > 0 {
		b.ReportMetric(ms(pct(starts, 0.5))-r.getMs, "p50-minus-GET-ms")
	}
}

// fetchFirstByte opens a new connection (a new session: nothing fetched
// ahead for it) and times one Fetch at offset from the request's last byte
// written to the response's first byte read; the response is then read and
// checked to carry records.
func fetchFirstByte(ctx context.Context, addr, topic string, id [16]byte, part int32, off int64) (time.Duration, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	req := kmsg.NewPtrFetchRequest()
	req.Version = 13
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = 5000, 1, 50<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = part, off, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("replay-bench")).AppendRequest(nil, req, 1)
	if _, err := c.Write(frame); err != nil {
		return 0, err
	}
	start := time.Now()
	var size [4]byte
	if _, err := io.ReadFull(c, size[:1]); err != nil {
		return 0, err
	}
	el := time.Since(start)
	if _, err := io.ReadFull(c, size[1:]); err != nil {
		return 0, err
	}
	body := make([]byte, int(size[0])<<24|int(size[1])<<16|int(size[2])<<8|int(size[3]))
	if _, err := io.ReadFull(c, body); err != nil {
		return 0, err
	}
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.Version = req.Version
	if len(body) < 5 {
		return 0, fmt.Errorf("fetch response of %d bytes", len(body))
	}
	if err := resp.ReadFrom(body[5:]); err != nil { // correlation id, header tags
		return 0, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, fmt.Errorf("fetch %s-%d@%d: error %d, %d topics", topic, part, off, resp.ErrorCode, len(resp.Topics))
	}
	if rp := resp.Topics[0].Partitions[0]; rp.ErrorCode != 0 || len(rp.RecordBatches) == 0 {
		return 0, fmt.Errorf("fetch %s-%d@%d: error %d, %d bytes", topic, part, off, rp.ErrorCode, len(rp.RecordBatches))
	}
	return el, nil
}

func topicIDs(b *testing.B, addr string) map[string][16]byte {
	cl := testenv.Client(b, addr)
	td, err := kadm.NewClient(cl).ListTopics(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	out := map[string][16]byte{}
	for name, d := range td {
		out[name] = d.ID
	}
	return out
}

// benchColdReplay: a new broker process (empty chunk cache), one consumer
// reading every partition of t from offset 0 to the end.
func benchColdReplay(b *testing.B, env *replayEnv, lk link, prof, client string, t *replayTopic, bin string) {
	if client == "rdkafka" && env.rdkafka == "" {
		b.Skip("rdkafka_performance not built (bench/rdkafka/build.sh)")
	}
	var el time.Duration
	var cpu, chain time.Duration
	var gets float64
	var rss, held, cache, faults int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := startReplayBrokerBinary(b, env, lk.url, bin)
		testenv.Client(b, p.Addr).Ping(context.Background()) // listening and serving
		before := p.scrape(b)
		st0, err := p.Stat()
		if err != nil {
			b.Fatal(err)
		}
		chain0 := chainCPU(env, p.Pid())
		b.StartTimer()
		start := time.Now()
		if *replayPprof != "" {
			name := strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())
			go saveProfile(p.metrics, fmt.Sprintf("%s/%s-%d.pprof", *replayPprof, name, i))
		}
		var d, childCPU time.Duration
		if client == "kgo" {
			kgoReplay(b, p.Addr, t)
			d = time.Since(start)
		} else {
			d, childCPU = rdkafkaReplay(b, env.rdkafka, p.Addr, t)
		}
		el += d
		chain += chainCPU(env, p.Pid()) - chain0 + childCPU
		b.StopTimer()
		st1, err := p.Stat()
		if err != nil {
			b.Fatal(err)
		}
		after := p.scrape(b)
		cpu += st1.CPU - st0.CPU
		faults += st1.MinorFaults - st0.MinorFaults
		gets += after[`strata_remote_requests_total{op="get"}`] - before[`strata_remote_requests_total{op="get"}`]
		rss = max(rss, peakRSS(p.Pid()))
		held = max(held, int64(after["strata_tiering_reader_held_bytes_max"]))
		cache = max(cache, int64(after["strata_tiering_chunk_cache_bytes"]))
		if lim := after["strata_tiering_reader_held_bytes_limit"]; float64(held) > lim {
			b.Errorf("readers held %d bytes, over their %v bound", held, lim)
		}
		p.Kill()
		b.StartTimer()
	}
	total := int64(b.N) * t.bytes
	mb := mbps(total, el)
	b.ReportMetric(mb, "MB/s")
	b.ReportMetric(gets/(float64(total)/(1<<30)), "GET/GiB")
	b.ReportMetric(cpu.Seconds()/(float64(total)/1e9), "broker-CPU-s/GB")
	b.ReportMetric(chain.Seconds()/(float64(total)/1e9), "chain-CPU-s/GB")
	b.ReportMetric(float64(faults)/(float64(total)/1e9), "broker-minflt/GB")
	b.ReportMetric(float64(rss)/(1<<20), "broker-peak-RSS-MiB")
	b.ReportMetric(float64(held)/(1<<20), "held-max-MiB")
	b.ReportMetric(float64(cache)/(1<<20), "cache-MiB")
	if ref, ok := env.refs[prof+"/"+t.name]; ok && ref.mbps > 0 {
		b.ReportMetric(100*mb/ref.mbps, "%ref")
		b.ReportMetric(ref.mbps, "ref-MB/s")
		b.ReportMetric(100*(gets/(float64(total)/(1<<30)))/ref.getsPerGiB, "%ref-GET")
	}
}

// kgoReplay consumes every partition of t from the start until each is at
// its end, with franz-go's defaults.
func kgoReplay(b *testing.B, addr string, t *replayTopic) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	offs := map[int32]kgo.Offset{}
	for p := range t.parts {
		offs[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.name: offs}))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	left := t.parts
	next := make([]int64, t.parts)
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatalf("kgo replay: %v", err)
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			last := fp.Records[len(fp.Records)-1].Offset + 1
			if next[fp.Partition] < t.ends[fp.Partition] && last >= t.ends[fp.Partition] {
				left--
			}
			next[fp.Partition] = last
		})
	}
}

var rdkConsumed = regexp.MustCompile(`(\d+) messages \((\d+) bytes\) consumed`)

// rdkafkaReplay runs librdkafka's rdkafka_performance -C over every
// partition of t from the beginning until it has every record, and returns
// the wall-clock time of the whole run (start-up and metadata included, as
// for kgo; its own summary times from the first message) and the CPU time
// it used.
func rdkafkaReplay(b *testing.B, bin, addr string, t *replayTopic) (wallTime, cpu time.Duration) {
	args := []string{"-C", "-t", t.name, "-b", addr, "-o", "beginning", "-c", strconv.FormatInt(t.records, 10), "-q"}
	for p := range t.parts {
		args = append(args, "-p", strconv.Itoa(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("rdkafka_performance: %v\n%s", err, out)
	}
	m := rdkConsumed.FindAllStringSubmatch(string(out), -1)
	if len(m) == 0 {
		b.Fatalf("rdkafka_performance printed no summary\n%s", out)
	}
	if n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64); n < t.records {
		b.Fatalf("rdkafka_performance consumed %d of %d records\n%s", n, t.records, out)
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// saveProfile saves a 2 s CPU profile of the broker whose metrics are at
// metricsURL (…/metrics), starting in 0.5 s.
func saveProfile(metricsURL, path string) {
	time.Sleep(500 * time.Millisecond)
	resp, err := http.Get(strings.TrimSuffix(metricsURL, "/metrics") + "/debug/pprof/profile?seconds=2")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}
