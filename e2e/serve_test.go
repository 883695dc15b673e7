package e2e

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// TestServeBadConfiguration: a clear one-line error and a non-zero exit.
func TestServeBadConfiguration(t *testing.T) {
	bin := testenv.StrataBinary(t)
	dir := t.TempDir()
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"serve", "--data-dir", dir, "-c", "num.partitions=lots"}, nil, "num.partitions"},
		{[]string{"serve", "--data-dir", dir, "-c", "no.such.setting=1"}, nil, "no.such.setting"},
		{[]string{"serve", "--data-dir", dir, "-c", "novalue"}, nil, "name=value"},
		{[]string{"serve", "--data-dir", dir, "--listen", "not-an-address"}, nil, "not-an-address"},
		{[]string{"serve"}, nil, "data"},
		{[]string{"serve", "--data-dir", dir}, []string{"STRATA_LOG_SEGMENT_BYTES=tiny"}, "log.segment.bytes"},
		{[]string{"serve", "--data-dir", dir, "--config-file", dir + "/missing.properties"}, nil, "missing.properties"},
		{[]string{"serve", "--data-dir", dir, "-c", "log.message.format.version=0.10.2"}, nil, "record batch v2"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, c.args...)
		// Only the test's own STRATA_ variables (the harness sets others).
		for _, kv := range cmd.Environ() {
			if !strings.HasPrefix(kv, "STRATA_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, c.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%v: want a non-zero exit, got %v", c.args, err)
			continue
		}
		msg := strings.TrimSpace(stderr.String())
		if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.want) {
			t.Errorf("%v %v: want one line mentioning %q, got:\n%s", c.env, c.args, c.want, msg)
		}
	}
}

// TestSigtermIsCleanAndRestartIsFast: SIGTERM flushes and marks logs clean,
// so the next start scans nothing; the data is all there.
func TestSigtermIsCleanAndRestartIsFast(t *testing.T) {
	srv := testenv.StartProcess(t, testenv.ProcessOptions{Configs: []string{"log.segment.bytes=65536"}})
	createTopic(t, srv.Addr, "clean", 2, nil)
	cl := newClient(t, srv.Addr, kgo.DefaultProduceTopic("clean"))
	ctx := testenv.Context(t, 60*time.Second)
	for i := 0; i < 2000; i++ {
		cl.Produce(ctx, &kgo.Record{Value: bytes.Repeat([]byte{byte(i)}, 200)}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := srv.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, srv.Log())
	}
	srv.Restart()
	log := srv.Log()
	after := log[strings.LastIndex(log, "---- restart ----"):]
	if strings.Contains(after, "clean_shutdown=false") || !strings.Contains(after, "clean_shutdown=true") {
		t.Fatalf("restart after SIGTERM was not clean:\n%s", after)
	}
	if !strings.Contains(after, "scanned_segments=0") || strings.Contains(after, "scanned_segments=1") {
		t.Fatalf("restart after SIGTERM scanned segments:\n%s", after)
	}
	if n := len(readAll(t, srv.Addr, "clean")); n != 2000 {
		t.Fatalf("%d records after restart, want 2000", n)
	}
}

// TestMetricsEndpoint scrapes the Prometheus endpoint of a real process.
func TestMetricsEndpoint(t *testing.T) {
	srv := testenv.StartProcess(t, testenv.ProcessOptions{Args: []string{"--metrics-listen", "127.0.0.1:0"}})
	createTopic(t, srv.Addr, "measured", 1, nil)
	cl := newClient(t, srv.Addr)
	ctx := testenv.Context(t, 30*time.Second)
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "measured", Value: []byte("m")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	m := regexp.MustCompile(`metrics on (http://\S+/metrics)`).FindStringSubmatch(srv.Log())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", srv.Log())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"strata_produce_records_total 10",
		`strata_partition_log_end_offset{partition="0",topic="measured"} 10`,
		`strata_requests_total{api="Produce",outcome="ok"} 10`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
