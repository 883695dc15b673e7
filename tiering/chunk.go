package tiering

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/strata-broker/strata/localstore"
)

// A remote segment is read in raw chunks: chunk k is the object's bytes
// [k·ChunkBytes, (k+1)·ChunkBytes), one ranged GET each — exactly the GETs a
// plain reader of the object would make. Batches do not respect chunk
// boundaries, so a chunk becomes an entry when it joins a chain:
//
//	chunk k-1            | chunk k                          | chunk k+1
//	… batch │ batch │ str|addler │ batch │ batch │ … │ strad|dler …
//	                 ^ seam (a copy of the one batch across the cut)
//	         entry k = [seam start, last whole batch end); tail = the rest
//
// An entry holds only whole batches, each CRC-checked once, when the entry is
// built from a chunk that has just arrived (a corrupt chunk never becomes an
// entry, so it can only ever be an error to a reader). The one batch that
// straddles a cut is copied once into the later entry's seam; everything else
// stays in the chunk's buffer and is written to the socket from there. A
// chain starts at a known batch start — a segment's position 0, or an offset
// index position — and runs in chunk order, which is the order a sequential
// reader needs them in; no index is fetched to read a segment from its start.

// entry is one chunk's validated batches: object positions [start, end).
type entry struct {
	segID string
	k     int64  // chunk index
	raw   []byte // the whole chunk as fetched: positions [k·cs, k·cs+len(raw))
	start int64  // first batch start (may lie in an earlier chunk: the seam)
	end   int64  // end of the last whole batch; raw past it is the next seam's head
	seam  []byte // the straddling batch [start, start+len(seam)), copied; may be empty
	// One element per batch, in order: end position and last offset, so a
	// read at an offset or a byte budget is a binary search.
	ends        []int64
	lastOffsets []int64
	firstBase   int64 // base offset of the first batch (-1 if none)
	// buf is the counted buffer raw lives in (nil: raw is not pooled).
	// The entry holds no reference itself: its holders do (bufpool.go).
	buf *chunkBuf
}

// bodyStart is where the entry's in-chunk batches begin.
func (e *entry) bodyStart() int64 { return e.start + int64(len(e.seam)) }

// chunkStart is the object position of raw[0].
func (e *entry) chunkStart(cs int64) int64 { return e.k * cs }

// tail is the bytes of raw after the last whole batch: the start of the next
// straddling batch (empty at a segment's end).
func (e *entry) tail(cs int64) []byte { return e.raw[e.end-e.chunkStart(cs):] }

// cost is what the entry holds in memory.
func (e *entry) cost() int64 { return int64(cap(e.raw) + cap(e.seam)) }

// batchesFrom returns the index of the batch that starts at pos (-1 if pos is
// not a batch start of this entry).
func (e *entry) batchAt(pos int64) int {
	if pos == e.start && len(e.ends) > 0 {
		return 0
	}
	i := sort.Search(len(e.ends), func(i int) bool { return e.ends[i] >= pos })
	if i < len(e.ends) && e.ends[i] == pos && i+1 < len(e.ends) {
		return i + 1
	}
	return -1
}

// batchStart is the start position of batch i.
func (e *entry) batchStart(i int) int64 {
	if i == 0 {
		return e.start
	}
	return e.ends[i-1]
}

// bytes returns views of positions [from, to) of the entry: the seam and/or
// the chunk buffer, never a copy.
func (e *entry) bytes(cs, from, to int64, out [][]byte) [][]byte {
	if b := e.bodyStart(); from < b {
		out = append(out, e.seam[from-e.start:min(to, b)-e.start])
		from = b
	}
	if from < to {
		c := e.chunkStart(cs)
		out = append(out, e.raw[from-c:to-c:to-c])
	}
	return out
}

// chain is where a chain of entries stands: the position of the next batch
// and the bytes of it already seen (a view of the previous chunk's tail, or
// a copy when a batch spans more than two chunks).
type chain struct {
	pos   int64
	carry []byte
	buf   *chunkBuf // carry views this buffer (nil: carry is its own copy)
}

// buildEntry checks raw chunk k against the chain and returns its entry and
// the chain after it. size is the object's size: the last chunk must end on
// a batch boundary. Any inconsistency is ErrCorruptObject.
func buildEntry(key, segID string, k, cs, size int64, raw []byte, ch chain) (*entry, chain, error) {
	b, err := newBuilder(key, segID, k, cs, size, raw, ch)
	if err != nil {
		return nil, ch, err
	}
	if err := b.feed(int64(len(raw))); err != nil {
		return nil, ch, err
	}
	return b.finish()
}

// builder builds one chunk's entry as the chunk's bytes arrive: feed checks
// each batch as soon as it is whole, so a read can be answered from the
// first part of a chunk while the rest of its GET is still on the way (a
// cold fetch waits for the bytes it returns, not for the whole chunk).
// Batches taken by feed are final; finish checks the chunk's end. The
// entry is cached only once finished.
type builder struct {
	key      string
	cs, size int64
	e        *entry
	ch       chain // the chain before this chunk; ch.carry is the batch still to finish
	seamDone bool  // the carried batch is in e.seam (or there was none)
	at       int64 // object position of the next byte to parse
	err      error // the first inconsistency: every later feed and finish fail with it
}

