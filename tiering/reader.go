package tiering

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-broker/strata/localstore"
)

// Read serves a fetch below the local log start: whole batches starting with
// the one that holds offset, at most maxBytes but at least one batch (KIP-74),
// from one remote segment. Every batch is CRC-checked before it is returned:
// a corrupt or truncated object is an error, never data.
func (p *Partition) Read(ctx context.Context, offset int64, maxBytes int) ([]byte, error) {
	m := p.Manifest()
	seg, ok := m.Find(offset)
	if !ok {
		return nil, ErrNotRemote
	}
	pos := int64(0)
	if offset > seg.BaseOffset {
		b, err := p.mgr.bundle(ctx, p.ms.prefix, seg)
		if err != nil {
			return nil, err
		}
		pos = b.PositionFor(seg.BaseOffset, offset)
	}
	cr := chunkReader{mgr: p.mgr, key: seg.LogKey(p.ms.prefix), id: seg.ID, size: seg.Size}
	// Sized once: growing from empty showed as most of Read's CPU in the
	// replay benchmark's profile.
	out := make([]byte, 0, min(int64(maxBytes), seg.Size-pos)+localstore.BatchHeaderSize)
	for pos < seg.Size {
		hb, err := cr.readAt(ctx, pos, localstore.BatchHeaderSize)
		if err != nil {
			return nil, err
		}
		h, err := localstore.ParseBatchHeader(hb)
		if err != nil {
			return nil, fmt.Errorf("%w: %s at %d: %v", ErrCorruptObject, cr.key, pos, err)
		}
		size := int64(h.Size())
		if pos+size > seg.Size {
			return nil, fmt.Errorf("%w: %s: batch at %d runs past the object's %d bytes", ErrCorruptObject, cr.key, pos, seg.Size)
		}
		if h.LastOffset() < offset {
			pos += size
			continue
		}
		if len(out) > 0 && len(out)+int(size) > maxBytes {
			break
		}
		batch, err := cr.readAt(ctx, pos, int(size))
		if err != nil {
			return nil, err
		}
		if _, err := localstore.ValidateBatch(batch); err != nil {
			return nil, fmt.Errorf("%w: %s at %d: %v", ErrCorruptObject, cr.key, pos, err)
		}
		out = append(out, batch...)
		pos += size
		if len(out) >= maxBytes {
			break
		}
	}
	p.mgr.metrics.bytesRead.Add(float64(len(out)))
	return out, nil
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
		pos := b.PositionFor(seg.BaseOffset, b.OffsetForTimestamp(seg.BaseOffset, ts))
		cr := chunkReader{mgr: p.mgr, key: seg.LogKey(p.ms.prefix), id: seg.ID, size: seg.Size}
		for pos < seg.Size {
			hb, err := cr.readAt(ctx, pos, localstore.BatchHeaderSize)
			if err != nil {
				return 0, 0, false, err
			}
			h, err := localstore.ParseBatchHeader(hb)
			if err != nil {
				return 0, 0, false, fmt.Errorf("%w: %s at %d: %v", ErrCorruptObject, cr.key, pos, err)
			}
			if h.MaxTimestamp >= ts && h.LastOffset() >= m.LogStartOffset {
				return max(h.BaseOffset, m.LogStartOffset), h.MaxTimestamp, true, nil
			}
			pos += int64(h.Size())
		}
	}
	return 0, 0, false, nil
}

// chunkReader reads byte ranges of one remote .log through the chunk cache.
type chunkReader struct {
	mgr  *Manager
	key  string
	id   string
	size int64
}

func (c *chunkReader) readAt(ctx context.Context, pos int64, n int) ([]byte, error) {
	if pos+int64(n) > c.size {
		return nil, fmt.Errorf("%w: %s: read [%d, %d) past its %d bytes", ErrCorruptObject, c.key, pos, pos+int64(n), c.size)
	}
	cs := c.mgr.opts.ChunkBytes
	if k := pos / cs; (pos+int64(n)-1)/cs == k {
		// Within one chunk: a view of the cached chunk, no copy. Callers
		// only read it (parse, CRC-check, append to their output).
		chunk, err := c.mgr.chunk(ctx, c.key, c.id, k, c.size)
		if err != nil {
			return nil, err
		}
		off := pos - k*cs
		if off+int64(n) > int64(len(chunk)) {
			return nil, fmt.Errorf("%w: %s: chunk %d is %d bytes, short of %d", ErrCorruptObject, c.key, k, len(chunk), off+int64(n))
		}
		return chunk[off : off+int64(n) : off+int64(n)], nil
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		at := pos + int64(len(out))
		k := at / cs
		chunk, err := c.mgr.chunk(ctx, c.key, c.id, k, c.size)
		if err != nil {
			return nil, err
		}
		off := at - k*cs
		if off >= int64(len(chunk)) {
			return nil, fmt.Errorf("%w: %s: chunk %d is %d bytes, short of %d", ErrCorruptObject, c.key, k, len(chunk), off+1)
		}
		take := min(int64(n-len(out)), int64(len(chunk))-off)
		out = append(out, chunk[off:off+take]...)
	}
	return out, nil
}

// fetchChunk reads chunk k of an object from the store, insisting on its full
// length (a short object is corrupt).
func (m *Manager) fetchChunk(ctx context.Context, key string, k, size int64) ([]byte, error) {
	cs := m.opts.ChunkBytes
	start := k * cs
	length := min(cs, size-start)
	rc, err := m.opts.Store.Get(ctx, key, start, length)
	if err != nil {
		return nil, fmt.Errorf("tiering: get %s [%d, %d): %w", key, start, start+length, err)
	}
	defer rc.Close()
	buf := make([]byte, length)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("%w: %s [%d, %d): %v", ErrCorruptObject, key, start, start+length, err)
	}
	m.metrics.chunkFetches.Inc()
	return buf, nil
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
		if seg.LastOffset < start {
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
