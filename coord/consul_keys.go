package coord

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file is the Consul keyspace's codec: key names, the JSON documents
// stored under them, and the decoders that turn a key and its bytes into one
// entry. The decoders are pure (no Consul, no locks) and are the fuzz
// targets' subject: whatever an operator or a bug leaves under the prefix
// must come out as an entry or a clear error, never as a panic or as a
// plausible-looking but wrong partition state.

// maxPartitions bounds a topic document's partition count so a garbage count
// cannot make a reader allocate without limit. Kafka has no hard limit; a
// cluster with a million partitions in one topic is far beyond what Strata
// targets.
const maxPartitions = 1 << 20

// maxTopicNameLen is Kafka's limit (Topic.MAX_NAME_LENGTH).
const maxTopicNameLen = 249

var errGarbage = errors.New("coord: unreadable consul entry")

// consulKeys names every key under the prefix (see the layout in consul.go).
type consulKeys struct{ prefix string }

func (k consulKeys) clusterID() string        { return k.prefix + "cluster-id" }
func (k consulKeys) controller() string       { return k.prefix + "controller" }
func (k consulKeys) producerIDs() string      { return k.prefix + "producer-ids" }
func (k consulKeys) broker(id int32) string   { return k.prefix + "brokers/" + strconv.Itoa(int(id)) }
func (k consulKeys) topic(name string) string { return k.prefix + "topics/" + name }
func (k consulKeys) topicID(id [16]byte) string {
	return k.prefix + "topic-ids/" + hex.EncodeToString(id[:])
}

// partitions is the folder of one topic's partition keys, with the trailing
// slash, so that a delete-tree of "orders" never touches "orders2".
func (k consulKeys) partitions(topic string) string { return k.prefix + "partitions/" + topic + "/" }
func (k consulKeys) partition(topic string, p int32) string {
	return k.partitions(topic) + strconv.Itoa(int(p))
}

// entryKind says which part of the layout a key belongs to.
type entryKind int

const (
	entryClusterID entryKind = iota + 1
	entryController
	entryProducerIDs
	entryBroker
	entryTopic
	entryTopicID
	entryPartition
)

// entry is one decoded key. Which fields are set depends on kind.
type entry struct {
	kind      entryKind
	clusterID string
	// controller: the holder's node id (its epoch is the key's ModifyIndex).
	controller int32
	broker     BrokerInfo // Epoch unset: it is the key's CreateIndex
	topic      string     // entryTopic, entryTopicID (the name it points to), entryPartition
	topicDoc   topicDoc
	topicID    [16]byte
	partition  PartitionMeta
	producerID int64
}

// controllerDoc is the controller lock's value. The epoch is not in it: it
// is the key's ModifyIndex, which the acquiring transaction itself assigns
// (a Raft index, so strictly greater than any earlier term's). Term is
// random per acquisition so that the value always changes: Consul skips a
// write that changes nothing, ModifyIndex included, and a session taking
// the lock again must still start a new term.
type controllerDoc struct {
	NodeID int32  `json:"node_id"`
	Term   string `json:"term,omitempty"`
}

// brokerDoc is a registration's value. The broker epoch is the key's
// CreateIndex: every registration deletes and re-creates the key in one
// transaction, so each gets a new Raft index, while SetShuttingDown (a
// rewrite) keeps it.
type brokerDoc struct {
	NodeID       int32  `json:"node_id"`
	Host         string `json:"host"`
	Port         int32  `json:"port"`
	Rack         string `json:"rack,omitempty"`
	Incarnation  string `json:"incarnation,omitempty"`
	ShuttingDown bool   `json:"shutting_down,omitempty"`
}

// topicDoc is a topic key's value. The partitions themselves live under
// their own keys so that ISR changes of different partitions never conflict.
type topicDoc struct {
	ID         string            `json:"id"` // 32 hex digits
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	Version    uint64            `json:"version"`
}

func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only maps of strings, ints and bools are marshalled here.
		panic(fmt.Sprintf("coord: encoding %T: %v", v, err))
	}
	return b
}

func encodeBroker(b BrokerInfo) []byte {
	return encodeJSON(brokerDoc{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack,
		Incarnation: b.Incarnation, ShuttingDown: b.ShuttingDown})
}

func encodeTopic(t TopicMeta) []byte {
	return encodeJSON(topicDoc{ID: hex.EncodeToString(t.ID[:]), Partitions: int32(len(t.Partitions)),
		Configs: t.Configs, Internal: t.Internal, Version: t.Version})
}

