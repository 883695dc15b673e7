package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// newElectLeadersCmd is `strata cluster elect-leaders`: manual leader
// rebalancing, as kafka-leader-election.sh.
func newElectLeadersCmd(bootstrap *string) *cobra.Command {
	var topics []string
	var unclean bool
	cmd := &cobra.Command{
		Use:   "elect-leaders",
		Short: "Move leadership back to preferred replicas (or elect uncleanly)",
		Long: `Runs a leader election on the controller (ElectLeaders, as
kafka-leader-election.sh): by default a preferred election, which makes each
partition's first replica its leader again where that replica is live and
in sync — the way to rebalance leadership after brokers restarted. With
--unclean, a partition with no live in-sync replica gets a leader from the
out-of-sync ones (acknowledged records may be lost). --topic limits it to
topics (all partitions); without it every partition is considered. Prints
one line per partition whose leader changed or that could not be elected;
partitions already led by their preferred replica are counted.`,
		Example: `  strata cluster elect-leaders
  strata cluster elect-leaders --topic orders --topic payments`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := newClient(*bootstrap)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), adminTimeout)
			defer cancel()
			return electLeaders(ctx, kadm.NewClient(cl), topics, unclean, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVar(&topics, "topic", nil, "topic to elect leaders for (repeatable; default: all)")
	cmd.Flags().BoolVar(&unclean, "unclean", false, "elect from out-of-sync replicas where no in-sync replica is live")
	return cmd
}

func electLeaders(ctx context.Context, adm *kadm.Client, topics []string, unclean bool, out io.Writer) error {
	how := kadm.ElectPreferredReplica
	if unclean {
		how = kadm.ElectLiveReplica
	}
	var set kadm.TopicsSet
	if len(topics) > 0 {
		md, err := adm.Metadata(ctx, topics...)
		if err != nil {
			return err
		}
		set = kadm.TopicsSet{}
		for _, t := range md.Topics.Sorted() {
			if t.Err != nil {
				return fmt.Errorf("topic %q: %v", t.Topic, t.Err)
			}
			for _, p := range t.Partitions.Sorted() {
				set.Add(t.Topic, p.Partition)
			}
		}
	}
	res, err := adm.ElectLeaders(ctx, how, set)
	if err != nil {
		return err
	}
	type row struct {
		topic string
		p     int32
		err   error
	}
	var rows []row
	for topic, ps := range res {
		for p, r := range ps {
			rows = append(rows, row{topic, p, r.Err})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].topic != rows[j].topic {
			return rows[i].topic < rows[j].topic
		}
		return rows[i].p < rows[j].p
	})
	elected, notNeeded, failed := 0, 0, 0
	for _, r := range rows {
		switch {
		case r.err == nil:
			elected++
			fmt.Fprintf(out, "%s-%d: leader moved to its preferred replica\n", r.topic, r.p)
		case errors.Is(r.err, kerr.ElectionNotNeeded):
			notNeeded++
		default:
			failed++
			fmt.Fprintf(out, "%s-%d: %v\n", r.topic, r.p, r.err)
		}
	}
	fmt.Fprintf(out, "elected %d, already preferred %d, failed %d\n", elected, notNeeded, failed)
	if failed > 0 {
		return fmt.Errorf("%d partitions could not be elected", failed)
	}
	return nil
}
