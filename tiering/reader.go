package tiering

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-broker/strata/localstore"
)

// Records is what a remote read returns: whole batches as views of cached
// chunks (Parts, in order, never copied), Size bytes in all. A batch never
// spans two parts. The views stay valid after the chunk leaves the cache.
type Records struct {
	Parts [][]byte
	Size  int
	held  []*chunkBuf // the buffers Parts view, one reference each
}

// Release gives back the chunk buffers the records view, once they have been
// written (or will not be). Call it once, on one copy; the records must not
// be used after. Records never released only keep their buffers from being
// reused (the garbage collector frees them).
func (r *Records) Release() {
	for _, c := range r.held {
		c.unref()
	}
	r.held, r.Parts, r.Size = nil, nil, 0
}

// hold adds a reference to c for these records (once per buffer).
func (r *Records) hold(c *chunkBuf) {
	if c == nil {
		return
	}
	for _, h := range r.held {
		if h == c {
			return
		}
	}
	c.ref()
	r.held = append(r.held, c)
}

// Bytes returns the records as one new slice (for callers that need it
// contiguous; the broker writes Parts to the socket as they are).
func (r Records) Bytes() []byte {
	out := make([]byte, 0, r.Size)
	for _, p := range r.Parts {
		out = append(out, p...)
	}
	return out
}

// Batches calls fn with each whole batch, in order, until it returns false.
func (r Records) Batches(fn func(h localstore.BatchHeader, batch []byte) bool) error {
	for _, p := range r.Parts {
		for len(p) > 0 {
			h, err := localstore.ParseBatchHeader(p)
			if err != nil || h.Size() > len(p) {
				return fmt.Errorf("tiering: records hold a partial batch: %v", err)
			}
			if !fn(h, p[:h.Size()]) {
				return nil
			}
			p = p[h.Size():]
		}
	}
	return nil
}

// Before returns the leading batches whose base offset is below offset
// (views, no copy): read_committed stops at the last stable offset.
// The result takes over r's buffers: release it, not r.
func (r Records) Before(offset int64) Records {
	out := Records{held: r.held}
	for _, p := range r.Parts {
		n := 0
		for n+localstore.BatchHeaderSize <= len(p) {
			h, err := localstore.ParseBatchHeader(p[n:])
			if err != nil || h.BaseOffset >= offset || n+h.Size() > len(p) {
				break
			}
			n += h.Size()
		}
		if n > 0 {
			out.Parts = append(out.Parts, p[:n:n])
			out.Size += n
		}
		if n < len(p) {
			break
		}
	}
	return out
}

// Read is one read outside any session: nothing is fetched ahead for it, and
// nothing stays in flight after it returns. Consumers read through a Session.
func (p *Partition) Read(ctx context.Context, offset int64, maxBytes int) (Records, error) {
	st, err := p.mgr.openStream(p, false)
	if err != nil {
		return Records{}, err
	}
	defer st.close()
	return st.read(ctx, offset, maxBytes, func() {})
}

// OffsetForTimestamp finds the first remote batch whose max timestamp is >= ts
// and returns its base offset (clamped to the log start) and max timestamp.
func (p *Partition) OffsetForTimestamp(ctx context.Context, ts int64) (int64, int64, bool, error) {
	m := p.Manifest()
	for _, seg := range m.Readable() {
		if seg.MaxTimestamp < ts {
			continue
		}
		b, err := p.mgr.bundle(ctx, p.ms.prefix, seg)
		if err != nil {
			return 0, 0, false, err
		}
		// Scan from the time index's entry before ts, in this segment and,
		// if its last batches are older, the next ones.
		st, err := p.mgr.openStream(p, false)
		if err != nil {
			return 0, 0, false, err
		}
		defer st.close()
		for off := max(b.OffsetForTimestamp(seg.BaseOffset, ts), m.LogStartOffset); ; {
			r, err := st.read(ctx, off, 256<<10, func() {})
			if err != nil {
				return 0, 0, false, err
			}
			if r.Size == 0 {
				return 0, 0, false, nil
			}
			var found bool
			var base, maxTs int64
			if err := r.Batches(func(h localstore.BatchHeader, _ []byte) bool {
				off = h.LastOffset() + 1
				if h.MaxTimestamp >= ts && h.LastOffset() >= m.LogStartOffset {
					found, base, maxTs = true, max(h.BaseOffset, m.LogStartOffset), h.MaxTimestamp
					return false
				}
				return true
			}); err != nil {
				return 0, 0, false, err
			}
			if found {
				return base, maxTs, true, nil
			}
		}
	}
	return 0, 0, false, nil
}