// encodePartition writes empty lists as [] (Clone turns them into nil,
// which JSON writes as null, and the decoder refuses a null ISR).
func encodePartition(p PartitionMeta) []byte {
	if p.Replicas == nil {
		p.Replicas = []int32{}
	}
	if p.ISR == nil {
		p.ISR = []int32{}
	}
	return encodeJSON(p)
}

func encodeProducerID(next int64) []byte { return []byte(strconv.FormatInt(next, 10)) }

// decodeEntry decodes the key rel (relative to the prefix) and its value.
func decodeEntry(rel string, value []byte) (entry, error) {
	fail := func(format string, args ...any) (entry, error) {
		return entry{}, fmt.Errorf("%w %q: %s", errGarbage, rel, fmt.Sprintf(format, args...))
	}
	switch rel {
	case "cluster-id":
		id := string(value)
		if !validClusterID(id) {
			return fail("cluster id %q is not 1-64 characters of [A-Za-z0-9_-]", truncate(id))
		}
		return entry{kind: entryClusterID, clusterID: id}, nil
	case "controller":
		var d struct {
			NodeID *int32 `json:"node_id"`
		}
		if err := strictJSON(value, &d); err != nil {
			return fail("%v", err)
		}
		if err := requireFields(field{"node_id", d.NodeID != nil}); err != nil {
			return fail("%v", err)
		}
		if *d.NodeID < 0 {
			return fail("negative node id %d", *d.NodeID)
		}
		return entry{kind: entryController, controller: *d.NodeID}, nil
	case "producer-ids":
		n, err := decodeProducerID(value)
		if err != nil {
			return fail("%v", err)
		}
		return entry{kind: entryProducerIDs, producerID: n}, nil
	}
	folder, rest, ok := strings.Cut(rel, "/")
	if !ok {
		return fail("unknown key")
	}
	switch folder {
	case "brokers":
		id, err := parseID(rest)
		if err != nil {
			return fail("broker key: %v", err)
		}
		b, err := decodeBroker(value)
		if err != nil {
			return fail("%v", err)
		}
		if b.NodeID != id {
			return fail("registration of node %d under the key of node %d", b.NodeID, id)
		}
		return entry{kind: entryBroker, broker: b}, nil
	case "topics":
		if !validTopicName(rest) {
			return fail("invalid topic name")
		}
		d, id, err := decodeTopic(value)
		if err != nil {
			return fail("%v", err)
		}
		return entry{kind: entryTopic, topic: rest, topicDoc: d, topicID: id}, nil
	case "topic-ids":
		id, err := parseTopicID(rest)
		if err != nil {
			return fail("%v", err)
		}
		if !validTopicName(string(value)) {
			return fail("topic id points at an invalid topic name")
		}
		return entry{kind: entryTopicID, topicID: id, topic: string(value)}, nil
	case "partitions":
		i := strings.LastIndexByte(rest, '/')
		if i < 0 || !validTopicName(rest[:i]) {
			return fail("partition key is not partitions/<topic>/<partition>")
		}
		p, err := parseID(rest[i+1:])
		if err != nil {
			return fail("partition number: %v", err)
		}
		m, err := decodePartition(value, p)
		if err != nil {
			return fail("%v", err)
		}
		return entry{kind: entryPartition, topic: rest[:i], partition: m}, nil
	}
	return fail("unknown key")
}

// strictJSON decodes one JSON object (json.Unmarshal already refuses
// trailing data). "null", arrays and scalars are refused rather than read as
// a zero document: a zero PartitionMeta would look like a real state. Unknown
// fields are allowed: a newer Strata may add some.
func strictJSON(b []byte, v any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("bad JSON: not an object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("bad JSON: %v", err)
	}
	return nil
}

// field is a required field and whether the document had it.
type field struct {
	name    string
	present bool
}

// requireFields names the first required field the document lacks.
func requireFields(fields ...field) error {
	for _, f := range fields {
		if !f.present {
			return fmt.Errorf("field %q missing", f.name)
		}
	}
	return nil
}

func decodeBroker(value []byte) (BrokerInfo, error) {
	var d brokerDoc
	if err := strictJSON(value, &d); err != nil {
		return BrokerInfo{}, err
	}
	var req struct {
		NodeID *int32 `json:"node_id"`
		Port   *int32 `json:"port"`
	}
	json.Unmarshal(value, &req) // it decoded above
	if err := requireFields(field{"node_id", req.NodeID != nil}, field{"port", req.Port != nil}); err != nil {
		return BrokerInfo{}, err
	}
	switch {
	case d.NodeID < 0:
		return BrokerInfo{}, fmt.Errorf("negative node id %d", d.NodeID)
	case d.Host == "":
		return BrokerInfo{}, errors.New("registration without a host")
	case d.Port < 0 || d.Port > 65535:
		return BrokerInfo{}, fmt.Errorf("port %d out of range", d.Port)
	}
	return BrokerInfo{NodeID: d.NodeID, Host: d.Host, Port: d.Port, Rack: d.Rack,
		Incarnation: d.Incarnation, ShuttingDown: d.ShuttingDown}, nil
}

