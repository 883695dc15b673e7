package broker

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// brokerSettings are the broker-level configs Strata understands, typed. raw
// keeps every setting given (including topic-default synonyms such as
// log.segment.bytes) for DescribeConfigs and topic config resolution.
type brokerSettings struct {
	raw                   map[string]string
	numPartitions         int32
	defaultReplication    int16
	autoCreateTopics      bool
	socketRequestMaxBytes int32
	offsetsTopicParts     int32
	offsetsRetentionMin   int64
	replicaLagTimeMaxMs   int64

	// group coordinator (group_*.go)
	groupMinSessionMs       int64
	groupMaxSessionMs       int64
	groupInitialDelayMs     int64
	offsetsRetentionCheckMs int64
	groupLagMetrics         string // group.lag.metrics: partition, group or off (broker/group/metrics.go)

	// tiered storage (tiering.go)
	remoteTaskIntervalMs int64
	remoteChunkBytes     int64
	remoteReaderThreads  int
	remoteCacheBytes     int64
	remoteReadAheadBytes int64 // remote.log.read.ahead.bytes: fetched-ahead chunks, all readers (-1 off)

	retentionCheckMs int64 // log.retention.check.interval.ms (retention.go)

	// cluster mode (controller.go, replication.go)
	rack                    string // broker.rack
	sessionTimeoutMs        int64  // broker.session.timeout.ms
	heartbeatIntervalMs     int64  // broker.heartbeat.interval.ms
	offsetsTopicReplication int16  // offsets.topic.replication.factor
	replicaFetchMaxBytes    int32  // replica.fetch.max.bytes (per partition)
	replicaFetchRespMax     int32  // replica.fetch.response.max.bytes
	replicaFetchWaitMaxMs   int32  // replica.fetch.wait.max.ms
	fetchSessionSlots       int    // max.incremental.fetch.session.cache.slots (KIP-227, fetch_session.go)
	uncleanElection         bool   // unclean.leader.election.enable (broker default)

	// transaction coordinator (txn_*.go)
	txnMaxTimeoutMs      int64 // transaction.max.timeout.ms
	txnIDExpirationMs    int64 // transactional.id.expiration.ms
	txnStateParts        int32 // transaction.state.log.num.partitions
	txnStateReplication  int16 // transaction.state.log.replication.factor
	txnStateMinISR       int32 // transaction.state.log.min.isr
	txnAbortCheckMs      int64 // transaction.abort.timed.out.transaction.cleanup.interval.ms
	txnRemoveExpiredMs   int64 // transaction.remove.expired.transaction.cleanup.interval.ms
	txnStateSegmentBytes int64 // transaction.state.log.segment.bytes
}

// brokerConfigDef is a broker config with its default.
type brokerConfigDef struct {
	name, def string
	typ       configType
	validate  func(string) error
}

