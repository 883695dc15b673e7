package tiering

import "context"

// SeedManifestForBench commits segs (sorted, non-overlapping entries whose
// objects are in the bucket) as finished copies, spilling into parts after
// each one exactly as CopyOnce does (ManifestKeep entries stay in the
// head; parts of at least ManifestKeep/2), so parts and head come out as
// after len(segs) real copies — with one commit instead of two per segment.
func SeedManifestForBench(ctx context.Context, p *Partition, segs []RemoteSegment) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ensureLoadedLocked(ctx); err != nil {
		return err
	}
	keep := p.mgr.opts.ManifestKeep
	for _, s := range segs {
		s.State = CopyFinished
		p.manifest.Segments = append(p.manifest.Segments, s)
		if err := p.ms.spill(ctx, p.manifest, keep, keep/2); err != nil {
			p.manifest = nil
			return err
		}
	}
	return p.commitLocked(ctx)
}