func decodeTopic(value []byte) (topicDoc, [16]byte, error) {
	var d topicDoc
	var id [16]byte
	if err := strictJSON(value, &d); err != nil {
		return d, id, err
	}
	var req struct {
		Partitions *int32 `json:"partitions"`
	}
	json.Unmarshal(value, &req) // it decoded above
	if err := requireFields(field{"partitions", req.Partitions != nil}); err != nil {
		return d, id, err
	}
	id, err := parseTopicID(d.ID)
	if err != nil {
		return d, id, err
	}
	switch {
	case d.Partitions < 0 || d.Partitions > maxPartitions:
		return d, id, fmt.Errorf("partition count %d out of range", d.Partitions)
	case d.Version == 0:
		return d, id, errors.New("topic version 0 (versions start at 1)")
	}
	if d.Configs == nil {
		d.Configs = map[string]string{}
	}
	return d, id, nil
}

// decodePartition decodes partition p's state and checks what fencing relies
// on: the number matches the key, epochs are not negative, node ids are real
// (or -1 for no leader) and no replica or ISR member is listed twice.
func decodePartition(value []byte, p int32) (PartitionMeta, error) {
	var m PartitionMeta
	if err := strictJSON(value, &m); err != nil {
		return m, err
	}
	var req struct {
		Partition      *int32   `json:"partition"`
		Leader         *int32   `json:"leader"`
		LeaderEpoch    *int32   `json:"leader_epoch"`
		PartitionEpoch *int32   `json:"partition_epoch"`
		Replicas       *[]int32 `json:"replicas"`
		ISR            *[]int32 `json:"isr"`
	}
	json.Unmarshal(value, &req) // it decoded above
	if err := requireFields(field{"partition", req.Partition != nil},
		field{"leader", req.Leader != nil}, field{"leader_epoch", req.LeaderEpoch != nil},
		field{"partition_epoch", req.PartitionEpoch != nil}, field{"replicas", req.Replicas != nil},
		field{"isr", req.ISR != nil}); err != nil {
		return m, err
	}
	switch {
	case m.Partition != p:
		return m, fmt.Errorf("state of partition %d under the key of partition %d", m.Partition, p)
	case m.Leader < -1:
		return m, fmt.Errorf("leader %d", m.Leader)
	case m.LeaderEpoch < 0 || m.PartitionEpoch < 0:
		return m, fmt.Errorf("negative epoch (leader %d, partition %d)", m.LeaderEpoch, m.PartitionEpoch)
	}
	if err := checkNodeSet("replicas", m.Replicas); err != nil {
		return m, err
	}
	if err := checkNodeSet("isr", m.ISR); err != nil {
		return m, err
	}
	if m.Replicas == nil {
		m.Replicas = []int32{}
	}
	if m.ISR == nil {
		m.ISR = []int32{}
	}
	return m, nil
}

func checkNodeSet(name string, ids []int32) error {
	seen := make(map[int32]bool, len(ids))
	for _, id := range ids {
		if id < 0 {
			return fmt.Errorf("%s holds node id %d", name, id)
		}
		if seen[id] {
			return fmt.Errorf("%s lists node %d twice", name, id)
		}
		seen[id] = true
	}
	return nil
}

func decodeProducerID(value []byte) (int64, error) {
	s := string(value)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("next producer id %q is not a non-negative decimal", truncate(s))
	}
	return n, nil
}

// parseID parses a non-negative int32 written the one way strconv writes it,
// so "01" and "+1" cannot alias the key of 1.
func parseID(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q is not a non-negative decimal", truncate(s))
	}
	return int32(n), nil
}

func parseTopicID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) != 32 || strings.ToLower(s) != s {
		return id, fmt.Errorf("topic id %q is not 32 lower-case hex digits", truncate(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("topic id %q is not 32 lower-case hex digits", truncate(s))
	}
	if id == ([16]byte{}) {
		return id, errors.New("zero topic id")
	}
	return id, nil
}

// validTopicName is Kafka's rule (Topic.validate): 1-249 characters of
// [a-zA-Z0-9._-], and neither "." nor "..". It also keeps names from holding
// the '/' that separates key parts.
func validTopicName(s string) bool {
	if s == "" || len(s) > maxTopicNameLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validClusterID accepts what Kafka's cluster ids look like (22 characters
// of URL-safe base64) and a little more, bounded.
func validClusterID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// truncate keeps error messages about garbage short.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