var brokerConfigDefs = []brokerConfigDef{
	{"auto.create.topics.enable", "true", typeBoolean, isBool},
	{"default.replication.factor", "1", typeInt, intBetween(1, 32767)},
	{"num.partitions", "1", typeInt, intBetween(1, 1<<20)},
	{"offsets.retention.minutes", "10080", typeInt, intBetween(1, 1<<31-1)},
	{"offsets.topic.num.partitions", "50", typeInt, intBetween(1, 1<<20)},
	{"replica.lag.time.max.ms", "30000", typeLong, longAtLeast(1)},
	{"socket.request.max.bytes", "104857600", typeInt, intBetween(1024, 1<<31-1)},
	{"group.initial.rebalance.delay.ms", "3000", typeInt, intBetween(0, 1<<31-1)},
	{"log.retention.check.interval.ms", "300000", typeLong, longAtLeast(1)},
	{"remote.log.manager.task.interval.ms", "30000", typeLong, longAtLeast(1)},
	{"remote.fetch.chunk.bytes", "4194304", typeInt, intBetween(65536, 1<<30)},
	{"remote.log.reader.threads", "10", typeInt, intBetween(1, 1024)},
	{"remote.log.cache.bytes", "268435456", typeLong, longAtLeast(0)},
	// Strata's: the memory remote readers may hold beside the cache (chunks
	// in flight and fetched ahead of consumers); Kafka has no read-ahead.
	{"remote.log.read.ahead.bytes", "134217728", typeLong, longAtLeast(-1)},
	{"group.min.session.timeout.ms", "6000", typeInt, intBetween(1, 1<<31-1)},
	{"group.max.session.timeout.ms", "1800000", typeInt, intBetween(1, 1<<31-1)},
	{"offsets.retention.check.interval.ms", "600000", typeLong, longAtLeast(1)},
	{"broker.rack", "", typeString, func(string) error { return nil }},
	{"broker.session.timeout.ms", "2500", typeInt, intBetween(100, 1<<31-1)},
	{"broker.heartbeat.interval.ms", "500", typeInt, intBetween(10, 1<<31-1)},
	{"offsets.topic.replication.factor", "3", typeShort, intBetween(1, 32767)},
	{"replica.fetch.max.bytes", "1048576", typeInt, intBetween(1024, 1<<31-1)},
	{"replica.fetch.response.max.bytes", "10485760", typeInt, intBetween(1024, 1<<31-1)},
	{"replica.fetch.wait.max.ms", "500", typeInt, intBetween(1, 1<<31-1)},
	{"group.lag.metrics", "partition", typeString, oneOf("partition", "group", "off")},
	{"transaction.max.timeout.ms", "900000", typeInt, intBetween(1, 1<<31-1)},
	{"transactional.id.expiration.ms", "604800000", typeInt, intBetween(1, 1<<31-1)},
	{"transaction.state.log.num.partitions", "50", typeInt, intBetween(1, 1<<20)},
	{"transaction.state.log.replication.factor", "3", typeShort, intBetween(1, 32767)},
	{"transaction.state.log.min.isr", "2", typeInt, intBetween(1, 32767)},
	{"transaction.abort.timed.out.transaction.cleanup.interval.ms", "10000", typeInt, intBetween(1, 1<<31-1)},
	{"transaction.remove.expired.transaction.cleanup.interval.ms", "3600000", typeInt, intBetween(1, 1<<31-1)},
	{"transaction.state.log.segment.bytes", "104857600", typeInt, intBetween(1<<20, 1<<31-1)},
	{"max.incremental.fetch.session.cache.slots", "1000", typeInt, intBetween(0, 1<<31-1)},
}

var brokerConfigByName = func() map[string]*brokerConfigDef {
	m := map[string]*brokerConfigDef{}
	for i := range brokerConfigDefs {
		m[brokerConfigDefs[i].name] = &brokerConfigDefs[i]
	}
	return m
}()

// topicDefaultSynonyms maps broker names that set topic defaults to the topic
// config whose validator applies.
var topicDefaultSynonyms = func() map[string]*topicConfigDef {
	m := map[string]*topicConfigDef{}
	for i := range topicConfigDefs {
		if s := topicConfigDefs[i].brokerSynonym; s != "" {
			m[s] = &topicConfigDefs[i]
		}
	}
	return m
}()

// ignoredBrokerConfigs are accepted and reported but have no effect yet; naming
// them keeps a Kafka server.properties from failing to load.
var ignoredBrokerConfigs = map[string]bool{
	"node.id": true, "broker.id": true, "log.dirs": true, "log.dir": true, "listeners": true,
	"advertised.listeners": true, "log.retention.hours": true, "log.retention.minutes": true,
	"log.roll.hours": true,
	"metrics.listen": true,
}

