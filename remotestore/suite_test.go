package remotestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/minio/minio-go/v7"

	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

// backend is one implementation under test, with a way to see what it
// stored that does not go through remotestore.
type backend struct {
	remotestore.Storage // counted (and, for S3, prefixed)
	kind                string
	counters            *remotestore.Counters
	// raw returns the bytes stored under key, read directly (the file, or
	// the object via minio-go), and whether it exists.
	raw func(t *testing.T, key string) ([]byte, bool)
}

// Small enough that the suite exercises paging and multipart uploads quickly.
const (
	testListPageSize = 7
	testPartSize     = 5 << 20 // S3's minimum
	testThreshold    = 6 << 20
	testS3Prefix     = "cluster-1/remote"
)

// forEachStorage runs body once per implementation (nats-server's
// testAllStoreAllPermutations): "local" on a temporary directory, and "s3"
// on a real MinIO, which starts once and gives each newStore call its own
// bucket.
func forEachStorage(t *testing.T, body func(t *testing.T, newStore func(t *testing.T) *backend)) {
	t.Run("local", func(t *testing.T) {
		body(t, func(t *testing.T) *backend {
			dir := t.TempDir()
			s, err := remotestore.NewLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			c := new(remotestore.Counters)
			return &backend{
				Storage:  remotestore.WithCounters(s, c),
				kind:     "local",
				counters: c,
				raw: func(t *testing.T, key string) ([]byte, bool) {
					b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
					if errors.Is(err, os.ErrNotExist) {
						return nil, false
					} else if err != nil {
						t.Fatal(err)
					}
					return b, true
				},
			}
		})
	})
	t.Run("s3", func(t *testing.T) {
		m := testenv.StartMinIO(t)
		var buckets atomic.Int64
		body(t, func(t *testing.T) *backend {
			bucket := fmt.Sprintf("suite-%d", buckets.Add(1))
			m.CreateBucket(t, bucket)
			s := newMinIOStore(t, m, bucket, nil)
			c := new(remotestore.Counters)
			return &backend{
				Storage:  remotestore.WithCounters(remotestore.WithPrefix(s, testS3Prefix), c),
				kind:     "s3",
				counters: c,
				raw: func(t *testing.T, key string) ([]byte, bool) {
					return minioObject(t, m, bucket, testS3Prefix+"/"+key)
				},
			}
		})
	})
}

