package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/localstore"
)

type testRecord struct {
	key, value []byte
	headers    []string
}

// buildBatch hand-assembles a RecordBatch v2 the way a producer would, so
// dump-log is tested against bytes it did not write itself.
func buildBatch(t testing.TB, baseOffset, baseTimestamp int64, codec int8, attrs int16, producerID int64, baseSeq int32, recs []testRecord) []byte {
	t.Helper()
	var records []byte
	for i, r := range recs {
		rec := kmsg.Record{TimestampDelta64: int64(i) * 10, OffsetDelta: int32(i), Key: r.key, Value: r.value}
		for _, h := range r.headers {
			rec.Headers = append(rec.Headers, kmsg.Header{Key: h, Value: []byte("v")})
		}
		body := rec.AppendTo(nil)[1:] // drop the zero Length varint
		records = binary.AppendVarint(records, int64(len(body)))
		records = append(records, body...)
	}
	records = compressForTest(t, codec, records)
	b := kmsg.RecordBatch{
		FirstOffset:          baseOffset,
		PartitionLeaderEpoch: 3,
		Magic:                2,
		Attributes:           attrs | int16(codec),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       baseTimestamp,
		MaxTimestamp:         baseTimestamp + int64(len(recs)-1)*10,
		ProducerID:           producerID,
		ProducerEpoch:        0,
		FirstSequence:        baseSeq,
		NumRecords:           int32(len(recs)),
		Records:              records,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:12], uint32(len(raw)-12))
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(raw[17:21], crc)
	return raw
}