// progressStep is how often, in bytes, fetchChunkInto reports a GET's
// progress: a read waiting for a chunk's first batches wakes every 128 KiB
// (~1.6 ms at 80 MB/s), not per socket read; an eighth of a smaller chunk.
func progressStep(chunk int64) int64 { return max(4<<10, min(128<<10, chunk/8)) }

// fetchChunkInto reads chunk k of an object from the store into buf (of the
// chunk's length), insisting on its full length: a short body is a corrupt
// object, not a short read. arrived(n) is called as the body comes in, each
// time another progressStep bytes have arrived (never for the whole: the
// return says that); buf[:n] is never written again.
func (m *Manager) fetchChunkInto(ctx context.Context, key string, k, size int64, buf []byte, arrived func(n int64)) error {
	cs := m.opts.ChunkBytes
	start := k * cs
	length := min(cs, size-start)
	if int64(len(buf)) != length {
		return fmt.Errorf("tiering: get %s chunk %d: buffer of %d bytes for %d", key, k, len(buf), length)
	}
	rc, err := m.opts.Store.Get(ctx, key, start, length)
	if err != nil {
		return fmt.Errorf("tiering: get %s [%d, %d): %w", key, start, start+length, err)
	}
	defer rc.Close()
	var n int64
	step := progressStep(cs)
	for next := step; n < length; {
		r, err := rc.Read(buf[n:])
		n += int64(r)
		if n < length && n >= next && arrived != nil {
			arrived(n)
			next = n + step
		}
		if err != nil && n < length {
			if ctx.Err() != nil {
				return fmt.Errorf("tiering: get %s [%d, %d): %w", key, start, start+length, ctx.Err())
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%w: %s [%d, %d): %v", ErrCorruptObject, key, start, start+length, err)
		}
	}
	m.metrics.chunkFetches.Inc()
	return nil
}

// AbortedTransactions lists the aborted transactions overlapping the remote
// records [start, upper) for a read_committed fetch from the bucket, from
// the index bundles of the segment holding start and the ones after it
// (Kafka's RemoteLogManager.collectAbortedTransactions). complete is false
// when the remote segments ran out before an entry's last stable offset
// reached upper: a marker in the local log may still close a transaction
// that started here, and the caller goes on with the local log's index.
func (p *Partition) AbortedTransactions(ctx context.Context, start, upper int64) (out []localstore.AbortedTxn, complete bool, err error) {
	if upper <= start {
		return nil, true, nil
	}
	m := p.Manifest()
	for _, seg := range m.Readable() {
		if seg.LastOffset < start || seg.noAbortedTxns() {
			// No entry here: nothing to add, and nothing here completes
			// the search (CollectAbortedTxns of no entries), so no GET.
			continue
		}
		b, err := p.mgr.bundle(ctx, p.ms.prefix, seg)
		if err != nil {
			return nil, false, err
		}
		if !b.HasTxnIndex {
			continue // copied before transactions existed: none aborted here
		}
		entries, err := localstore.DecodeTxnIndex(b.TxnIndex, seg.BaseOffset, seg.LastOffset+1)
		if err != nil {
			return nil, false, fmt.Errorf("%w: transaction index of %s: %v", ErrCorruptObject, seg.ID, err)
		}
		if out, complete = localstore.CollectAbortedTxns(out, entries, start, upper); complete {
			return out, true, nil
		}
	}
	return out, false, nil
}
