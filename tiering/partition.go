package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
)

// LocalLog is what tiering needs of a partition's local log.
type LocalLog interface {
	Dir() string
	Segments() []localstore.SegmentInfo
	RecoveryPoint() int64
	WaitSealed()
	EpochStarts() []localstore.EpochStart
	// SegmentTxnIndex is a sealed segment's aborted transactions in
	// .txnindex layout (localstore.Log.SegmentTxnIndex).
	SegmentTxnIndex(base, next int64) ([]byte, error)
}

// Partition is one partition's tiered state: its manifest and the copy loop.
// mu serialises manifest changes (copies, deletions); readers use the
// published snapshot and never wait for an upload.
type Partition struct {
	mgr       *Manager
	topic     string
	partition int32
	log       LocalLog
	ms        manifestStore

	mu       sync.Mutex
	manifest *Manifest  // nil until loaded; guarded by mu
	deleting sync.Mutex // serialises AdvanceLogStart passes; taken before mu
	epoch    int32      // leader epoch copies are made under

	published atomic.Pointer[Manifest]
	lastErr   atomic.Pointer[errBox]
	lastSweep atomic.Pointer[time.Time]

	// Per-partition totals for observability (strata_partition_* metrics).
	deletedSegments, deletedBytes, swept atomic.Int64
}

// DeletionTotals returns the remote segments and bytes deleted by retention
// or DeleteRecords, and the orphan objects swept, since this process started.
func (p *Partition) DeletionTotals() (segments, bytes, swept int64) {
	return p.deletedSegments.Load(), p.deletedBytes.Load(), p.swept.Load()
}

type errBox struct{ err error }

// Prefix is the partition's key prefix in the bucket.
func (p *Partition) Prefix() string { return p.ms.prefix }

// SetLeaderEpoch sets the epoch recorded in new objects' keys and entries.
func (p *Partition) SetLeaderEpoch(e int32) {
	p.mu.Lock()
	p.epoch = e
	p.mu.Unlock()
}

// Manifest returns the last committed manifest (never nil after Load).
func (p *Partition) Manifest() *Manifest {
	if m := p.published.Load(); m != nil {
		return m
	}
	return NewManifest(p.topic, p.partition)
}

// LastError is the last copy error (nil after a success): tier status shows it.
func (p *Partition) LastError() error {
	if b := p.lastErr.Load(); b != nil {
		return b.err
	}
	return nil
}

// Load reads the manifest from the bucket (at start, or after a failed commit).
func (p *Partition) Load(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loadLocked(ctx)
}

func (p *Partition) loadLocked(ctx context.Context) error {
	m, err := p.ms.load(ctx, p.topic, p.partition)
	if err != nil {
		return err
	}
	p.manifest = m
	p.publishLocked()
	return nil
}

func (p *Partition) publishLocked() {
	c := *p.manifest
	c.Parts = append([]ManifestPart(nil), p.manifest.Parts...)
	c.Segments = append([]RemoteSegment(nil), p.manifest.Segments...)
	p.published.Store(&c)
}

// commitLocked writes the manifest; on failure the in-memory copy is reloaded
// from the bucket at the next step so memory never runs ahead of the bucket.
func (p *Partition) commitLocked(ctx context.Context) error {
	p.manifest.LeaderEpoch = p.epoch
	if err := p.ms.commit(ctx, p.manifest); err != nil {
		p.manifest = nil
		return err
	}
	p.mgr.metrics.manifestWrites.Inc()
	p.publishLocked()
	return nil
}

func (p *Partition) ensureLoadedLocked(ctx context.Context) error {
	if p.manifest != nil {
		return nil
	}
	return p.loadLocked(ctx)
}

// CopyOnce copies every sealed, durable segment not yet in the bucket, oldest
// first, and returns how many it copied. A copy interrupted earlier (a
// copy_started entry, e.g. after a crash) is abandoned and redone.
func (p *Partition) CopyOnce(ctx context.Context) (int, error) {
	n, err := p.copyOnce(ctx)
	if err != nil {
		p.lastErr.Store(&errBox{err})
	} else {
		p.lastErr.Store(nil)
	}
	return n, err
}

