package broker

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/fetchsession"
)

// metrics are the broker's Prometheus series. Each broker has its own
// registry, so several brokers in one test process do not collide.
type metrics struct {
	reg              *prometheus.Registry
	connections      prometheus.Gauge
	requests         *prometheus.CounterVec
	requestSeconds   *prometheus.HistogramVec
	bytesIn          prometheus.Counter
	bytesOut         prometheus.Counter
	recordsIn        prometheus.Counter
	rejectedBatches  *prometheus.CounterVec
	duplicateBatches prometheus.Counter
	retentionDeletes prometheus.Counter

	// replication (fetch_follower.go, replication.go, isr.go)
	replicationBytesOut prometheus.Counter
	replicationBytesIn  prometheus.Counter
	isrChanges          *prometheus.CounterVec
	replicaFetchErrors  prometheus.Counter
	leaderElections     prometheus.Counter

	// fetchSessionRequests counts fetches by session kind (fetch_session.go),
	// resolved once so the hot path does no label lookup.
	fetchSessionRequests [fetchsession.Failed + 1]prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_connections", Help: "Open client connections."})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_requests_total", Help: "Requests handled, by Kafka API and outcome."}, []string{"api", "outcome"})
	m.requestSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_request_seconds", Help: "Request handling time (fetch includes long-poll waiting).", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"api"})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_produce_bytes_total", Help: "Record batch bytes appended."})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_fetch_bytes_total", Help: "Record batch bytes served to fetches."})
	m.recordsIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_produce_records_total", Help: "Records appended."})
	m.rejectedBatches = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_rejected_batches_total", Help: "Produced batches rejected, by reason."}, []string{"reason"})
	m.duplicateBatches = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_duplicate_batches_total", Help: "Idempotent retries answered from producer state without appending."})
	m.retentionDeletes = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_retention_deletions_total", Help: "Retention passes that advanced a partition's log start."})
	m.reg.MustRegister(m.retentionDeletes)
	m.replicationBytesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_replication_bytes_out_total", Help: "Record batch bytes served to followers' replica fetches."})
	m.replicationBytesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_replication_bytes_in_total", Help: "Record batch bytes appended as a follower."})
	m.isrChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_isr_changes_total", Help: "ISR changes this broker wrote as leader, by kind (expand, shrink) and outcome."}, []string{"kind", "outcome"})
	m.replicaFetchErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_replica_fetch_errors_total", Help: "Failed replica fetch round trips to leaders."})
	m.leaderElections = prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_controller_partition_changes_total", Help: "Partition leader/ISR changes this broker wrote as controller."})
	m.reg.MustRegister(m.replicationBytesOut, m.replicationBytesIn, m.isrChanges, m.replicaFetchErrors, m.leaderElections)
	fetchKinds := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_fetch_session_requests_total", Help: "Fetch requests by KIP-227 session kind: sessionless, full, incremental, error."}, []string{"kind"})
	for k := range m.fetchSessionRequests {
		m.fetchSessionRequests[k] = fetchKinds.WithLabelValues(fetchsession.Kind(k).String())
	}
	m.reg.MustRegister(fetchKinds)
	m.reg.MustRegister(m.connections, m.requests, m.requestSeconds, m.bytesIn, m.bytesOut, m.recordsIn, m.rejectedBatches, m.duplicateBatches,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeRequest(key int16, d time.Duration, failed bool) {
	name := kmsg.NameForKey(key)
	if name == "" {
		name = strconv.Itoa(int(key))
	}
	outcome := "ok"
	if failed {
		outcome = "closed"
	}
	m.requests.WithLabelValues(name, outcome).Inc()
	m.requestSeconds.WithLabelValues(name).Observe(d.Seconds())
}

// watchFetchSessions reports the fetch session cache at scrape time:
// Kafka's NumIncrementalFetchSessions, NumIncrementalFetchPartitionsCached
// and IncrementalFetchSessionEvictionsPerSec (as a total).
func (m *metrics) watchFetchSessions(c *fetchsession.Cache) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_fetch_sessions", Help: "Incremental fetch sessions cached (KIP-227)."},
			func() float64 { return float64(c.Stats().Sessions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_fetch_session_partitions", Help: "Partitions held by all cached fetch sessions."},
			func() float64 { return float64(c.Stats().Partitions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_fetch_session_evictions_total", Help: "Fetch sessions evicted to make room for new ones."},
			func() float64 { return float64(c.Stats().Evictions) }),
	)
}

// partitionCollector reports per-partition log gauges at scrape time, so the
// hot path keeps no extra counters.
type partitionCollector struct {
	b                         *Broker
	start, end, size, segment *prometheus.Desc
	remoteBytes, copyLag      *prometheus.Desc
	lastRetention             *prometheus.Desc
	remoteDeletedSegs         *prometheus.Desc
	remoteDeletedBytes        *prometheus.Desc
	orphansSwept              *prometheus.Desc
}

func newPartitionCollector(b *Broker) *partitionCollector {
	labels := []string{"topic", "partition"}
	return &partitionCollector{
		b:                  b,
		start:              prometheus.NewDesc("strata_partition_log_start_offset", "First offset readable in the partition.", labels, nil),
		end:                prometheus.NewDesc("strata_partition_log_end_offset", "Next offset to be written.", labels, nil),
		size:               prometheus.NewDesc("strata_partition_local_bytes", "Bytes of the partition's segments on local disk.", labels, nil),
		segment:            prometheus.NewDesc("strata_partition_local_segments", "Segments of the partition on local disk.", labels, nil),
		remoteBytes:        prometheus.NewDesc("strata_partition_remote_bytes", "Bytes of the partition's segments in remote storage.", labels, nil),
		copyLag:            prometheus.NewDesc("strata_partition_copy_lag_bytes", "Local bytes not yet copied to remote storage.", labels, nil),
		lastRetention:      prometheus.NewDesc("strata_partition_last_retention_pass_timestamp_seconds", "When a retention pass last checked the partition.", labels, nil),
		remoteDeletedSegs:  prometheus.NewDesc("strata_partition_remote_segments_deleted_total", "Remote segments deleted by retention or DeleteRecords.", labels, nil),
		remoteDeletedBytes: prometheus.NewDesc("strata_partition_remote_bytes_deleted_total", "Remote bytes deleted by retention or DeleteRecords.", labels, nil),
		orphansSwept:       prometheus.NewDesc("strata_partition_orphan_objects_swept_total", "Unreferenced objects removed by the sweeper.", labels, nil),
	}
}

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.start
	ch <- c.end
	ch <- c.size
	ch <- c.segment
	ch <- c.remoteBytes
	ch <- c.copyLag
	ch <- c.lastRetention
	ch <- c.remoteDeletedSegs
	ch <- c.remoteDeletedBytes
	ch <- c.orphansSwept
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.b.topics.allPartitions() {
		lv := []string{p.Topic, strconv.Itoa(int(p.Index))}
		ch <- prometheus.MustNewConstMetric(c.start, prometheus.GaugeValue, float64(p.LogStartOffset()), lv...)
		ch <- prometheus.MustNewConstMetric(c.end, prometheus.GaugeValue, float64(p.LogEndOffset()), lv...)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(p.Size()), lv...)
		ch <- prometheus.MustNewConstMetric(c.segment, prometheus.GaugeValue, float64(len(p.Segments())), lv...)
		if ms := p.LastRetention(); ms > 0 {
			ch <- prometheus.MustNewConstMetric(c.lastRetention, prometheus.GaugeValue, float64(ms)/1000, lv...)
		}
		if tp := p.Tier(); tp != nil {
			remote, lag := tierStats(p, tp)
			ch <- prometheus.MustNewConstMetric(c.remoteBytes, prometheus.GaugeValue, float64(remote), lv...)
			ch <- prometheus.MustNewConstMetric(c.copyLag, prometheus.GaugeValue, float64(lag), lv...)
			segs, bytes, swept := tp.DeletionTotals()
			ch <- prometheus.MustNewConstMetric(c.remoteDeletedSegs, prometheus.CounterValue, float64(segs), lv...)
			ch <- prometheus.MustNewConstMetric(c.remoteDeletedBytes, prometheus.CounterValue, float64(bytes), lv...)
			ch <- prometheus.MustNewConstMetric(c.orphansSwept, prometheus.CounterValue, float64(swept), lv...)
		}
	}
}

// MetricsHandler serves the broker's metrics in Prometheus text format.
func (b *Broker) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{})
}
