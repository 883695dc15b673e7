package broker

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/localstore"
)

// configType matches Kafka's ConfigDef types, reported by DescribeConfigs v3+.
type configType int8

const (
	typeBoolean configType = 1
	typeString  configType = 2
	typeInt     configType = 3
	typeShort   configType = 4
	typeLong    configType = 5
	typeDouble  configType = 6
	typeList    configType = 7
)

// topicConfigDef is one topic-level config: its Kafka name, the broker config
// that supplies its default (Kafka's "synonym"), the built-in default, and a
// validator.
type topicConfigDef struct {
	name          string
	brokerSynonym string
	def           string
	typ           configType
	validate      func(string) error
	doc           string
}

func longAtLeast(min int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", s)
		}
		if v < min {
			return fmt.Errorf("%d is below the minimum %d", v, min)
		}
		return nil
	}
}

func intBetween(min, max int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil {
			return fmt.Errorf("not a 32-bit number: %q", s)
		}
		if v < min || v > max {
			return fmt.Errorf("%d is outside [%d, %d]", v, min, max)
		}
		return nil
	}
}

func oneOf(values ...string) func(string) error {
	return func(s string) error {
		for _, v := range values {
			if s == v {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(values, ", "))
	}
}

func isBool(s string) error {
	if s != "true" && s != "false" {
		return fmt.Errorf("%q is not true or false", s)
	}
	return nil
}

func doubleBetween(min, max float64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < min || v > max {
			return fmt.Errorf("%q is not a number in [%g, %g]", s, min, max)
		}
		return nil
	}
}

func cleanupPolicy(s string) error {
	parts := strings.Split(s, ",")
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p != "delete" && p != "compact" {
			return fmt.Errorf("%q is not a valid cleanup.policy (delete, compact or both)", s)
		}
	}
	return nil
}

const maxLong = "9223372036854775807"

