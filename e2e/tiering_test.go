package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering"
)

// specialOffsets asks ListOffsets (v9, KIP-1005) for ts on every partition.
func specialOffsets(t *testing.T, addr, topic string, partitions int32, ts int64) map[int32]int64 {
	t.Helper()
	cl := newClient(t, addr)
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < partitions; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testenv.Context(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range resp.Topics[0].Partitions {
		out[p.Partition] = p.Offset
	}
	return out
}

// waitFor polls cond (a broker's background copier runs every 200 ms here)
// until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func recordKey(r *kgo.Record) string {
	return fmt.Sprintf("%d/%d/%s", r.Partition, r.Offset, r.Value)
}

// TestTieredStorageOnMinIO runs a real `strata serve --remote s3://…` against a
// real MinIO: segments are copied (checked with minio-go), local copies are
// deleted, franz-go and kcat read every record from offset 0 byte for byte,
// a MinIO outage stops neither producing nor consuming and deletes nothing
// early, copying catches up, and finally a broker with an empty disk
// restores the topic from the bucket alone.
func TestTieredStorageOnMinIO(t *testing.T) {
	mc := testenv.StartMinIO(t)
	mc.CreateBucket(t, "strata")
	mc.SetAWSEnv(t)
	remote := mc.URL("strata", "e2e")
	srv := testenv.StartProcess(t, testenv.ProcessOptions{
		Args:    []string{"--remote", remote},
		Configs: []string{"remote.log.manager.task.interval.ms=200", "remote.fetch.chunk.bytes=65536"},
	})
	const topic, parts = "replay", 3
	createTopic(t, srv.Addr, topic, parts, map[string]*string{
		"remote.storage.enable": strp("true"),
		"segment.bytes":         strp("32768"),
		"local.retention.bytes": strp("1"),
	})
	cl := newClient(t, srv.Addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(4096),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordDeliveryTimeout(time.Minute))
	ctx := testenv.Context(t, 3*time.Minute)
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 11)), Value: []byte(fmt.Sprintf("v%06d-%s", i, strings.Repeat("z", i%90)))},
				func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 6000)
	copied := func() bool {
		local := specialOffsets(t, srv.Addr, topic, parts, -4)
		for p := int32(0); p < parts; p++ {
			if local[p] == 0 {
				return false
			}
		}
		return true
	}
	waitFor(t, "segments copied and local copies deleted", time.Minute, copied)

	// What landed in the bucket, seen by minio-go, not by Strata.
	var logs, bundles, heads int
	for o := range mc.Client().ListObjects(ctx, "strata", minio.ListObjectsOptions{Prefix: "e2e/replay/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		switch {
		case strings.HasSuffix(o.Key, ".log"):
			logs++
		case strings.HasSuffix(o.Key, ".indexes"):
			bundles++
		case strings.Contains(o.Key, "/manifest/"):
			heads++
		}
	}
	if logs < parts || logs != bundles || heads < parts {
		t.Fatalf("bucket holds %d .log, %d .indexes, %d manifest objects", logs, bundles, heads)
	}

	// Everything comes back from offset 0, through the bucket.
	all := readAll(t, srv.Addr, topic)
	if len(all) != 6000 {
		t.Fatalf("read %d records, want 6000", len(all))
	}
	want := map[string]bool{}
	for _, r := range all {
		want[recordKey(r)] = true
	}
	kcat := testenv.Kcat(t)
	out, err := exec.Command(kcat, "-b", srv.Addr, "-t", topic, "-C", "-o", "beginning", "-e", "-q", "-f", "%p/%o/%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("kcat read %d records, franz-go %d", len(lines), len(want))
	}
	for _, l := range lines {
		if !want[l] {
			t.Fatalf("kcat record %q not seen by franz-go", l)
		}
	}

	// Outage: MinIO down. Produce and consume go on; nothing local goes
	// before it is copied; copy errors show in tier status.
	mc.Stop()
	tieredBefore := specialOffsets(t, srv.Addr, topic, parts, -5)
	ends := specialOffsets(t, srv.Addr, topic, parts, -1)
	produce(6000, 3000)
	// Local data stays readable while the bucket is down (the records
	// only in the bucket are not, unless cached).
	from := map[string]map[int32]kgo.Offset{topic: {}}
	for p, o := range ends {
		from[topic][p] = kgo.NewOffset().At(o)
	}
	newData := newClient(t, srv.Addr, kgo.ConsumePartitions(from))
	got := 0
	for got < 3000 {
		fs := newData.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("during the outage read %d of 3000 new records: %v", got, ctx.Err())
		}
		got += len(fs.Records())
	}
	newData.Close()
	bin := testenv.StrataBinary(t)
	waitFor(t, "tier status to report failing copies", time.Minute, func() bool {
		o, err := exec.Command(bin, "tier", "status", "--bootstrap-server", srv.Addr).CombinedOutput()
		return err != nil && strings.Contains(string(o), "failing")
	})
	local := specialOffsets(t, srv.Addr, topic, parts, -4)
	for p := int32(0); p < parts; p++ {
		if local[p] > tieredBefore[p]+1 {
			t.Fatalf("partition %d: local start %d passed the last tiered offset %d during the outage", p, local[p], tieredBefore[p])
		}
	}
	mc.Start()
	waitFor(t, "copying to catch up after the outage", 2*time.Minute, func() bool {
		now := specialOffsets(t, srv.Addr, topic, parts, -5)
		for p := int32(0); p < parts; p++ {
			if now[p] <= tieredBefore[p] {
				return false
			}
		}
		return true
	})
	if o, err := exec.Command(bin, "tier", "status", "--bootstrap-server", srv.Addr).CombinedOutput(); err != nil {
		// The last failed attempt may not have been retried yet.
		waitFor(t, "tier status to be clean", time.Minute, func() bool {
			_, err := exec.Command(bin, "tier", "status", "--bootstrap-server", srv.Addr).CombinedOutput()
			return err == nil
		})
		_ = o
	}

	latest := readAll(t, srv.Addr, topic)
	if len(latest) != 9000 {
		t.Fatalf("after the outage read %d records, want 9000", len(latest))
	}

	// The manifest heads are valid and hold no overlapping entries.
	for p := 0; p < parts; p++ {
		prefix := fmt.Sprintf("e2e/replay/%d/manifest/", p)
		var newest string
		for o := range mc.Client().ListObjects(ctx, "strata", minio.ListObjectsOptions{Prefix: prefix}) {
			if !strings.Contains(o.Key, "part-") && o.Key > newest {
				newest = o.Key
			}
		}
		obj, err := mc.Client().GetObject(ctx, "strata", newest, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(obj)
		if _, err := tiering.DecodeHead(buf.Bytes()); err != nil {
			t.Fatalf("%s: %v", newest, err)
		}
	}

	// Every disk lost: a broker with an empty data dir restores the topic
	// from the bucket and serves every tiered offset.
	tiered := specialOffsets(t, srv.Addr, topic, parts, -5)
	srv.Kill()
	fresh := testenv.StartProcess(t, testenv.ProcessOptions{Args: []string{"--remote", remote},
		Configs: []string{"remote.log.manager.task.interval.ms=200"}})
	if o, err := exec.Command(bin, "topic", "restore", topic, "--bootstrap-server", fresh.Addr).CombinedOutput(); err != nil {
		t.Fatalf("strata topic restore: %v\n%s", err, o)
	}
	restored := readAll(t, fresh.Addr, topic)
	expected := 0
	for _, r := range latest {
		if r.Offset <= tiered[r.Partition] {
			expected++
		}
	}
	if len(restored) != expected {
		t.Fatalf("restored %d records, the bucket held %d", len(restored), expected)
	}
	had := map[string]bool{}
	for _, r := range latest {
		had[recordKey(r)] = true
	}
	for _, r := range restored {
		if !had[recordKey(r)] {
			t.Fatalf("restored record %s differs from the original", recordKey(r))
		}
	}
}

