package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/strata-broker/strata/testenv"
)

// TestKcatRoundTrip produces keyed records with kcat (librdkafka) into three
// partitions of a real strata process, consumes them back with kcat and with
// franz-go, and compares every record byte for byte.
func TestKcatRoundTrip(t *testing.T) {
	kcat := testenv.Kcat(t)
	srv := testenv.StartProcess(t, testenv.ProcessOptions{})
	const topic = "kcat-events"
	createTopic(t, srv.Addr, topic, 3, nil)

	var in bytes.Buffer
	want := map[string]string{}
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("user-%03d", i%97)
		v := fmt.Sprintf("event %d \t with bytes ~!@#$%%^&*() %s", i, strings.Repeat("x", i%50))
		fmt.Fprintf(&in, "%s|%s\n", k, v)
		want[v] = k
	}
	prod := exec.Command(kcat, "-b", srv.Addr, "-t", topic, "-P", "-K", "|", "-X", "enable.idempotence=true", "-X", "acks=all")
	prod.Stdin = &in
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}

	cons := exec.Command(kcat, "-b", srv.Addr, "-t", topic, "-C", "-o", "beginning", "-e", "-q", "-f", "%p|%o|%k|%s\n")
	out, err := cons.Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("kcat consumed %d records, want %d", len(lines), len(want))
	}
	partitions := map[string]bool{}
	keyPart := map[string]string{}
	seen := map[string]bool{}
	for _, l := range lines {
		f := strings.SplitN(l, "|", 4)
		if len(f) != 4 {
			t.Fatalf("bad kcat line %q", l)
		}
		p, k, v := f[0], f[2], f[3]
		if want[v] != k {
			t.Fatalf("value %q came back with key %q, want %q", v, k, want[v])
		}
		if seen[v] {
			t.Fatalf("value %q read twice", v)
		}
		seen[v] = true
		if kp, ok := keyPart[k]; ok && kp != p {
			t.Fatalf("key %s in partitions %s and %s", k, kp, p)
		}
		keyPart[k] = p
		partitions[p] = true
	}
	if len(partitions) != 3 {
		t.Fatalf("records landed in partitions %v, want all 3", partitions)
	}

	// The same bytes through franz-go.
	recs := readAll(t, srv.Addr, topic)
	if len(recs) != len(want) {
		t.Fatalf("franz-go read %d records, want %d", len(recs), len(want))
	}
	var a, b []string
	for _, r := range recs {
		a = append(a, string(r.Key)+"|"+string(r.Value))
	}
	for v, k := range want {
		b = append(b, k+"|"+v)
	}
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("franz-go record %q, want %q", a[i], b[i])
		}
	}
}
