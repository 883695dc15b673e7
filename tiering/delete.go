package tiering

import (
	"context"
	"fmt"
)

// DeleteStats counts what one deletion step removed.
type DeleteStats struct {
	Segments int
	Bytes    int64
}

// AdvanceLogStart moves the remote log start offset to start (never back) and
// deletes the remote segments wholly below it, in the crash-safe order: the
// manifest with the new start — and the doomed tail entries marked
// delete_started — is committed first, so no reader can see those offsets
// again; then the objects go; then the entries (and fully dead parts) leave
// the manifest. A crash anywhere leaves entries or parts that the next call
// (or CopyOnce, for delete_started entries) finishes deleting.
func (p *Partition) AdvanceLogStart(ctx context.Context, start int64) (DeleteStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st DeleteStats
	if err := p.ensureLoadedLocked(ctx); err != nil {
		return st, err
	}
	m := p.manifest
	changed := false
	if start > m.LogStartOffset {
		m.LogStartOffset = start
		changed = true
	}
	for i := m.Spilled; i < len(m.Segments); i++ {
		s := m.Segments[i]
		if s.LastOffset < m.LogStartOffset && s.State != DeleteStarted {
			m.Segments[i].State = DeleteStarted
			changed = true
		}
	}
	if changed {
		if err := p.commitLocked(ctx); err != nil {
			return st, err
		}
	}
	// Parts wholly below the start: delete their segments, then the part.
	for len(p.manifest.Parts) > 0 && p.manifest.Parts[0].LastOffset < p.manifest.LogStartOffset {
		m := p.manifest
		ref := m.Parts[0]
		segs := m.Segments[:ref.Count]
		keys := make([]string, 0, 2*len(segs)+1)
		for _, s := range segs {
			keys = append(keys, s.LogKey(p.ms.prefix), s.IndexesKey(p.ms.prefix))
			st.Segments++
			st.Bytes += s.Size
		}
		if err := p.mgr.opts.Store.Delete(ctx, keys...); err != nil {
			return st, fmt.Errorf("tiering: delete segments of part %s: %w", ref.Key, err)
		}
		m.Parts = m.Parts[1:]
		m.Segments = m.Segments[ref.Count:]
		m.Spilled -= ref.Count
		if err := p.commitLocked(ctx); err != nil {
			return st, err
		}
		// The part object is unreferenced now; a failure here leaves it to
		// the sweeper.
		p.mgr.opts.Store.Delete(ctx, ref.Key)
	}
	// Tail entries marked delete_started.
	for _, s := range p.manifest.Segments[p.manifest.Spilled:] {
		if s.State == DeleteStarted && s.LastOffset < p.manifest.LogStartOffset {
			st.Segments++
			st.Bytes += s.Size
		}
	}
	if err := p.finishDeletesLocked(ctx); err != nil {
		return st, err
	}
	p.deletedSegments.Add(int64(st.Segments))
	p.deletedBytes.Add(st.Bytes)
	p.mgr.metrics.segmentsDeleted.Add(float64(st.Segments))
	p.mgr.metrics.bytesDeleted.Add(float64(st.Bytes))
	return st, nil
}

// DeleteAll removes every object of the partition (topic deletion). The
// manifest goes last, so a crash part-way leaves a manifest whose objects
// the next attempt deletes again.
func (p *Partition) DeleteAll(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	objs, err := p.mgr.opts.Store.List(ctx, p.ms.prefix)
	if err != nil {
		return fmt.Errorf("tiering: list %s: %w", p.ms.prefix, err)
	}
	var data, manifests []string
	for _, o := range objs {
		if len(o.Key) > len(p.ms.prefix+manifestDir) && o.Key[:len(p.ms.prefix+manifestDir)] == p.ms.prefix+manifestDir {
			manifests = append(manifests, o.Key)
		} else {
			data = append(data, o.Key)
		}
	}
	if err := p.mgr.opts.Store.Delete(ctx, data...); err != nil {
		return fmt.Errorf("tiering: delete %s: %w", p.ms.prefix, err)
	}
	if err := p.mgr.opts.Store.Delete(ctx, manifests...); err != nil {
		return fmt.Errorf("tiering: delete manifests of %s: %w", p.ms.prefix, err)
	}
	p.manifest = NewManifest(p.topic, p.partition)
	p.publishLocked()
	return nil
}
