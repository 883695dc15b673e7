package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProduceConsumeRoundTrip(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("", "topic", "create", "lines", "--partitions", "1")

	in := "first\n\nthird with spaces\r\nlast-without-newline"
	r := c.mustRun(in, "produce", "--topic", "lines", "--compression", "zstd")
	if r.stderr != "Produced 4 records to topic \"lines\".\n" {
		t.Errorf("produce summary %q", r.stderr)
	}
	r = c.mustRun("", "consume", "--topic", "lines")
	if want := "first\n\nthird with spaces\nlast-without-newline\n"; r.stdout != want {
		t.Errorf("consume stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "Processed a total of 4 messages") {
		t.Errorf("consume stderr %q", r.stderr)
	}

	r = c.mustRun("", "consume", "--topic", "lines", "--partition", "0", "--offset", "2", "--print-offset")
	if want := "Partition:0\tOffset:2\tthird with spaces\nPartition:0\tOffset:3\tlast-without-newline\n"; r.stdout != want {
		t.Errorf("consume --offset 2 = %q, want %q", r.stdout, want)
	}
	r = c.mustRun("", "consume", "--topic", "lines", "--max-messages", "2")
	if r.stdout != "first\n\n" {
		t.Errorf("consume --max-messages 2 = %q", r.stdout)
	}
	r = c.mustRun("", "consume", "--topic", "lines", "--from", "latest")
	if r.stdout != "" {
		t.Errorf("consume --from latest without --follow = %q, want nothing", r.stdout)
	}
}

func TestProduceKeysAndConsumeKeys(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("", "topic", "create", "kv", "--partitions", "4")
	var in strings.Builder
	for i := range 40 {
		fmt.Fprintf(&in, "user-%d:event %d\n", i%5, i)
	}
	c.mustRun(in.String(), "produce", "--topic", "kv", "--key-separator", ":", "--acks", "1", "--compression", "lz4")

	r := c.mustRun("", "consume", "--topic", "kv", "--print-key", "--key-separator", "=")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 40 {
		t.Fatalf("consumed %d lines, want 40", len(lines))
	}
	// Keys hash to partitions, so order holds within a key across partitions.
	lastByKey := map[string]int{}
	for _, l := range lines {
		var key string
		var n int
		if _, err := fmt.Sscanf(strings.Replace(l, "=event ", " ", 1), "%s %d", &key, &n); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if want := fmt.Sprintf("user-%d", n%5); key != want {
			t.Errorf("line %q: key %s, want %s", l, key, want)
		}
		if prev, ok := lastByKey[key]; ok && n <= prev {
			t.Errorf("key %s: event %d after %d", key, n, prev)
		}
		lastByKey[key] = n
	}

	r = c.mustRun("", "consume", "--topic", "kv", "--print-key", "--max-messages", "1")
	if !strings.HasPrefix(r.stdout, "user-") || !strings.Contains(r.stdout, "\tevent ") {
		t.Errorf("default key separator must be a tab: %q", r.stdout)
	}
}

func TestProduceMissingKeySeparatorFails(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("", "topic", "create", "kv", "--partitions", "1")
	r := c.run("a:1\nnokey\nb:2\n", "produce", "--topic", "kv", "--key-separator", ":")
	if r.code != 1 || !strings.Contains(r.stderr, `line 2: no key separator ":"`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	// The line before the bad one was still sent and flushed.
	r = c.mustRun("", "consume", "--topic", "kv", "--print-key")
	if r.stdout != "a\t1\n" {
		t.Errorf("consumed %q", r.stdout)
	}
}

func TestProduceToPartitionAndConsumeOne(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("", "topic", "create", "p", "--partitions", "3")
	c.mustRun("x\ny\n", "produce", "--topic", "p", "--partition", "2", "--compression", "gzip")
	c.mustRun("z\n", "produce", "--topic", "p", "--partition", "0", "--compression", "snappy")
	r := c.mustRun("", "consume", "--topic", "p", "--partition", "2", "--print-offset")
	if r.stdout != "Partition:2\tOffset:0\tx\nPartition:2\tOffset:1\ty\n" {
		t.Errorf("partition 2: %q", r.stdout)
	}
	r = c.run("", "consume", "--topic", "p", "--partition", "7")
	if r.code != 1 || !strings.Contains(r.stderr, `topic "p" has no partition 7`) {
		t.Errorf("missing partition: exit %d, stderr %q", r.code, r.stderr)
	}
	r = c.run("", "consume", "--topic", "nope")
	if r.code != 1 || r.stderr != "strata: topic \"nope\" does not exist\n" {
		t.Errorf("missing topic: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestConsumeFromTimestamp(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("", "topic", "create", "ts", "--partitions", "1")
	c.mustRun("old\n", "produce", "--topic", "ts")
	time.Sleep(5 * time.Millisecond) // record timestamps have millisecond resolution
	mid := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	c.mustRun("new\n", "produce", "--topic", "ts")
	r := c.mustRun("", "consume", "--topic", "ts", "--timestamp", fmt.Sprint(mid))
	if r.stdout != "new\n" {
		t.Errorf("from timestamp: %q", r.stdout)
	}
	r = c.mustRun("", "consume", "--topic", "ts", "--timestamp", fmt.Sprint(time.Now().Add(time.Hour).UnixMilli()))
	if r.stdout != "" {
		t.Errorf("from a future timestamp: %q", r.stdout)
	}
}

func TestConsumeGroupCommits(t *testing.T) {
	c := newFakeCluster(t) // consumer groups: on kfake until Strata's group coordinator lands (issue 3)
	c.mustRun("", "topic", "create", "g", "--partitions", "2")
	c.mustRun("1\n2\n3\n4\n5\n6\n", "produce", "--topic", "g")

	first := c.mustRun("", "consume", "--topic", "g", "--group", "readers", "--max-messages", "2")
	second := c.mustRun("", "consume", "--topic", "g", "--group", "readers")
	got := strings.Fields(first.stdout + second.stdout)
	slices.Sort(got)
	if !slices.Equal(got, []string{"1", "2", "3", "4", "5", "6"}) {
		t.Errorf("two group runs read %q + %q; want each record once", first.stdout, second.stdout)
	}
	third := c.mustRun("", "consume", "--topic", "g", "--group", "readers")
	if third.stdout != "" {
		t.Errorf("group at the end still read %q", third.stdout)
	}
}

func TestConsumeFollowSeesNewRecords(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("", "topic", "create", "f", "--partitions", "1")
	c.mustRun("before\n", "produce", "--topic", "f")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan cliResult)
	go func() {
		done <- runCLI(ctx, map[string]string{bootstrapServerEnv: c.bootstrap}, "",
			"consume", "--topic", "f", "--follow", "--max-messages", "3")
	}()
	time.Sleep(200 * time.Millisecond)
	c.mustRun("after-1\nafter-2\n", "produce", "--topic", "f")
	r := <-done
	if r.code != 0 || r.stdout != "before\nafter-1\nafter-2\n" {
		t.Errorf("follow: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestConsumeFollowStopsOnInterrupt(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("", "topic", "create", "f", "--partitions", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r := runCLI(ctx, map[string]string{bootstrapServerEnv: c.bootstrap}, "", "consume", "--topic", "f", "--follow")
	if r.code != 0 || !strings.Contains(r.stderr, "Processed a total of 0 messages") {
		t.Errorf("interrupted follow: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestProduceAutoCreatesTopic: like kafka-console-producer, producing to a
// missing topic creates it when the broker allows auto-creation.
func TestProduceAutoCreatesTopic(t *testing.T) {
	c := newStrataCluster(t)
	c.mustRun("a:1\nb:2\n", "produce", "--topic", "born", "--key-separator", ":")
	r := c.mustRun("", "consume", "--topic", "born", "--print-key", "--key-separator", ":")
	if r.stdout != "a:1\nb:2\n" && r.stdout != "b:2\na:1\n" {
		t.Fatalf("consumed %q", r.stdout)
	}
}
