package main

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseConfigs(t *testing.T) {
	got, err := parseConfigs([]string{"retention.ms=1000", "cleanup.policy=compact,delete", "x.y=a=b", "empty="})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"retention.ms": "1000", "cleanup.policy": "compact,delete", "x.y": "a=b", "empty": ""}
	if len(got) != len(want) {
		t.Fatalf("got %d configs, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] == nil || *got[k] != v {
			t.Errorf("config %s = %v, want %q", k, got[k], v)
		}
	}
	for _, bad := range [][]string{{"novalue"}, {"=v"}, {"a=1", "a=2"}} {
		_, err := parseConfigs(bad)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseConfigs(%q) = %v, want usage error", bad, err)
		}
	}
}

func TestSplitKey(t *testing.T) {
	for _, tc := range []struct {
		line, sep, key, value string
		wantErr               bool
	}{
		{"k:v", ":", "k", "v", false},
		{"k:v:w", ":", "k", "v:w", false},
		{":v", ":", "", "v", false},
		{"k::v", "::", "k", "v", false},
		{"plain", "", "", "plain", false},
		{"nosep", ":", "", "", true},
	} {
		k, v, err := splitKey([]byte(tc.line), tc.sep)
		if (err != nil) != tc.wantErr {
			t.Errorf("splitKey(%q, %q) error = %v, wantErr %v", tc.line, tc.sep, err, tc.wantErr)
			continue
		}
		if string(k) != tc.key || string(v) != tc.value {
			t.Errorf("splitKey(%q, %q) = %q, %q; want %q, %q", tc.line, tc.sep, k, v, tc.key, tc.value)
		}
	}
	if k, _, _ := splitKey([]byte("v"), ""); k != nil {
		t.Errorf("no separator must give a null key, got %q", k)
	}
}

func TestUnescapeSeparator(t *testing.T) {
	for in, want := range map[string]string{`\t`: "\t", ":": ":", `a\nb`: "a\nb", `"`: `"`, `x"\t`: "x\"\t"} {
		got, err := unescapeSeparator(in)
		if err != nil || got != want {
			t.Errorf("unescapeSeparator(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := unescapeSeparator(`\q`); err == nil {
		t.Error(`unescapeSeparator("\q") succeeded`)
	}
}

func TestParseAcksAndCompression(t *testing.T) {
	for in, want := range map[string]kgo.Acks{"-1": kgo.AllISRAcks(), "all": kgo.AllISRAcks(), "1": kgo.LeaderAck(), "0": kgo.NoAck()} {
		if got, err := parseAcks(in); err != nil || got != want {
			t.Errorf("parseAcks(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseAcks("2"); err == nil {
		t.Error("parseAcks(2) succeeded")
	}
	for _, c := range []string{"none", "gzip", "snappy", "lz4", "zstd", "GZIP"} {
		if _, err := parseCompression(c); err != nil {
			t.Errorf("parseCompression(%q): %v", c, err)
		}
	}
	if _, err := parseCompression("brotli"); err == nil {
		t.Error("parseCompression(brotli) succeeded")
	}
	opts, err := producerAckOpts("1")
	if err != nil || len(opts) != 2 {
		t.Errorf("acks=1 must also disable idempotence: %d opts, %v", len(opts), err)
	}
}

func TestSeedBrokers(t *testing.T) {
	got, err := seedBrokers(" a:1, b:2 ,,")
	if err != nil || len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Errorf("seedBrokers = %q, %v", got, err)
	}
	if _, err := seedBrokers(" , "); err == nil {
		t.Error("empty bootstrap accepted")
	}
}

func TestTrimEOL(t *testing.T) {
	for in, want := range map[string]string{"a\n": "a", "a\r\n": "a", "a": "a", "\n": "", "a\r": "a"} {
		if got := string(trimEOL([]byte(in))); got != want {
			t.Errorf("trimEOL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConsumeOptionsValidate(t *testing.T) {
	base := func() consumeOptions {
		return consumeOptions{Topic: "t", From: "earliest", Offset: -1, Timestamp: -1, Partition: -1}
	}
	ok := []func(*consumeOptions){
		func(*consumeOptions) {},
		func(o *consumeOptions) { o.Offset, o.Partition = 5, 0 },
		func(o *consumeOptions) { o.Timestamp = 1 },
		func(o *consumeOptions) { o.From, o.FromSet = "LATEST", true },
		func(o *consumeOptions) { o.Group = "g" },
	}
	for i, mod := range ok {
		o := base()
		mod(&o)
		if err := o.Validate(); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
	}
	bad := []func(*consumeOptions){
		func(o *consumeOptions) { o.Topic = "" },
		func(o *consumeOptions) { o.From = "middle" },
		func(o *consumeOptions) { o.Offset = 5 },
		func(o *consumeOptions) { o.Offset, o.Partition, o.Timestamp = 5, 0, 1 },
		func(o *consumeOptions) { o.FromSet, o.Timestamp = true, 1 },
		func(o *consumeOptions) { o.Group, o.Partition = "g", 0 },
		func(o *consumeOptions) { o.MaxMessages = -1 },
	}
	for i, mod := range bad {
		o := base()
		mod(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("bad case %d accepted", i)
		}
	}
}

func TestPendingPartitions(t *testing.T) {
	got := pendingPartitions(map[int32]int64{0: 0, 1: 5, 2: 7}, map[int32]int64{0: 3, 1: 5, 2: 6, 3: 9})
	if len(got) != 1 || got[0] != 3 {
		t.Errorf("pendingPartitions = %v, want map[0:3]", got)
	}
}

func TestTopicAlterOptionsValidate(t *testing.T) {
	v := "1"
	if err := (topicAlterOptions{Name: "t"}).Validate(); err == nil {
		t.Error("empty alter accepted")
	}
	if err := (topicAlterOptions{Name: "t", SetConfigs: map[string]*string{"a": &v}, DeleteConfigs: []string{"a"}}).Validate(); err == nil {
		t.Error("set and delete of one config accepted")
	}
	if err := (topicAlterOptions{Name: "t", Partitions: 3}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestBenchOptionsValidate(t *testing.T) {
	p := benchProduceOptions{Topic: "t", RecordSize: 10}
	if err := p.Validate(); err == nil {
		t.Error("bench produce without a run length accepted")
	}
	p.NumRecords, p.Duration = 10, 1
	if err := p.Validate(); err == nil {
		t.Error("bench produce with both --num-records and --duration accepted")
	}
	p.Duration = 0
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
	c := benchConsumeOptions{Topic: "t", NumRecords: 1}
	if err := c.Validate(); err == nil {
		t.Error("bench consume with zero --timeout accepted")
	}
}

var errTest = errors.New("test error")
