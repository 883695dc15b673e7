package broker_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/testenv"
)

func strp(s string) *string { return &s }

func TestTopicAdmin(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: map[string]string{"log.segment.bytes": "1048576"}})
	adm := kadm.NewClient(newClient(t, b.Addr))
	ctx := testenv.Context(t, 30*time.Second)

	// Bad input gets Kafka's error codes.
	bad := []struct {
		name    string
		parts   int32
		configs map[string]*string
		want    *kerr.Error
	}{
		{"bad/name", 1, nil, kerr.InvalidTopicException},
		{"no-partitions", 0, nil, kerr.InvalidPartitions},
		{"unknown-config", 1, map[string]*string{"no.such.config": strp("1")}, kerr.InvalidConfig},
		{"bad-value", 1, map[string]*string{"retention.ms": strp("soon")}, kerr.InvalidConfig},
		{"bad-policy", 1, map[string]*string{"cleanup.policy": strp("shred")}, kerr.InvalidConfig},
		{"tiered-compacted", 1, map[string]*string{"cleanup.policy": strp("compact"), "remote.storage.enable": strp("true")}, kerr.InvalidConfig},
	}
	for _, c := range bad {
		res, err := adm.CreateTopics(ctx, c.parts, 1, c.configs, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(res[c.name].Err, c.want) {
			t.Errorf("create %q: %v, want %v", c.name, res[c.name].Err, c.want)
		}
	}
	if res, _ := adm.CreateTopics(ctx, 1, 3, nil, "rf3"); !errors.Is(res["rf3"].Err, kerr.InvalidReplicationFactor) {
		t.Errorf("replication factor 3 on one broker: %v", res["rf3"].Err)
	}

	// validate_only creates nothing.
	if res, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "dry"); err != nil || res["dry"].Err != nil {
		t.Fatalf("validate only: %v %v", err, res["dry"].Err)
	}
	if td, _ := adm.ListTopics(ctx, "dry"); td["dry"].Err == nil {
		t.Fatal("validate-only created the topic")
	}

	createTopic(t, b.Addr, "admin", 2, map[string]*string{"retention.ms": strp("3600000")})
	if res, _ := adm.CreateTopics(ctx, 1, 1, nil, "admin"); !errors.Is(res["admin"].Err, kerr.TopicAlreadyExists) {
		t.Errorf("create twice: %v", res["admin"].Err)
	}

	// Configs: override, broker default, built-in default; then alter.
	rcs, err := adm.DescribeTopicConfigs(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]*kadm.Config{}
	for _, c := range rcs[0].Configs {
		cfg[c.Key] = &c
	}
	if v := cfg["retention.ms"]; v.MaybeValue() != "3600000" || v.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("retention.ms = %q from %v", v.MaybeValue(), v.Source)
	}
	if v := cfg["segment.bytes"]; v.MaybeValue() != "1048576" || v.Source != kmsg.ConfigSourceStaticBrokerConfig {
		t.Errorf("segment.bytes = %q from %v", v.MaybeValue(), v.Source)
	}
	if v := cfg["max.message.bytes"]; v.MaybeValue() != "1048588" || v.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("max.message.bytes = %q from %v", v.MaybeValue(), v.Source)
	}
	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: strp("100")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: strp("compact")},
	}, "admin")
	if err != nil || alter[0].Err != nil {
		t.Fatalf("incremental alter: %v %v", err, alter[0].Err)
	}
	bad2, _ := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: strp("-5")}}, "admin")
	if !errors.Is(bad2[0].Err, kerr.InvalidConfig) {
		t.Errorf("bad alter: %v", bad2[0].Err)
	}
	rcs, _ = adm.DescribeTopicConfigs(ctx, "admin")
	for _, c := range rcs[0].Configs {
		cfg[c.Key] = &c
	}
	if cfg["max.message.bytes"].MaybeValue() != "100" || cfg["retention.ms"].MaybeValue() != "604800000" || cfg["cleanup.policy"].MaybeValue() != "delete,compact" {
		t.Errorf("after alter: max.message.bytes=%s retention.ms=%s cleanup.policy=%s", cfg["max.message.bytes"].MaybeValue(), cfg["retention.ms"].MaybeValue(), cfg["cleanup.policy"].MaybeValue())
	}
	// The new max.message.bytes applies to the next produce.
	cl := newClient(t, b.Addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "admin", Value: make([]byte, 500)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("produce 500 bytes with max.message.bytes=100: %v", err)
	}
	// Legacy AlterConfigs replaces the whole set.
	if _, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: strp("60000")}}, "admin"); err != nil {
		t.Fatal(err)
	}
	rcs, _ = adm.DescribeTopicConfigs(ctx, "admin")
	for _, c := range rcs[0].Configs {
		cfg[c.Key] = &c
	}
	if cfg["max.message.bytes"].MaybeValue() != "1048588" || cfg["segment.ms"].MaybeValue() != "60000" {
		t.Errorf("after legacy alter: max.message.bytes=%s segment.ms=%s", cfg["max.message.bytes"].MaybeValue(), cfg["segment.ms"].MaybeValue())
	}

	// Partitions grow, never shrink.
	if r, err := adm.CreatePartitions(ctx, 2, "admin"); err != nil || r["admin"].Err != nil {
		t.Fatalf("add partitions: %v %v", err, r["admin"].Err)
	}
	if r, _ := adm.UpdatePartitions(ctx, 3, "admin"); !errors.Is(r["admin"].Err, kerr.InvalidPartitions) {
		t.Errorf("shrink: %v", r["admin"].Err)
	}
	td, err := adm.ListTopics(ctx, "admin")
	if err != nil || len(td["admin"].Partitions) != 4 {
		t.Fatalf("partitions after growth: %v %d", err, len(td["admin"].Partitions))
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "admin", Partition: 3, Value: []byte("new partition")}).FirstErr(); err != nil {
		t.Fatalf("produce to a new partition: %v", err)
	}

	// Delete.
	if r, err := adm.DeleteTopics(ctx, "admin"); err != nil || r["admin"].Err != nil {
		t.Fatalf("delete: %v %v", err, r["admin"].Err)
	}
	if r, _ := adm.DeleteTopics(ctx, "admin"); !errors.Is(r["admin"].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("delete twice: %v", r["admin"].Err)
	}
}

