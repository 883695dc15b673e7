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
	// One deletion pass at a time; copies and reads are not blocked while
	// objects are being deleted (only while the manifest changes).
	p.deleting.Lock()
	defer p.deleting.Unlock()
	var st DeleteStats

	// 1. Under the lock: move the start, mark the doomed tail entries,
	// commit; note what to delete.
	p.mu.Lock()
	if err := p.ensureLoadedLocked(ctx); err != nil {
		p.mu.Unlock()
		return st, err
	}
	m := p.manifest
	changed := false
	if start > m.LogStartOffset {
		m.LogStartOffset = start
		changed = true
	}
	for i := m.Spilled; i < len(m.Segments); i++ {
		if s := m.Segments[i]; s.LastOffset < m.LogStartOffset && s.State != DeleteStarted {
			m.Segments[i].State = DeleteStarted
			changed = true
		}
	}
	if changed {
		if err := p.commitLocked(ctx); err != nil {
			p.mu.Unlock()
			return st, err
		}
		m = p.manifest
	}
	var keys, ids []string
	var deadParts []ManifestPart
	at := 0
	for _, ref := range m.Parts {
		if ref.LastOffset >= m.LogStartOffset {
			break
		}
		for _, s := range m.Segments[at : at+ref.Count] {
			keys = append(keys, s.LogKey(p.ms.prefix), s.IndexesKey(p.ms.prefix))
			st.Segments++
			st.Bytes += s.Size
		}
		at += ref.Count
		deadParts = append(deadParts, ref)
	}
	for _, s := range m.Segments[m.Spilled:] {
		if s.State == DeleteStarted {
			keys = append(keys, s.LogKey(p.ms.prefix), s.IndexesKey(p.ms.prefix))
			ids = append(ids, s.ID)
			if s.LastOffset < m.LogStartOffset {
				st.Segments++
				st.Bytes += s.Size
			}
		}
	}
	p.mu.Unlock()
	if len(keys) == 0 {
		return st, nil
	}

	// 2. Without the lock: delete the objects.
	if err := p.mgr.opts.Store.Delete(ctx, keys...); err != nil {
		return DeleteStats{}, fmt.Errorf("tiering: delete remote segments: %w", err)
	}

	// 3. Under the lock: forget them. Only this function removes parts and
	// copies only append, so the dead parts are still at the front.
	p.mu.Lock()
	if err := p.ensureLoadedLocked(ctx); err != nil {
		p.mu.Unlock()
		return st, err
	}
	m = p.manifest
	for _, ref := range deadParts {
		if len(m.Parts) == 0 || m.Parts[0].Key != ref.Key {
			break
		}
		m.Parts = m.Parts[1:]
		m.Segments = m.Segments[ref.Count:]
		m.Spilled -= ref.Count
	}
	m.Drop(ids...)
	err := p.commitLocked(ctx)
	p.mu.Unlock()
	if err != nil {
		return st, err
	}
	// The part objects are unreferenced now; a failure here leaves them to
	// the sweeper.
	var partKeys []string
	for _, ref := range deadParts {
		partKeys = append(partKeys, ref.Key)
	}
	if len(partKeys) > 0 {
		p.mgr.opts.Store.Delete(ctx, partKeys...)
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
