package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// Throughput is reported in MB of 1024*1024 bytes, as kafka-producer-perf-test does.
const bytesPerMB = 1024 * 1024

func newBenchCmd(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load tools: measure produce and consume throughput and latency",
		RunE:  runGroup,
	}
	cmd.AddCommand(newBenchProduceCmd(getenv), newBenchConsumeCmd(getenv))
	return cmd
}

// benchSummary is a run's final result. Its JSON form (--json) is the
// contract benchmark scripts parse: add fields, never rename them.
type benchSummary struct {
	Mode          string  `json:"mode"` // "produce" or "consume"
	Topic         string  `json:"topic"`
	Records       int64   `json:"records"` // acknowledged (produce) or received (consume)
	Errors        int64   `json:"errors"`
	Bytes         int64   `json:"bytes"`
	ElapsedSec    float64 `json:"elapsed_sec"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	// Produce: time from the Produce call to its promise. Consume: time from
	// the record's timestamp to its arrival (end-to-end; meaningful only
	// while a producer runs alongside with synchronised clocks).
	LatencyAvgMS  float64 `json:"latency_avg_ms"`
	LatencyP50MS  float64 `json:"latency_p50_ms"`
	LatencyP95MS  float64 `json:"latency_p95_ms"`
	LatencyP99MS  float64 `json:"latency_p99_ms"`
	LatencyP999MS float64 `json:"latency_p999_ms"`
	LatencyMaxMS  float64 `json:"latency_max_ms"`
}

// write prints s as one JSON object or as kafka-producer-perf-test's final line.
func (s benchSummary) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(s)
	}
	verb := "sent"
	latency := "latency"
	if s.Mode == "consume" {
		verb = "received"
		latency = "end-to-end latency"
	}
	_, err := fmt.Fprintf(w, "%d records %s, %d errors, %.1f records/sec (%.2f MB/sec), "+
		"%s avg %.2f ms, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, in %.2f s.\n",
		s.Records, verb, s.Errors, s.RecordsPerSec, s.MBPerSec,
		latency, s.LatencyAvgMS, s.LatencyP50MS, s.LatencyP95MS, s.LatencyP99MS, s.LatencyP999MS, s.LatencyMaxMS,
		s.ElapsedSec)
	return err
}

// benchMeter accumulates a run's counts and latencies. Produce promises call
// it from kgo's goroutines, so everything sits behind mu. The window fields
// cover the time since the last progress line.
type benchMeter struct {
	mu struct {
		sync.Mutex
		records, bytes, errors int64
		firstErr               error
		hist                   *latencyHistogram
		window                 struct {
			start          time.Time
			records, bytes int64
			latencySum     time.Duration
			latencyMax     time.Duration
		}
	}
	start time.Time
}

func newBenchMeter(start time.Time) *benchMeter {
	m := &benchMeter{start: start}
	m.mu.hist = newLatencyHistogram()
	m.mu.window.start = start
	return m
}

// done records one record that completed after latency.
func (m *benchMeter) done(bytes int, latency time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.records++
	m.mu.bytes += int64(bytes)
	m.mu.hist.Record(latency)
	w := &m.mu.window
	w.records++
	w.bytes += int64(bytes)
	w.latencySum += latency
	w.latencyMax = max(w.latencyMax, latency)
}

// failed records one record that failed.
func (m *benchMeter) failed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.errors++
	if m.mu.firstErr == nil {
		m.mu.firstErr = err
	}
}

func (m *benchMeter) firstError() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.errors, m.mu.firstErr
}

// progressLine returns the window's line (kafka-producer-perf-test's
// format) and starts a new window at now.
func (m *benchMeter) progressLine(now time.Time, verb string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &m.mu.window
	secs := now.Sub(w.start).Seconds()
	var avg time.Duration
	if w.records > 0 {
		avg = w.latencySum / time.Duration(w.records)
	}
	line := fmt.Sprintf("%d records %s, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.",
		w.records, verb, rate(float64(w.records), secs), rate(float64(w.bytes)/bytesPerMB, secs), ms(avg), ms(w.latencyMax))
	w.start = now
	w.records, w.bytes, w.latencySum, w.latencyMax = 0, 0, 0, 0
	return line
}

// summary returns the totals for a run that ended at end.
func (m *benchMeter) summary(mode, topic string, end time.Time) benchSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	secs := end.Sub(m.start).Seconds()
	h := m.mu.hist
	return benchSummary{
		Mode:          mode,
		Topic:         topic,
		Records:       m.mu.records,
		Errors:        m.mu.errors,
		Bytes:         m.mu.bytes,
		ElapsedSec:    secs,
		RecordsPerSec: rate(float64(m.mu.records), secs),
		MBPerSec:      rate(float64(m.mu.bytes)/bytesPerMB, secs),
		LatencyAvgMS:  ms(h.Mean()),
		LatencyP50MS:  ms(h.Percentile(50)),
		LatencyP95MS:  ms(h.Percentile(95)),
		LatencyP99MS:  ms(h.Percentile(99)),
		LatencyP999MS: ms(h.Percentile(99.9)),
		LatencyMaxMS:  ms(h.Max()),
	}
}

func rate(n, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return n / secs
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportProgress writes a progress line to w every interval until stop is
// closed; the returned channel closes when it has returned.
func reportProgress(m *benchMeter, interval time.Duration, verb string, w io.Writer, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if interval <= 0 {
			<-stop
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				fmt.Fprintln(w, m.progressLine(now, verb))
			}
		}
	}()
	return done
}

// throttleWait returns how long to wait before sending record number sent
// (0-based) so that the average rate since the start stays at or under
// perSecond. The schedule is absolute, so short sleeps skipped or overslept
// do not accumulate drift. perSecond <= 0 means unlimited.
func throttleWait(sent int64, elapsed time.Duration, perSecond float64) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	due := time.Duration(float64(sent) / perSecond * float64(time.Second))
	if due <= elapsed {
		return 0
	}
	return due - elapsed
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// validateRunLength checks that exactly one of --num-records and --duration is set.
func validateRunLength(numRecords int64, duration time.Duration) error {
	switch {
	case numRecords < 0:
		return usageErrorf("invalid --num-records %d", numRecords)
	case duration < 0:
		return usageErrorf("invalid --duration %v", duration)
	case numRecords == 0 && duration == 0:
		return usageErrorf("give --num-records N or --duration D")
	case numRecords > 0 && duration > 0:
		return usageErrorf("give only one of --num-records and --duration")
	}
	return nil
}