func (p *Partition) copyOnce(ctx context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ensureLoadedLocked(ctx); err != nil {
		return 0, err
	}
	if err := p.abandonStartedLocked(ctx); err != nil {
		return 0, err
	}
	if err := p.finishDeletesLocked(ctx); err != nil {
		return 0, err
	}
	p.log.WaitSealed()
	rp := p.log.RecoveryPoint()
	// A backlog is copied one segment after another, and each manifest write
	// both finishes the segment just uploaded and begins the next one: one
	// commit per segment (plus one at the end) instead of two, the same
	// states in the same order.
	copied := 0
	var prev *RemoteSegment // uploaded, not yet committed as finished
	finish := func() error {
		if prev == nil {
			return nil
		}
		if err := p.manifest.Finish(prev.ID); err != nil {
			return err
		}
		if err := p.ms.spill(ctx, p.manifest, p.mgr.opts.ManifestKeep, p.mgr.opts.ManifestKeep/2); err != nil {
			p.manifest = nil
			return err
		}
		return nil
	}
	finished := func() {
		if prev != nil {
			copied++
			p.mgr.metrics.segmentsCopied.Inc()
			p.mgr.metrics.bytesCopied.Add(float64(prev.Size))
			p.mgr.opts.Logger.Info("tiering: copied segment", "topic", p.topic, "partition", p.partition,
				"base", prev.BaseOffset, "last", prev.LastOffset, "bytes", prev.Size, "id", prev.ID)
			prev = nil
		}
	}
	for _, seg := range p.log.Segments() {
		if !seg.Sealed || seg.Size == 0 || seg.NextOffset > rp {
			continue
		}
		if seg.NextOffset <= p.manifest.CopiedUpTo() {
			continue
		}
		if seg.BaseOffset < p.manifest.CopiedUpTo() {
			return copied, fmt.Errorf("tiering: local segment [%d, %d) straddles the remote end %d", seg.BaseOffset, seg.NextOffset, p.manifest.CopiedUpTo())
		}
		if err := ctx.Err(); err != nil {
			break
		}
		entry, ok, err := p.entryFor(seg)
		if err != nil {
			return copied, err
		}
		if !ok {
			continue // no batches
		}
		if err := finish(); err != nil {
			return copied, err
		}
		if err := p.manifest.Begin(entry); err != nil {
			return copied, err
		}
		if err := p.commitLocked(ctx); err != nil {
			return copied, err
		}
		finished()
		if err := p.uploadLocked(ctx, entry, seg); err != nil {
			return copied, err // stays copy_started; the next pass abandons and redoes it
		}
		prev = &entry
	}
	if prev != nil {
		if err := finish(); err != nil {
			return copied, err
		}
		if err := p.commitLocked(ctx); err != nil {
			return copied, err
		}
		finished()
	}
	return copied, ctx.Err()
}

// entryFor scans a sealed segment for its manifest entry: offsets,
// timestamps and the leader epochs that cover it. ok is false for a segment
// without batches.
func (p *Partition) entryFor(seg localstore.SegmentInfo) (RemoteSegment, bool, error) {
	entry := RemoteSegment{ID: newID(), BaseOffset: seg.BaseOffset, LeaderEpoch: p.epoch, Size: seg.Size,
		MinTimestamp: -1, MaxTimestamp: -1, AppendedAtMs: seg.LastModified.UnixMilli()}
	first := true
	err := localstore.ScanSegmentFile(seg.Path, func(pos int64, h localstore.BatchHeader) error {
		if first || h.BaseTimestamp < entry.MinTimestamp {
			entry.MinTimestamp = h.BaseTimestamp
		}
		first = false
		entry.MaxTimestamp = max(entry.MaxTimestamp, h.MaxTimestamp)
		entry.LastOffset = h.LastOffset()
		return nil
	})
	if err != nil {
		return entry, false, fmt.Errorf("tiering: read %s: %w", seg.Path, err)
	}
	if first {
		return entry, false, nil
	}
	entry.LastOffset = max(entry.LastOffset, seg.NextOffset-1)
	for _, e := range p.log.EpochStarts() {
		if e.StartOffset <= entry.LastOffset {
			entry.Epochs = append(entry.Epochs, EpochStart{Epoch: e.Epoch, StartOffset: max(e.StartOffset, entry.BaseOffset)})
		}
	}
	// Keep only the epochs that cover this segment: the last one starting at
	// or before its base, and those starting inside it.
	for len(entry.Epochs) > 1 && entry.Epochs[1].StartOffset <= entry.BaseOffset {
		entry.Epochs = entry.Epochs[1:]
	}
	// The count of aborted transactions in the bundle uploaded next: a
	// sealed segment's index only ever loses entries (cleaning), so the
	// bundle holds none when this says none.
	tidx, err := p.log.SegmentTxnIndex(seg.BaseOffset, seg.NextOffset)
	if err != nil {
		return entry, false, fmt.Errorf("tiering: transaction index of segment %d: %w", seg.BaseOffset, err)
	}
	aborted, err := localstore.DecodeTxnIndex(tidx, seg.BaseOffset, seg.NextOffset)
	if err != nil {
		return entry, false, fmt.Errorf("tiering: transaction index of segment %d: %w", seg.BaseOffset, err)
	}
	n := len(aborted)
	entry.AbortedTxns = &n
	return entry, true, nil
}