// newMinIOStore is an S3 store on m's bucket with the suite's small sizes;
// adjust changes the options further.
func newMinIOStore(t *testing.T, m *testenv.MinIO, bucket string, adjust func(*remotestore.S3Options)) remotestore.Storage {
	t.Helper()
	opts := remotestore.S3Options{
		Bucket:             bucket,
		Endpoint:           m.Endpoint,
		Region:             m.Region,
		PathStyle:          true,
		Credentials:        credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		ListPageSize:       testListPageSize,
		PartSize:           testPartSize,
		MultipartThreshold: testThreshold,
	}
	if adjust != nil {
		adjust(&opts)
	}
	s, err := remotestore.NewS3(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// minioObject reads an object with minio-go, independently of remotestore.
func minioObject(t *testing.T, m *testenv.MinIO, bucket, key string) ([]byte, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj, err := m.Client().GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err == nil {
		var b []byte
		b, err = io.ReadAll(obj)
		obj.Close()
		if err == nil {
			return b, true
		}
	}
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return nil, false
	}
	t.Fatalf("minio-go get %s/%s: %v", bucket, key, err)
	return nil, false
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// onlyReader hides a reader's other methods (ReadAt, Seek), so Put takes
// the path for plain streams.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, s remotestore.Storage, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, s remotestore.Storage, key string, offset, length int64) ([]byte, error) {
	t.Helper()
	rc, err := s.Get(ctxT(t), key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b, nil
}

func checkRaw(t *testing.T, b *backend, key string, want []byte) {
	t.Helper()
	got, ok := b.raw(t, key)
	if !ok {
		t.Fatalf("%s: not stored", key)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: stored %d bytes, want %d (equal: %v)", key, len(got), len(want), bytes.Equal(got, want))
	}
}

func TestStorage(t *testing.T) {
	forEachStorage(t, func(t *testing.T, newStore func(t *testing.T) *backend) {
		for _, tc := range []struct {
			name string
			fn   func(t *testing.T, b *backend)
		}{
			{"RoundTrip", testRoundTrip},
			{"RangedGet", testRangedGet},
			{"Head", testHead},
			{"List", testList},
			{"Delete", testDelete},
			{"NotFound", testNotFound},
			{"PutIfAbsent", testPutIfAbsent},
			{"Large", testLarge},
			{"BadKeys", testBadKeys},
			{"Counters", testCounters},
		} {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
		}
	})
}

func testRoundTrip(t *testing.T, b *backend) {
	ctx := ctxT(t)
	data := randomBytes(3000, 1)
	put(t, b, "topic/0/seg.log", data)
	checkRaw(t, b, "topic/0/seg.log", data)
	if got, err := get(t, b, "topic/0/seg.log", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}

	// A plain stream (no ReadAt/Seek); bytes past size are not stored.
	stream := onlyReader{io.MultiReader(bytes.NewReader(data[:1000]), strings.NewReader("extra"))}
	if err := b.Put(ctx, "topic/0/stream", stream, 1000); err != nil {
		t.Fatal(err)
	}
	checkRaw(t, b, "topic/0/stream", data[:1000])

	// Replacing an object replaces all of it.
	put(t, b, "topic/0/seg.log", []byte("short"))
	checkRaw(t, b, "topic/0/seg.log", []byte("short"))

	// Empty objects exist and read back empty.
	put(t, b, "empty", nil)
	if got, err := get(t, b, "empty", 0, -1); err != nil || len(got) != 0 {
		t.Fatalf("get empty: %q, %v", got, err)
	}
	if info, err := b.Head(ctx, "empty"); err != nil || info.Size != 0 {
		t.Fatalf("head empty: %+v, %v", info, err)
	}

	// A reader shorter than size fails and stores nothing, seekable or not.
	for _, r := range []io.Reader{bytes.NewReader(data[:10]), onlyReader{bytes.NewReader(data[:10])}} {
		err := b.Put(ctx, "short", r, 20)
		if err == nil || !strings.HasPrefix(err.Error(), "remotestore:") {
			t.Fatalf("put of a short reader: %v", err)
		}
		if _, ok := b.raw(t, "short"); ok {
			t.Fatal("a short put stored an object")
		}
	}
	// A seekable reader is read from its position and left after the bytes.
	f := bytes.NewReader(data)
	f.Seek(100, io.SeekStart)
	if err := b.Put(ctx, "from-offset", f, 50); err != nil {
		t.Fatal(err)
	}
	checkRaw(t, b, "from-offset", data[100:150])
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 150 {
		t.Fatalf("reader left at %d, want 150", pos)
	}
}

func testRangedGet(t *testing.T, b *backend) {
	data := randomBytes(100, 2)
	put(t, b, "r", data)
	for _, tc := range []struct {
		offset, length int64
		want           []byte
	}{
		{0, 10, data[:10]},
		{45, 10, data[45:55]},
		{90, -1, data[90:]},
		{90, 50, data[90:]}, // cut short at the end
		{99, 1, data[99:]},
		{0, -1, data},
		{1, -1, data[1:]},
	} {
		got, err := get(t, b, "r", tc.offset, tc.length)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("get(%d, %d): %d bytes, %v; want %d bytes", tc.offset, tc.length, len(got), err, len(tc.want))
		}
	}
	for _, tc := range []struct{ offset, length int64 }{{100, 1}, {100, -1}, {1000, 10}} {
		if _, err := get(t, b, "r", tc.offset, tc.length); !errors.Is(err, remotestore.ErrRange) {
			t.Errorf("get(%d, %d) past the end: %v, want ErrRange", tc.offset, tc.length, err)
		}
	}
	for _, tc := range []struct{ offset, length int64 }{{-1, 10}, {0, 0}, {0, -2}} {
		if _, err := get(t, b, "r", tc.offset, tc.length); err == nil {
			t.Errorf("get(%d, %d) succeeded", tc.offset, tc.length)
		}
	}
}

func testHead(t *testing.T, b *backend) {
	ctx := ctxT(t)
	before := time.Now().Add(-time.Minute)
	put(t, b, "h/obj", randomBytes(1234, 3))
	info, err := b.Head(ctx, "h/obj")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "h/obj" || info.Size != 1234 || info.ETag == "" || info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Minute)) {
		t.Fatalf("head: %+v", info)
	}
	put(t, b, "h/obj", randomBytes(99, 4))
	info2, err := b.Head(ctx, "h/obj")
	if err != nil {
		t.Fatal(err)
	}
	if info2.Size != 99 || info2.ETag == info.ETag {
		t.Fatalf("head after replace: %+v (before %+v)", info2, info)
	}
}

