package tiering

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-broker/strata/localstore"
)

// testObject is a segment's bytes: batches of mixed sizes, one of them
// longer than several small chunks.
func testObject() ([]byte, [][]byte) {
	var obj []byte
	var batches [][]byte
	off := int64(0)
	for i, n := range []int{1, 3, 2, 40, 1, 1, 5, 2, 1, 7, 1, 3} {
		b := testBatch(n, 1000+off, 20+i*3)
		localstore.SetBaseOffset(b, off)
		off += int64(n)
		batches = append(batches, b)
		obj = append(obj, b...)
	}
	return obj, batches
}

// chainAll builds the entries of obj in chunks of cs, from position from.
func chainAll(obj []byte, cs, from int64) ([]*entry, error) {
	return chainFed(obj, cs, from, 0)
}

// chainFed is chainAll with each chunk fed to its builder step bytes at a
// time (0: all at once), as a GET's body arrives.
func chainFed(obj []byte, cs, from, step int64) ([]*entry, error) {
	size := int64(len(obj))
	ch := chain{pos: from}
	var out []*entry
	for k := from / cs; k*cs < size; k++ {
		raw := append([]byte(nil), obj[k*cs:min(size, (k+1)*cs)]...)
		b, err := newBuilder("test.log", "seg", k, cs, size, raw, ch)
		if err != nil {
			return out, err
		}
		if step > 0 {
			for n := step; n < int64(len(raw)); n += step {
				if err := b.feed(n); err != nil {
					return out, err
				}
			}
		}
		if err := b.feed(int64(len(raw))); err != nil {
			return out, err
		}
		e, next, err := b.finish()
		if err != nil {
			return out, err
		}
		out, ch = append(out, e), next
	}
	return out, nil
}

// TestChainFedInPieces: a chunk fed as its bytes arrive, in any step,
// gives the same entries as the chunk fed whole, and every batch a partial
// feed takes is one the whole chunk has.
func TestChainFedInPieces(t *testing.T) {
	obj, _ := testObject()
	for _, cs := range []int64{61, 200, 1000, int64(len(obj))} {
		for _, step := range []int64{1, 7, 12, 13, 100, 999} {
			for _, from := range []int64{0, fifthBatch(obj)} {
				whole, err := chainAll(obj, cs, from)
				if err != nil {
					t.Fatal(err)
				}
				fed, err := chainFed(obj, cs, from, step)
				if err != nil {
					t.Fatalf("chunk size %d, step %d, from %d: %v", cs, step, from, err)
				}
				a, b := entryBatches(t, whole, cs), entryBatches(t, fed, cs)
				if len(a) != len(b) {
					t.Fatalf("chunk size %d, step %d: %d batches, want %d", cs, step, len(b), len(a))
				}
				for i := range a {
					if !bytes.Equal(a[i], b[i]) {
						t.Fatalf("chunk size %d, step %d: batch %d differs", cs, step, i)
					}
				}
			}
		}
	}
	// Half a chunk: the builder has exactly the batches wholly inside it.
	cs := int64(len(obj))
	b, err := newBuilder("test.log", "seg", 0, cs, cs, append([]byte(nil), obj...), chain{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.feed(cs / 2); err != nil {
		t.Fatal(err)
	}
	for i, end := range b.e.ends {
		if end > cs/2 {
			t.Fatalf("batch %d ends at %d, past the %d bytes fed", i, end, cs/2)
		}
	}
	if len(b.e.ends) == 0 || b.e.end+int64(batchLenAt(obj, b.e.end)) <= cs/2 {
		t.Fatalf("fed half of the chunk and took %d batches up to %d", len(b.e.ends), b.e.end)
	}
}

// fifthBatch is the position of obj's fifth batch: a chain start inside a chunk.
func fifthBatch(obj []byte) int64 {
	pos := int64(0)
	for range 4 {
		pos += int64(batchLenAt(obj, pos))
	}
	return pos
}

// batchLenAt is the size of the batch at pos of obj.
func batchLenAt(obj []byte, pos int64) int {
	h, _ := localstore.ParseBatchHeader(obj[pos:])
	return h.Size()
}

// entryBatches reads every batch of the entries back through their views.
func entryBatches(t *testing.T, es []*entry, cs int64) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range es {
		for i := range e.ends {
			parts := e.bytes(cs, e.batchStart(i), e.ends[i], nil)
			if len(parts) != 1 {
				t.Fatalf("chunk %d batch %d is in %d parts", e.k, i, len(parts))
			}
			out = append(out, parts[0])
		}
	}
	return out
}

// TestChainCutsAnywhere: whatever the chunk size, the entries hold every
// batch exactly once, whole, in order — including batches that span two or
// more chunks — and a chain started at a batch inside the object sees the
// rest.
func TestChainCutsAnywhere(t *testing.T) {
	obj, batches := testObject()
	for cs := int64(61); cs <= int64(len(obj))+1; cs += 7 {
		es, err := chainAll(obj, cs, 0)
		if err != nil {
			t.Fatalf("chunk size %d: %v", cs, err)
		}
		got := entryBatches(t, es, cs)
		if len(got) != len(batches) {
			t.Fatalf("chunk size %d: %d batches, want %d", cs, len(got), len(batches))
		}
		for i := range got {
			if !bytes.Equal(got[i], batches[i]) {
				t.Fatalf("chunk size %d: batch %d differs", cs, i)
			}
		}
		if last := es[len(es)-1]; last.end != int64(len(obj)) || len(last.tail(cs)) != 0 {
			t.Fatalf("chunk size %d: chain ends at %d with %d tail bytes", cs, last.end, len(last.tail(cs)))
		}
		// From the start of the fifth batch.
		from := int64(0)
		for _, b := range batches[:4] {
			from += int64(len(b))
		}
		es, err = chainAll(obj, cs, from)
		if err != nil {
			t.Fatalf("chunk size %d from %d: %v", cs, from, err)
		}
		if got := entryBatches(t, es, cs); len(got) != len(batches)-4 || !bytes.Equal(got[0], batches[4]) {
			t.Fatalf("chunk size %d from %d: %d batches", cs, from, len(got))
		}
	}
}

// TestChainRejectsCorruption: a flipped byte anywhere in a batch, or an
// object cut short, is ErrCorruptObject from the chunk that holds it — never
// an entry.
func TestChainRejectsCorruption(t *testing.T) {
	obj, _ := testObject()
	for _, cs := range []int64{64, 200, 1000} {
		for at := 0; at < len(obj); at += 37 {
			bad := append([]byte(nil), obj...)
			bad[at] ^= 0x5a
			if _, err := chainAll(bad, cs, 0); !errors.Is(err, ErrCorruptObject) {
				// A flip in the base offset or leader epoch is outside the
				// CRC (Kafka rewrites them), so it may pass.
				if inUncheckedField(obj, at) {
					continue
				}
				t.Fatalf("chunk size %d, byte %d flipped: %v", cs, at, err)
			}
		}
		if _, err := chainAll(obj[:len(obj)-5], cs, 0); !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("chunk size %d, truncated object: %v", cs, err)
		}
	}
}

