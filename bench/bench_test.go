package bench

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

var (
	largeMiB = flag.Int("bench.mib", 256, "MiB of record values per iteration for 1 KiB records")
	smallMiB = flag.Int("bench.small-mib", 128, "MiB of record values per iteration for 100 B records")
)

func records(size int) int {
	mib := *largeMiB
	if size < 1024 {
		mib = *smallMiB
	}
	return (mib << 20) / size
}

// BenchmarkProduce: kgo producing a fixed amount of data to each target.
// Run with -benchtime=1x (each iteration is already hundreds of MiB).
func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{1024, 100} {
		for _, parts := range []int32{1, 16} {
			for _, acks := range []string{"1", "all"} {
				for _, codec := range []string{"none", "lz4"} {
					w := workload{size: size, parts: parts, acks: acks, codec: codec, records: records(size)}
					for _, target := range targetsFor(w) {
						b.Run(w.key()+"/target="+target, func(b *testing.B) { benchProduce(b, target, w) })
					}
				}
			}
		}
	}
}

func benchProduce(b *testing.B, target string, w workload) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var runs []result
	var srv *rawServer
	addr := ""
	if target == targetRaw {
		var err error
		if srv, err = startRawServer(b.TempDir()); err != nil {
			b.Fatal(err)
		}
		defer srv.close()
		addr = srv.addr()
	} else {
		addr = startKafka(b, target)
	}
	perBatch, fromKgo := rawPerBatch(w)
	for i := 0; i < b.N; i++ {
		var r result
		var err error
		if target == targetRaw {
			b.StartTimer()
			r, err = rawProduce(addr, w, perBatch)
			b.StopTimer()
		} else {
			topic := topicName(i)
			if err := createTopic(ctx, addr, topic, w.parts); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			r, err = kgoProduce(ctx, addr, topic, w)
			b.StopTimer()
			noteBatch(w, target, r)
		}
		if err != nil {
			b.Fatal(err)
		}
		runs = append(runs, r)
	}
	if target == targetRaw && !fromKgo {
		b.Logf("raw: no kgo run in this case to copy the batch size from; used %d records per batch", perBatch)
	}
	reportProduce(b, runs)
}

func reportProduce(b *testing.B, runs []result) {
	var all result
	for _, r := range runs {
		all.records += r.records
		all.bytes += r.bytes
		all.elapsed += r.elapsed
		all.recLat = append(all.recLat, r.recLat...)
		all.reqLat = append(all.reqLat, r.reqLat...)
		all.batches += r.batches
		all.batchLen += r.batchLen
	}
	sec := all.elapsed.Seconds()
	b.ReportMetric(float64(all.bytes)/1e6/sec, "MB/s")
	b.ReportMetric(float64(all.records)/sec, "records/s")
	b.ReportMetric(ms(pct(all.recLat, 0.50)), "p50-ms")
	b.ReportMetric(ms(pct(all.recLat, 0.99)), "p99-ms")
	b.ReportMetric(ms(pct(all.reqLat, 0.50)), "req-p50-ms")
	b.ReportMetric(ms(pct(all.reqLat, 0.99)), "req-p99-ms")
	if all.batches > 0 {
		b.ReportMetric(float64(all.batchLen)/float64(all.batches)/1024, "batch-KiB")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkConsume: produce the data (untimed), then time one kgo consumer
// reading all of it from offset 0 while it is still in the page cache.
func BenchmarkConsume(b *testing.B) {
	for _, size := range []int{1024, 100} {
		for _, parts := range []int32{1, 16} {
			w := workload{size: size, parts: parts, acks: "1", codec: "none", records: records(size)}
			for _, target := range targetsFor(w) {
				name := fmt.Sprintf("size=%d/parts=%d/target=%s", size, parts, target)
				b.Run(name, func(b *testing.B) { benchConsume(b, target, w) })
			}
		}
	}
}

func benchConsume(b *testing.B, target string, w workload) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var runs []result
	for i := 0; i < b.N; i++ {
		var r result
		var err error
		if target == targetRaw {
			dir := b.TempDir()
			srv, err := startRawServer(dir)
			if err != nil {
				b.Fatal(err)
			}
			perBatch, _ := rawPerBatch(w)
			pr, err := rawProduce(srv.addr(), w, perBatch)
			if cerr := srv.close(); err == nil {
				err = cerr
			}
			if err != nil {
				b.Fatal(err)
			}
			var paths []string
			for p := int32(0); p < w.parts; p++ {
				paths = append(paths, filepath.Join(dir, fmt.Sprintf("%d.log", p)))
			}
			b.StartTimer()
			r, err = rawConsume(paths, pr.records, pr.bytes)
			b.StopTimer()
		} else {
			addr := startKafka(b, target)
			topic := topicName(i)
			if err := createTopic(ctx, addr, topic, w.parts); err != nil {
				b.Fatal(err)
			}
			if _, err := kgoProduce(ctx, addr, topic, w); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			r, err = kgoConsume(ctx, addr, topic, w.parts, int64(w.records))
			b.StopTimer()
		}
		if err != nil {
			b.Fatal(err)
		}
		runs = append(runs, r)
	}
	var recs, bytes int64
	var el time.Duration
	for _, r := range runs {
		recs += r.records
		bytes += r.bytes
		el += r.elapsed
	}
	b.ReportMetric(float64(bytes)/1e6/el.Seconds(), "MB/s")
	b.ReportMetric(float64(recs)/el.Seconds(), "records/s")
}
