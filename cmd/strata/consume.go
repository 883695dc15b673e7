package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newConsumeCmd(getenv func(string) string) *cobra.Command {
	var (
		o         consumeOptions
		bootstrap string
	)
	cmd := &cobra.Command{
		Use:   "consume --topic T",
		Short: "Print records to stdout (like kafka-console-consumer)",
		Long: `Prints each record's value (or key SEP value with --print-key) on its own line.

Without --follow it reads up to the end offsets the partitions had when it
started, then exits; with --follow it keeps waiting for new records until
interrupted. With --group it joins that consumer group, starts from the group's
committed offsets and commits each record after printing it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			o.FromSet = f.Changed("from")
			if !f.Changed("offset") {
				o.Offset = -1
			}
			if !f.Changed("timestamp") {
				o.Timestamp = -1
			}
			if !f.Changed("partition") {
				o.Partition = -1
			}
			var err error
			if o.KeySeparator, err = unescapeSeparator(o.KeySeparator); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			_, err = consume(cmd.Context(), bootstrap, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		},
	}
	fs := cmd.Flags()
	addBootstrapFlag(fs, &bootstrap, getenv)
	fs.StringVar(&o.Topic, "topic", "", "topic to read (required)")
	fs.StringVar(&o.From, "from", "earliest", "where to start when there is no --offset, --timestamp or committed group offset: earliest or latest")
	fs.Int64Var(&o.Offset, "offset", -1, "start at this offset (requires --partition)")
	fs.Int64Var(&o.Timestamp, "timestamp", -1, "start at the first record with a timestamp at or after this Unix time in milliseconds")
	fs.Int32Var(&o.Partition, "partition", -1, "read only this partition (-1: all partitions)")
	fs.BoolVar(&o.Follow, "follow", false, "keep waiting for new records instead of stopping at the end offsets seen at start")
	fs.Int64Var(&o.MaxMessages, "max-messages", 0, "stop after printing this many records (0: no limit)")
	fs.StringVar(&o.Group, "group", "", "consume as a member of this consumer group, committing after printing")
	fs.BoolVar(&o.PrintKey, "print-key", false, "print key SEP value")
	fs.StringVar(&o.KeySeparator, "key-separator", `\t`, "separator between key and value with --print-key")
	fs.BoolVar(&o.PrintOffset, "print-offset", false, `prefix each line with "Partition:P<TAB>Offset:O<TAB>"`)
	return cmd
}

type consumeOptions struct {
	Topic        string
	From         string // "earliest" or "latest"
	FromSet      bool   // --from was given explicitly
	Offset       int64  // -1: unset
	Timestamp    int64  // -1: unset
	Partition    int32  // -1: all partitions
	Follow       bool
	MaxMessages  int64 // 0: unlimited
	Group        string
	PrintKey     bool
	KeySeparator string
	PrintOffset  bool
}

// Validate applies kafka-console-consumer's rules: --offset needs one
// partition, and a group owns its partition assignment, so --group cannot be
// combined with --partition or --offset.
func (o *consumeOptions) Validate() error {
	if err := requireFlag("topic", o.Topic); err != nil {
		return err
	}
	o.From = strings.ToLower(o.From)
	if o.From != "earliest" && o.From != "latest" {
		return usageErrorf("invalid --from %q: want earliest or latest", o.From)
	}
	starts := 0
	for _, set := range []bool{o.FromSet, o.Offset >= 0, o.Timestamp >= 0} {
		if set {
			starts++
		}
	}
	switch {
	case starts > 1:
		return usageErrorf("give only one of --from, --offset and --timestamp")
	case o.Offset >= 0 && o.Partition < 0:
		return usageErrorf("--offset requires --partition")
	case o.Group != "" && o.Partition >= 0:
		return usageErrorf("--group and --partition cannot be used together")
	case o.MaxMessages < 0:
		return usageErrorf("invalid --max-messages %d", o.MaxMessages)
	}
	return nil
}

// startOffset is where kgo starts a partition with no committed offset.
func (o consumeOptions) startOffset() kgo.Offset {
	switch {
	case o.Offset >= 0:
		return kgo.NewOffset().At(o.Offset)
	case o.Timestamp >= 0:
		return kgo.NewOffset().AfterMilli(o.Timestamp)
	case o.From == "latest":
		return kgo.NewOffset().AtEnd()
	}
	return kgo.NewOffset().AtStart()
}

// consumeFetchMaxWait is the Java consumer's fetch.max.wait.ms default;
// kgo's own default of 5 s would make a short read wait that long whenever
// a long poll is already in flight when a partition becomes ready.
const consumeFetchMaxWait = 500 * time.Millisecond

// clientOpts returns the consumer options for o.
func (o consumeOptions) clientOpts() []kgo.Opt {
	return append(o.assignOpts(), kgo.FetchMaxWait(consumeFetchMaxWait))
}

// assignOpts chooses between a group, one partition and all partitions.
func (o consumeOptions) assignOpts() []kgo.Opt {
	switch {
	case o.Group != "":
		return []kgo.Opt{
			kgo.ConsumerGroup(o.Group),
			kgo.ConsumeTopics(o.Topic),
			kgo.ConsumeResetOffset(o.startOffset()),
			kgo.DisableAutoCommit(),
		}
	case o.Partition >= 0:
		return []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			o.Topic: {o.Partition: o.startOffset()},
		})}
	}
	return []kgo.Opt{kgo.ConsumeTopics(o.Topic), kgo.ConsumeResetOffset(o.startOffset())}
}

// groupProgressInterval is how often a group consumer that is not following
// re-reads the group's committed offsets, to notice partitions that other
// members of the group have already read to the end.
const groupProgressInterval = time.Second

// consume prints the records o selects to w and returns how many it printed.
// Interruption (ctx cancelled) ends it without error, as Ctrl-C ends
// kafka-console-consumer; the record count goes to status either way.
func consume(ctx context.Context, bootstrap string, o consumeOptions, w, status io.Writer) (int64, error) {
	if err := o.Validate(); err != nil {
		return 0, err
	}
	admCl, err := newClient(bootstrap)
	if err != nil {
		return 0, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	// Without --follow the stopping point is fixed up front: the end offset
	// of every partition as of now. remaining holds the partitions that still
	// have records below that point, keyed to their end offset.
	var remaining map[int32]int64
	if !o.Follow {
		if remaining, err = consumeTargets(ctx, adm, o); err != nil {
			return 0, err
		}
		if len(remaining) == 0 {
			fmt.Fprintln(status, "Processed a total of 0 messages")
			return 0, nil
		}
	} else if err := checkTopic(ctx, adm, o); err != nil {
		return 0, err
	}

	cl, err := newClient(bootstrap, o.clientOpts()...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()

	out := bufio.NewWriter(w)
	var printed int64
	defer func() { fmt.Fprintf(status, "Processed a total of %d messages\n", printed) }()
	for ctx.Err() == nil {
		if !o.Follow && len(remaining) == 0 {
			break
		}
		want := -1
		if o.MaxMessages > 0 {
			if printed >= o.MaxMessages {
				break
			}
			want = int(o.MaxMessages - printed)
		}
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if o.Group != "" && !o.Follow {
			pollCtx, cancel = context.WithTimeout(ctx, groupProgressInterval)
		}
		fetches := cl.PollRecords(pollCtx, want)
		cancel()
		if ctx.Err() != nil {
			break
		}
		if err := fetchError(fetches); err != nil {
			return printed, err
		}
		recs := fetches.Records()
		for _, r := range recs {
			writeRecord(out, r, o)
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		}
		if err := out.Flush(); err != nil {
			return printed, fmt.Errorf("write output: %w", err)
		}
		printed += int64(len(recs))
		if o.Group != "" && len(recs) > 0 {
			if err := cl.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
				return printed, fmt.Errorf("commit offsets for group %q: %w", o.Group, err)
			}
		}
		if o.Group != "" && !o.Follow && len(recs) == 0 {
			if err := dropCommittedPartitions(ctx, adm, o, remaining); err != nil {
				return printed, err
			}
		}
	}
	return printed, nil
}

// fetchError returns the first fetch error that is not the poll's own
// deadline or cancellation.
func fetchError(fetches kgo.Fetches) error {
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
			continue
		}
		if fe.Topic == "" {
			return fmt.Errorf("fetch: %w", fe.Err)
		}
		return fmt.Errorf("fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return nil
}

// checkTopic confirms the topic (and partition, if one was named) exists,
// so a typo fails fast instead of waiting forever.
func checkTopic(ctx context.Context, adm *kadm.Client, o consumeOptions) error {
	_, err := topicEndOffsets(ctx, adm, o)
	return err
}

// topicEndOffsets lists the end offsets of the partitions o reads.
func topicEndOffsets(ctx context.Context, adm *kadm.Client, o consumeOptions) (map[int32]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, o.Topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %q: %w", o.Topic, err)
	}
	ends := make(map[int32]int64)
	for p, lo := range listed[o.Topic] {
		if lo.Err != nil {
			return nil, topicError(o.Topic, lo.Err, "")
		}
		if o.Partition < 0 || p == o.Partition {
			ends[p] = lo.Offset
		}
	}
	if len(listed[o.Topic]) == 0 {
		return nil, topicError(o.Topic, errUnknownTopic, "")
	}
	if o.Partition >= 0 && len(ends) == 0 {
		return nil, fmt.Errorf("topic %q has no partition %d", o.Topic, o.Partition)
	}
	return ends, nil
}

// consumeTargets returns, for each partition that has records between where
// consumption will start and the current end offset, that end offset.
func consumeTargets(ctx context.Context, adm *kadm.Client, o consumeOptions) (map[int32]int64, error) {
	ends, err := topicEndOffsets(ctx, adm, o)
	if err != nil {
		return nil, err
	}
	starts, err := resolveStarts(ctx, adm, o, ends)
	if err != nil {
		return nil, err
	}
	if o.Group != "" {
		committed, err := groupCommitted(ctx, adm, o)
		if err != nil {
			return nil, err
		}
		for p := range starts {
			if c, ok := committed.Lookup(o.Topic, p); ok && c.Err == nil && c.At >= 0 {
				starts[p] = c.At
			}
		}
	}
	return pendingPartitions(starts, ends), nil
}

// pendingPartitions keeps the partitions whose start is below their end.
func pendingPartitions(starts, ends map[int32]int64) map[int32]int64 {
	pending := make(map[int32]int64)
	for p, end := range ends {
		if start, ok := starts[p]; ok && start < end {
			pending[p] = end
		}
	}
	return pending
}

// resolveStarts turns the start policy into a concrete offset per partition.
func resolveStarts(ctx context.Context, adm *kadm.Client, o consumeOptions, ends map[int32]int64) (map[int32]int64, error) {
	starts := make(map[int32]int64, len(ends))
	var listed kadm.ListedOffsets
	var err error
	switch {
	case o.Offset >= 0:
		for p := range ends {
			starts[p] = o.Offset
		}
		return starts, nil
	case o.Timestamp >= 0:
		listed, err = adm.ListOffsetsAfterMilli(ctx, o.Timestamp, o.Topic)
	case o.From == "latest":
		for p, end := range ends {
			starts[p] = end
		}
		return starts, nil
	default:
		listed, err = adm.ListStartOffsets(ctx, o.Topic)
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets of %q: %w", o.Topic, err)
	}
	for p, end := range ends {
		lo, ok := listed.Lookup(o.Topic, p)
		switch {
		case !ok || lo.Err != nil:
			return nil, fmt.Errorf("list offsets of %s[%d]: %v", o.Topic, p, lo.Err)
		case lo.Offset < 0: // no record at or after the timestamp
			starts[p] = end
		default:
			starts[p] = lo.Offset
		}
	}
	return starts, nil
}

// dropCommittedPartitions removes from remaining the partitions whose
// committed group offset reached their end: other members may own them.
func dropCommittedPartitions(ctx context.Context, adm *kadm.Client, o consumeOptions, remaining map[int32]int64) error {
	committed, err := groupCommitted(ctx, adm, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for p, end := range remaining {
		if c, ok := committed.Lookup(o.Topic, p); ok && c.Err == nil && c.At >= end {
			delete(remaining, p)
		}
	}
	return nil
}

// writeRecord prints one record in kafka-console-consumer's layout. A null
// key or value prints as "null", as Kafka's DefaultMessageFormatter does.
func writeRecord(w *bufio.Writer, r *kgo.Record, o consumeOptions) {
	if o.PrintOffset {
		fmt.Fprintf(w, "Partition:%d\tOffset:%d\t", r.Partition, r.Offset)
	}
	if o.PrintKey {
		writeNullable(w, r.Key)
		w.WriteString(o.KeySeparator)
	}
	writeNullable(w, r.Value)
	w.WriteByte('\n')
}

func writeNullable(w *bufio.Writer, b []byte) {
	if b == nil {
		w.WriteString("null")
		return
	}
	w.Write(b)
}

// groupCommitted returns the group's committed offsets for the topic. A
// group that does not exist yet has none; Kafka answers with an empty
// result, some brokers with GROUP_ID_NOT_FOUND.
func groupCommitted(ctx context.Context, adm *kadm.Client, o consumeOptions) (kadm.OffsetResponses, error) {
	committed, err := adm.FetchOffsetsForTopics(ctx, o.Group, o.Topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", o.Group, err)
	}
	return committed, nil
}
