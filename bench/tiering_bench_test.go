package bench

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering"
)

var (
	tierMiB        = flag.Int("bench.tier-mib", 256, "MiB of local log the tiering benchmarks copy and replay")
	tierSegmentMiB = flag.Int("bench.tier-segment-mib", 16, "segment.bytes of that log, MiB")
	tierFirstByte  = flag.Int("bench.tier-first-byte-samples", 40, "cold first-byte reads per iteration")
	tierRolls      = flag.Int("bench.tier-rolls", 8, "segments rolled and copied one at a time per roll-to-manifest iteration")
)

const (
	tierChunk    = 4 << 20 // remote.fetch.chunk.bytes default
	tierFetchMax = 1 << 20 // Kafka's max.partition.fetch.bytes default: one Read per fetch
	tierBucket   = "strata-bench"
)

// tierEnv is what every tiering case shares: one MinIO, one counted S3
// store, one local log, and a copy of that log already in the bucket under
// topic "replay" for the read cases.
type tierEnv struct {
	spec   tierLogSpec
	store  remotestore.Storage
	counts *remotestore.Counters
	log    *localstore.Log
	segs   []localstore.SegmentInfo
	bytes  int64 // sum of segment sizes
	end    int64 // log end offset
	replay []tiering.RemoteSegment
	prefix string // the replay copy's partition prefix
}

// BenchmarkTiering measures tiered storage against a real MinIO
// (testenv.StartMinIO), each Strata path next to the raw object-store
// operation on the same bytes, in the same run:
//
//	copy              Partition.CopyOnce of the whole log vs one PutObject per segment
//	replay-cold       Partition.Read from offset 0 with an empty cache (read-ahead
//	                  on and off) vs sequential ranged GETs of the same chunk size
//	replay-warm       the same reads served from the chunk cache vs localstore reads
//	first-byte        one batch at a random offset with an empty cache vs one GET
//	                  of a chunk
//	roll-to-manifest  Roll → the segment's entry committed in the manifest
//
// Run with -benchtime=1x; each iteration is already hundreds of MiB.
func BenchmarkTiering(b *testing.B) {
	ctx := context.Background()
	mc := testenv.StartMinIO(b)
	mc.CreateBucket(b, tierBucket)
	s3, err := remotestore.NewS3(remotestore.S3Options{Bucket: tierBucket, Endpoint: mc.Endpoint, Region: mc.Region,
		PathStyle: true, Credentials: credentials.NewStaticCredentialsProvider(mc.AccessKey, mc.SecretKey, "")})
	if err != nil {
		b.Fatal(err)
	}
	e := &tierEnv{counts: &remotestore.Counters{}}
	e.store = remotestore.WithCounters(s3, e.counts)
	e.spec = tierLogSpec{total: int64(*tierMiB) << 20, segmentBytes: int64(*tierSegmentMiB) << 20, batchRecords: 64, recordSize: 1024}
	e.log, e.segs = buildTierLog(b, b.TempDir(), e.spec)
	e.bytes, e.end = segBytes(e.segs), e.log.LogEndOffset()
	b.Logf("log: %d segments, %d bytes, %d offsets; MinIO data in %s", len(e.segs), e.bytes, e.end, mc.DataDir)

	// The copy the read cases read (untimed).
	mgr := newTierManager(b, e.store, tierChunk, 0, 0)
	p := mgr.Partition("replay", 0, e.log)
	if err := p.Load(ctx); err != nil {
		b.Fatal(err)
	}
	if n, err := p.CopyOnce(ctx); err != nil || n != len(e.segs) {
		b.Fatalf("seeding the replay copy: %d of %d segments: %v", n, len(e.segs), err)
	}
	e.replay, e.prefix = p.Manifest().Readable(), p.Prefix()
	mgr.Close()

	b.Run("copy/target=raw", func(b *testing.B) { benchCopyRaw(b, e) })
	b.Run("copy/target=tiering", func(b *testing.B) { benchCopyTiering(b, e) })
	b.Run("replay-cold/target=raw", func(b *testing.B) { benchReplayRaw(b, e) })
	b.Run("replay-cold/target=tiering-readahead", func(b *testing.B) { benchReplayCold(b, e, 0) })
	b.Run("replay-cold/target=tiering-noreadahead", func(b *testing.B) { benchReplayCold(b, e, -1) })
	b.Run("replay-warm/target=tiering", func(b *testing.B) { benchReplayWarm(b, e) })
	b.Run("replay-warm/target=local", func(b *testing.B) { benchReplayLocal(b, e) })
	b.Run("first-byte/target=raw", func(b *testing.B) { benchFirstByteRaw(b, e) })
	b.Run("first-byte/target=tiering", func(b *testing.B) { benchFirstByteTiering(b, e) })
	b.Run("roll-to-manifest/target=tiering", func(b *testing.B) { benchRollToManifest(b, e) })
}