// TestRemoteMisconfigurationFailsAtStart: bad credentials, a missing bucket
// and an unreachable endpoint are a clear error when serve starts.
func TestRemoteMisconfigurationFailsAtStart(t *testing.T) {
	mc := testenv.StartMinIO(t)
	mc.CreateBucket(t, "exists")
	mc.SetAWSEnv(t)
	bin := testenv.StrataBinary(t)
	cases := []struct {
		url, env, want string
	}{
		{mc.URL("exists", "p"), "AWS_SECRET_ACCESS_KEY=wrong-secret", "credentials"},
		{mc.URL("no-such-bucket", "p"), "", "no-such-bucket"},
		{"s3://exists/p?endpoint=http://127.0.0.1:1&region=us-east-1&path_style=true", "", "reach"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--remote", c.url)
		if c.env != "" {
			cmd.Env = append(cmd.Environ(), c.env)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("%s: exit %v, stderr %q (want a failure mentioning %q)", c.url, err, stderr.String(), c.want)
			}
		case <-time.After(90 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s: serve kept running with a broken remote", c.url)
		}
	}
}

func strp(s string) *string { return &s }

var _ = sort.Strings
var _ = context.Background

// TestBrokerKilledMidCopy kills a real broker with SIGKILL while it copies
// segments to MinIO, restarts it, and checks that copying finishes with no
// duplicate or overlapping manifest entries, that every .log object in the
// bucket is one the manifest references, and that every record reads back.
func TestBrokerKilledMidCopy(t *testing.T) {
	mc := testenv.StartMinIO(t)
	mc.CreateBucket(t, "strata")
	mc.SetAWSEnv(t)
	srv := testenv.StartProcess(t, testenv.ProcessOptions{
		Args:    []string{"--remote", mc.URL("strata", "kill")},
		Configs: []string{"remote.log.manager.task.interval.ms=50"},
	})
	const topic = "midcopy"
	createTopic(t, srv.Addr, topic, 1, map[string]*string{
		"remote.storage.enable": strp("true"),
		"segment.bytes":         strp("65536"),
	})
	cl := newClient(t, srv.Addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(16384),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordDeliveryTimeout(time.Minute))
	ctx := testenv.Context(t, 3*time.Minute)
	for i := 0; i < 20000; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%07d-%s", i, strings.Repeat("m", 200)))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	// Kill as soon as copying is under way (some, not all, segments in).
	waitFor(t, "the first copies", time.Minute, func() bool {
		return specialOffsets(t, srv.Addr, topic, 1, -5)[0] >= 0
	})
	srv.Kill()
	srv.Restart()
	end := specialOffsets(t, srv.Addr, topic, 1, -1)[0]
	// Everything sealed gets copied after the restart.
	waitFor(t, "copying to finish after the restart", 2*time.Minute, func() bool {
		return specialOffsets(t, srv.Addr, topic, 1, -5)[0] >= end-2000
	})
	// The bucket must settle into: a valid manifest without holes or
	// overlaps, and no .log object it does not reference (an abandoned
	// copy's objects are deleted by the next pass, so poll for it).
	check := func() string {
		var head string
		var logs []string
		for o := range mc.Client().ListObjects(ctx, "strata", minio.ListObjectsOptions{Prefix: "kill/" + topic + "/0/", Recursive: true}) {
			switch {
			case strings.HasSuffix(o.Key, ".log"):
				logs = append(logs, o.Key)
			case strings.Contains(o.Key, "/manifest/") && !strings.Contains(o.Key, "part-") && o.Key > head:
				head = o.Key
			}
		}
		obj, err := mc.Client().GetObject(ctx, "strata", head, minio.GetObjectOptions{})
		if err != nil {
			return err.Error()
		}
		var buf bytes.Buffer
		buf.ReadFrom(obj)
		m, err := tiering.DecodeHead(buf.Bytes()) // rejects overlapping live entries
		if err != nil {
			return fmt.Sprintf("%s: %v", head, err)
		}
		refs := map[string]bool{}
		var expect int64
		for _, s := range m.Segments {
			if s.State == tiering.CopyFinished {
				if s.BaseOffset != expect {
					return fmt.Sprintf("hole or overlap in the manifest: entry at %d, expected %d", s.BaseOffset, expect)
				}
				expect = s.LastOffset + 1
			}
			refs[s.LogKey("kill/"+topic+"/0/")] = true
		}
		for _, k := range logs {
			if !refs[k] {
				return fmt.Sprintf("object %s is not referenced by the manifest", k)
			}
		}
		return ""
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		problem := check()
		if problem == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(problem)
		}
	}
	if n := len(readAll(t, srv.Addr, topic)); n != 20000 {
		t.Fatalf("read %d records after the kill, want 20000", n)
	}
}