func compressForTest(t testing.TB, codec int8, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch codec {
	case 0:
		return b
	case 1:
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case 2: // xerial framing, as the Java client writes, in two blocks
		buf.Write([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}) // snappy-java magic
		buf.Write([]byte{0, 0, 0, 1, 0, 0, 0, 1})
		for _, part := range [][]byte{b[:len(b)/2], b[len(b)/2:]} {
			blk := s2.EncodeSnappy(nil, part)
			binary.Write(&buf, binary.BigEndian, uint32(len(blk)))
			buf.Write(blk)
		}
	case 3:
		w := lz4.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case 4:
		w, _ := zstd.NewWriter(nil)
		return w.EncodeAll(b, nil)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDumpLogSegment(t *testing.T) {
	dir := t.TempDir()
	var seg []byte
	seg = append(seg, buildBatch(t, 100, 1_700_000_000_000, 0, 0, -1, -1, []testRecord{
		{key: []byte("k1"), value: []byte("hello"), headers: []string{"trace", "src"}},
		{key: nil, value: []byte("bin\x00ary")},
	})...)
	second := len(seg)
	seg = append(seg, buildBatch(t, 102, 1_700_000_001_000, 4, 0x10 /* transactional */, 7, 5, []testRecord{
		{key: []byte("z"), value: []byte("zstd value")},
	})...)
	path := writeFile(t, dir, "00000000000000000100.log", seg)

	var out bytes.Buffer
	if err := dumpLog(&out, path, dumpLogOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || lines[0] != "Dumping "+path || lines[1] != "Log starting offset: 100" {
		t.Fatalf("shallow dump:\n%s", out.String())
	}
	for _, want := range []string{"baseOffset: 100 lastOffset: 101 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1",
		"partitionLeaderEpoch: 3 isTransactional: false isControl: false position: 0 CreateTime: 1700000000010",
		"magic: 2 compresscodec: none", "isvalid: true"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("batch line %q lacks %q", lines[2], want)
		}
	}
	for _, want := range []string{"baseOffset: 102 lastOffset: 102 count: 1 baseSequence: 5 lastSequence: 5 producerId: 7",
		"isTransactional: true", "position: " + itoa(second), "compresscodec: zstd"} {
		if !strings.Contains(lines[3], want) {
			t.Errorf("batch line %q lacks %q", lines[3], want)
		}
	}

	out.Reset()
	if err := dumpLog(&out, path, dumpLogOptions{Deep: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| offset: 100 CreateTime: 1700000000000 keySize: 2 valueSize: 5 headerKeys: [trace,src] key: k1 payload: hello\n",
		"| offset: 101 CreateTime: 1700000000010 keySize: -1 valueSize: 7 headerKeys: [] key: null payload: \"bin\\x00ary\"\n",
		"| offset: 102 CreateTime: 1700000001000 keySize: 1 valueSize: 10 sequence: 5 headerKeys: [] key: z payload: zstd value\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("deep dump lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDumpLogEveryCodec(t *testing.T) {
	for codec, name := range compressionNames {
		t.Run(name, func(t *testing.T) {
			recs := []testRecord{{value: []byte(strings.Repeat("compressible ", 50))}, {key: []byte("k"), value: []byte("two")}}
			path := writeFile(t, t.TempDir(), "00000000000000000000.log", buildBatch(t, 0, 1, codec, 0, -1, -1, recs))
			var out bytes.Buffer
			if err := dumpLog(&out, path, dumpLogOptions{Deep: true}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "compresscodec: "+name) || !strings.Contains(out.String(), "key: k payload: two") ||
				!strings.Contains(out.String(), "payload: compressible compressible") {
				t.Errorf("dump:\n%s", out.String())
			}
		})
	}
}

func TestDumpLogRawSnappyBlock(t *testing.T) {
	// Non-Java clients (librdkafka, franz-go) write an unframed snappy block.
	plain := []byte("raw snappy block")
	got, err := localstore.DecompressRecords(nil, 2, s2.EncodeSnappy(nil, plain))
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("decompress(snappy) = %q, %v", got, err)
	}
}

func TestDumpLogControlAndLogAppendTime(t *testing.T) {
	marker := []byte{0, 0, 0, 1} // version 0, type COMMIT
	b := buildBatch(t, 5, 42, 0, 0x20|0x10|0x08 /* control, transactional, LogAppendTime */, 9, -1,
		[]testRecord{{key: marker, value: []byte{0, 0, 0, 0, 0, 0}}})
	path := writeFile(t, t.TempDir(), "00000000000000000005.log", b)
	var out bytes.Buffer
	if err := dumpLog(&out, path, dumpLogOptions{Deep: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"isControl: true", "LogAppendTime: 42", "| offset: 5 LogAppendTime: 42 keySize: 4 valueSize: 6 endTxnMarker: COMMIT"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dump lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDumpLogCorruptBatch(t *testing.T) {
	good := buildBatch(t, 0, 1, 0, 0, -1, -1, []testRecord{{value: []byte("ok")}})
	bad := buildBatch(t, 1, 1, 0, 0, -1, -1, []testRecord{{value: []byte("flipped")}})
	bad[len(bad)-1] ^= 0xff // break the CRC
	path := writeFile(t, t.TempDir(), "00000000000000000000.log", append(good, bad...))
	var out bytes.Buffer
	err := dumpLog(&out, path, dumpLogOptions{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt segment: err %v", err)
	}
	if !strings.Contains(out.String(), "baseOffset: 0 ") {
		t.Errorf("the valid batch before the damage must still print:\n%s", out.String())
	}
}

func TestDumpLogIndexes(t *testing.T) {
	dir := t.TempDir()
	var idx []byte
	for _, e := range [][2]uint32{{0, 0}, {10, 4096}, {25, 8200}} { // relative offset, position
		idx = binary.BigEndian.AppendUint32(idx, e[0])
		idx = binary.BigEndian.AppendUint32(idx, e[1])
	}
	var tidx []byte
	for _, e := range []struct {
		ts  int64
		rel uint32
	}{{1_700_000_000_000, 0}, {1_700_000_005_000, 12}} {
		tidx = binary.BigEndian.AppendUint64(tidx, uint64(e.ts))
		tidx = binary.BigEndian.AppendUint32(tidx, e.rel)
	}
	idxPath := writeFile(t, dir, "00000000000000001000.index", idx)
	tidxPath := writeFile(t, dir, "00000000000000001000.timeindex", tidx)

	var out bytes.Buffer
	if err := dumpLog(&out, idxPath, dumpLogOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "Dumping " + idxPath + "\noffset: 1000 position: 0\noffset: 1010 position: 4096\noffset: 1025 position: 8200\n"; out.String() != want {
		t.Errorf("index dump:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := dumpLog(&out, tidxPath, dumpLogOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "Dumping " + tidxPath + "\ntimestamp: 1700000000000 offset: 1000\ntimestamp: 1700000005000 offset: 1012\n"; out.String() != want {
		t.Errorf("time index dump:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestDumpLogCLI(t *testing.T) {
	dir := t.TempDir()
	seg := writeFile(t, dir, "00000000000000000000.log", buildBatch(t, 0, 1, 1, 0, -1, -1, []testRecord{{value: []byte("via cli")}}))
	r := runCLI(t.Context(), nil, "", "dump-log", "--deep", seg)
	if r.code != 0 || !strings.Contains(r.stdout, "payload: via cli") {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t.Context(), nil, "", "dump-log", filepath.Join(dir, "00000000000000000000.snapshot"))
	if r.code != 1 || !strings.Contains(r.stderr, `unsupported file type ".snapshot"`) {
		t.Errorf("snapshot: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t.Context(), nil, "", "dump-log", filepath.Join(dir, "missing.log"))
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("bad name: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t.Context(), nil, "", "dump-log")
	if r.code != 2 {
		t.Errorf("no file: exit %d, stderr %q", r.code, r.stderr)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// FuzzDecodeBatchRecords feeds segment bytes, which come from disk and may
// be damaged, to the record decoder: it may fail but must not panic or
// allocate without bound.
func FuzzDecodeBatchRecords(f *testing.F) {
	for codec := range compressionNames {
		f.Add(buildBatch(f, 0, 1, codec, 0, -1, -1, []testRecord{{key: []byte("k"), value: []byte("v"), headers: []string{"h"}}}))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := localstore.ParseBatchHeader(raw)
		if err != nil || h.Size() > len(raw) {
			return
		}
		decodeBatchRecords(raw[:h.Size()], h)
	})
}
