package coord

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// Tests of the Consul keyspace codec and of the view built from it: pure
// functions, no Consul.

const validPartition = `{"partition":3,"leader":1,"leader_epoch":2,"partition_epoch":5,"replicas":[1,2],"isr":[1]}`

func TestDecodeEntry(t *testing.T) {
	for _, tc := range []struct {
		rel, value string
		ok         bool
	}{
		{"cluster-id", "AbC_d-12", true},
		{"cluster-id", "", false},
		{"cluster-id", "has space", false},
		{"controller", `{"node_id":3}`, true},
		{"controller", `{}`, false},
		{"controller", `null`, false},
		{"controller", `{"node_id":-2}`, false},
		{"controller", `{"node_id":3}{"node_id":4}`, false},
		{"producer-ids", "1000", true},
		{"producer-ids", "-1", false},
		{"producer-ids", "01", false},
		{"producer-ids", "1e3", false},
		{"brokers/4", `{"node_id":4,"host":"h","port":9092}`, true},
		{"brokers/4", `{"node_id":5,"host":"h","port":9092}`, false},
		{"brokers/04", `{"node_id":4,"host":"h","port":9092}`, false},
		{"brokers/4", `{"node_id":4,"port":9092}`, false},
		{"brokers/4", `{"node_id":4,"host":"h","port":70000}`, false},
		{"brokers/4", `{"node_id":4,"host":"h"}`, false},
		{"topics/orders", `{"id":"0123456789abcdef0123456789abcdef","partitions":2,"version":1}`, true},
		{"topics/orders", `{"id":"0123456789ABCDEF0123456789abcdef","partitions":2,"version":1}`, false},
		{"topics/orders", `{"id":"00000000000000000000000000000000","partitions":2,"version":1}`, false},
		{"topics/orders", `{"id":"0123456789abcdef0123456789abcdef","version":1}`, false},
		{"topics/orders", `{"id":"0123456789abcdef0123456789abcdef","partitions":-1,"version":1}`, false},
		{"topics/orders", `{"id":"0123456789abcdef0123456789abcdef","partitions":2,"version":0}`, false},
		{"topics/bad/name", `{"id":"0123456789abcdef0123456789abcdef","partitions":2,"version":1}`, false},
		{"topics/..", `{"id":"0123456789abcdef0123456789abcdef","partitions":2,"version":1}`, false},
		{"topic-ids/0123456789abcdef0123456789abcdef", "orders", true},
		{"topic-ids/0123", "orders", false},
		{"partitions/orders/3", validPartition, true},
		{"partitions/orders/4", validPartition, false},
		{"partitions/orders/03", validPartition, false},
		{"partitions/orders", validPartition, false},
		{"partitions/orders/3", `{"partition":3,"leader":1,"isr":[1]}`, false},
		{"partitions/orders/3", `{"partition":3,"leader":-2,"leader_epoch":0,"partition_epoch":0,"replicas":[1],"isr":[1]}`, false},
		{"partitions/orders/3", `{"partition":3,"leader":1,"leader_epoch":0,"partition_epoch":0,"replicas":[1,1],"isr":[1]}`, false},
		{"partitions/orders/3", `{"partition":3,"leader":1,"leader_epoch":0,"partition_epoch":0,"replicas":[1],"isr":[-1]}`, false},
		{"partitions/orders/3", `{"partition":3,"leader":1,"leader_epoch":-1,"partition_epoch":0,"replicas":[1],"isr":[1]}`, false},
		{"partitions/orders/3", `{"partition":3,"leader":1,"leader_epoch":0,"partition_epoch":0,"replicas":null,"isr":[1]}`, false},
		{"partitions/orders/3", `{"partition":3,"leader":1,"leader_epoch":0,"partition_epoch":0,"replicas":[1],"isr":"x"}`, false},
		{"what", "x", false},
		{"what/ever", "x", false},
	} {
		_, err := decodeEntry(tc.rel, []byte(tc.value))
		if (err == nil) != tc.ok {
			t.Errorf("%s = %s: err %v, want ok=%v", tc.rel, tc.value, err, tc.ok)
		}
		if err != nil && !errors.Is(err, errGarbage) {
			t.Errorf("%s: error %v is not errGarbage", tc.rel, err)
		}
	}
}

