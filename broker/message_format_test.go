package broker_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// syncBuffer is a log sink tests read while the broker writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func describeTopicConfig(t *testing.T, adm *kadm.Client, topic, name string) kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(testenv.Context(t, 10*time.Second), topic)
	if err != nil || rcs[0].Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rcs)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == name {
			return c
		}
	}
	t.Fatalf("%s: %s not described", topic, name)
	return kadm.Config{}
}

// message.format.version as Kafka 3.x takes it: a deprecated no-op for any
// record-batch-v2 version (0.11.0 on), shown by DescribeConfigs and logged;
// pre-0.11 versions refused with INVALID_CONFIG, since Strata stores only v2.
func TestMessageFormatVersionTopicConfig(t *testing.T) {
	logs := &syncBuffer{}
	b := testenv.StartBroker(t, broker.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	adm := kadm.NewClient(newClient(t, b.Addr))
	ctx := testenv.Context(t, 30*time.Second)

	for _, v := range []string{"0.11.0", "0.11.0-IV2", "1.0", "2.8", "2.8.1", "3.0-IV1", "3.7-IV4"} {
		name := "mfv-" + strings.NewReplacer(".", "_").Replace(v)
		res, err := adm.CreateTopics(ctx, 1, 1, map[string]*string{"message.format.version": strp(v)}, name)
		if err != nil || res[name].Err != nil {
			t.Fatalf("create with message.format.version=%s: %v %v", v, err, res[name].Err)
		}
		if c := describeTopicConfig(t, adm, name, "message.format.version"); c.MaybeValue() != v || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Fatalf("%s: described as %q from %v", name, c.MaybeValue(), c.Source)
		}
	}
	if !strings.Contains(logs.String(), "message.format.version is deprecated and ignored") {
		t.Fatalf("no deprecation log line:\n%s", logs.String())
	}

	for _, v := range []string{"0.10.2", "0.9.0", "0.8.2", "0.10.0-IV1", "0.10.2.1"} {
		res, err := adm.CreateTopics(ctx, 1, 1, map[string]*string{"message.format.version": strp(v)}, "mfv-old")
		if err != nil {
			t.Fatal(err)
		}
		var ke *kerr.Error
		if r := res["mfv-old"]; !errors.As(r.Err, &ke) || ke != kerr.InvalidConfig || !strings.Contains(r.ErrMessage, "record batch v2") {
			t.Fatalf("create with %s: %v %q, want INVALID_CONFIG naming record batch v2", v, r.Err, r.ErrMessage)
		}
	}
	for _, v := range []string{"5.0", "2.8-IV7", "latest", "", "0.11"} {
		res, _ := adm.CreateTopics(ctx, 1, 1, map[string]*string{"message.format.version": strp(v)}, "mfv-bad")
		if r := res["mfv-bad"]; !errors.Is(r.Err, kerr.InvalidConfig) || !strings.Contains(r.ErrMessage, "not a valid Kafka version") {
			t.Fatalf("create with %q: %v %q", v, r.Err, r.ErrMessage)
		}
	}

	// A topic without the override shows Kafka 3.x's default; altering it
	// to an old version is refused and changes nothing.
	createTopic(t, b.Addr, "mfv-plain", 1, nil)
	if c := describeTopicConfig(t, adm, "mfv-plain", "message.format.version"); c.MaybeValue() != "3.0-IV1" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("default: %q from %v", c.MaybeValue(), c.Source)
	}
	alter := func(v string) kadm.AlterConfigsResponse {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.format.version", Value: strp(v)}}, "mfv-plain")
		if err != nil {
			t.Fatal(err)
		}
		return rs[0]
	}
	if r := alter("0.10.1"); !errors.Is(r.Err, kerr.InvalidConfig) || !strings.Contains(r.ErrMessage, "0.11.0 or later") {
		t.Fatalf("alter to 0.10.1: %v %q", r.Err, r.ErrMessage)
	}
	if r := alter("2.1"); r.Err != nil {
		t.Fatalf("alter to 2.1: %v", r.Err)
	}
	if c := describeTopicConfig(t, adm, "mfv-plain", "message.format.version"); c.MaybeValue() != "2.1" {
		t.Fatalf("after alter: %q", c.MaybeValue())
	}
	// It is a no-op: records still go in and come out as v2 batches.
	if err := newClient(t, b.Addr).ProduceSync(ctx, &kgo.Record{Topic: "mfv-plain", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if recs := consumeAll(t, b.Addr, "mfv-plain", 1); string(recs[0].Value) != "v" {
		t.Fatalf("read back %q", recs[0].Value)
	}
}

// The broker synonym log.message.format.version: a v2 version is accepted
// (logged, shown as the topics' static broker default), an older one stops
// the broker from starting.
func TestLogMessageFormatVersionBrokerSetting(t *testing.T) {
	_, err := broker.New(broker.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Settings: map[string]string{"log.message.format.version": "0.10.2"}})
	if err == nil || !strings.Contains(err.Error(), "log.message.format.version") || !strings.Contains(err.Error(), "record batch v2") {
		t.Fatalf("broker with log.message.format.version=0.10.2: %v", err)
	}
	logs := &syncBuffer{}
	b := testenv.StartBroker(t, broker.Options{Settings: map[string]string{"log.message.format.version": "2.8"}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if !strings.Contains(logs.String(), "log.message.format.version is deprecated and ignored") {
		t.Fatalf("no start-up log line:\n%s", logs.String())
	}
	createTopic(t, b.Addr, "mfv-broker", 1, nil)
	adm := kadm.NewClient(newClient(t, b.Addr))
	if c := describeTopicConfig(t, adm, "mfv-broker", "message.format.version"); c.MaybeValue() != "2.8" || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
		t.Fatalf("topic default from the broker: %q from %v", c.MaybeValue(), c.Source)
	}
}
