package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// newGroupCluster is an in-process Strata broker tuned for group tests: no
// initial rebalance delay (Kafka's 3 s would slow every join) and a small
// __consumer_offsets.
func newGroupCluster(t *testing.T) *cluster {
	t.Helper()
	b := testenv.StartBroker(t, broker.Options{Settings: map[string]string{
		"group.initial.rebalance.delay.ms": "0",
		"group.min.session.timeout.ms":     "300",
		"offsets.topic.num.partitions":     "4",
	}})
	return &cluster{t: t, bootstrap: b.Addr}
}

// produceTo writes n records to one partition; ts, if not nil, gives record
// i its CreateTime.
func produceTo(t *testing.T, addr, topic string, partition int32, n int, ts func(i int) time.Time) {
	t.Helper()
	cl := testenv.Client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: partition, Value: fmt.Appendf(nil, "%s-%d-%d", topic, partition, i)}
		if ts != nil {
			r.Timestamp = ts(i)
		}
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(testenv.Context(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s-%d: %v", topic, partition, err)
	}
}

// memberOpts are kgo options for a group member that never commits on its
// own, so the offsets a test sees are the ones it chose.
func memberOpts(group string, topics ...string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}
}

// consumeUntil polls cl until done says it has seen enough, failing the test
// after a generous timeout.
func consumeUntil(t *testing.T, cl *kgo.Client, done func(*kgo.Record) bool) {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consuming: %v", ctx.Err())
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		stop := false
		fs.EachRecord(func(r *kgo.Record) { stop = stop || done(r) })
		if stop {
			return
		}
	}
}

// nextConsumerStarts joins group as a new consumer of topic and returns the
// offset of the first record it gets from each of the partitions: where the
// committed offsets tell a consumer to begin. It leaves the group before
// returning and commits nothing.
func nextConsumerStarts(t *testing.T, addr, group, topic string, partitions ...int32) map[int32]int64 {
	t.Helper()
	cl := testenv.Client(t, addr, memberOpts(group, topic)...)
	defer cl.Close()
	first := map[int32]int64{}
	consumeUntil(t, cl, func(r *kgo.Record) bool {
		if _, ok := first[r.Partition]; !ok {
			first[r.Partition] = r.Offset
		}
		return len(first) == len(partitions)
	})
	return first
}

// committed reads group's committed offsets of topic straight from the
// broker with kadm, independently of the CLI.
func committed(t *testing.T, addr, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(testenv.Client(t, addr))
	offs, err := adm.FetchOffsets(testenv.Context(t, 30*time.Second), group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// eventually waits for cond, re-checking every 50 ms, up to a generous 30 s
// (the machine is shared): group state changes arrive asynchronously.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 30s; last seen: %s", what, last)
		}
		<-tick.C
	}
}

// describeJSONOut mirrors the documented `group describe --format json`
// shape with its own tags, so renaming a field in the command breaks this
// test as it would break a user's script.
type describeJSONOut struct {
	Groups []struct {
		Group        string `json:"group"`
		Coordinator  int32  `json:"coordinator"`
		State        string `json:"state"`
		ProtocolType string `json:"protocol_type"`
		Protocol     string `json:"protocol"`
		Members      []struct {
			MemberID   string  `json:"member_id"`
			InstanceID *string `json:"instance_id"`
			ClientID   string  `json:"client_id"`
			Host       string  `json:"host"`
			Assignment []struct {
				Topic      string  `json:"topic"`
				Partitions []int32 `json:"partitions"`
			} `json:"assignment"`
		} `json:"members"`
		Offsets []struct {
			Topic           string `json:"topic"`
			Partition       int32  `json:"partition"`
			CommittedOffset *int64 `json:"committed_offset"`
			LogEndOffset    *int64 `json:"log_end_offset"`
			Lag             *int64 `json:"lag"`
			MemberID        string `json:"member_id"`
			ClientID        string `json:"client_id"`
			Host            string `json:"host"`
			Error           string `json:"error"`
		} `json:"offsets"`
		TotalLag int64  `json:"total_lag"`
		Error    string `json:"error"`
	} `json:"groups"`
}

func (c *cluster) describeJSON(groups ...string) (describeJSONOut, cliResult) {
	c.t.Helper()
	r := c.run("", append([]string{"group", "describe", "--format", "json"}, groups...)...)
	var out describeJSONOut
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		c.t.Fatalf("describe --format json: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return out, r
}

// offsetRow is one parsed row of the text describe's offsets table.
type offsetRow struct {
	topic                     string
	partition                 int32
	current, end, lag, member string
}

// textOffsetRows parses the TOPIC/PARTITION/... table of `group describe`.
func textOffsetRows(t *testing.T, out string) []offsetRow {
	t.Helper()
	var rows []offsetRow
	in := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "TOPIC":
			in = true
		case in && len(f) >= 6:
			var p int32
			if _, err := fmt.Sscan(f[1], &p); err != nil {
				t.Fatalf("row %q: %v", line, err)
			}
			rows = append(rows, offsetRow{f[0], p, f[2], f[3], f[4], f[5]})
		default:
			in = false
		}
	}
	return rows
}

// headerValue returns the value of the first "KEY  value" line of the text
// describe.
func headerValue(out, key string) string {
	if vs := headerValues(out, key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// headerValues returns the values of every "KEY  value" line, in order.
func headerValues(out, key string) []string {
	var vs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			vs = append(vs, f[1])
		}
	}
	return vs
}

// adminCommit commits offsets for group as an admin (no member, generation
// -1), as a simple consumer or a reset tool does.
func adminCommit(t *testing.T, addr, group, topic string, offsets map[int32]int64) {
	t.Helper()
	adm := kadm.NewClient(testenv.Client(t, addr))
	offs := kadm.Offsets{}
	for p, o := range offsets {
		offs.AddOffset(topic, p, o, -1)
	}
	resps, err := adm.CommitOffsets(testenv.Context(t, 30*time.Second), group, offs)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("commit offsets of %s: %v", group, err)
	}
}

func ptr(v int64) *int64 { return &v }

func eqPtr(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func fmtPtr(v *int64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(*v)
}