// uploadLocked puts the segment's .log and its index bundle, at the same
// time: neither waits for the other (the .log, if large, goes up as a
// multipart upload with parts in parallel).
func (p *Partition) uploadLocked(ctx context.Context, entry RemoteSegment, seg localstore.SegmentInfo) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logErr := make(chan error, 1)
	go func() {
		logErr <- p.uploadLog(ctx, entry, seg)
	}()
	err := p.uploadBundle(ctx, entry, seg)
	if err != nil {
		cancel()
	}
	if lerr := <-logErr; err == nil {
		err = lerr
	}
	return err
}

func (p *Partition) uploadLog(ctx context.Context, entry RemoteSegment, seg localstore.SegmentInfo) error {
	f, err := os.Open(seg.Path)
	if err != nil {
		return fmt.Errorf("tiering: open %s: %w", seg.Path, err)
	}
	defer f.Close()
	if err := p.mgr.opts.Store.Put(ctx, entry.LogKey(p.ms.prefix), f, seg.Size); err != nil {
		return fmt.Errorf("tiering: upload %s: %w", entry.LogKey(p.ms.prefix), err)
	}
	return nil
}

func (p *Partition) uploadBundle(ctx context.Context, entry RemoteSegment, seg localstore.SegmentInfo) error {
	_, idxPath, tidxPath := localstore.SegmentFiles(p.log.Dir(), seg.BaseOffset)
	b := &Bundle{Epochs: entry.Epochs}
	var err error
	if b.OffsetIndex, err = os.ReadFile(idxPath); err != nil {
		return fmt.Errorf("tiering: read %s: %w", idxPath, err)
	}
	if b.TimeIndex, err = os.ReadFile(tidxPath); err != nil {
		return fmt.Errorf("tiering: read %s: %w", tidxPath, err)
	}
	if snap, err := os.ReadFile(localstore.SnapshotFile(p.log.Dir(), seg.NextOffset)); err == nil {
		b.Snapshot = snap
	}
	if b.TxnIndex, err = p.log.SegmentTxnIndex(seg.BaseOffset, seg.NextOffset); err != nil {
		return fmt.Errorf("tiering: transaction index of segment %d: %w", seg.BaseOffset, err)
	}
	b.HasTxnIndex = true
	enc := b.Encode()
	if err := p.mgr.opts.Store.Put(ctx, entry.IndexesKey(p.ms.prefix), bytes.NewReader(enc), int64(len(enc))); err != nil {
		return fmt.Errorf("tiering: upload %s: %w", entry.IndexesKey(p.ms.prefix), err)
	}
	return nil
}

// abandonStartedLocked turns interrupted copies into deletions.
func (p *Partition) abandonStartedLocked(ctx context.Context) error {
	changed := false
	for _, s := range p.manifest.Segments[p.manifest.Spilled:] {
		if s.State == CopyStarted {
			if err := p.manifest.StartDelete(s.ID); err != nil {
				return err
			}
			changed = true
			p.mgr.opts.Logger.Warn("tiering: abandoning an interrupted copy", "topic", p.topic, "partition", p.partition, "base", s.BaseOffset, "id", s.ID)
		}
	}
	if !changed {
		return nil
	}
	return p.commitLocked(ctx)
}

// finishDeletesLocked deletes the objects of delete_started entries, then
// drops the entries: the manifest said "deleting" before any object went.
func (p *Partition) finishDeletesLocked(ctx context.Context) error {
	var keys, ids []string
	for _, s := range p.manifest.Segments[p.manifest.Spilled:] {
		if s.State == DeleteStarted {
			keys = append(keys, s.LogKey(p.ms.prefix), s.IndexesKey(p.ms.prefix))
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := p.mgr.opts.Store.Delete(ctx, keys...); err != nil {
		return fmt.Errorf("tiering: delete objects: %w", err)
	}
	p.manifest.Drop(ids...)
	return p.commitLocked(ctx)
}

// ErrNotRemote means the offset is not in a readable remote segment.
var ErrNotRemote = errors.New("tiering: offset not in remote storage")

var _ = remotestore.ErrNotFound
