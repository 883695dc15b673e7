package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newTierCmd(getenv func(string) string) *cobra.Command {
	var bootstrap string
	cmd := &cobra.Command{
		Use:   "tier",
		Short: "Inspect tiered storage (segments copied to the bucket)",
		RunE:  runGroup,
	}
	addBootstrapFlag(cmd.PersistentFlags(), &bootstrap, getenv)
	var topic string
	status := &cobra.Command{
		Use:   "status",
		Short: "Per partition: remote and local offset ranges, bytes in each tier and copy lag",
		Long: `For every tiered partition (or those of --topic): the remote log start, the
local log start, the last offset copied to the bucket, the log end, bytes on
local disk and in the bucket, and the copy lag (local bytes not yet copied).
Copies that are failing (bad credentials, a missing bucket, an unreachable
endpoint) are reported, and the command exits non-zero.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := newClient(bootstrap)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), adminTimeout)
			defer cancel()
			return tierStatus(ctx, cl, topic, cmd.OutOrStdout())
		},
	}
	status.Flags().StringVar(&topic, "topic", "", "only this topic")
	cmd.AddCommand(status)
	return cmd
}

type tierRow struct {
	topic                                       string
	partition                                   int32
	remoteStart, localStart, lastTiered, logEnd int64
	localBytes, remoteBytes, lagBytes           int64
}

// tierStatus reads DescribeLogDirs (the broker reports a "remote:" pseudo
// directory for tiered partitions) and ListOffsets with KIP-1005's special
// timestamps (-4 earliest local, -5 latest tiered).
func tierStatus(ctx context.Context, cl *kgo.Client, onlyTopic string, w io.Writer) error {
	// Ask each broker directly: kgo's merged (sharded) DescribeLogDirs drops
	// per-directory error codes, and the remote: directory's code is how a
	// broker says its copies fail.
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	var dirs []kmsg.DescribeLogDirsResponseDir
	for _, br := range meta.Brokers {
		resp, err := cl.Broker(int(br.NodeID)).Request(ctx, kmsg.NewPtrDescribeLogDirsRequest())
		if err != nil {
			return fmt.Errorf("describe log dirs of broker %d: %w", br.NodeID, err)
		}
		dirs = append(dirs, resp.(*kmsg.DescribeLogDirsResponse).Dirs...)
	}
	rows := map[string]*tierRow{}
	key := func(t string, p int32) string { return fmt.Sprintf("%s/%d", t, p) }
	failing := false
	remoteSeen := false
	for _, d := range dirs {
		remote := d.Dir == "remote:"
		if remote {
			remoteSeen = true
			if d.ErrorCode != 0 {
				failing = true
			}
		}
		for _, t := range d.Topics {
			if onlyTopic != "" && t.Topic != onlyTopic {
				continue
			}
			for _, p := range t.Partitions {
				r := rows[key(t.Topic, p.Partition)]
				if r == nil {
					r = &tierRow{topic: t.Topic, partition: p.Partition, remoteBytes: -1}
					rows[key(t.Topic, p.Partition)] = r
				}
				if remote {
					r.remoteBytes, r.lagBytes = p.Size, p.OffsetLag
				} else {
					r.localBytes = p.Size
				}
			}
		}
	}
	if !remoteSeen {
		return fmt.Errorf("the broker has no remote storage configured (strata serve --remote URL)")
	}
	var tiered []*tierRow
	for _, r := range rows {
		if r.remoteBytes >= 0 {
			tiered = append(tiered, r)
		}
	}
	sort.Slice(tiered, func(i, j int) bool {
		if tiered[i].topic != tiered[j].topic {
			return tiered[i].topic < tiered[j].topic
		}
		return tiered[i].partition < tiered[j].partition
	})
	for _, spec := range []struct {
		ts  int64
		set func(*tierRow, int64)
	}{
		{-2, func(r *tierRow, o int64) { r.remoteStart = o }},
		{-4, func(r *tierRow, o int64) { r.localStart = o }},
		{-5, func(r *tierRow, o int64) { r.lastTiered = o }},
		{-1, func(r *tierRow, o int64) { r.logEnd = o }},
	} {
		req := kmsg.NewPtrListOffsetsRequest()
		byTopic := map[string]int{}
		for _, r := range tiered {
			i, ok := byTopic[r.topic]
			if !ok {
				t := kmsg.NewListOffsetsRequestTopic()
				t.Topic = r.topic
				req.Topics = append(req.Topics, t)
				i = len(req.Topics) - 1
				byTopic[r.topic] = i
			}
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Partition, p.Timestamp = r.partition, spec.ts
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
		}
		if len(req.Topics) == 0 {
			break
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("list offsets: %w", err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if r := rows[key(t.Topic, p.Partition)]; r != nil {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						return fmt.Errorf("list offsets %s-%d: %w", t.Topic, p.Partition, err)
					}
					spec.set(r, p.Offset)
				}
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tREMOTE-START\tLOCAL-START\tLAST-TIERED\tLOG-END\tLOCAL-BYTES\tREMOTE-BYTES\tCOPY-LAG-BYTES")
	for _, r := range tiered {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.topic, r.partition, r.remoteStart, r.localStart, r.lastTiered, r.logEnd, r.localBytes, r.remoteBytes, r.lagBytes)
	}
	tw.Flush()
	if len(tiered) == 0 {
		fmt.Fprintln(w, "(no tiered partitions)")
	}
	if failing {
		cause := "see the broker log"
		creq := kmsg.NewPtrDescribeConfigsRequest()
		res := kmsg.NewDescribeConfigsRequestResource()
		res.ResourceType = kmsg.ConfigResourceTypeBroker
		res.ConfigNames = []string{"strata.remote.status"}
		creq.Resources = append(creq.Resources, res)
		if cresp, err := creq.RequestWith(ctx, cl); err == nil {
			for _, r := range cresp.Resources {
				for _, c := range r.Configs {
					if c.Value != nil {
						cause = *c.Value
					}
				}
			}
		}
		return fmt.Errorf("copies to remote storage are failing: %s", cause)
	}
	return nil
}
