package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

// brokenPuts is a store whose uploads fail, like a bucket whose credentials
// were revoked after start.
type brokenPuts struct{ remotestore.Storage }

func (s brokenPuts) Put(context.Context, string, io.Reader, int64) error {
	return errors.New("AccessDenied: credentials revoked")
}

func TestTierStatus(t *testing.T) {
	for _, broken := range []bool{false, true} {
		store, err := remotestore.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if broken {
			store = brokenPuts{store}
		}
		b := testenv.StartBroker(t, broker.Options{Remote: store})
		c := &cluster{t: t, bootstrap: b.Addr}
		c.mustRun("", "topic", "create", "tt", "--partitions", "1", "--config", "remote.storage.enable=true", "--config", "segment.bytes=4096")
		cl := testenv.Client(t, b.Addr, kgo.ProducerBatchMaxBytes(1024), kgo.ProducerBatchCompression(kgo.NoCompression()))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for i := 0; i < 200; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: "tt", Value: []byte(strings.Repeat("v", 100))}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		b.TieringPass(ctx)
		cancel()
		r := c.run("", "tier", "status")
		if !broken {
			if r.code != 0 || !strings.Contains(r.stdout, "tt ") || !strings.Contains(r.stdout, "REMOTE-BYTES") {
				t.Fatalf("tier status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			fields := strings.Fields(strings.Split(strings.TrimSpace(r.stdout), "\n")[1])
			if fields[2] != "0" || fields[7] == "0" {
				t.Fatalf("want remote start 0 and remote bytes > 0, got %v", fields)
			}
			continue
		}
		if r.code == 0 || !strings.Contains(r.stderr, "credentials revoked") {
			t.Fatalf("tier status with failing copies: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
}