func parseBrokerSettings(in map[string]string) (brokerSettings, error) {
	s := brokerSettings{raw: map[string]string{}}
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := strings.TrimSpace(in[k])
		switch {
		case brokerConfigByName[k] != nil:
			if err := brokerConfigByName[k].validate(v); err != nil {
				return s, fmt.Errorf("config %s: %v", k, err)
			}
		case topicDefaultSynonyms[k] != nil:
			if err := topicDefaultSynonyms[k].validate(v); err != nil {
				return s, fmt.Errorf("config %s: %v", k, err)
			}
		case ignoredBrokerConfigs[k]:
		default:
			return s, fmt.Errorf("unknown config %q", k)
		}
		s.raw[k] = v
	}
	// Kafka's precedence: log.retention.ms, then .minutes, then .hours.
	if _, ok := s.raw["log.retention.ms"]; !ok {
		for _, u := range []struct {
			name string
			ms   int64
		}{{"log.retention.minutes", 60000}, {"log.retention.hours", 3600000}} {
			if v, ok := s.raw[u.name]; ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < -1 {
					return s, fmt.Errorf("config %s: %q is not a number >= -1", u.name, v)
				}
				if n > 0 {
					n *= u.ms
				}
				s.raw["log.retention.ms"] = strconv.FormatInt(n, 10)
				break
			}
		}
	}
	get := func(name string) string {
		if v, ok := s.raw[name]; ok {
			return v
		}
		return brokerConfigByName[name].def
	}
	atoi := func(name string) int64 {
		v, _ := strconv.ParseInt(get(name), 10, 64)
		return v
	}
	s.numPartitions = int32(atoi("num.partitions"))
	s.defaultReplication = int16(atoi("default.replication.factor"))
	s.autoCreateTopics = get("auto.create.topics.enable") == "true"
	s.socketRequestMaxBytes = int32(atoi("socket.request.max.bytes"))
	s.offsetsTopicParts = int32(atoi("offsets.topic.num.partitions"))
	s.offsetsRetentionMin = atoi("offsets.retention.minutes")
	s.groupMinSessionMs = atoi("group.min.session.timeout.ms")
	s.groupMaxSessionMs = atoi("group.max.session.timeout.ms")
	s.groupInitialDelayMs = atoi("group.initial.rebalance.delay.ms")
	s.offsetsRetentionCheckMs = atoi("offsets.retention.check.interval.ms")
	s.groupLagMetrics = get("group.lag.metrics")
	s.replicaLagTimeMaxMs = atoi("replica.lag.time.max.ms")
	s.remoteTaskIntervalMs = atoi("remote.log.manager.task.interval.ms")
	s.retentionCheckMs = atoi("log.retention.check.interval.ms")
	s.remoteChunkBytes = atoi("remote.fetch.chunk.bytes")
	s.remoteReaderThreads = int(atoi("remote.log.reader.threads"))
	s.remoteCacheBytes = atoi("remote.log.cache.bytes")
	s.remoteReadAheadBytes = atoi("remote.log.read.ahead.bytes")
	s.rack = get("broker.rack")
	s.sessionTimeoutMs = atoi("broker.session.timeout.ms")
	s.heartbeatIntervalMs = atoi("broker.heartbeat.interval.ms")
	s.offsetsTopicReplication = int16(atoi("offsets.topic.replication.factor"))
	s.replicaFetchMaxBytes = int32(atoi("replica.fetch.max.bytes"))
	s.replicaFetchRespMax = int32(atoi("replica.fetch.response.max.bytes"))
	s.replicaFetchWaitMaxMs = int32(atoi("replica.fetch.wait.max.ms"))
	s.fetchSessionSlots = int(atoi("max.incremental.fetch.session.cache.slots"))
	s.uncleanElection = s.raw["unclean.leader.election.enable"] == "true"
	s.txnMaxTimeoutMs = atoi("transaction.max.timeout.ms")
	s.txnIDExpirationMs = atoi("transactional.id.expiration.ms")
	s.txnStateParts = int32(atoi("transaction.state.log.num.partitions"))
	s.txnStateReplication = int16(atoi("transaction.state.log.replication.factor"))
	s.txnStateMinISR = int32(atoi("transaction.state.log.min.isr"))
	s.txnAbortCheckMs = atoi("transaction.abort.timed.out.transaction.cleanup.interval.ms")
	s.txnRemoveExpiredMs = atoi("transaction.remove.expired.transaction.cleanup.interval.ms")
	s.txnStateSegmentBytes = atoi("transaction.state.log.segment.bytes")
	if 2*s.heartbeatIntervalMs > s.sessionTimeoutMs {
		return s, fmt.Errorf("config broker.heartbeat.interval.ms %d must be at most half of broker.session.timeout.ms %d", s.heartbeatIntervalMs, s.sessionTimeoutMs)
	}
	return s, nil
}

// IsBrokerSetting reports whether name is a broker config Strata accepts
// (typed, a topic default such as log.segment.bytes, or accepted and ignored).
// serve uses it to tell STRATA_* configs from other STRATA_* variables.
func IsBrokerSetting(name string) bool {
	return brokerConfigByName[name] != nil || topicDefaultSynonyms[name] != nil || ignoredBrokerConfigs[name] ||
		name == "log.retention.minutes" || name == "log.retention.hours"
}

// SessionTimeouts are broker.session.timeout.ms and
// broker.heartbeat.interval.ms from broker configs, validated: serve hands
// them to the Consul coordinator before the broker exists.
func SessionTimeouts(in map[string]string) (session, heartbeat time.Duration, err error) {
	s, err := parseBrokerSettings(in)
	if err != nil {
		return 0, 0, err
	}
	return time.Duration(s.sessionTimeoutMs) * time.Millisecond, time.Duration(s.heartbeatIntervalMs) * time.Millisecond, nil
}
