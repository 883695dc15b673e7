package tiering_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"hash/crc32"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering"
)

var (
	retentionSegments = flag.Int("bench.retention-segments", 100000, "remote segments in the partition")
	retentionStore    = flag.String("bench.retention-store", "minio", "object store: minio or local (a directory)")
)

const (
	retRecords  = 10 // records (offsets) per tiny segment
	retUploadGo = 32 // concurrent uploads while seeding
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// retBatch is a valid v2 batch of retRecords 100-byte records at base 0.
func retBatch(ts int64) []byte {
	var recs []byte
	for i := 0; i < retRecords; i++ {
		var r []byte
		r = append(r, 0)
		r = binary.AppendVarint(r, 0)
		r = binary.AppendVarint(r, int64(i))
		r = binary.AppendVarint(r, -1)
		r = binary.AppendVarint(r, 100)
		r = append(r, bytes.Repeat([]byte{'a' + byte(i)}, 100)...)
		r = binary.AppendVarint(r, 0)
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	b := make([]byte, localstore.BatchHeaderSize, localstore.BatchHeaderSize+len(recs))
	binary.BigEndian.PutUint32(b[8:], uint32(localstore.BatchHeaderSize-12+len(recs)))
	b[16] = 2
	binary.BigEndian.PutUint32(b[23:], retRecords-1)
	binary.BigEndian.PutUint64(b[27:], uint64(ts))
	binary.BigEndian.PutUint64(b[35:], uint64(ts))
	binary.BigEndian.PutUint64(b[43:], ^uint64(0))
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	binary.BigEndian.PutUint32(b[53:], ^uint32(0))
	binary.BigEndian.PutUint32(b[57:], retRecords)
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// BenchmarkRetention100k: a retention pass (Partition.AdvanceLogStart) over a
// partition with -bench.retention-segments tiny remote segments (one
// 10-record batch each), deleting the older half, then a second pass
// deleting another quarter while a producer (append, roll, CopyOnce) and a
// replay consumer (Partition.Read) run against the same partition, after
// which the bucket is checked against the manifest. The manifest is built
// with the package's own spill (SeedManifestForBench); every segment's .log
// and .indexes objects are really uploaded.
//
//	go test ./tiering/ -run '^$' -bench Retention100k -benchtime=1x -timeout 60m
func BenchmarkRetention100k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchRetention(b)
	}
}

func benchRetention(b *testing.B) {
	b.StopTimer()
	ctx := context.Background()
	n := *retentionSegments
	var store remotestore.Storage
	switch *retentionStore {
	case "minio":
		mc := testenv.StartMinIO(b)
		mc.CreateBucket(b, "strata-retention")
		s3, err := remotestore.NewS3(remotestore.S3Options{Bucket: "strata-retention", Endpoint: mc.Endpoint, Region: mc.Region,
			PathStyle: true, Credentials: credentials.NewStaticCredentialsProvider(mc.AccessKey, mc.SecretKey, "")})
		if err != nil {
			b.Fatal(err)
		}
		store = s3
	case "local":
		s, err := remotestore.NewLocal(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		store = s
	default:
		b.Fatalf("unknown -bench.retention-store %q", *retentionStore)
	}
	var counts remotestore.Counters
	store = remotestore.WithCounters(store, &counts)
	mgr, err := tiering.NewManager(tiering.Options{Store: store, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Close()

	// The producer's local log continues after the remote segments.
	remoteEnd := int64(n) * retRecords
	l, err := localstore.Open(b.TempDir(), localstore.Config{SegmentBytes: 1 << 20, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.StartAt(remoteEnd); err != nil {
		b.Fatal(err)
	}
	p := mgr.Partition("events", 0, l)
	if err := p.Load(ctx); err != nil {
		b.Fatal(err)
	}

	// Seed: upload every segment's objects, then the manifest.
	now := time.Now().UnixMilli()
	batch := retBatch(now)
	bundle := (&tiering.Bundle{Epochs: []tiering.EpochStart{{Epoch: 0, StartOffset: 0}}}).Encode()
	segs := make([]tiering.RemoteSegment, n)
	for i := range segs {
		base := int64(i) * retRecords
		segs[i] = tiering.RemoteSegment{ID: randomID(), BaseOffset: base, LastOffset: base + retRecords - 1,
			MinTimestamp: now, MaxTimestamp: now, Size: int64(len(batch)), AppendedAtMs: now,
			Epochs: []tiering.EpochStart{{Epoch: 0, StartOffset: base}}}
	}
	start := time.Now()
	uploadAll(b, ctx, store, p.Prefix(), segs, batch, bundle)
	upload := time.Since(start)
	before := counts.Snapshot()
	start = time.Now()
	if err := tiering.SeedManifestForBench(ctx, p, segs); err != nil {
		b.Fatal(err)
	}
	seedReqs := counts.Snapshot().Sub(before)
	m := p.Manifest()
	head, _ := m.EncodeHead()
	b.Logf("seeded %d segments (%d objects) in %v; manifest: %d parts, head %d bytes, %d entries in the head; seeding the manifest: %v, %+v",
		n, 2*n, upload.Round(time.Millisecond), len(m.Parts), len(head), len(m.Segments)-partEntries(m), time.Since(start).Round(time.Millisecond), seedReqs)
	b.ReportMetric(float64(len(m.Parts)), "parts")
	b.ReportMetric(float64(len(head)), "head-bytes")

	// A broker starting with this partition: Load from the bucket.
	cold, err := tiering.NewManager(tiering.Options{Store: store, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	cp := cold.Partition("events", 0, l)
	before, start = counts.Snapshot(), time.Now()
	if err := cp.Load(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ms(time.Since(start)), "load-ms")
	b.ReportMetric(float64(counts.Snapshot().Sub(before).Total()), "load-req")
	cold.Close()
	if got := len(cp.Manifest().Segments); got != n {
		b.Fatalf("loaded %d entries, want %d", got, n)
	}

	// One more copy at this size: what every copy costs with 100k entries.
	if _, err := l.Append(retBatch(now), 0, false); err != nil {
		b.Fatal(err)
	}
	rollAndFlush(b, l)
	before, start = counts.Snapshot(), time.Now()
	if c, err := p.CopyOnce(ctx); err != nil || c != 1 {
		b.Fatalf("copy at %d entries: %d copied: %v", n, c, err)
	}
	b.ReportMetric(ms(time.Since(start)), "copy-ms")
	b.ReportMetric(float64(counts.Snapshot().Sub(before).Total()), "copy-req")

	// Pass 1, alone: delete the older half.
	half := int64(n/2) * retRecords
	before = counts.Snapshot()
	b.StartTimer()
	start = time.Now()
	st, err := p.AdvanceLogStart(ctx, half)
	pass := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	reqs := counts.Snapshot().Sub(before)
	b.ReportMetric(ms(pass), "pass-ms")
	b.ReportMetric(float64(st.Segments), "segments-deleted")
	b.ReportMetric(float64(reqs.Put), "pass-PUT")
	b.ReportMetric(float64(reqs.Delete), "pass-DELETE")
	b.ReportMetric(float64(reqs.Total()), "pass-req")
	m = p.Manifest()
	head, _ = m.EncodeHead()
	b.Logf("pass 1: deleted %d segments (%d bytes) in %v with %+v; manifest now %d parts, head %d bytes, start %d",
		st.Segments, st.Bytes, pass.Round(time.Millisecond), reqs, len(m.Parts), len(head), m.StartOffset())

	// Pass 2, to three quarters, with a producer and a replay consumer.
	threeQ := int64(3*n/4) * retRecords
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, readErrs, copies atomic.Int64
	var maxCopy atomic.Int64
	var firstErr atomic.Pointer[error]
	wg.Add(2)
	go func() { // replay consumer over the part of the log that stays
		defer wg.Done()
		for off := threeQ; !stop.Load(); {
			recs, err := p.Read(ctx, off, 1<<20)
			out := recs.Bytes()
			if err != nil {
				readErrs.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				off = threeQ
				continue
			}
			reads.Add(1)
			h, _ := localstore.ParseBatchHeader(out[len(out)-len(batch):])
			if off = h.LastOffset() + 1; off >= remoteEnd {
				off = threeQ
			}
		}
	}()
	go func() { // producer: append, roll, copy
		defer wg.Done()
		for !stop.Load() {
			if _, err := l.Append(retBatch(now), 0, false); err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			rollAndFlush(b, l)
			s := time.Now()
			if _, err := p.CopyOnce(ctx); err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			copies.Add(1)
			if d := int64(time.Since(s)); d > maxCopy.Load() {
				maxCopy.Store(d)
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	st2, err := p.AdvanceLogStart(ctx, threeQ)
	pass2 := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	if e := firstErr.Load(); e != nil {
		b.Fatalf("producer or consumer failed during the pass: %v", *e)
	}
	b.ReportMetric(ms(pass2), "loaded-pass-ms")
	b.ReportMetric(ms(time.Duration(maxCopy.Load())), "copy-max-ms")
	b.Logf("pass 2 under load: deleted %d segments in %v; consumer %d reads, %d errors; producer %d copies, slowest %v",
		st2.Segments, pass2.Round(time.Millisecond), reads.Load(), readErrs.Load(), copies.Load(), time.Duration(maxCopy.Load()).Round(time.Millisecond))

	checkBucket(b, ctx, store, p.Prefix())
}

// checkBucket reloads the manifest as a new broker would and compares it
// with a listing of the bucket: every referenced object exists, and the only
// unreferenced objects are old manifest heads.
func checkBucket(b *testing.B, ctx context.Context, store remotestore.Storage, prefix string) {
	mgr, err := tiering.NewManager(tiering.Options{Store: store, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Close()
	p := mgr.Partition("events", 0, nil)
	if err := p.Load(ctx); err != nil {
		b.Fatal(err)
	}
	m := p.Manifest()
	objs, err := store.List(ctx, prefix)
	if err != nil {
		b.Fatal(err)
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Key] = true
	}
	referenced := map[string]bool{}
	missing, dead := 0, 0
	for _, s := range m.Segments {
		for _, k := range []string{s.LogKey(prefix), s.IndexesKey(prefix)} {
			referenced[k] = true
			if !have[k] {
				missing++
			}
		}
		if s.LastOffset < m.LogStartOffset {
			dead++
		}
	}
	for _, part := range m.Parts {
		referenced[part.Key] = true
		if !have[part.Key] {
			missing++
		}
	}
	var orphans []string
	for k := range have {
		if !referenced[k] && !strings.HasPrefix(k, prefix+"manifest/0") {
			orphans = append(orphans, k)
		}
	}
	b.Logf("bucket check: %d objects, %d entries (%d below the log start, kept until their part is wholly below it), %d referenced objects missing, %d unreferenced non-head objects",
		len(objs), len(m.Segments), dead, missing, len(orphans))
	if missing > 0 || len(orphans) > 0 {
		b.Fatalf("bucket inconsistent with the manifest: %d missing, orphans %v", missing, orphans[:min(5, len(orphans))])
	}
	if m.StartOffset() < 0 || m.LogStartOffset <= 0 {
		b.Fatalf("log start %d / first readable %d", m.LogStartOffset, m.StartOffset())
	}
}

func uploadAll(b *testing.B, ctx context.Context, store remotestore.Storage, prefix string, segs []tiering.RemoteSegment, batch, bundle []byte) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, retUploadGo)
	for g := 0; g < retUploadGo; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := bytes.Clone(batch)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(segs)) {
					return
				}
				s := segs[i]
				localstore.SetBaseOffset(log, s.BaseOffset)
				if err := store.Put(ctx, s.LogKey(prefix), bytes.NewReader(log), int64(len(log))); err != nil {
					errs <- err
					return
				}
				if err := store.Put(ctx, s.IndexesKey(prefix), bytes.NewReader(bundle), int64(len(bundle))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

func rollAndFlush(b *testing.B, l *localstore.Log) {
	if err := errors.Join(l.Roll(), l.Flush()); err != nil {
		b.Error(err)
	}
}

func partEntries(m *tiering.Manifest) int {
	n := 0
	for _, p := range m.Parts {
		n += p.Count
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
