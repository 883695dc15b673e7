package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// adminTimeout bounds each admin command, so an unreachable broker gives an
// error instead of a hang.
const adminTimeout = 30 * time.Second

func newTopicCmd(getenv func(string) string) *cobra.Command {
	var bootstrap string
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter, delete and restore topics (like kafka-topics)",
		RunE:  runGroup,
	}
	addBootstrapFlag(cmd.PersistentFlags(), &bootstrap, getenv)
	admin := func(cmd *cobra.Command, fn func(context.Context, *kadm.Client) error) error {
		cl, err := newClient(bootstrap)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), adminTimeout)
		defer cancel()
		return fn(ctx, kadm.NewClient(cl))
	}

	var create topicCreateOptions
	var createConfigs []string
	createCmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			create.Name = args[0]
			var err error
			if create.Configs, err = parseConfigs(createConfigs); err != nil {
				return err
			}
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return createTopic(ctx, adm, create, cmd.OutOrStdout())
			})
		},
	}
	fs := createCmd.Flags()
	fs.Int32Var(&create.Partitions, "partitions", -1, "number of partitions (-1: the broker's num.partitions)")
	fs.Int16Var(&create.ReplicationFactor, "replication-factor", -1, "replicas per partition (-1: the broker's default.replication.factor)")
	fs.StringArrayVar(&createConfigs, "config", nil, "topic config name=value (repeatable), e.g. retention.ms=86400000")
	fs.BoolVar(&create.IfNotExists, "if-not-exists", false, "succeed without change if the topic already exists")

	var excludeInternal bool
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List topic names, one per line",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return listTopics(ctx, adm, excludeInternal, cmd.OutOrStdout())
			})
		},
	}
	listCmd.Flags().BoolVar(&excludeInternal, "exclude-internal", false, "leave out internal topics such as __consumer_offsets")

	describeCmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show partitions, leaders, replicas, ISR, log offsets and non-default configs",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return describeTopic(ctx, adm, args[0], cmd.OutOrStdout())
			})
		},
	}

	var alter topicAlterOptions
	var alterConfigs []string
	alterCmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Change topic configs (IncrementalAlterConfigs) or grow its partitions",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			alter.Name = args[0]
			var err error
			if alter.SetConfigs, err = parseConfigs(alterConfigs); err != nil {
				return err
			}
			if !cmd.Flags().Changed("partitions") {
				alter.Partitions = 0
			}
			if err := alter.Validate(); err != nil {
				return err
			}
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return alterTopic(ctx, adm, alter, cmd.OutOrStdout())
			})
		},
	}
	fs = alterCmd.Flags()
	fs.StringArrayVar(&alterConfigs, "config", nil, "set topic config name=value (repeatable)")
	fs.StringArrayVar(&alter.DeleteConfigs, "delete-config", nil, "remove a topic config override, reverting to the broker default (repeatable)")
	fs.IntVar(&alter.Partitions, "partitions", 0, "grow the topic to this many partitions (partitions can never shrink)")

	deleteCmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and all its data",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return deleteTopic(ctx, adm, args[0], cmd.OutOrStdout())
			})
		},
	}

	cmd.AddCommand(createCmd, listCmd, describeCmd, alterCmd, deleteCmd, newTopicRestoreCmd(admin))
	return cmd
}

type topicCreateOptions struct {
	Name              string
	Partitions        int32 // -1: broker default (CreateTopics v4+, KIP-464)
	ReplicationFactor int16 // -1: broker default
	Configs           map[string]*string
	IfNotExists       bool
}

func createTopic(ctx context.Context, adm *kadm.Client, o topicCreateOptions, w io.Writer) error {
	resp, err := adm.CreateTopic(ctx, o.Partitions, o.ReplicationFactor, o.Configs, o.Name)
	if err != nil {
		if o.IfNotExists && resp.Err != nil && isTopicExists(resp.Err) {
			fmt.Fprintf(w, "Topic %q already exists.\n", o.Name)
			return nil
		}
		if resp.Err != nil {
			return topicError(o.Name, resp.Err, resp.ErrMessage)
		}
		return fmt.Errorf("create topic %q: %w", o.Name, err)
	}
	fmt.Fprintf(w, "Created topic %q.\n", o.Name)
	return nil
}

func listTopics(ctx context.Context, adm *kadm.Client, excludeInternal bool, w io.Writer) error {
	topics, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics.Sorted() {
		if t.Err != nil || (excludeInternal && t.IsInternal) {
			continue
		}
		fmt.Fprintln(w, t.Topic)
	}
	return nil
}

