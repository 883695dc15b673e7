package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newBenchConsumeCmd(getenv func(string) string) *cobra.Command {
	var (
		o         benchConsumeOptions
		bootstrap string
	)
	cmd := &cobra.Command{
		Use:   "consume --topic T (--num-records N | --duration D)",
		Short: "Consume as fast as possible and report throughput (like kafka-consumer-perf-test)",
		Long: `Reads the topic from the earliest offset (or the group's committed offsets with
--group), printing a progress line to stderr every ~5 s and a final summary to
stdout: records/sec, MB/sec and end-to-end latency (record timestamp to arrival).
Stops after --num-records or --duration, or when no record arrives for --timeout.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			_, err := benchConsume(cmd.Context(), bootstrap, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		},
	}
	fs := cmd.Flags()
	addBootstrapFlag(fs, &bootstrap, getenv)
	fs.StringVar(&o.Topic, "topic", "", "topic to consume (required)")
	fs.Int64Var(&o.NumRecords, "num-records", 0, "records to consume")
	fs.DurationVar(&o.Duration, "duration", 0, "consume for this long instead of a record count")
	fs.StringVar(&o.Group, "group", "", "consume in this consumer group (auto-committing) instead of reading all partitions directly")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "stop when no record arrives for this long")
	fs.BoolVar(&o.JSON, "json", false, "print the final summary as JSON")
	fs.DurationVar(&o.ReportInterval, "report-interval", 5*time.Second, "time between progress lines (0: none)")
	return cmd
}

type benchConsumeOptions struct {
	Topic          string
	NumRecords     int64
	Duration       time.Duration
	Group          string
	Timeout        time.Duration // idle limit
	JSON           bool
	ReportInterval time.Duration
}

func (o benchConsumeOptions) Validate() error {
	if err := requireFlag("topic", o.Topic); err != nil {
		return err
	}
	if err := validateRunLength(o.NumRecords, o.Duration); err != nil {
		return err
	}
	if o.Timeout <= 0 {
		return usageErrorf("invalid --timeout %v", o.Timeout)
	}
	return nil
}

func (o benchConsumeOptions) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.ConsumeTopics(o.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if o.Group != "" {
		opts = append(opts, kgo.ConsumerGroup(o.Group))
	}
	return opts
}

// benchConsume runs the consume load. With --num-records, stopping on the
// idle timeout before the count is reached is an error (the summary is
// still printed): a short run must not pass for a complete one.
func benchConsume(ctx context.Context, bootstrap string, o benchConsumeOptions, out, progress io.Writer) (benchSummary, error) {
	if err := o.Validate(); err != nil {
		return benchSummary{}, err
	}
	cl, err := newClient(bootstrap, o.clientOpts()...)
	if err != nil {
		return benchSummary{}, err
	}
	defer cl.Close()

	start := time.Now()
	m := newBenchMeter(start)
	stop := make(chan struct{})
	reporterDone := reportProgress(m, o.ReportInterval, "received", progress, stop)
	var (
		received int64
		runErr   error
		idle     bool
	)
	for ctx.Err() == nil {
		want := -1
		if o.NumRecords > 0 {
			if received >= o.NumRecords {
				break
			}
			want = int(o.NumRecords - received)
		}
		wait := o.Timeout
		if o.Duration > 0 {
			left := o.Duration - time.Since(start)
			if left <= 0 {
				break
			}
			wait = min(wait, left)
		}
		pollCtx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollRecords(pollCtx, want)
		timedOut := pollCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if err := fetchError(fetches); err != nil {
			runErr = err
			break
		}
		now := time.Now()
		recs := fetches.Records()
		for _, r := range recs {
			m.done(len(r.Key)+len(r.Value), now.Sub(r.Timestamp))
		}
		received += int64(len(recs))
		if timedOut && len(recs) == 0 && (o.Duration == 0 || time.Since(start) < o.Duration) {
			idle = true
			break
		}
	}
	end := time.Now()
	close(stop)
	<-reporterDone

	s := m.summary("consume", o.Topic, end)
	if err := s.write(out, o.JSON); err != nil {
		return s, fmt.Errorf("write summary: %w", err)
	}
	switch {
	case runErr != nil:
		return s, runErr
	case idle && o.NumRecords > 0 && received < o.NumRecords:
		return s, fmt.Errorf("no record for %v: consumed %d of %d records", o.Timeout, received, o.NumRecords)
	}
	return s, nil
}
