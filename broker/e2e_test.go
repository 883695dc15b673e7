package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	return testenv.Client(t, addr, opts...)
}

func createTopic(t *testing.T, addr, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	testenv.CreateTopic(t, addr, name, partitions, configs)
}

// consumeAll reads n records from the start of topic.
func consumeAll(t *testing.T, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	ctx := testenv.Context(t, 60*time.Second)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestProduceConsumeRoundTrip(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	for name, codec := range codecs {
		topic := "roundtrip-" + name
		t.Run(topic, func(t *testing.T) {
			createTopic(t, b.Addr, topic, 3, nil)
			cl := newClient(t, b.Addr, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
			ctx := testenv.Context(t, 30*time.Second)
			const n = 2000
			want := map[string]string{}
			for i := 0; i < n; i++ {
				k, v := fmt.Sprintf("key-%d", i%50), fmt.Sprintf("value-%d", i)
				want[v] = k
				cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: []byte(v)}, func(r *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			got := consumeAll(t, b.Addr, topic, n)
			if len(got) != n {
				t.Fatalf("got %d records, want %d", len(got), n)
			}
			lastOffset := map[int32]int64{}
			keyPartition := map[string]int32{}
			for _, r := range got {
				if want[string(r.Value)] != string(r.Key) {
					t.Fatalf("record %q has key %q", r.Value, r.Key)
				}
				delete(want, string(r.Value))
				if prev, ok := lastOffset[r.Partition]; ok && r.Offset != prev+1 {
					t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
				}
				lastOffset[r.Partition] = r.Offset
				if p, ok := keyPartition[string(r.Key)]; ok && p != r.Partition {
					t.Fatalf("key %q in partitions %d and %d", r.Key, p, r.Partition)
				}
				keyPartition[string(r.Key)] = r.Partition
			}
			if len(want) != 0 {
				t.Fatalf("%d records missing", len(want))
			}
		})
	}
}