func testList(t *testing.T, b *backend) {
	ctx := ctxT(t)
	var want []remotestore.ObjectInfo
	// 20 keys under t/0/ take three pages of 7 on S3.
	for i := range 20 {
		key := fmt.Sprintf("t/0/%020d.log", i*100)
		put(t, b, key, make([]byte, i))
		want = append(want, remotestore.ObjectInfo{Key: key, Size: int64(i)})
	}
	put(t, b, "t/0.x", []byte("x"))      // '.' sorts before '/': first under "t/0"
	put(t, b, "t/00/a", []byte("abc"))   // '0' sorts after '/': last under "t/0"
	put(t, b, "t/1/a", []byte("ab"))     // another partition
	put(t, b, "u/manifest", []byte("m")) // another topic

	check := func(prefix string, want []remotestore.ObjectInfo) {
		t.Helper()
		got, err := b.List(ctx, prefix)
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		if len(got) != len(want) {
			t.Fatalf("list %q: %d objects, want %d: %v", prefix, len(got), len(want), got)
		}
		for i := range got {
			if got[i].Key != want[i].Key || got[i].Size != want[i].Size {
				t.Fatalf("list %q [%d]: %s (%d bytes), want %s (%d bytes)", prefix, i, got[i].Key, got[i].Size, want[i].Key, want[i].Size)
			}
		}
	}
	check("t/0/", want)
	check("t/0/0000000000000000000", want[:1]) // mid-name prefix
	byteOrder := append([]remotestore.ObjectInfo{{Key: "t/0.x", Size: 1}}, want...)
	check("t/0", append(byteOrder, remotestore.ObjectInfo{Key: "t/00/a", Size: 3}))
	check("u/", []remotestore.ObjectInfo{{Key: "u/manifest", Size: 1}})
	check("nothing/", nil)
	all, err := b.List(ctx, "")
	if err != nil || len(all) != 24 {
		t.Fatalf("list everything: %d objects, %v", len(all), err)
	}
}

func testDelete(t *testing.T, b *backend) {
	ctx := ctxT(t)
	for _, k := range []string{"d/a", "d/b", "d/c", "d/keep", "d/sub/x"} {
		put(t, b, k, []byte(k))
	}
	if err := b.Delete(ctx, "d/a", "d/missing", "d/b", "d/sub/x", "nowhere/at/all"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"d/a", "d/b", "d/sub/x"} {
		if _, ok := b.raw(t, k); ok {
			t.Errorf("%s still stored after delete", k)
		}
	}
	checkRaw(t, b, "d/keep", []byte("d/keep"))
	// More keys than one DeleteObjects request takes, nearly all missing.
	keys := []string{"d/c"}
	for i := range 1004 {
		keys = append(keys, fmt.Sprintf("d/gone/%d", i))
	}
	keys = append(keys, "d/keep")
	if err := b.Delete(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	if got, err := b.List(ctx, "d/"); err != nil || len(got) != 0 {
		t.Fatalf("after deleting everything: %v, %v", got, err)
	}
	if err := b.Delete(ctx); err != nil {
		t.Fatalf("deleting no keys: %v", err)
	}
	// A Put into a directory a delete emptied still works.
	put(t, b, "d/sub/y", []byte("y"))
	checkRaw(t, b, "d/sub/y", []byte("y"))
}

func testNotFound(t *testing.T, b *backend) {
	ctx := ctxT(t)
	put(t, b, "exists/x", []byte("x"))
	_, err := b.Get(ctx, "missing", 0, -1)
	if !errors.Is(err, remotestore.ErrNotFound) || !strings.HasPrefix(err.Error(), "remotestore:") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("get missing: %v", err)
	}
	if _, err := b.Get(ctx, "missing", 10, 5); !errors.Is(err, remotestore.ErrNotFound) {
		t.Fatalf("ranged get missing: %v", err)
	}
	if _, err := b.Head(ctx, "exists/x/y"); !errors.Is(err, remotestore.ErrNotFound) {
		t.Fatalf("head under an object: %v", err)
	}
	if _, err := b.Head(ctx, "exists"); !errors.Is(err, remotestore.ErrNotFound) {
		t.Fatalf("head of a key that is only a prefix: %v", err)
	}
}