// reportRequests reports requests of each kind per unit (segment, GiB …).
func reportRequests(b *testing.B, c remotestore.RequestCounts, units float64, per string) {
	b.ReportMetric(float64(c.Put)/units, "PUT/"+per)
	b.ReportMetric(float64(c.Get)/units, "GET/"+per)
	b.ReportMetric(float64(c.Total())/units, "req/"+per)
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func benchCopyRaw(b *testing.B, e *tierEnv) {
	ctx := context.Background()
	var el time.Duration
	var reqs remotestore.RequestCounts
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("raw-copy-%d/", i)
		before := e.counts.Snapshot()
		start := time.Now()
		if err := rawCopy(ctx, e.store, prefix, e.segs); err != nil {
			b.Fatal(err)
		}
		el += time.Since(start)
		reqs = addCounts(reqs, e.counts.Snapshot().Sub(before))
		b.StopTimer()
		deletePrefix(b, e.store, prefix)
		b.StartTimer()
	}
	b.ReportMetric(mbps(int64(b.N)*e.bytes, el), "MB/s")
	reportRequests(b, reqs, float64(b.N*len(e.segs)), "segment")
}

func benchCopyTiering(b *testing.B, e *tierEnv) {
	ctx := context.Background()
	var el time.Duration
	var reqs remotestore.RequestCounts
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mgr := newTierManager(b, e.store, tierChunk, 0, 0)
		p := mgr.Partition(fmt.Sprintf("copy-%d", i), 0, e.log)
		if err := p.Load(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		before := e.counts.Snapshot()
		start := time.Now()
		n, err := p.CopyOnce(ctx)
		el += time.Since(start)
		reqs = addCounts(reqs, e.counts.Snapshot().Sub(before))
		if err != nil || n != len(e.segs) {
			b.Fatalf("copied %d of %d segments: %v", n, len(e.segs), err)
		}
		b.StopTimer()
		if err := p.DeleteAll(ctx); err != nil {
			b.Fatal(err)
		}
		mgr.Close()
		b.StartTimer()
	}
	b.ReportMetric(mbps(int64(b.N)*e.bytes, el), "MB/s")
	reportRequests(b, reqs, float64(b.N*len(e.segs)), "segment")
}

func benchReplayRaw(b *testing.B, e *tierEnv) {
	ctx := context.Background()
	var el time.Duration
	var reqs remotestore.RequestCounts
	for i := 0; i < b.N; i++ {
		before := e.counts.Snapshot()
		start := time.Now()
		n, err := rawReplay(ctx, e.store, e.replay, e.prefix, tierChunk)
		el += time.Since(start)
		reqs = addCounts(reqs, e.counts.Snapshot().Sub(before))
		if err != nil || n != e.bytes {
			b.Fatalf("raw replay: %d of %d bytes: %v", n, e.bytes, err)
		}
	}
	b.ReportMetric(mbps(int64(b.N)*e.bytes, el), "MB/s")
	reportRequests(b, reqs, float64(int64(b.N)*e.bytes)/(1<<30), "GiB")
}

