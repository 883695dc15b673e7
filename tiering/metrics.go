package tiering

import (
	"io"

	"github.com/prometheus/client_golang/prometheus"
)

type tierMetrics struct {
	segmentsCopied, bytesCopied, manifestWrites prometheus.Counter
	bytesRead, chunkFetches                     prometheus.Counter
	cacheHits, cacheMisses                      prometheus.Counter
	orphansSwept                                prometheus.Counter
	segmentsDeleted, bytesDeleted               prometheus.Counter
}

func newTierMetrics(reg prometheus.Registerer) *tierMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_tiering_" + name, Help: help})
	}
	m := &tierMetrics{
		segmentsCopied:  c("segments_copied_total", "Segments copied to remote storage."),
		bytesCopied:     c("bytes_copied_total", "Segment bytes copied to remote storage."),
		manifestWrites:  c("manifest_writes_total", "Manifest versions written."),
		bytesRead:       c("bytes_read_total", "Record bytes served from remote storage."),
		chunkFetches:    c("chunk_fetches_total", "Ranged GETs of remote segment chunks."),
		cacheHits:       c("chunk_cache_hits_total", "Remote chunk reads served from the cache."),
		cacheMisses:     c("chunk_cache_misses_total", "Remote chunk reads that went to the store."),
		orphansSwept:    c("orphans_swept_total", "Unreferenced objects deleted by the sweeper."),
		segmentsDeleted: c("segments_deleted_total", "Remote segments deleted by retention or DeleteRecords."),
		bytesDeleted:    c("bytes_deleted_total", "Remote segment bytes deleted by retention or DeleteRecords."),
	}
	if reg != nil {
		reg.MustRegister(m.segmentsCopied, m.bytesCopied, m.manifestWrites, m.bytesRead, m.chunkFetches, m.cacheHits, m.cacheMisses, m.orphansSwept, m.segmentsDeleted, m.bytesDeleted)
	}
	return m
}

func readAllClose(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}
