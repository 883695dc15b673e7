package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/testenv"
)

// rawBatch encodes an uncompressed RecordBatch v2 holding values, without
// a producer id, with kmsg and a correct CRC-32C: a raw Produce's records.
func rawBatch(values []string) []byte {
	var recs []byte
	now := time.Now().UnixMilli()
	for i, v := range values {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = []byte(v)
		r.Length = int32(len(r.AppendTo(nil)) - 1) // what follows the 1-byte varint of 0
		recs = r.AppendTo(recs)
	}
	rb := kmsg.NewRecordBatch()
	rb.Magic = 2
	rb.LastOffsetDelta = int32(len(values) - 1)
	rb.FirstTimestamp, rb.MaxTimestamp = now, now
	rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = -1, -1, -1
	rb.NumRecords = int32(len(values))
	rb.Records = recs
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// rawProduce sends one Produce of values to topic/partition straight to
// broker id — no client-side routing, no retries — and returns the
// partition's answer. pr must come from newProducerProbe with the same acks:
// kgo rewrites a raw Produce's acks to its client's setting. The request's
// timeout bounds the broker's acks=all wait; ctx bounds the whole exchange.
func rawProduce(ctx context.Context, pr *probe, id int32, topic string, partition int32, acks int16, timeout time.Duration, values []string) (kmsg.ProduceResponseTopicPartition, error) {
	if pr.acks != acks {
		return kmsg.ProduceResponseTopicPartition{}, fmt.Errorf("raw produce with acks=%d through a probe for acks=%d", acks, pr.acks)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = acks
	req.TimeoutMillis = int32(timeout / time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = rawBatch(values)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := pr.broker(id).Request(ctx, req)
	if err != nil {
		return kmsg.ProduceResponseTopicPartition{}, err
	}
	out := resp.(*kmsg.ProduceResponse)
	if len(out.Topics) != 1 || len(out.Topics[0].Partitions) != 1 {
		return kmsg.ProduceResponseTopicPartition{}, fmt.Errorf("produce response with %d topics", len(out.Topics))
	}
	return out.Topics[0].Partitions[0], nil
}

// diskBatch is one batch of a replica's log as it is on disk.
type diskBatch struct {
	base, last int64
	epoch      int32
	raw        []byte
}

// replicaLog reads topic-partition's segment files in a broker's data
// directory, in offset order, without opening the log (no recovery, no
// writes). Call it on a stopped broker: a running one may be mid-append.
func replicaLog(t *testing.T, dataDir, topic string, partition int32) []diskBatch {
	t.Helper()
	dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
	paths, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths) // 20-digit base offsets sort by name
	var out []diskBatch
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = localstore.ScanSegmentFile(path, func(pos int64, h localstore.BatchHeader) error {
			raw := make([]byte, h.Size())
			if _, err := f.ReadAt(raw, pos); err != nil {
				return err
			}
			out = append(out, diskBatch{base: h.BaseOffset, last: h.LastOffset(), epoch: h.PartitionLeaderEpoch, raw: raw})
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return out
}

// upTo keeps the batches wholly below end.
func upTo(log []diskBatch, end int64) []diskBatch {
	var out []diskBatch
	for _, b := range log {
		if b.last < end {
			out = append(out, b)
		}
	}
	return out
}

// compareReplicas checks that the given brokers hold topic-partition's log
// byte for byte identically below end (the high watermark), and that beyond
// it no two logs disagree either: one is a prefix of the other (a follower
// may not have fetched the leader's last batches yet, but no replica keeps
// a tail of its own). The brokers must be stopped.
func compareReplicas(t *testing.T, c *testenv.Cluster, topic string, partition int32, end int64, nodes []int32) {
	t.Helper()
	logs := map[int32][]diskBatch{}
	for _, id := range nodes {
		logs[id] = replicaLog(t, c.Broker(id).DataDir, topic, partition)
	}
	first := nodes[0]
	ref := logs[first]
	below := upTo(ref, end)
	if n := len(below); n == 0 || below[n-1].last != end-1 {
		last := int64(-1)
		if n > 0 {
			last = below[n-1].last
		}
		t.Errorf("%s-%d: broker %d's log below the high watermark %d ends at %d", topic, partition, first, end, last+1)
	}
	ends := map[int32]int64{}
	for _, id := range nodes {
		if l := logs[id]; len(l) > 0 {
			ends[id] = l[len(l)-1].last + 1
		}
	}
	for _, id := range nodes[1:] {
		got := logs[id]
		if n, m := len(upTo(got, end)), len(below); n != m {
			t.Errorf("%s-%d: broker %d holds %d batches below %d, broker %d holds %d", topic, partition, id, n, end, first, m)
		}
		for i := range min(len(got), len(ref)) {
			if !bytes.Equal(got[i].raw, ref[i].raw) {
				t.Errorf("%s-%d: broker %d and broker %d diverge at batch %d (offsets %d-%d epoch %d vs %d-%d epoch %d; high watermark %d)",
					topic, partition, id, first, i, got[i].base, got[i].last, got[i].epoch, ref[i].base, ref[i].last, ref[i].epoch, end)
				break
			}
		}
	}
	epochs := map[int32]int{}
	for _, b := range below {
		epochs[b.epoch]++
	}
	t.Logf("%s-%d: brokers %v identical below the high watermark %d (%d batches; batches per leader epoch %v); log ends %v",
		topic, partition, nodes, end, len(below), epochs, ends)
}

// logHas reports whether any batch of log holds value (records are
// uncompressed in these tests: raw batches and kgo's default is snappy, so
// this is used only with raw batches).
func logHas(log []diskBatch, value string) bool {
	for _, b := range log {
		if bytes.Contains(b.raw, []byte(value)) {
			return true
		}
	}
	return false
}

// consulKV is the cluster's Consul KV API over plain HTTP: a view of the
// committed metadata that no broker's cache stands between, and a way to
// write garbage under the cluster's prefix.
type consulKV struct {
	addr, prefix string
}

// defaultPrefix is `strata serve`'s --consul-prefix default.
const defaultPrefix = "strata/default/"

func (k consulKV) url(key string) string { return "http://" + k.addr + "/v1/kv/" + k.prefix + key }

// kvPair is the part of Consul's GET /v1/kv answer the tests read.
type kvPair struct {
	Key         string
	Value       []byte // base64 in JSON; encoding/json decodes it
	CreateIndex uint64
	ModifyIndex uint64
	Session     string
}

// get reads one key; ok is false when it does not exist.
func (k consulKV) get(ctx context.Context, key string) (kvPair, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url(key), nil)
	if err != nil {
		return kvPair{}, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return kvPair{}, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return kvPair{}, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return kvPair{}, false, fmt.Errorf("consul GET %s: %s %s", key, resp.Status, short(string(b)))
	}
	var pairs []kvPair
	if err := json.NewDecoder(resp.Body).Decode(&pairs); err != nil {
		return kvPair{}, false, fmt.Errorf("consul GET %s: %w", key, err)
	}
	if len(pairs) != 1 {
		return kvPair{}, false, fmt.Errorf("consul GET %s: %d pairs", key, len(pairs))
	}
	return pairs[0], true, nil
}

// put writes value under key, plainly (no session, no check-and-set), as
// an operator's `consul kv put` would.
func (k consulKV) put(ctx context.Context, key string, value []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, k.url(key), bytes.NewReader(value))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "true" {
		return fmt.Errorf("consul PUT %s: %s %s", key, resp.Status, short(string(b)))
	}
	return nil
}

// storedPartition is a partition key's document as the coord layout has it.
type storedPartition struct {
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
}

// partition reads the committed state of topic/p.
func (k consulKV) partition(ctx context.Context, topic string, p int32) (storedPartition, uint64, error) {
	pair, ok, err := k.get(ctx, fmt.Sprintf("partitions/%s/%d", topic, p))
	if err != nil {
		return storedPartition{}, 0, err
	}
	if !ok {
		return storedPartition{}, 0, fmt.Errorf("no partition key for %s-%d", topic, p)
	}
	var sp storedPartition
	if err := json.Unmarshal(pair.Value, &sp); err != nil {
		return storedPartition{}, 0, fmt.Errorf("partition key of %s-%d: %w", topic, p, err)
	}
	return sp, pair.ModifyIndex, nil
}

// brokerEpoch is broker id's registered epoch (its key's CreateIndex).
func (k consulKV) brokerEpoch(ctx context.Context, id int32) (int64, error) {
	pair, ok, err := k.get(ctx, fmt.Sprintf("brokers/%d", id))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("broker %d is not registered", id)
	}
	return int64(pair.CreateIndex), nil
}

// short keeps messages about bodies short.
func short(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