// replayOnce replays the whole remote log through p (in one session, as a
// consumer's connection would) and checks the byte count.
func replayOnce(b *testing.B, e *tierEnv, mgr *tiering.Manager, p *tiering.Partition) (time.Duration, remotestore.RequestCounts) {
	before := e.counts.Snapshot()
	start := time.Now()
	sess := mgr.NewSession()
	defer sess.Close()
	n, err := tierReplay(context.Background(), p, sess, e.end, tierFetchMax)
	el := time.Since(start)
	if err != nil || n != e.bytes {
		b.Fatalf("replay: %d of %d bytes: %v", n, e.bytes, err)
	}
	return el, e.counts.Snapshot().Sub(before)
}

// replayPartition is a fresh Manager (empty cache big enough for the whole
// log) with the replay copy's manifest loaded.
func replayPartition(b *testing.B, e *tierEnv, readAhead int64) (*tiering.Manager, *tiering.Partition) {
	mgr := newTierManager(b, e.store, tierChunk, 2*e.bytes, readAhead)
	p := mgr.Partition("replay", 0, e.log)
	if err := p.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return mgr, p
}

func benchReplayCold(b *testing.B, e *tierEnv, readAhead int64) {
	var el time.Duration
	var reqs remotestore.RequestCounts
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mgr, p := replayPartition(b, e, readAhead)
		b.StartTimer()
		d, c := replayOnce(b, e, mgr, p)
		el += d
		reqs = addCounts(reqs, c)
		b.StopTimer()
		time.Sleep(200 * time.Millisecond) // let the last read-ahead GETs finish before the next case
		mgr.Close()
		b.StartTimer()
	}
	b.ReportMetric(mbps(int64(b.N)*e.bytes, el), "MB/s")
	reportRequests(b, reqs, float64(int64(b.N)*e.bytes)/(1<<30), "GiB")
}

func benchReplayWarm(b *testing.B, e *tierEnv) {
	b.StopTimer()
	mgr, p := replayPartition(b, e, 0)
	defer mgr.Close()
	replayOnce(b, e, mgr, p) // fill the cache
	time.Sleep(200 * time.Millisecond)
	b.StartTimer()
	var el time.Duration
	var reqs remotestore.RequestCounts
	for i := 0; i < b.N; i++ {
		d, c := replayOnce(b, e, mgr, p)
		el += d
		reqs = addCounts(reqs, c)
	}
	b.ReportMetric(mbps(int64(b.N)*e.bytes, el), "MB/s")
	reportRequests(b, reqs, float64(int64(b.N)*e.bytes)/(1<<30), "GiB")
}

func benchReplayLocal(b *testing.B, e *tierEnv) {
	var el time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		n, err := localReplay(e.log, e.end, tierFetchMax)
		el += time.Since(start)
		if err != nil || n != e.bytes {
			b.Fatalf("local replay: %d of %d bytes: %v", n, e.bytes, err)
		}
	}
	b.ReportMetric(mbps(int64(b.N)*e.bytes, el), "MB/s")
}

// benchFirstByteRaw: one ranged GET of a random whole chunk, read to the end.
func benchFirstByteRaw(b *testing.B, e *tierEnv) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, tierChunk)
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		for j := 0; j < *tierFirstByte; j++ {
			s := e.replay[r.IntN(len(e.replay))]
			pos := r.Int64N(s.Size) / tierChunk * tierChunk
			n := min(tierChunk, s.Size-pos)
			start := time.Now()
			if err := getRange(ctx, e.store, s.LogKey(e.prefix), pos, buf[:n]); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
	}
	reportLatency(b, lat)
}

