package tiering

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Sweep deletes objects under the partition's prefix that the manifest does
// not reference and that are older than grace: parts written before a commit
// that failed, heads of old versions, objects of a crashed writer. The grace
// period keeps it away from objects another writer is creating right now.
// It returns how many objects it deleted.
func (p *Partition) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ensureLoadedLocked(ctx); err != nil {
		return 0, err
	}
	objs, err := p.mgr.opts.Store.List(ctx, p.ms.prefix)
	if err != nil {
		return 0, fmt.Errorf("tiering: sweep list %s: %w", p.ms.prefix, err)
	}
	m := p.manifest
	keep := map[string]bool{
		headKey(p.ms.prefix, m.Version):   true,
		headKey(p.ms.prefix, m.Version-1): true,
	}
	for _, s := range m.Segments {
		keep[s.LogKey(p.ms.prefix)] = true
		keep[s.IndexesKey(p.ms.prefix)] = true
	}
	for _, part := range m.Parts {
		keep[part.Key] = true
	}
	cutoff := p.mgr.opts.Now().Add(-grace)
	var doomed []string
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, p.ms.prefix)
		if keep[o.Key] || strings.Contains(rest, "/") && !strings.HasPrefix(rest, manifestDir) {
			continue // referenced, or not ours (nested under another name)
		}
		if o.ModTime.After(cutoff) {
			continue
		}
		if strings.HasPrefix(rest, manifestDir) && !strings.HasPrefix(rest, manifestDir+"part-") {
			// A head newer than ours belongs to another writer: never sweep it.
			if v := strings.TrimSuffix(strings.TrimPrefix(rest, manifestDir), ".json"); v > fmt.Sprintf("%020d", m.Version) {
				continue
			}
		}
		doomed = append(doomed, o.Key)
	}
	if len(doomed) == 0 {
		return 0, nil
	}
	if err := p.mgr.opts.Store.Delete(ctx, doomed...); err != nil {
		return 0, fmt.Errorf("tiering: sweep delete: %w", err)
	}
	p.swept.Add(int64(len(doomed)))
	p.mgr.metrics.orphansSwept.Add(float64(len(doomed)))
	p.mgr.opts.Logger.Info("tiering: swept unreferenced objects", "topic", p.topic, "partition", p.partition, "objects", len(doomed))
	return len(doomed), nil
}

// MaybeSweep sweeps if every has passed since the last sweep (or none ran).
func (p *Partition) MaybeSweep(ctx context.Context, every, grace time.Duration) (int, error) {
	now := p.mgr.opts.Now()
	if last := p.lastSweep.Load(); last != nil && now.Sub(*last) < every {
		return 0, nil
	}
	n, err := p.Sweep(ctx, grace)
	if err == nil {
		p.lastSweep.Store(&now)
	}
	return n, err
}
