package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newGroupDeleteCmd(admin groupAdmin) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete inactive groups and their committed offsets",
		Long: `Deletes each GROUP (DeleteGroups, KIP-229), with all its committed offsets.
Only a group without members can be deleted: a group with members fails with
NON_EMPTY_GROUP, an unknown one with GROUP_ID_NOT_FOUND. Each group's result
is printed; the command exits 1 if any group was not deleted.`,
		Args: groupArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return deleteGroups(ctx, adm, args, cmd.OutOrStdout())
			})
		},
	}
}

// deleteGroups sends DeleteGroups to each group's coordinator and reports
// every group: the successes on w, the failures in the returned error.
func deleteGroups(ctx context.Context, adm *kadm.Client, groups []string, w io.Writer) error {
	groups = dedupe(groups)
	resps, err := adm.DeleteGroups(ctx, groups...)
	failedShards, err := shardGroupErrors(err, func(r kmsg.Request) []string {
		if req, ok := r.(*kmsg.DeleteGroupsRequest); ok {
			return req.Groups
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete groups: %w", err)
	}
	var failed []string
	for _, g := range groups {
		r, ok := resps[g]
		var gerr error
		switch {
		case failedShards[g] != nil:
			gerr = groupError(g, failedShards[g], "")
		case !ok:
			gerr = fmt.Errorf("group %q: the coordinator did not answer for it", g)
		case r.Err != nil:
			gerr = groupError(g, r.Err, r.ErrMessage)
		}
		if gerr != nil {
			failed = append(failed, gerr.Error())
			continue
		}
		fmt.Fprintf(w, "Deleted group %q.\n", g)
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return errors.New(failed[0])
	}
	return fmt.Errorf("%d of %d groups not deleted: %s", len(failed), len(groups), strings.Join(failed, "; "))
}

func newGroupDeleteOffsetsCmd(admin groupAdmin) *cobra.Command {
	var topics []string
	cmd := &cobra.Command{
		Use:   "delete-offsets GROUP --topic T[:P,...]",
		Short: "Delete a group's committed offsets for some topics or partitions",
		Long: `Deletes GROUP's committed offsets for the partitions named by --topic
(repeatable; TOPIC for all its partitions, TOPIC:0,2 for some), with
OffsetDelete (KIP-496), as kafka-consumer-groups --delete-offsets does. While
the group has members, offsets of topics they subscribe to cannot be deleted
(GROUP_SUBSCRIBED_TO_TOPIC); offsets of other topics can. Each partition's
result is printed; the command exits 1 if any was not deleted.`,
		Args: oneGroupArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(topics) == 0 {
				return usageErrorf("--topic is required: name the topics (or TOPIC:PARTITION,...) whose offsets to delete")
			}
			sel, err := parseTopicSpecs(topics)
			if err != nil {
				return err
			}
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return deleteGroupOffsets(ctx, adm, args[0], sel, cmd.OutOrStdout())
			})
		},
	}
	cmd.Flags().StringArrayVar(&topics, "topic", nil, "TOPIC or TOPIC:PARTITION,... whose offsets to delete (repeatable)")
	return cmd
}

// deleteGroupOffsets resolves the partitions (unknown topics and partitions
// are errors before anything is deleted), sends OffsetDelete to the group's
// coordinator and prints one status line per partition.
func deleteGroupOffsets(ctx context.Context, adm *kadm.Client, group string, sel topicSelection, w io.Writer) error {
	parts, err := resolvePartitions(ctx, adm, sel)
	if err != nil {
		return err
	}
	set := kadm.TopicsSet{}
	for _, p := range parts {
		set.Add(p.Topic, p.Partition)
	}
	resps, err := adm.DeleteOffsets(ctx, group, set)
	if err != nil {
		return groupError(group, err, "")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTATUS")
	var failed partitionFailures
	for _, p := range parts {
		perr, ok := resps.Lookup(p.Topic, p.Partition)
		if !ok {
			perr = errors.New("the coordinator did not answer for it")
		}
		status := "Deleted"
		if perr != nil {
			failed.add(p.Topic, p.Partition, perr)
			status = "Error: " + partitionReason(p.Topic, perr)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", p.Topic, p.Partition, status)
	}
	tw.Flush()
	return failed.err(group, "offsets not deleted")
}