// benchFirstByteTiering: Read of one batch (maxBytes 1) at a random offset
// through a fresh Manager whose manifest is loaded but whose cache is empty.
// Read-ahead is off so one sample's background GETs cannot slow the next;
// with it on, the first chunk is still fetched by the reader itself.
func benchFirstByteTiering(b *testing.B, e *tierEnv) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	var lat []time.Duration
	var reqs remotestore.RequestCounts
	samples := 0
	for i := 0; i < b.N; i++ {
		for j := 0; j < *tierFirstByte; j++ {
			b.StopTimer()
			mgr, p := replayPartition(b, e, -1)
			off := r.Int64N(e.end)
			b.StartTimer()
			before := e.counts.Snapshot()
			start := time.Now()
			recs, err := p.Read(ctx, off, 1)
			out := recs.Bytes()
			lat = append(lat, time.Since(start))
			reqs = addCounts(reqs, e.counts.Snapshot().Sub(before))
			samples++
			if err != nil {
				b.Fatalf("read at %d: %v", off, err)
			}
			if h, err := localstore.ParseBatchHeader(out); err != nil || off < h.BaseOffset || off > h.LastOffset() {
				b.Fatalf("read at %d returned batch [%d, %d]: %v", off, h.BaseOffset, h.LastOffset(), err)
			}
			b.StopTimer()
			mgr.Close()
			b.StartTimer()
		}
	}
	reportLatency(b, lat)
	b.ReportMetric(float64(reqs.Get)/float64(samples), "GET/fetch")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	b.ReportMetric(ms(pct(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(pct(lat, 0.90)), "p90-ms")
	b.ReportMetric(ms(pct(lat, 1)), "max-ms")
}

// benchRollToManifest appends a segment's worth of batches (untimed), then
// times Roll → the sealed segment fsynced (WaitSealed) → CopyOnce returning
// with its entry committed in the manifest, one segment at a time, as the
// broker's copier sees a roll.
func benchRollToManifest(b *testing.B, e *tierEnv) {
	ctx := context.Background()
	batch := tierBatch(e.spec.batchRecords, e.spec.recordSize, time.Now().UnixMilli())
	fill := e.spec.segmentBytes - e.spec.segmentBytes%int64(len(batch)) - int64(len(batch))
	var total, fsyncs []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "roll")
		l := openTierLog(b, dir, e.spec)
		mgr := newTierManager(b, e.store, tierChunk, 0, 0)
		p := mgr.Partition(fmt.Sprintf("roll-%d", i), 0, l)
		if err := p.Load(ctx); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < *tierRolls; k++ {
			appendTierBytes(b, l, batch, fill)
			b.StartTimer()
			start := time.Now()
			if err := l.Roll(); err != nil {
				b.Fatal(err)
			}
			l.WaitSealed()
			synced := time.Now()
			n, err := p.CopyOnce(ctx)
			total = append(total, time.Since(start))
			fsyncs = append(fsyncs, synced.Sub(start))
			b.StopTimer()
			if err != nil || n != 1 {
				b.Fatalf("roll %d: copied %d segments: %v", k, n, err)
			}
		}
		if err := p.DeleteAll(ctx); err != nil {
			b.Fatal(err)
		}
		mgr.Close()
		l.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	reportLatency(b, total)
	b.ReportMetric(ms(pct(fsyncs, 0.50)), "fsync-p50-ms")
}

// addCounts adds two snapshots' worth of requests.
func addCounts(a, c remotestore.RequestCounts) remotestore.RequestCounts {
	return remotestore.RequestCounts{Put: a.Put + c.Put, Get: a.Get + c.Get, Head: a.Head + c.Head,
		List: a.List + c.List, Delete: a.Delete + c.Delete}
}

func deletePrefix(b *testing.B, store remotestore.Storage, prefix string) {
	ctx := context.Background()
	objs, err := store.List(ctx, prefix)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	if err := store.Delete(ctx, keys...); err != nil {
		b.Fatal(err)
	}
}