func testPutIfAbsent(t *testing.T, b *backend) {
	ctx := ctxT(t)
	if err := b.PutIfAbsent(ctx, "m/manifest-1", strings.NewReader("epoch 1"), 7); err != nil {
		t.Fatal(err)
	}
	err := b.PutIfAbsent(ctx, "m/manifest-1", strings.NewReader("epoch 0 (deposed)"), 17)
	if !errors.Is(err, remotestore.ErrExists) {
		t.Fatalf("second put-if-absent: %v, want ErrExists", err)
	}
	checkRaw(t, b, "m/manifest-1", []byte("epoch 1"))

	// Racing writers: exactly one wins and its bytes are what is stored.
	const writers = 6
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			body := fmt.Sprintf("writer %d", i)
			errs[i] = b.PutIfAbsent(ctx, "m/manifest-2", strings.NewReader(body), int64(len(body)))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the key", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, remotestore.ErrExists):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the key")
	}
	checkRaw(t, b, "m/manifest-2", []byte(fmt.Sprintf("writer %d", winner)))
}

func testLarge(t *testing.T, b *backend) {
	ctx := ctxT(t)
	// 2.4 parts: goes multipart on S3 (threshold 6 MiB, parts 5 MiB).
	data := randomBytes(2*testPartSize+testPartSize/2+123, 5)

	before := b.counters.Snapshot()
	if err := b.Put(ctx, "big/stream", onlyReader{bytes.NewReader(data)}, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if b.kind == "s3" {
		// CreateMultipartUpload, three UploadParts, CompleteMultipartUpload.
		if d := b.counters.Snapshot().Sub(before); d.Put != 5 {
			t.Fatalf("multipart upload made %+v requests, want 5 PUTs", d)
		}
		info, err := b.Head(ctx, "big/stream")
		if err != nil || !strings.HasSuffix(info.ETag, "-3") {
			t.Fatalf("head: %+v, %v; want a three-part ETag", info, err)
		}
	}
	checkRaw(t, b, "big/stream", data)

	// From a file: parts read in place.
	path := filepath.Join(t.TempDir(), "seg.log")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := b.Put(ctx, "big/file", f, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	checkRaw(t, b, "big/file", data)
	got, err := get(t, b, "big/file", testPartSize-10, 20) // across a part boundary
	if err != nil || !bytes.Equal(got, data[testPartSize-10:testPartSize+10]) {
		t.Fatalf("ranged get across parts: %v", err)
	}
	if info, err := b.Head(ctx, "big/file"); err != nil || info.Size != int64(len(data)) {
		t.Fatalf("head: %+v, %v", info, err)
	}
}

func testBadKeys(t *testing.T, b *backend) {
	ctx := ctxT(t)
	for _, key := range []string{"", "/abs", "../escape", "a/../../b", "a//b", "a/", "./a", `a\b`, "a\x00b", ".strata-tmp/x", strings.Repeat("k", 1025)} {
		if err := b.Put(ctx, key, strings.NewReader("x"), 1); err == nil {
			t.Errorf("put %q succeeded", key)
		}
		if _, err := b.Get(ctx, key, 0, -1); err == nil || errors.Is(err, remotestore.ErrNotFound) {
			t.Errorf("get %q: %v, want a bad-key error", key, err)
		}
		if err := b.Delete(ctx, key); err == nil {
			t.Errorf("delete %q succeeded", key)
		}
	}
	if all, err := b.List(ctx, ""); err != nil || len(all) != 0 {
		t.Fatalf("bad keys stored something: %v, %v", all, err)
	}
}

func testCounters(t *testing.T, b *backend) {
	ctx := ctxT(t)
	for i := range 10 {
		put(t, b, fmt.Sprintf("c/%d", i), []byte("x"))
	}
	before := b.counters.Snapshot()
	if _, err := get(t, b, "c/1", 0, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Head(ctx, "c/2"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.List(ctx, "c/"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "c/1", "c/2"); err != nil {
		t.Fatal(err)
	}
	got := b.counters.Snapshot().Sub(before)
	want := remotestore.RequestCounts{Get: 1, Head: 1, List: 1, Delete: 1}
	if b.kind == "s3" {
		want.List = 2 // ten keys, pages of seven
	}
	if got != want {
		t.Fatalf("requests: %+v, want %+v", got, want)
	}
	if before.Put != 10 {
		t.Fatalf("puts: %d, want 10", before.Put)
	}
}