// inUncheckedField reports whether byte at of obj is in a batch's base
// offset or partition leader epoch, which the CRC does not cover.
func inUncheckedField(obj []byte, at int) bool {
	for pos := 0; pos < len(obj); {
		h, _ := localstore.ParseBatchHeader(obj[pos:])
		if at < pos+h.Size() {
			rel := at - pos
			return rel < 8 || (rel >= 12 && rel < 16)
		}
		pos += h.Size()
	}
	return false
}

// FuzzBuildEntry: bytes from the bucket never panic the chain, and whatever
// it accepts is whole, CRC-valid batches.
func FuzzBuildEntry(f *testing.F) {
	obj, _ := testObject()
	f.Add(obj, uint16(100))
	f.Add(obj[:300], uint16(64))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}, uint16(61))
	f.Fuzz(func(t *testing.T, data []byte, csRaw uint16) {
		cs := int64(csRaw%2000) + 1
		es, err := chainAll(data, cs, 0)
		// Fed in pieces, the chain must agree: the same error or none,
		// the same batches.
		fed, ferr := chainFed(data, cs, 0, int64(csRaw/2000)+1)
		if h, perr := localstore.ParseBatchHeader(data); perr == nil && h.Size() > 0 && h.Size() < len(data) {
			// And from the second batch, a chain start inside a chunk.
			from := int64(h.Size())
			es2, err2 := chainAll(data, cs, from)
			fed2, ferr2 := chainFed(data, cs, from, int64(csRaw/2000)+1)
			if (err2 == nil) != (ferr2 == nil) || (err2 == nil && len(entryBatches(t, es2, cs)) != len(entryBatches(t, fed2, cs))) {
				t.Fatalf("from %d: whole chunks: %v; fed in pieces: %v", from, err2, ferr2)
			}
		}
		if (err == nil) != (ferr == nil) {
			t.Fatalf("whole chunks: %v; fed in pieces: %v", err, ferr)
		}
		if err == nil && len(entryBatches(t, es, cs)) != len(entryBatches(t, fed, cs)) {
			t.Fatalf("whole chunks and pieces took different batches")
		}
		for _, e := range es {
			for i := range e.ends {
				for _, p := range e.bytes(cs, e.batchStart(i), e.ends[i], nil) {
					if _, err := localstore.ValidateBatch(p); err != nil {
						t.Fatalf("accepted an invalid batch: %v", err)
					}
				}
			}
		}
	})
}
