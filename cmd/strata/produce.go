package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newProduceCmd(getenv func(string) string) *cobra.Command {
	var (
		o         produceOptions
		bootstrap string
	)
	cmd := &cobra.Command{
		Use:   "produce --topic T",
		Short: "Send lines from stdin as records (like kafka-console-producer)",
		Long: `Reads stdin line by line and sends each line as one record. With
--key-separator, the text before the first separator is the record key.
Prints the number of records sent to stderr and exits non-zero if any failed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("partition") {
				o.Partition = -1
			}
			var err error
			if o.KeySeparator, err = unescapeSeparator(o.KeySeparator); err != nil {
				return err
			}
			opts, err := o.clientOpts()
			if err != nil {
				return err
			}
			// Like kafka-console-producer: a missing topic is created if
			// the broker allows it (auto.create.topics.enable).
			opts = append(opts, kgo.AllowAutoTopicCreation())
			cl, err := newClient(bootstrap, opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			_, err = produceLines(cmd.Context(), cl, o, cmd.InOrStdin(), cmd.ErrOrStderr())
			return err
		},
	}
	fs := cmd.Flags()
	addBootstrapFlag(fs, &bootstrap, getenv)
	fs.StringVar(&o.Topic, "topic", "", "topic to produce to (required)")
	fs.StringVar(&o.KeySeparator, "key-separator", "", `split each line into key and value at the first SEP (escapes such as "\t" allowed)`)
	fs.StringVar(&o.Acks, "acks", "-1", "acknowledgements the leader waits for: -1 (all in-sync replicas), 1 (leader) or 0 (none)")
	fs.StringVar(&o.Compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fs.Int32Var(&o.Partition, "partition", -1, "send every record to this partition (-1: by key hash, or sticky when key-less)")
	fs.DurationVar(&o.DeliveryTimeout, "delivery-timeout", 2*time.Minute, "fail a record not acknowledged within this time (Kafka's delivery.timeout.ms)")
	return cmd
}

type produceOptions struct {
	Topic        string
	KeySeparator string // empty: the whole line is the value
	Acks         string // "-1", "0" or "1"
	Compression  string // Kafka compression.type name
	Partition    int32  // -1: let the partitioner choose
	// DeliveryTimeout bounds each record's wait for an acknowledgement, so
	// an unreachable broker fails the command instead of hanging it.
	DeliveryTimeout time.Duration
}

// clientOpts returns the kgo options produce needs beyond the seed brokers.
func (o produceOptions) clientOpts() ([]kgo.Opt, error) {
	if err := requireFlag("topic", o.Topic); err != nil {
		return nil, err
	}
	opts, err := producerAckOpts(o.Acks)
	if err != nil {
		return nil, err
	}
	codec, err := parseCompression(o.Compression)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(o.Topic))
	if o.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(o.DeliveryTimeout))
	}
	if o.Partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	return opts, nil
}

// produceResult counts what produceLines did.
type produceResult struct {
	Sent   int64 // records acknowledged (or handed off, with acks=0)
	Failed int64
}

// produceLines sends each line of in as a record and waits for every
// record's outcome before returning (the client is flushed at EOF). A line
// that cannot be split into key and value stops reading, as in
// kafka-console-producer; records already sent are still flushed. The
// summary goes to summary; the returned error names the first failure.
func produceLines(ctx context.Context, cl *kgo.Client, o produceOptions, in io.Reader, summary io.Writer) (produceResult, error) {
	var (
		mu       sync.Mutex
		res      produceResult
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Failed++
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		res.Sent++
	}

	var readErr error
	r := bufio.NewReaderSize(in, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			line = trimEOL(line)
			key, value, splitErr := splitKey(line, o.KeySeparator)
			if splitErr != nil {
				readErr = fmt.Errorf("line %d: %w", lineNo, splitErr)
				break
			}
			rec := &kgo.Record{Key: key, Value: value, Partition: o.Partition}
			cl.Produce(ctx, rec, promise)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = fmt.Errorf("read stdin: %w", err)
			}
			break
		}
	}
	flushErr := cl.Flush(ctx)

	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(summary, "Produced %d records to topic %q", res.Sent, o.Topic)
	if res.Failed > 0 {
		fmt.Fprintf(summary, ", %d failed", res.Failed)
	}
	fmt.Fprintln(summary, ".")
	switch {
	case readErr != nil:
		return res, readErr
	case res.Failed > 0:
		return res, fmt.Errorf("%d of %d records failed; first error: %w", res.Failed, res.Failed+res.Sent, firstErr)
	case flushErr != nil:
		return res, fmt.Errorf("flush: %w", flushErr)
	}
	return res, nil
}

// trimEOL drops a trailing "\n" or "\r\n", as Java's readLine does.
func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}
