package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

const groupResetLong = `Moves the committed offsets of GROUP for the partitions named by --topic
(repeatable; TOPIC for all its partitions, TOPIC:0,2 for some), as
kafka-consumer-groups --reset-offsets does. Exactly one of:

  --to-earliest        the log start offset
  --to-latest          the log end offset
  --to-offset N        offset N
  --to-datetime T      the first offset whose timestamp is at or after T
                       (RFC 3339, e.g. 2024-05-01T12:00:00Z; the log end if none)
  --shift-by N         the committed offset plus N (negative moves back);
                       every partition needs a committed offset

Offsets from --to-offset and --shift-by are clamped into [log start, log end].
The plan (group, topic, partition, current and new offset) is always printed;
it is applied only with --execute (--dry-run, the default, changes nothing).

The group must be inactive (state Empty, or Dead/unknown: a new group is
created): offsets of a group with members are owned by its consumers, and
Kafka refuses as this command does.`

func newGroupResetCmd(admin groupAdmin) *cobra.Command {
	var (
		topics               []string
		toEarliest, toLatest bool
		toOffset, shiftBy    int64
		toDatetime           string
		dryRun, execute      bool
	)
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic T[:P,...] (--to-earliest|--to-latest|--to-offset N|--to-datetime T|--shift-by N) [--execute]",
		Short: "Move a stopped group's committed offsets (dry run unless --execute)",
		Long:  groupResetLong,
		Args:  oneGroupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var specs []resetSpec
			if toEarliest {
				specs = append(specs, resetSpec{Kind: resetToEarliest})
			}
			if toLatest {
				specs = append(specs, resetSpec{Kind: resetToLatest})
			}
			if f.Changed("to-offset") {
				if toOffset < 0 {
					return usageErrorf("invalid --to-offset %d: offsets are >= 0 (use --to-earliest or --to-latest for the log's ends)", toOffset)
				}
				specs = append(specs, resetSpec{Kind: resetToOffset, Offset: toOffset})
			}
			if f.Changed("to-datetime") {
				t, err := parseResetTime(toDatetime)
				if err != nil {
					return err
				}
				specs = append(specs, resetSpec{Kind: resetToDatetime, Time: t})
			}
			if f.Changed("shift-by") {
				specs = append(specs, resetSpec{Kind: resetShiftBy, Shift: shiftBy})
			}
			if len(specs) != 1 {
				return usageErrorf("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by (got %d)", len(specs))
			}
			if dryRun && execute {
				return usageErrorf("--dry-run and --execute cannot be used together")
			}
			if len(topics) == 0 {
				return usageErrorf("--topic is required: name the topics (or TOPIC:PARTITION,...) to reset")
			}
			sel, err := parseTopicSpecs(topics)
			if err != nil {
				return err
			}
			o := groupResetOptions{Group: args[0], Topics: sel, Spec: specs[0], Execute: execute}
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return resetGroupOffsets(ctx, adm, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&topics, "topic", nil, "TOPIC or TOPIC:PARTITION,... to reset (repeatable)")
	fs.BoolVar(&toEarliest, "to-earliest", false, "reset to the log start offset")
	fs.BoolVar(&toLatest, "to-latest", false, "reset to the log end offset")
	fs.Int64Var(&toOffset, "to-offset", 0, "reset to this offset (clamped into the log's range)")
	fs.StringVar(&toDatetime, "to-datetime", "", "reset to the first offset at or after this RFC 3339 time")
	fs.Int64Var(&shiftBy, "shift-by", 0, "move the committed offset by N (negative: back)")
	fs.BoolVar(&dryRun, "dry-run", false, "only print the plan (the default)")
	fs.BoolVar(&execute, "execute", false, "apply the plan")
	return cmd
}

// parseResetTime reads --to-datetime: RFC 3339 with a zone, fractions of a
// second allowed. Kafka also takes a zone-less form meaning local time; we
// require the zone so a script means the same thing on every machine.
func parseResetTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, usageErrorf("invalid --to-datetime %q: want RFC 3339, e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00", s)
	}
	return t, nil
}

type groupResetOptions struct {
	Group   string
	Topics  topicSelection
	Spec    resetSpec
	Execute bool
}

// inactiveForReset reports whether a group in state may have its offsets
// reset: Kafka's ConsumerGroupCommand allows Empty and Dead only.
func inactiveForReset(state string) bool {
	return state == "Empty" || state == "Dead"
}

