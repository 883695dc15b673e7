package broker

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// MetricsHandler serves the broker's metrics in Prometheus text format.
func (b *Broker) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{})
}