// newBuilder starts chunk k's entry; raw is the chunk's buffer, of its full
// length, of which feed says how much has arrived.
func newBuilder(key, segID string, k, cs, size int64, raw []byte, ch chain) (*builder, error) {
	base := k * cs
	if want := min(cs, size-base); int64(len(raw)) != want {
		return nil, fmt.Errorf("%w: %s chunk %d is %d bytes, want %d", ErrCorruptObject, key, k, len(raw), want)
	}
	carryEnd := ch.pos + int64(len(ch.carry))
	if carryEnd < base || carryEnd > base+int64(len(raw)) {
		return nil, fmt.Errorf("tiering: %s: chain at %d (+%d carried) does not reach chunk %d", key, ch.pos, len(ch.carry), k)
	}
	e := &entry{segID: segID, k: k, raw: raw, start: ch.pos, end: ch.pos, firstBase: -1}
	return &builder{key: key, cs: cs, size: size, e: e, ch: ch, seamDone: len(ch.carry) == 0, at: carryEnd}, nil
}

func (b *builder) add(batch []byte, at int64) error {
	h, err := localstore.ValidateBatch(batch)
	if err != nil {
		return fmt.Errorf("%w: %s at %d: %v", ErrCorruptObject, b.key, at, err)
	}
	e := b.e
	if e.firstBase < 0 {
		e.firstBase = h.BaseOffset
	}
	e.end = at + int64(len(batch))
	e.ends = append(e.ends, e.end)
	e.lastOffsets = append(e.lastOffsets, h.LastOffset())
	return nil
}

// feed takes the whole batches within the chunk's first n bytes.
func (b *builder) feed(n int64) error {
	if b.err != nil {
		return b.err
	}
	b.err = b.feedTo(n)
	return b.err
}

func (b *builder) feedTo(n int64) error {
	base := b.e.k * b.cs
	if b.at-base > n {
		return nil // the chain starts (or its carry ends) further into the chunk
	}
	raw := b.e.raw[:n]
	if !b.seamDone {
		// Finish the batch that began before this chunk.
		ch := b.ch
		body := raw[b.at-base:]
		need, ok := batchSize(ch.carry, body)
		if ok && ch.pos+need > b.size {
			return fmt.Errorf("%w: %s: batch at %d of %d bytes runs past the object's %d", ErrCorruptObject, b.key, ch.pos, need, b.size)
		}
		if !ok || int64(len(ch.carry))+int64(len(body)) < need {
			return nil // not even its length yet, or still more to come
		}
		seam := make([]byte, need)
		c := copy(seam, ch.carry)
		copy(seam[c:], body)
		if err := b.add(seam, ch.pos); err != nil {
			return err
		}
		b.e.seam, b.seamDone, b.at = seam, true, ch.pos+need
	}
	for body := raw[b.at-base:]; len(body) > 0; body = raw[b.at-base:] {
		need, ok := batchSize(body, nil)
		if ok && b.at+need > b.size {
			return fmt.Errorf("%w: %s: batch at %d of %d bytes runs past the object's %d", ErrCorruptObject, b.key, b.at, need, b.size)
		}
		if !ok || need > int64(len(body)) {
			return nil
		}
		if err := b.add(body[:need], b.at); err != nil {
			return err
		}
		b.at += need
	}
	return nil
}

// finish checks the end of the chunk, all of which has been fed, and
// returns its entry and the chain after it.
func (b *builder) finish() (*entry, chain, error) {
	if b.err != nil {
		return nil, b.ch, b.err
	}
	e := b.e
	base := e.k * b.cs
	end := base + int64(len(e.raw))
	if !b.seamDone {
		// The carried batch runs past this chunk too: carry on.
		if end >= b.size {
			return nil, b.ch, fmt.Errorf("%w: %s: batch at %d runs past the object's %d bytes", ErrCorruptObject, b.key, b.ch.pos, b.size)
		}
		carryEnd := b.ch.pos + int64(len(b.ch.carry))
		next := chain{pos: b.ch.pos, carry: append(append([]byte(nil), b.ch.carry...), e.raw[carryEnd-base:]...)}
		return e, next, nil
	}
	rest := e.raw[b.at-base:]
	if len(rest) > 0 && end >= b.size {
		return nil, b.ch, fmt.Errorf("%w: %s: %d bytes at %d are not a whole batch at the object's end", ErrCorruptObject, b.key, len(rest), b.at)
	}
	next := chain{pos: b.at, carry: rest}
	if len(rest) > 0 {
		next.buf = e.buf
	}
	return e, next, nil
}

// batchSize reads a batch's total size from its first 12 bytes, which may be
// split across a and b. ok is false if there are not 12 bytes yet; a length
// below the minimum is reported as a size the caller's check rejects.
func batchSize(a, b []byte) (int64, bool) {
	const lenEnd = 12 // base offset (8) + batch length (4)
	var hdr [lenEnd]byte
	n := copy(hdr[:], a)
	n += copy(hdr[n:], b)
	if n < lenEnd {
		return 0, false
	}
	l := int64(int32(binary.BigEndian.Uint32(hdr[8:])))
	if l < localstore.BatchHeaderSize-lenEnd {
		// Too short to be a batch: let ValidateBatch say why.
		return localstore.BatchHeaderSize, true
	}
	return lenEnd + l, true
}
