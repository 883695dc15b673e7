package group

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// LagMetrics chooses which consumer-lag series the coordinator exports
// (the broker setting group.lag.metrics). Per-partition series cost
// one series per group and partition, so operators with many groups can
// keep only per-group totals or none, as Redpanda's
// enable_consumer_group_metrics does.
type LagMetrics string

const (
	// LagByPartition exports the committed offset and lag of every
	// committed partition, plus the per-group totals.
	LagByPartition LagMetrics = "partition"
	// LagByGroup exports only the per-group totals.
	LagByGroup LagMetrics = "group"
	// LagOff exports nothing.
	LagOff LagMetrics = "off"
)

func (m LagMetrics) validate() error {
	switch m {
	case LagByPartition, LagByGroup, LagOff:
		return nil
	}
	return fmt.Errorf("group: lag metrics %q is not one of partition, group, off", string(m))
}

// lagCollector computes the series at scrape time from the coordinator's
// in-memory state: committed offsets from the groups, log end from the
// Host's in-memory high watermark. Nothing is counted on the request path
// and a scrape does no I/O. Lag is high watermark − committed offset, never
// below zero, for partitions this broker hosts; a group reports only the
// groups this broker coordinates (in a cluster, each coordinator its own).
type lagCollector struct {
	c                    *Coordinator
	committed, lag       *prometheus.Desc
	lagSum, lagMax       *prometheus.Desc
	perPartition, totals bool
}

func newLagCollector(c *Coordinator) *lagCollector {
	tp := []string{"group", "topic", "partition"}
	return &lagCollector{
		c:            c,
		committed:    prometheus.NewDesc("strata_group_committed_offset", "Committed offset of a consumer group for a partition.", tp, nil),
		lag:          prometheus.NewDesc("strata_group_lag", "Consumer group lag for a partition: high watermark minus committed offset.", tp, nil),
		lagSum:       prometheus.NewDesc("strata_group_lag_sum", "Sum of a consumer group's lag over its committed partitions.", []string{"group"}, nil),
		lagMax:       prometheus.NewDesc("strata_group_lag_max", "Largest lag of any of a consumer group's committed partitions.", []string{"group"}, nil),
		perPartition: c.opts.LagMetrics == LagByPartition,
		totals:       c.opts.LagMetrics != LagOff,
	}
}

var _ prometheus.Collector = (*lagCollector)(nil)

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	if l.perPartition {
		ch <- l.committed
		ch <- l.lag
	}
	if l.totals {
		ch <- l.lagSum
		ch <- l.lagMax
	}
}

// committedPartition is one row of a group's offsets, copied under its lock.
type committedPartition struct {
	topic     string
	partition int32
	offset    int64
}

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	if !l.totals {
		return
	}
	for _, g := range l.c.allGroups() {
		rows := g.snapshotOffsets()
		if len(rows) == 0 {
			continue
		}
		var sum, most int64
		known := false
		for _, r := range rows {
			lv := []string{g.id, r.topic, strconv.Itoa(int(r.partition))}
			if l.perPartition {
				ch <- prometheus.MustNewConstMetric(l.committed, prometheus.GaugeValue, float64(r.offset), lv...)
			}
			hw, ok := l.c.host.HighWatermark(r.topic, r.partition)
			if !ok || r.offset < 0 {
				continue
			}
			lag := hw - r.offset
			if lag < 0 {
				lag = 0 // committed past the end: the log was truncated or deleted
			}
			known = true
			sum += lag
			if lag > most {
				most = lag
			}
			if l.perPartition {
				ch <- prometheus.MustNewConstMetric(l.lag, prometheus.GaugeValue, float64(lag), lv...)
			}
		}
		if known {
			ch <- prometheus.MustNewConstMetric(l.lagSum, prometheus.GaugeValue, float64(sum), g.id)
			ch <- prometheus.MustNewConstMetric(l.lagMax, prometheus.GaugeValue, float64(most), g.id)
		}
	}
}

// snapshotOffsets copies the group's committed offsets, sorted, so the
// collector asks the Host for high watermarks with no group lock held.
func (g *group) snapshotOffsets() []committedPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.state == groupDead {
		return nil
	}
	var out []committedPartition
	for _, t := range g.committedTopics() {
		for _, p := range g.committedPartitions(t) {
			out = append(out, committedPartition{topic: t, partition: p, offset: g.mu.offsets[t][p].offset})
		}
	}
	return out
}