func TestOffsetsAndDeleteRecords(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	b := testenv.StartBroker(t, broker.Options{Clock: clock.WithNow(func() time.Time { return now }), Settings: map[string]string{"log.message.timestamp.before.max.ms": "9223372036854775807"}})
	createTopic(t, b.Addr, "offs", 1, map[string]*string{"segment.bytes": strp("1024")})
	cl := newClient(t, b.Addr, kgo.ProducerLinger(0))
	adm := kadm.NewClient(cl)
	ctx := testenv.Context(t, 30*time.Second)
	for i := 0; i < 100; i++ {
		r := &kgo.Record{Topic: "offs", Value: make([]byte, 100), Timestamp: now.Add(time.Duration(i) * time.Second)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	at := func(ts int64) (int64, int64) {
		lo, err := adm.ListOffsetsAfterMilli(ctx, ts, "offs")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := lo.Lookup("offs", 0)
		return o.Offset, o.Timestamp
	}
	if off, ts := at(now.Add(42 * time.Second).UnixMilli()); off != 42 || ts != now.Add(42*time.Second).UnixMilli() {
		t.Errorf("offset for t+42s: %d (ts %d)", off, ts)
	}
	if off, _ := at(now.Add(time.Hour).UnixMilli()); off != 100 {
		// kadm maps "no such offset" (-1) to the end offset.
		t.Errorf("offset after the last timestamp: %d, want the end", off)
	}
	// -3: max timestamp (KIP-734)
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "offs"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -3
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Topics[0].Partitions[0]; p.Offset != 99 || p.Timestamp != now.Add(99*time.Second).UnixMilli() {
		t.Errorf("max timestamp: offset %d ts %d", p.Offset, p.Timestamp)
	}

	// DeleteRecords moves the start; reads below it are out of range.
	drs, err := adm.DeleteRecords(ctx, kadm.Offsets{"offs": {0: {At: 60}}})
	if err != nil {
		t.Fatal(err)
	}
	if dr, _ := drs.Lookup("offs", 0); dr.Err != nil || dr.LowWatermark != 60 {
		t.Fatalf("delete records: %v low watermark %d", dr.Err, dr.LowWatermark)
	}
	starts, _ := adm.ListStartOffsets(ctx, "offs")
	if s, _ := starts.Lookup("offs", 0); s.Offset != 60 {
		t.Errorf("start offset after delete: %d", s.Offset)
	}
	drs, _ = adm.DeleteRecords(ctx, kadm.Offsets{"offs": {0: {At: 500}}})
	if dr, _ := drs.Lookup("offs", 0); !errors.Is(dr.Err, kerr.OffsetOutOfRange) {
		t.Errorf("delete beyond the end: %v", dr.Err)
	}
	recs := consumeAll(t, b.Addr, "offs", 40)
	if recs[0].Offset != 60 {
		t.Errorf("first record after delete: %d", recs[0].Offset)
	}

	// OffsetForLeaderEpoch: epoch 0 ends at the log end.
	ofe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	ot := kmsg.NewOffsetForLeaderEpochRequestTopic()
	ot.Topic = "offs"
	op := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	op.CurrentLeaderEpoch, op.LeaderEpoch = 0, 0
	ot.Partitions = append(ot.Partitions, op)
	ofe.Topics = append(ofe.Topics, ot)
	oresp, err := ofe.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if p := oresp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.LeaderEpoch != 0 || p.EndOffset != 100 {
		t.Errorf("offset for leader epoch: %v epoch %d end %d", kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset)
	}
}

func TestLogAppendTime(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	b := testenv.StartBroker(t, broker.Options{Clock: clock.WithNow(func() time.Time { return now })})
	createTopic(t, b.Addr, "lat", 1, map[string]*string{"message.timestamp.type": strp("LogAppendTime")})
	cl := newClient(t, b.Addr)
	ctx := testenv.Context(t, 30*time.Second)
	// A timestamp far in the past is fine: LogAppendTime replaces it.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lat", Value: []byte("v"), Timestamp: time.UnixMilli(1000)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, b.Addr, "lat", 1)
	if got := recs[0].Timestamp.UnixMilli(); got != now.UnixMilli() || recs[0].Attrs.TimestampType() != 1 {
		t.Fatalf("timestamp %d type %d, want %d LogAppendTime", got, recs[0].Attrs.TimestampType(), now.UnixMilli())
	}
}

func TestRestartKeepsTopicsAndData(t *testing.T) {
	dir := t.TempDir()
	b := testenv.StartBroker(t, broker.Options{DataDir: dir})
	createTopic(t, b.Addr, "durable", 2, map[string]*string{"retention.ms": strp("1000000")})
	cl := newClient(t, b.Addr)
	ctx := testenv.Context(t, 30*time.Second)
	for i := 0; i < 50; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "durable", Partition: int32(i % 2), Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b2 := testenv.StartBroker(t, broker.Options{DataDir: dir})
	recs := consumeAll(t, b2.Addr, "durable", 50)
	if len(recs) != 50 {
		t.Fatalf("%d records after restart", len(recs))
	}
	adm := kadm.NewClient(newClient(t, b2.Addr))
	rcs, err := adm.DescribeTopicConfigs(ctx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == "retention.ms" && c.MaybeValue() != "1000000" {
			t.Errorf("retention.ms after restart: %s", c.MaybeValue())
		}
	}
}

// TestListOffsetsByTimestampFindsTheRecord: with many records per batch the
// answer is the exact record, as in Kafka, not the start of its batch.
func TestListOffsetsByTimestampFindsTheRecord(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	b := testenv.StartBroker(t, broker.Options{Clock: clock.WithNow(func() time.Time { return now }), Settings: map[string]string{"log.message.timestamp.before.max.ms": "9223372036854775807"}})
	createTopic(t, b.Addr, "ts", 1, nil)
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.Lz4Compression()} {
		cl := newClient(t, b.Addr, kgo.ProducerLinger(time.Minute), kgo.ProducerBatchCompression(codec))
		ctx := testenv.Context(t, 30*time.Second)
		base := int64(0)
		if codec == kgo.Lz4Compression() {
			base = 50
		}
		for i := 0; i < 50; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: "ts", Value: []byte("v"), Timestamp: now.Add(time.Duration(base+int64(i)) * time.Second)}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(newClient(t, b.Addr))
	ctx := testenv.Context(t, 30*time.Second)
	for _, want := range []int64{0, 17, 49, 50, 83, 99} {
		lo, err := adm.ListOffsetsAfterMilli(ctx, now.Add(time.Duration(want)*time.Second).UnixMilli(), "ts")
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := lo.Lookup("ts", 0); o.Offset != want || o.Timestamp != now.Add(time.Duration(want)*time.Second).UnixMilli() {
			t.Errorf("timestamp t+%ds: offset %d ts %d", want, o.Offset, o.Timestamp)
		}
	}
}

func TestMinInsyncReplicasOnOneNode(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	createTopic(t, b.Addr, "mir", 1, map[string]*string{"min.insync.replicas": strp("2")})
	ctx := testenv.Context(t, 30*time.Second)
	all := newClient(t, b.Addr, kgo.RecordRetries(0), kgo.RequestRetries(0))
	err := all.ProduceSync(ctx, &kgo.Record{Topic: "mir", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with min.insync.replicas=2 on one node: %v", err)
	}
	one := newClient(t, b.Addr, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err := one.ProduceSync(ctx, &kgo.Record{Topic: "mir", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("acks=1 is not bound by min.insync.replicas: %v", err)
	}
}

func TestOrphanPartitionFoldersRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	b := testenv.StartBroker(t, broker.Options{DataDir: dir})
	createTopic(t, b.Addr, "kept", 1, nil)
	b.Stop()
	for _, d := range []string{"gone-0", "kept-7"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testenv.StartBroker(t, broker.Options{DataDir: dir})
	for d, want := range map[string]bool{"gone-0": false, "kept-7": false, "kept-0": true} {
		_, err := os.Stat(filepath.Join(dir, d))
		if (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", d, err == nil, want)
		}
	}
}

func TestAutoCreateTopics(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: map[string]string{"num.partitions": "4"}})
	ctx := testenv.Context(t, 30*time.Second)
	cl := newClient(t, b.Addr, kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "born-on-produce", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	td, err := kadm.NewClient(cl).ListTopics(ctx, "born-on-produce")
	if err != nil || len(td["born-on-produce"].Partitions) != 4 {
		t.Fatalf("auto-created topic: %v, %d partitions", err, len(td["born-on-produce"].Partitions))
	}
	// Clients that do not allow it (v4+ flag) do not create topics.
	plain := newClient(t, b.Addr)
	td, _ = kadm.NewClient(plain).ListTopics(ctx, "not-asked-for")
	if !errors.Is(td["not-asked-for"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("metadata without auto-create: %v", td["not-asked-for"].Err)
	}

	off := testenv.StartBroker(t, broker.Options{Settings: map[string]string{"auto.create.topics.enable": "false"}})
	cl2 := newClient(t, off.Addr, kgo.AllowAutoTopicCreation(), kgo.RecordDeliveryTimeout(2*time.Second))
	err = cl2.ProduceSync(ctx, &kgo.Record{Topic: "never", Value: []byte("x")}).FirstErr()
	if err == nil {
		t.Fatal("produce created a topic with auto.create.topics.enable=false")
	}
	td, _ = kadm.NewClient(cl2).ListTopics(ctx, "never")
	if td["never"].Err == nil {
		t.Fatal("topic exists with auto.create.topics.enable=false")
	}
}
