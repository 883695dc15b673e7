package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// cliResult is what one run of the strata command line produced.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cluster is a Kafka cluster the CLI tests run against: today franz-go's
// in-process kfake; the broker tests run the same scenarios against Strata.
type cluster struct {
	t         *testing.T
	bootstrap string
}

func newFakeCluster(t *testing.T, opts ...kfake.Opt) *cluster {
	t.Helper()
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		// KIP-848 groups learn assignments on heartbeats; kfake's default
		// 5 s interval would make each group test wait that long.
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "100"}),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &cluster{t: t, bootstrap: c.ListenAddrs()[0]}
}

// run executes the strata command line with stdin. The bootstrap address
// arrives through $STRATA_BOOTSTRAP_SERVER, which exercises that path too.
func (c *cluster) run(stdin string, args ...string) cliResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return runCLI(ctx, map[string]string{bootstrapServerEnv: c.bootstrap}, stdin, args...)
}

// mustRun is run that fails the test on a non-zero exit.
func (c *cluster) mustRun(stdin string, args ...string) cliResult {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("strata %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

func runCLI(ctx context.Context, env map[string]string, stdin string, args ...string) cliResult {
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code := run(ctx, args, getenv, strings.NewReader(stdin), &stdout, &stderr)
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func TestCLIUsageErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "create"}, "missing NAME argument"},
		{[]string{"topic", "create", "a", "b"}, `unexpected argument "b"`},
		{[]string{"topic", "create", "a", "--config", "nokv"}, `invalid --config "nokv"`},
		{[]string{"topic", "alter", "a"}, "nothing to alter"},
		{[]string{"topic", "nope"}, `unknown command "nope"`},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"produce"}, "--topic is required"},
		{[]string{"produce", "--topic", "t", "--acks", "2"}, `invalid --acks "2"`},
		{[]string{"produce", "--topic", "t", "--compression", "brotli"}, `invalid --compression "brotli"`},
		{[]string{"consume", "--topic", "t", "--offset", "3"}, "--offset requires --partition"},
		{[]string{"consume", "--topic", "t", "--from", "latest", "--timestamp", "1"}, "only one of"},
		{[]string{"consume", "--topic", "t", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"bench", "produce", "--topic", "t"}, "--num-records N or --duration D"},
		{[]string{"bench", "consume", "--topic", "t", "--num-records", "1", "--duration", "1s"}, "only one of"},
	} {
		r := runCLI(ctx, nil, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || !strings.HasPrefix(r.stderr, "strata: ") {
			t.Errorf("strata %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

func TestCLIHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{
		{}, {"topic"}, {"topic", "create"}, {"topic", "list"}, {"topic", "describe"}, {"topic", "alter"},
		{"topic", "delete"}, {"produce"}, {"consume"}, {"bench"}, {"bench", "produce"}, {"bench", "consume"},
	} {
		r := runCLI(context.Background(), nil, "", append(args, "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("strata %s --help: exit %d, stdout %q", strings.Join(args, " "), r.code, r.stdout)
		}
	}
}

func TestBootstrapDefaultFromEnv(t *testing.T) {
	cmd := newRootCmd(func(string) string { return "" })
	c, _, _ := cmd.Find([]string{"produce"})
	if got := c.Flag("bootstrap-server").DefValue; got != defaultBootstrapServer {
		t.Errorf("default bootstrap = %q", got)
	}
	cmd = newRootCmd(func(k string) string { return map[string]string{bootstrapServerEnv: "h:1"}[k] })
	c, _, _ = cmd.Find([]string{"topic", "list"})
	if got := c.Flag("bootstrap-server").DefValue; got != "h:1" {
		t.Errorf("env bootstrap = %q", got)
	}
}

func TestCLIUnreachableBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback refuses connections; the command must fail, not hang.
	r := runCLI(ctx, nil, "", "topic", "list", "--bootstrap-server", "127.0.0.1:1")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "strata: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr %q; want exit 1 and one error line", r.code, r.stderr)
	}
}

// kfakeSeed returns options that start the fake cluster with a topic.
func kfakeSeed(topic string, partitions int32) []kfake.Opt {
	return []kfake.Opt{kfake.SeedTopics(partitions, topic)}
}

// newStrataCluster runs the scenarios against a real in-process Strata broker.
func newStrataCluster(t *testing.T) *cluster {
	t.Helper()
	b := testenv.StartBroker(t, broker.Options{})
	return &cluster{t: t, bootstrap: b.Addr}
}