// resetGroupOffsets checks the group is inactive, resolves the partitions,
// reads the commits and the log's offsets, prints the plan and, with
// Execute, commits it as an admin (generation -1) OffsetCommit to the
// group's coordinator.
func resetGroupOffsets(ctx context.Context, adm *kadm.Client, o groupResetOptions, w, notes io.Writer) error {
	state, err := groupState(ctx, adm, o.Group)
	if err != nil {
		return err
	}
	if !inactiveForReset(state) {
		// Kafka's message, word for word, so runbooks and searches match.
		return fmt.Errorf("Assignments can only be reset if the group '%s' is inactive, but the current state is %s.", o.Group, state)
	}
	parts, err := resolvePartitions(ctx, adm, o.Topics)
	if err != nil {
		return err
	}
	inputs, err := resetInputs(ctx, adm, o, parts)
	if err != nil {
		return err
	}
	plan, err := planReset(o.Spec, inputs)
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET")
	for _, r := range plan {
		cur := "-"
		if r.Current >= 0 {
			cur = fmt.Sprint(r.Current)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", o.Group, r.Topic, r.Partition, cur, r.New)
	}
	tw.Flush()
	for _, r := range plan {
		if r.Clamped {
			fmt.Fprintf(notes, "Note: %s-%d: requested offset %d is outside the log's range; using %d.\n",
				r.Topic, r.Partition, r.Requested, r.New)
		}
	}
	if !o.Execute {
		fmt.Fprintln(notes, "Dry run: no offsets changed. Run again with --execute to apply this plan.")
		return nil
	}

	offs := kadm.Offsets{}
	for _, r := range plan {
		offs.AddOffset(r.Topic, r.Partition, r.New, -1)
	}
	resps, err := adm.CommitOffsets(ctx, o.Group, offs)
	if err != nil {
		return fmt.Errorf("reset offsets of group %q: %s", o.Group, kafkaErrorText(err, ""))
	}
	var failed partitionFailures
	for _, r := range resps.Sorted() {
		if r.Err != nil {
			failed.add(r.Topic, r.Partition, r.Err)
		}
	}
	if err := failed.err(o.Group, "offsets not reset"); err != nil {
		return err
	}
	fmt.Fprintf(notes, "Reset the offsets of group %q for %s.\n", o.Group, plural(len(plan), "partition"))
	return nil
}

// groupState describes one group: its state, "Dead" for one that does not
// exist (GROUP_ID_NOT_FOUND from DescribeGroups v6+, KIP-1043; Dead before).
func groupState(ctx context.Context, adm *kadm.Client, group string) (string, error) {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return "", groupError(group, err, "")
	}
	dg, ok := described[group]
	switch {
	case !ok:
		return "", fmt.Errorf("group %q: the coordinator did not describe it", group)
	case errors.Is(dg.Err, kerr.GroupIDNotFound):
		return "Dead", nil
	case dg.Err != nil:
		return "", groupError(group, dg.Err, dg.ErrMessage)
	}
	return dg.State, nil
}

// resetInputs gathers, per partition, the committed offset, the log start
// and end and, for --to-datetime, the offset at that time. Any partition the
// brokers could not answer for fails the command: a plan with holes would
// reset some partitions and silently skip others.
func resetInputs(ctx context.Context, adm *kadm.Client, o groupResetOptions, parts []groupPartition) ([]resetInput, error) {
	commits, err := adm.FetchOffsets(ctx, o.Group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, groupError(o.Group, err, "")
	}
	topics := sortedKeys(o.Topics)
	type listing struct {
		what string
		list func() (kadm.ListedOffsets, error)
		dst  kadm.ListedOffsets
	}
	lists := []*listing{
		{what: "log start offsets", list: func() (kadm.ListedOffsets, error) { return adm.ListStartOffsets(ctx, topics...) }},
		{what: "log end offsets", list: func() (kadm.ListedOffsets, error) { return adm.ListEndOffsets(ctx, topics...) }},
	}
	if o.Spec.Kind == resetToDatetime {
		ms := o.Spec.Time.UnixMilli()
		lists = append(lists, &listing{what: "offsets by time", list: func() (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, ms, topics...)
		}})
	}
	for _, l := range lists {
		if l.dst, err = l.list(); l.dst == nil && err != nil {
			return nil, fmt.Errorf("list %s: %w", l.what, err)
		}
	}
	lookup := func(l *listing, p groupPartition) (int64, error) {
		lo, ok := l.dst.Lookup(p.Topic, p.Partition)
		switch {
		case !ok:
			return 0, fmt.Errorf("%s-%d: the %s were not listed (is its leader up?)", p.Topic, p.Partition, l.what)
		case lo.Err != nil:
			return 0, fmt.Errorf("%s-%d: list %s: %s", p.Topic, p.Partition, l.what, kafkaErrorText(lo.Err, ""))
		}
		return lo.Offset, nil
	}
	inputs := make([]resetInput, 0, len(parts))
	for _, p := range parts {
		in := resetInput{Topic: p.Topic, Partition: p.Partition, Committed: -1, AtTime: -1}
		if c, ok := commits.Lookup(p.Topic, p.Partition); ok {
			if c.Err != nil {
				return nil, partitionError(o.Group, p.Topic, p.Partition, c.Err)
			}
			in.Committed = c.At
		}
		var err error
		if in.LogStart, err = lookup(lists[0], p); err != nil {
			return nil, err
		}
		if in.LogEnd, err = lookup(lists[1], p); err != nil {
			return nil, err
		}
		if len(lists) > 2 {
			if in.AtTime, err = lookup(lists[2], p); err != nil {
				return nil, err
			}
		}
		inputs = append(inputs, in)
	}
	return inputs, nil
}
