package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHarnessMovesTheBytes runs every target on a tiny workload and checks
// that what the harness counts is what was sent: records acknowledged, then
// consumed back; for raw, the bytes on disk.
func TestHarnessMovesTheBytes(t *testing.T) {
	w := workload{size: 1024, parts: 2, acks: "all", codec: "lz4", records: 3000}
	for _, target := range []string{targetStrata, targetKfake} {
		t.Run(target, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			addr := startKafka(t, target)
			if err := createTopic(ctx, addr, "check", w.parts); err != nil {
				t.Fatal(err)
			}
			pr, err := kgoProduce(ctx, addr, "check", w)
			if err != nil {
				t.Fatal(err)
			}
			if pr.records != int64(w.records) || pr.batchRec != int64(w.records) || len(pr.reqLat) == 0 {
				t.Fatalf("produce counted %d records, batches held %d, %d requests", pr.records, pr.batchRec, len(pr.reqLat))
			}
			cr, err := kgoConsume(ctx, addr, "check", w.parts, int64(w.records))
			if err != nil {
				t.Fatal(err)
			}
			if cr.records != int64(w.records) || cr.bytes != w.bytes() {
				t.Fatalf("consumed %d records / %d bytes, want %d / %d", cr.records, cr.bytes, w.records, w.bytes())
			}
		})
	}
	t.Run(targetRaw, func(t *testing.T) {
		w := w
		w.codec = "none"
		dir := t.TempDir()
		srv, err := startRawServer(dir)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := rawProduce(srv.addr(), w, 100)
		if cerr := srv.close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		var onDisk int64
		for p := int32(0); p < w.parts; p++ {
			path := filepath.Join(dir, fmt.Sprintf("%d.log", p))
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			onDisk += st.Size()
			paths = append(paths, path)
		}
		if pr.records != int64(w.records) || onDisk != pr.batchLen || onDisk < w.bytes() {
			t.Fatalf("raw sent %d records, %d batch bytes; %d bytes on disk (payload %d)", pr.records, pr.batchLen, onDisk, w.bytes())
		}
		if _, err := rawConsume(paths, pr.records, pr.bytes); err != nil {
			t.Fatal(err)
		}
	})
}
