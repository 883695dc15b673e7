package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newBenchProduceCmd(getenv func(string) string) *cobra.Command {
	var (
		o         benchProduceOptions
		bootstrap string
	)
	cmd := &cobra.Command{
		Use:   "produce --topic T (--num-records N | --duration D)",
		Short: "Produce fixed-size records as fast as allowed (like kafka-producer-perf-test)",
		Long: `Sends records of --record-size random letters, printing a progress line to
stderr every ~5 s and a final summary to stdout: records/sec, MB/sec and produce
latency (Produce call to acknowledgement) avg, p50, p95, p99, p99.9 and max.
--json prints the summary as one JSON object instead.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.LingerSet = cmd.Flags().Changed("linger")
			if err := o.Validate(); err != nil {
				return err
			}
			_, err := benchProduce(cmd.Context(), bootstrap, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		},
	}
	fs := cmd.Flags()
	addBootstrapFlag(fs, &bootstrap, getenv)
	fs.StringVar(&o.Topic, "topic", "", "topic to produce to (required)")
	fs.IntVar(&o.RecordSize, "record-size", 1024, "value size of each record in bytes")
	fs.Int64Var(&o.NumRecords, "num-records", 0, "records to send")
	fs.DurationVar(&o.Duration, "duration", 0, "send for this long instead of a record count")
	fs.Float64Var(&o.Throughput, "throughput", -1, "cap on records/sec (-1: unlimited)")
	fs.StringVar(&o.Acks, "acks", "-1", "-1 (all in-sync replicas), 1 or 0")
	fs.StringVar(&o.Compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	fs.Int32Var(&o.Partitions, "partitions", 0, "create the topic with this many partitions if it does not exist")
	fs.DurationVar(&o.Linger, "linger", 0, "how long a partition's batch waits for more records (default: the client's, 10ms)")
	fs.Int32Var(&o.BatchMaxBytes, "batch-max-bytes", 0, "largest record batch in bytes (0: the client's default, 1MB)")
	fs.BoolVar(&o.JSON, "json", false, "print the final summary as JSON")
	fs.DurationVar(&o.ReportInterval, "report-interval", 5*time.Second, "time between progress lines (0: none)")
	return cmd
}

type benchProduceOptions struct {
	Topic          string
	RecordSize     int
	NumRecords     int64         // exactly one of NumRecords
	Duration       time.Duration // and Duration is set
	Throughput     float64       // records/sec; <= 0 unlimited
	Acks           string
	Compression    string
	Partitions     int32 // > 0: create the topic if missing
	Linger         time.Duration
	LingerSet      bool
	BatchMaxBytes  int32
	JSON           bool
	ReportInterval time.Duration
}

func (o benchProduceOptions) Validate() error {
	if err := requireFlag("topic", o.Topic); err != nil {
		return err
	}
	if err := validateRunLength(o.NumRecords, o.Duration); err != nil {
		return err
	}
	switch {
	case o.RecordSize < 0:
		return usageErrorf("invalid --record-size %d", o.RecordSize)
	case o.Partitions < 0:
		return usageErrorf("invalid --partitions %d", o.Partitions)
	case o.BatchMaxBytes < 0:
		return usageErrorf("invalid --batch-max-bytes %d", o.BatchMaxBytes)
	case o.Linger < 0:
		return usageErrorf("invalid --linger %v", o.Linger)
	}
	return nil
}

func (o benchProduceOptions) clientOpts() ([]kgo.Opt, error) {
	opts, err := producerAckOpts(o.Acks)
	if err != nil {
		return nil, err
	}
	codec, err := parseCompression(o.Compression)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(o.Topic),
		// Bound a record's life so a dead broker ends the run with errors
		// rather than a flush that never returns.
		kgo.RecordDeliveryTimeout(time.Minute))
	if o.LingerSet {
		opts = append(opts, kgo.ProducerLinger(o.Linger))
	}
	if o.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(o.BatchMaxBytes))
	}
	return opts, nil
}

// benchProduce runs the load, writing progress lines to progress and the
// summary to out. Interrupting (ctx cancelled) stops sending; records in
// flight are still awaited and counted. It fails if any record failed.
func benchProduce(ctx context.Context, bootstrap string, o benchProduceOptions, out, progress io.Writer) (benchSummary, error) {
	if err := o.Validate(); err != nil {
		return benchSummary{}, err
	}
	opts, err := o.clientOpts()
	if err != nil {
		return benchSummary{}, err
	}
	cl, err := newClient(bootstrap, opts...)
	if err != nil {
		return benchSummary{}, err
	}
	defer cl.Close()
	if o.Partitions > 0 {
		if err := ensureTopic(ctx, kadm.NewClient(cl), o.Topic, o.Partitions); err != nil {
			return benchSummary{}, err
		}
	}

	payload := randomPayload(o.RecordSize)
	// Records outlive an interrupt: they are awaited, not abandoned.
	produceCtx := context.WithoutCancel(ctx)
	start := time.Now()
	m := newBenchMeter(start)
	stop := make(chan struct{})
	reporterDone := reportProgress(m, o.ReportInterval, "sent", progress, stop)
	for sent := int64(0); ctx.Err() == nil; sent++ {
		if o.NumRecords > 0 && sent >= o.NumRecords {
			break
		}
		elapsed := time.Since(start)
		if o.Duration > 0 && elapsed >= o.Duration {
			break
		}
		if wait := throttleWait(sent, elapsed, o.Throughput); wait >= time.Millisecond {
			sleepCtx(ctx, wait)
		}
		sentAt := time.Now()
		cl.Produce(produceCtx, &kgo.Record{Value: payload}, func(r *kgo.Record, err error) {
			if err != nil {
				m.failed(err)
				return
			}
			m.done(len(r.Value), time.Since(sentAt))
		})
	}
	flushErr := cl.Flush(produceCtx)
	end := time.Now()
	close(stop)
	<-reporterDone

	s := m.summary("produce", o.Topic, end)
	if err := s.write(out, o.JSON); err != nil {
		return s, fmt.Errorf("write summary: %w", err)
	}
	if n, first := m.firstError(); n > 0 {
		return s, fmt.Errorf("%d records failed; first error: %w", n, first)
	}
	if flushErr != nil {
		return s, fmt.Errorf("flush: %w", flushErr)
	}
	return s, nil
}

// ensureTopic creates topic with partitions (broker-default replication) if
// it does not exist yet; an existing topic is used as it is.
func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil || isTopicExists(resp.Err) {
		return nil
	}
	if resp.Err != nil {
		return topicError(topic, resp.Err, resp.ErrMessage)
	}
	return fmt.Errorf("create topic %q: %w", topic, err)
}

// randomPayload returns n random upper-case letters, the payload
// kafka-producer-perf-test sends: compressible like text, not like zeros.
func randomPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'A' + byte(rand.IntN(26))
	}
	return b
}
