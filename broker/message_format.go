package broker

import (
	"fmt"
	"log/slog"
	"strings"
)

// message.format.version (topic) and log.message.format.version (broker):
// deprecated since Kafka 3.0 (KIP-724), where a broker on inter-broker
// protocol 3.0+ accepts the setting, shows it in DescribeConfigs and
// ignores it. Tools written for 3.x still set it, so Strata does the same
// for every version whose record format is v2 (0.11.0 and later). Older
// versions ask for message format v0/v1, which Strata cannot store or serve
// (it keeps record batch v2 bytes only), so they are refused: INVALID_CONFIG
// on CreateTopics/AlterConfigs, a start-up error for the broker setting.

// messageFormatDefault is Kafka 3.x's default (IBP 3.0-IV1).
const messageFormatDefault = "3.0-IV1"

// knownVersions are Kafka's MetadataVersion names (the short form and how
// many -IVn sub-versions each has), oldest first; firstV2 is the index of
// the first with record format v2.
var knownVersions = []struct {
	short string
	ivs   int // IV0..IV(ivs-1); 0 when the version has no IV names
}{
	{"0.8.0", 0}, {"0.8.1", 0}, {"0.8.2", 0}, {"0.9.0", 0},
	{"0.10.0", 2}, {"0.10.1", 3}, {"0.10.2", 1},
	{"0.11.0", 3}, {"1.0", 1}, {"1.1", 1},
	{"2.0", 2}, {"2.1", 3}, {"2.2", 2}, {"2.3", 2}, {"2.4", 2}, {"2.5", 1}, {"2.6", 1}, {"2.7", 3}, {"2.8", 2},
	{"3.0", 2}, {"3.1", 1}, {"3.2", 1}, {"3.3", 4}, {"3.4", 1}, {"3.5", 3}, {"3.6", 3}, {"3.7", 5}, {"3.8", 1}, {"3.9", 1},
	{"4.0", 4},
}

const firstV2 = 7 // 0.11.0

// parseMessageFormat finds a version as Kafka's MetadataVersion
// .fromVersionString does: the short version ("2.8", "0.11.0"), a full one
// ("2.8-IV1"), or a patch release, whose extra segment is dropped ("2.8.1",
// "0.10.2.1"). It returns the index into knownVersions.
func parseMessageFormat(s string) (int, error) {
	segs := strings.Split(s, ".")
	n := 2
	if strings.HasPrefix(s, "0.") {
		n = 3
	}
	key := s
	if len(segs) > n {
		key = strings.Join(segs[:n], ".")
	}
	short, iv, hasIV := strings.Cut(key, "-")
	for i, v := range knownVersions {
		if v.short != short {
			continue
		}
		if !hasIV {
			return i, nil
		}
		for j := 0; j < v.ivs; j++ {
			if iv == fmt.Sprintf("IV%d", j) {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("version %q is not a valid Kafka version (examples: 0.11.0, 2.8, 3.0-IV1)", s)
}

// messageFormatVersion validates message.format.version.
func messageFormatVersion(s string) error {
	i, err := parseMessageFormat(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	if i < firstV2 {
		return fmt.Errorf("version %s means message format v0/v1 (before 0.11.0); Strata stores only record batch v2, so the version must be 0.11.0 or later", s)
	}
	return nil
}

// warnDeprecatedConfigs logs a topic override of message.format.version,
// which is accepted and has no effect.
func warnDeprecatedConfigs(log *slog.Logger, topic string, configs map[string]string) {
	if v, ok := configs["message.format.version"]; ok {
		log.Warn("topic config message.format.version is deprecated and ignored: Strata stores only record batch v2", "topic", topic, "value", v)
	}
}

// warnDeprecatedSettings logs the broker default log.message.format.version
// at start: accepted (a v2 version, or start-up failed) and ignored.
func warnDeprecatedSettings(log *slog.Logger, s brokerSettings) {
	if v, ok := s.raw["log.message.format.version"]; ok {
		log.Warn("broker config log.message.format.version is deprecated and ignored: Strata stores only record batch v2", "value", v)
	}
}