// FuzzDecodeEntry: whatever sits under the prefix decodes to an entry or to
// errGarbage, never a panic; what decodes re-encodes to the same entry.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("partitions/orders/3", []byte(validPartition))
	f.Add("topics/orders", []byte(`{"id":"0123456789abcdef0123456789abcdef","partitions":2,"configs":{"a":"b"},"internal":true,"version":1}`))
	f.Add("brokers/4", []byte(`{"node_id":4,"host":"h","port":9092,"rack":"r","incarnation":"i","shutting_down":true}`))
	f.Add("controller", []byte(`{"node_id":3}`))
	f.Add("producer-ids", []byte("1000"))
	f.Add("cluster-id", []byte("MkU3OEVBNTcwNTJENDM2Qk"))
	f.Add("topic-ids/0123456789abcdef0123456789abcdef", []byte("orders"))
	f.Add("partitions/orders/3", []byte(`{"partition":3,"leader":1,"isr":[1]}`))
	f.Add("topics/x", []byte(`{"id":"0123456789abcdef0123456789abcdef","partitions":2147483647,"version":1}`))
	f.Add("brokers/1", []byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, rel string, value []byte) {
		e, err := decodeEntry(rel, value)
		if err != nil {
			if !errors.Is(err, errGarbage) {
				t.Fatalf("error %v is not errGarbage", err)
			}
			return
		}
		var again []byte
		switch e.kind {
		case entryPartition:
			again = encodePartition(e.partition)
		case entryTopic:
			again = encodeTopic(TopicMeta{ID: e.topicID, Partitions: make([]PartitionMeta, e.topicDoc.Partitions),
				Configs: e.topicDoc.Configs, Internal: e.topicDoc.Internal, Version: e.topicDoc.Version})
		case entryBroker:
			again = encodeBroker(e.broker)
		case entryController:
			again = encodeJSON(controllerDoc{NodeID: e.controller})
		case entryProducerIDs:
			again = encodeProducerID(e.producerID)
		default:
			again = value
		}
		e2, err := decodeEntry(rel, again)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, e2)
		}
	})
}

// FuzzBuildView: a keyspace of arbitrary keys and values ("key\tvalue"
// lines) builds a view without panicking, and every topic in it is whole:
// one partition per index, numbered by it.
func FuzzBuildView(f *testing.F) {
	f.Add([]byte("p/topics/t\t{\"id\":\"0123456789abcdef0123456789abcdef\",\"partitions\":1,\"version\":1}\n" +
		"p/partitions/t/0\t" + strings.Replace(validPartition, `"partition":3`, `"partition":0`, 1) + "\n" +
		"p/partitions/t/1\t" + strings.Replace(validPartition, `"partition":3`, `"partition":1`, 1) + "\n" +
		"p/controller\t{\"node_id\":1}\np/cluster-id\tabc\np/brokers/1\t{\"node_id\":1,\"host\":\"h\",\"port\":1}"))
	f.Add([]byte("p/topics/t\t{\"id\":\"0123456789abcdef0123456789abcdef\",\"partitions\":3,\"version\":1}\np/partitions/u/0\tx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs := map[string]*api.KVPair{}
		for i, line := range bytes.Split(data, []byte("\n")) {
			k, v, _ := bytes.Cut(line, []byte("\t"))
			pairs[string(k)] = &api.KVPair{Key: string(k), Value: v, CreateIndex: uint64(i + 1), ModifyIndex: uint64(i + 1), Session: "s"}
		}
		v, _ := buildView("p/", pairs, map[string]decoded{}, emptyView())
		for name, ts := range v.topics {
			if len(ts.partIndex) != len(ts.meta.Partitions) {
				t.Fatalf("topic %s: %d indexes for %d partitions", name, len(ts.partIndex), len(ts.meta.Partitions))
			}
			for i, p := range ts.meta.Partitions {
				if p.Partition != int32(i) {
					t.Fatalf("topic %s: partition %d at index %d", name, p.Partition, i)
				}
			}
		}
	})
}
