package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// Issue 11's behaviours as users of other clients meet them, against a real
// `strata serve`: librdkafka (kcat and a small admin program) and
// segmentio/kafka-go.

// librdkafka's producer on a compacted topic: a batch holding a keyless
// record is refused whole (librdkafka 2.0 speaks Produce v7, so every
// record of the batch gets INVALID_RECORD), keyed batches are stored, and
// nothing of the refused batch can be read.
func TestKcatCompactedTopicRefusesKeylessRecords(t *testing.T) {
	kcat := testenv.Kcat(t)
	srv := testenv.StartProcess(t, testenv.ProcessOptions{})
	const topic = "kcat-compacted"
	compact := "compact"
	createTopic(t, srv.Addr, topic, 1, map[string]*string{"cleanup.policy": &compact})

	produce := func(lines string) (string, error) {
		// linger.ms keeps every line in one batch.
		cmd := exec.Command(kcat, "-b", srv.Addr, "-t", topic, "-P", "-K", "|", "-X", "linger.ms=500")
		cmd.Stdin = strings.NewReader(lines)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := produce("k1|first\nk2|second\n"); err != nil {
		t.Fatalf("keyed batch: %v\n%s", err, out)
	}
	out, err := produce("k3|mixed-0\nno key here\nk4|mixed-2\n")
	if err == nil {
		t.Fatalf("kcat exited 0 for a batch with a keyless record:\n%s", out)
	}
	if n := strings.Count(out, "Delivery failed for message: Broker: Broker failed to validate record"); n != 3 {
		t.Fatalf("%d of 3 records failed with INVALID_RECORD, want the whole batch:\n%s", n, out)
	}
	if out, err := produce("k5|third\n"); err != nil {
		t.Fatalf("keyed batch after the refused one: %v\n%s", err, out)
	}

	cons := exec.Command(kcat, "-b", srv.Addr, "-t", topic, "-C", "-o", "beginning", "-e", "-q", "-f", "%k=%s@%o\n")
	got, err := cons.Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	if want := "k1=first@0\nk2=second@1\nk5=third@2\n"; string(got) != want {
		t.Fatalf("kcat read:\n%s\nwant:\n%s", got, want)
	}
}

// rdkafkaAdmin builds testdata/rdkafka_admin.c against Debian's
// librdkafka-dev. Under CI a missing compiler or library fails the test;
// elsewhere it skips.
func rdkafkaAdmin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rdkafka_admin")
	out, err := exec.Command("cc", "-o", bin, filepath.Join("testdata", "rdkafka_admin.c"), "-lrdkafka").CombinedOutput()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot build the librdkafka admin program (apt-get install gcc librdkafka-dev): %v\n%s", err, out)
		}
		t.Skipf("librdkafka-dev not available: %v\n%s", err, out)
	}
	return bin
}

// message.format.version through librdkafka's admin API, as a Terraform
// provider or a 3.x-era script sets it: v2 versions are accepted and shown,
// older ones refused with INVALID_CONFIG and a reason.
func TestLibrdkafkaMessageFormatVersion(t *testing.T) {
	admin := rdkafkaAdmin(t)
	srv := testenv.StartProcess(t, testenv.ProcessOptions{})
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(admin, append([]string{srv.Addr}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rdkafka_admin %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, v := range []string{"0.11.0", "2.8", "3.0-IV1"} {
		topic := "rd-mfv-" + strings.ReplaceAll(v, ".", "-")
		if out := run("create", topic, "message.format.version="+v, "cleanup.policy=compact"); out != "ok" {
			t.Fatalf("create with %s: %s", v, out)
		}
		if out, want := run("describe", topic, "message.format.version"), "message.format.version="+v+" source=DYNAMIC_TOPIC_CONFIG"; out != want {
			t.Fatalf("describe: %q, want %q", out, want)
		}
	}
	out := run("create", "rd-mfv-old", "message.format.version=0.10.2")
	if !strings.HasPrefix(out, "error INVALID_CONFIG:") || !strings.Contains(out, "record batch v2") {
		t.Fatalf("create with 0.10.2: %s", out)
	}
	if out := run("describe", "rd-mfv-old", "message.format.version"); !strings.HasPrefix(out, "error UNKNOWN_TOPIC_OR_PART") {
		t.Fatalf("the refused topic exists: %s", out)
	}
	if !strings.Contains(srv.Log(), "message.format.version is deprecated and ignored") {
		t.Fatal("no deprecation line in the broker's log")
	}
}

// segmentio/kafka-go's Client.Fetch sends Fetch v11 with session id -1 and
// epoch -1: a full sessionless fetch (KIP-227's FINAL_EPOCH), answered with
// the records and no session, however often it is called.
func TestKafkaGoClientFetch(t *testing.T) {
	srv := testenv.StartProcess(t, testenv.ProcessOptions{})
	const topic = "kafka-go-fetch"
	createTopic(t, srv.Addr, topic, 2, nil)
	cl := newClient(t, srv.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testenv.Context(t, 60*time.Second)
	for p := int32(0); p < 2; p++ {
		for i := range 50 {
			r := &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("p%d-%d", p, i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	kc := &kafkago.Client{Addr: kafkago.TCP(srv.Addr), Timeout: 10 * time.Second}
	fetch := func(partition int, offset int64) (*kafkago.FetchResponse, []string) {
		t.Helper()
		resp, err := kc.Fetch(ctx, &kafkago.FetchRequest{Topic: topic, Partition: partition, Offset: offset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond})
		if err != nil {
			t.Fatalf("kafka-go Fetch %d@%d: %v", partition, offset, err)
		}
		if resp.Error != nil {
			t.Fatalf("kafka-go Fetch %d@%d: partition error %v", partition, offset, resp.Error)
		}
		var vals []string
		for {
			r, err := resp.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read record: %v", err)
			}
			v, _ := io.ReadAll(r.Value)
			if r.Offset >= offset {
				vals = append(vals, string(v))
			}
		}
		return resp, vals
	}
	for round := range 3 {
		for p := range 2 {
			resp, vals := fetch(p, 10)
			if resp.HighWatermark != 50 || len(vals) != 40 || vals[0] != fmt.Sprintf("p%d-10", p) || vals[39] != fmt.Sprintf("p%d-49", p) {
				t.Fatalf("round %d partition %d: hw %d, %d records %v", round, p, resp.HighWatermark, len(vals), vals)
			}
		}
	}
	if _, vals := fetch(1, kafkago.FirstOffset); len(vals) != 50 || vals[0] != "p1-0" {
		t.Fatalf("from the first offset: %v", vals)
	}
	// At the end: an empty answer after MaxWait, not an error.
	if resp, vals := fetch(0, 50); len(vals) != 0 || resp.HighWatermark != 50 {
		t.Fatalf("at the end: hw %d, records %v", resp.HighWatermark, vals)
	}
}