// describeTopic prints kafka-topics --describe's layout: a topic line with
// the non-default configs, then one line per partition, plus the log start
// and end offsets (which kafka-topics leaves to kafka-get-offsets).
func describeTopic(ctx context.Context, adm *kadm.Client, name string, w io.Writer) error {
	md, err := adm.Metadata(ctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %q: %w", name, err)
	}
	td, ok := md.Topics[name]
	if !ok {
		return topicError(name, errUnknownTopic, "")
	}
	if td.Err != nil {
		return topicError(name, td.Err, "")
	}
	starts, err := adm.ListStartOffsets(ctx, name)
	if err != nil {
		return fmt.Errorf("list start offsets of %q: %w", name, err)
	}
	ends, err := adm.ListEndOffsets(ctx, name)
	if err != nil {
		return fmt.Errorf("list end offsets of %q: %w", name, err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return fmt.Errorf("describe configs of %q: %w", name, err)
	}
	rc, err := rcs.On(name, nil)
	if err == nil && rc.Err != nil {
		err = rc.Err
	}
	if err != nil {
		return topicError(name, err, rc.ErrMessage)
	}

	fmt.Fprintf(w, "Topic: %s\tTopicId: %s\tPartitionCount: %d\tReplicationFactor: %d\tConfigs: %s\n",
		name, td.ID, len(td.Partitions), td.Partitions.NumReplicas(), nonDefaultConfigs(rc.Configs))
	for _, p := range td.Partitions.Sorted() {
		fmt.Fprintf(w, "\tTopic: %s\tPartition: %d\tLeader: %s\tReplicas: %s\tIsr: %s\tLogStartOffset: %s\tLogEndOffset: %s",
			name, p.Partition, leaderString(p.Leader), int32sString(p.Replicas), int32sString(p.ISR),
			offsetString(starts, name, p.Partition), offsetString(ends, name, p.Partition))
		if len(p.OfflineReplicas) > 0 {
			fmt.Fprintf(w, "\tOffline: %s", int32sString(p.OfflineReplicas))
		}
		if p.Err != nil {
			fmt.Fprintf(w, "\tError: %v", p.Err)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// nonDefaultConfigs renders the topic-level overrides, as kafka-topics
// --describe does: only entries whose source is the topic's own config.
func nonDefaultConfigs(cs []kadm.Config) string {
	var parts []string
	for _, c := range cs {
		if c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			continue
		}
		v := c.MaybeValue()
		if c.Sensitive {
			v = "[hidden]"
		}
		parts = append(parts, c.Key+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func leaderString(id int32) string {
	if id < 0 {
		return "none"
	}
	return fmt.Sprint(id)
}

func int32sString(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

func offsetString(l kadm.ListedOffsets, topic string, p int32) string {
	o, ok := l.Lookup(topic, p)
	switch {
	case !ok:
		return "?"
	case o.Err != nil:
		return "error(" + o.Err.Error() + ")"
	}
	return fmt.Sprint(o.Offset)
}

type topicAlterOptions struct {
	Name          string
	SetConfigs    map[string]*string
	DeleteConfigs []string
	Partitions    int // 0: unchanged
}

// Validate rejects alterations that ask for nothing or contradict themselves.
func (o topicAlterOptions) Validate() error {
	if len(o.SetConfigs) == 0 && len(o.DeleteConfigs) == 0 && o.Partitions == 0 {
		return usageErrorf("nothing to alter: give --config, --delete-config or --partitions")
	}
	if o.Partitions < 0 {
		return usageErrorf("invalid --partitions %d", o.Partitions)
	}
	for _, k := range o.DeleteConfigs {
		if _, ok := o.SetConfigs[k]; ok {
			return usageErrorf("config %q is both set and deleted", k)
		}
	}
	return nil
}

// alterTopic applies config changes with IncrementalAlterConfigs (KIP-339),
// so configs not named keep their values, then grows the partition count
// with CreatePartitions. Configs go first: a failed config change leaves the
// partition count alone.
func alterTopic(ctx context.Context, adm *kadm.Client, o topicAlterOptions, w io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	var changes []kadm.AlterConfig
	for _, k := range sortedKeys(o.SetConfigs) {
		changes = append(changes, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: o.SetConfigs[k]})
	}
	for _, k := range o.DeleteConfigs {
		changes = append(changes, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	if len(changes) > 0 {
		resps, err := adm.AlterTopicConfigs(ctx, changes, o.Name)
		if err != nil {
			return fmt.Errorf("alter configs of %q: %w", o.Name, err)
		}
		r, err := resps.On(o.Name, nil)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			return topicError(o.Name, err, r.ErrMessage)
		}
		fmt.Fprintf(w, "Altered configs of topic %q.\n", o.Name)
	}
	if o.Partitions > 0 {
		resps, err := adm.UpdatePartitions(ctx, o.Partitions, o.Name)
		if err != nil {
			return fmt.Errorf("update partitions of %q: %w", o.Name, err)
		}
		r, err := resps.On(o.Name, nil)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			return topicError(o.Name, err, r.ErrMessage)
		}
		fmt.Fprintf(w, "Topic %q now has %d partitions.\n", o.Name, o.Partitions)
	}
	return nil
}

func deleteTopic(ctx context.Context, adm *kadm.Client, name string, w io.Writer) error {
	resp, err := adm.DeleteTopic(ctx, name)
	if err != nil {
		if resp.Err != nil {
			return topicError(name, resp.Err, resp.ErrMessage)
		}
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	fmt.Fprintf(w, "Deleted topic %q.\n", name)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
