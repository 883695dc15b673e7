package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func decodeSummary(t *testing.T, stdout string) benchSummary {
	t.Helper()
	var s benchSummary
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("summary %q: %v", stdout, err)
	}
	return s
}

func TestBenchProduceThenConsume(t *testing.T) {
	c := newFakeCluster(t) // consumer groups: on kfake until Strata's group coordinator lands (issue 3)
	r := c.mustRun("", "bench", "produce", "--topic", "load", "--partitions", "3", "--num-records", "500",
		"--record-size", "100", "--compression", "lz4", "--linger", "1ms", "--batch-max-bytes", "16384", "--json")
	s := decodeSummary(t, r.stdout)
	if s.Mode != "produce" || s.Records != 500 || s.Errors != 0 || s.Bytes != 500*100 {
		t.Errorf("produce summary %+v", s)
	}
	if s.RecordsPerSec <= 0 || s.LatencyMaxMS <= 0 || s.LatencyP50MS > s.LatencyP99MS || s.LatencyP99MS > s.LatencyMaxMS {
		t.Errorf("implausible rates or latencies: %+v", s)
	}
	r = c.mustRun("", "topic", "describe", "load")
	if !strings.Contains(r.stdout, "PartitionCount: 3") {
		t.Errorf("bench produce --partitions 3 did not create the topic:\n%s", r.stdout)
	}

	r = c.mustRun("", "bench", "consume", "--topic", "load", "--num-records", "500", "--json")
	s = decodeSummary(t, r.stdout)
	if s.Mode != "consume" || s.Records != 500 || s.Bytes != 500*100 {
		t.Errorf("consume summary %+v", s)
	}

	r = c.mustRun("", "bench", "consume", "--topic", "load", "--num-records", "100", "--group", "perf")
	if !strings.HasPrefix(r.stdout, "100 records received, 0 errors,") || !strings.Contains(r.stdout, "p99.9") {
		t.Errorf("text summary %q", r.stdout)
	}
}

func TestBenchProduceDurationAndThrottle(t *testing.T) {
	c := newFakeCluster(t, kfakeSeed("paced", 1)...)
	r := c.mustRun("", "bench", "produce", "--topic", "paced", "--duration", "600ms", "--throughput", "50",
		"--acks", "1", "--report-interval", "200ms", "--json")
	s := decodeSummary(t, r.stdout)
	// 50 records/s for 0.6 s: 30 records (+1 for the one sent at t=0).
	if s.Records < 25 || s.Records > 31 {
		t.Errorf("throttled run sent %d records, want about 30", s.Records)
	}
	if n := strings.Count(r.stderr, "records sent,"); n < 2 {
		t.Errorf("want progress lines every 200ms, got %d:\n%s", n, r.stderr)
	}
}

func TestBenchConsumeStopsWhenIdle(t *testing.T) {
	c := newFakeCluster(t, kfakeSeed("few", 1)...)
	c.mustRun("a\nb\n", "produce", "--topic", "few")
	r := c.run("", "bench", "consume", "--topic", "few", "--num-records", "10", "--timeout", "300ms", "--json")
	if r.code != 1 || !strings.Contains(r.stderr, "consumed 2 of 10 records") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if s := decodeSummary(t, r.stdout); s.Records != 2 {
		t.Errorf("summary still due on failure; got %+v", s)
	}
	// With --duration, running out of records early is not an error.
	c.mustRun("", "bench", "consume", "--topic", "few", "--duration", "5s", "--timeout", "300ms")
}

func TestBenchProduceFailsOnRecordErrors(t *testing.T) {
	// Records over the broker's message.max.bytes fail without retries.
	c := newFakeCluster(t, append(kfakeSeed("small", 1), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "1000"}))...)
	r := c.run("", "bench", "produce", "--topic", "small", "--num-records", "5", "--record-size", "5000", "--json")
	if r.code != 1 || !strings.Contains(r.stderr, "5 records failed") || !strings.Contains(r.stderr, "MESSAGE_TOO_LARGE") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if s := decodeSummary(t, r.stdout); s.Errors != 5 || s.Records != 0 {
		t.Errorf("summary %+v", s)
	}
}