// topicConfigDefs lists the topic configs Strata accepts, with Kafka's names and
// defaults. Unknown names are rejected with INVALID_CONFIG, as Kafka does.
var topicConfigDefs = []topicConfigDef{
	{"cleanup.policy", "log.cleanup.policy", "delete", typeList, cleanupPolicy, "delete or compact old segments"},
	{"compression.type", "compression.type", "producer", typeString, oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"), "only 'producer' (keep the client's codec) is applied; Strata stores batches as produced"},
	{"delete.retention.ms", "log.cleaner.delete.retention.ms", "86400000", typeLong, longAtLeast(0), "how long tombstones are kept in compacted topics"},
	{"file.delete.delay.ms", "log.segment.delete.delay.ms", "60000", typeLong, longAtLeast(0), "delay before deleting a file from disk"},
	{"flush.messages", "log.flush.interval.messages", maxLong, typeLong, longAtLeast(1), "fsync after this many messages"},
	{"flush.ms", "log.flush.interval.ms", maxLong, typeLong, longAtLeast(0), "fsync when this long since the last flush"},
	{"index.interval.bytes", "log.index.interval.bytes", "4096", typeInt, intBetween(0, math.MaxInt32), "bytes between offset index entries"},
	{"local.retention.bytes", "log.local.retention.bytes", "-2", typeLong, longAtLeast(-2), "local size retention for tiered topics (-2: retention.bytes)"},
	{"local.retention.ms", "log.local.retention.ms", "-2", typeLong, longAtLeast(-2), "local time retention for tiered topics (-2: retention.ms)"},
	{"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", maxLong, typeLong, longAtLeast(1), "longest a record may stay uncompacted"},
	{"max.message.bytes", "message.max.bytes", "1048588", typeInt, intBetween(0, math.MaxInt32), "largest record batch accepted"},
	{"message.format.version", "log.message.format.version", messageFormatDefault, typeString, messageFormatVersion, "[deprecated] accepted for record format v2 (0.11.0 and later) and ignored: Strata stores only record batch v2"},
	{"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", "3600000", typeLong, longAtLeast(0), "how far ahead of the broker's clock a CreateTime may be (KIP-937)"},
	{"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", maxLong, typeLong, longAtLeast(0), "how far behind the broker's clock a CreateTime may be (KIP-937)"},
	{"message.timestamp.type", "log.message.timestamp.type", "CreateTime", typeString, oneOf("CreateTime", "LogAppendTime"), "CreateTime keeps the producer's timestamp; LogAppendTime stamps the broker's"},
	{"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", "0.5", typeDouble, doubleBetween(0, 1), "dirty fraction that triggers compaction"},
	{"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "0", typeLong, longAtLeast(0), "minimum age before a record may be compacted"},
	{"min.insync.replicas", "min.insync.replicas", "1", typeInt, intBetween(1, math.MaxInt32), "replicas that must acknowledge an acks=all write"},
	{"preallocate", "log.preallocate", "false", typeBoolean, isBool, "accepted for compatibility; Strata does not preallocate"},
	{"remote.log.copy.disable", "", "false", typeBoolean, isBool, "stop copying new segments to remote storage (KIP-950)"},
	{"remote.log.delete.on.disable", "", "false", typeBoolean, isBool, "delete remote data when tiering is turned off (KIP-950)"},
	{"remote.storage.enable", "", "false", typeBoolean, isBool, "copy sealed segments to remote storage"},
	{"retention.bytes", "log.retention.bytes", "-1", typeLong, longAtLeast(-1), "size retention for the whole log (-1: unlimited)"},
	{"retention.ms", "log.retention.ms", "604800000", typeLong, longAtLeast(-1), "time retention for the whole log (-1: unlimited)"},
	{"segment.bytes", "log.segment.bytes", "1073741824", typeInt, intBetween(14, math.MaxInt32), "roll the active segment at this size"},
	{"segment.index.bytes", "log.index.size.max.bytes", "10485760", typeInt, intBetween(8, math.MaxInt32), "maximum offset index size; roll when full"},
	{"segment.jitter.ms", "log.roll.jitter.ms", "0", typeLong, longAtLeast(0), "random jitter subtracted from segment.ms"},
	{"segment.ms", "log.roll.ms", "604800000", typeLong, longAtLeast(1), "roll the active segment when its first record is this old"},
	{"unclean.leader.election.enable", "unclean.leader.election.enable", "false", typeBoolean, isBool, "allow an out-of-sync replica to become leader"},
}

var topicConfigByName = func() map[string]*topicConfigDef {
	m := make(map[string]*topicConfigDef, len(topicConfigDefs))
	for i := range topicConfigDefs {
		m[topicConfigDefs[i].name] = &topicConfigDefs[i]
	}
	return m
}()

// validateTopicConfigs checks names and values, returning a Kafka-style message.
func validateTopicConfigs(configs map[string]string) error {
	names := make([]string, 0, len(configs))
	for k := range configs {
		names = append(names, k)
	}
	sort.Strings(names)
	if configs["remote.storage.enable"] == "true" && strings.Contains(configs["cleanup.policy"], "compact") {
		// As Kafka (KIP-405): compacted topics cannot be tiered.
		return fmt.Errorf("remote.storage.enable=true is not supported with cleanup.policy=%s", configs["cleanup.policy"])
	}
	for _, k := range names {
		def, ok := topicConfigByName[k]
		if !ok {
			return fmt.Errorf("unknown topic config name: %s", k)
		}
		if err := def.validate(configs[k]); err != nil {
			return fmt.Errorf("invalid value for %s: %v", k, err)
		}
	}
	return nil
}

// topicConfig is the resolved, typed view of a topic's configs: topic
// overrides, then broker defaults, then built-in defaults.
type topicConfig struct {
	raw                 map[string]string // effective value of every def
	source              map[string]configSource
	maxMessageBytes     int32
	logAppendTime       bool
	timestampBeforeMax  int64
	timestampAfterMax   int64
	minInsyncReplicas   int32
	compact, deleteKind bool
	// Tiered storage (KIP-405, KIP-950).
	remoteStorage      bool
	remoteCopyDisabled bool
	retentionMs        int64
	retentionBytes     int64
	localRetentionMs   int64
	localRetentionByte int64
	// part is what each of the topic's partitions is configured with.
	part *partition.Config
}

type configSource int8

// Kafka's DescribeConfigs source values.
const (
	sourceTopic         configSource = 1
	sourceStaticBroker  configSource = 4
	sourceDefault       configSource = 5
	sourceDynamicBroker configSource = 2
)

func (b *Broker) resolveTopicConfig(overrides map[string]string) *topicConfig {
	tc := &topicConfig{raw: map[string]string{}, source: map[string]configSource{}}
	for _, d := range topicConfigDefs {
		v, src := d.def, sourceDefault
		if bv, ok := b.settings.raw[d.brokerSynonym]; ok && d.brokerSynonym != "" {
			v, src = bv, sourceStaticBroker
		}
		if tv, ok := overrides[d.name]; ok {
			v, src = tv, sourceTopic
		}
		tc.raw[d.name], tc.source[d.name] = v, src
	}
	n := func(name string) int64 {
		v, _ := strconv.ParseInt(tc.raw[name], 10, 64)
		return v
	}
	tc.maxMessageBytes = int32(n("max.message.bytes"))
	tc.logAppendTime = tc.raw["message.timestamp.type"] == "LogAppendTime"
	tc.timestampBeforeMax = n("message.timestamp.before.max.ms")
	tc.timestampAfterMax = n("message.timestamp.after.max.ms")
	tc.minInsyncReplicas = int32(n("min.insync.replicas"))
	for _, p := range strings.Split(tc.raw["cleanup.policy"], ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			tc.compact = true
		case "delete":
			tc.deleteKind = true
		}
	}
	tc.remoteStorage = tc.raw["remote.storage.enable"] == "true"
	tc.remoteCopyDisabled = tc.raw["remote.log.copy.disable"] == "true"
	tc.retentionMs, tc.retentionBytes = n("retention.ms"), n("retention.bytes")
	tc.localRetentionMs, tc.localRetentionByte = n("local.retention.ms"), n("local.retention.bytes")
	flushMs := n("flush.ms")
	store := localstore.Config{
		SegmentBytes:       n("segment.bytes"),
		SegmentMs:          msDuration(n("segment.ms")),
		IndexIntervalBytes: int(n("index.interval.bytes")),
		SegmentIndexBytes:  int(n("segment.index.bytes")),
		FlushMessages:      n("flush.messages"),
		Now:                b.opts.Clock.Now,
		Logger:             b.log,
	}
	if flushMs != math.MaxInt64 {
		store.FlushMs = msDuration(flushMs)
	}
	tc.part = &partition.Config{
		MaxMessageBytes:    tc.maxMessageBytes,
		LogAppendTime:      tc.logAppendTime,
		TimestampBeforeMax: tc.timestampBeforeMax,
		TimestampAfterMax:  tc.timestampAfterMax,
		MinInsyncReplicas:  tc.minInsyncReplicas,
		Compacted:          tc.compact,
		Store:              store,
	}
	return tc
}

func msDuration(ms int64) time.Duration {
	if ms > int64(math.MaxInt64/time.Millisecond) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ms) * time.Millisecond
}
