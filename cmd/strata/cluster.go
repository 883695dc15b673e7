package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func newClusterCmd(getenv func(string) string) *cobra.Command {
	var bootstrap string
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster: brokers, controller, partition health",
		RunE:  runGroup,
	}
	addBootstrapFlag(cmd.PersistentFlags(), &bootstrap, getenv)
	var format string
	status := &cobra.Command{
		Use:   "status",
		Short: "Cluster id, controller, live brokers, under-replicated and offline partitions",
		Long: `Prints the cluster id, the controller, every live broker (id, advertised
address, rack), and the partitions that need attention, with counts:
under-replicated partitions (a leader, but fewer in-sync replicas than
replicas, as kafka-topics --under-replicated-partitions) and offline
partitions (no leader, or a leader that is not a live broker, as
kafka-topics --unavailable-partitions). Exits 1 when any partition is
offline, so scripts can test health with the exit status.`,
		Example: `  strata cluster status --bootstrap-server 127.0.0.1:9092
  strata cluster status --format json | jq .under_replicated_count`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return usageErrorf("invalid --format %q: want text or json", format)
			}
			cl, err := newClient(bootstrap)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), adminTimeout)
			defer cancel()
			return clusterStatus(ctx, kadm.NewClient(cl), format, cmd.OutOrStdout())
		},
	}
	status.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.AddCommand(status, newElectLeadersCmd(&bootstrap))
	return cmd
}

// clusterReport is `cluster status`'s result; its JSON form is --format json.
type clusterReport struct {
	ClusterID            string           `json:"cluster_id"`
	Controller           int32            `json:"controller"` // -1: none
	Brokers              []clusterBroker  `json:"brokers"`
	Topics               int              `json:"topics"`
	Partitions           int              `json:"partitions"`
	UnderReplicatedCount int              `json:"under_replicated_count"`
	UnderReplicated      []partitionState `json:"under_replicated"`
	OfflineCount         int              `json:"offline_count"`
	Offline              []partitionState `json:"offline"`
}

type clusterBroker struct {
	ID      int32   `json:"id"`
	Address string  `json:"address"`
	Rack    *string `json:"rack"` // null: no broker.rack
}

// partitionState is one partition that needs attention. Partition is -1
// for a topic whose partitions the broker could not list at all.
type partitionState struct {
	Topic           string  `json:"topic"`
	Partition       int32   `json:"partition"`
	Leader          int32   `json:"leader"` // -1: none
	Replicas        []int32 `json:"replicas"`
	ISR             []int32 `json:"isr"`
	OfflineReplicas []int32 `json:"offline_replicas"`
	Error           string  `json:"error,omitempty"`
}

// errOffline is returned (after the report is printed) when partitions are
// offline, so the command exits 1.
var errOffline = errors.New("partitions offline")

// clusterStatus fetches metadata for every topic (internal ones included)
// and prints the report; it returns an error wrapping errOffline when any
// partition is offline.
func clusterStatus(ctx context.Context, adm *kadm.Client, format string, w io.Writer) error {
	md, err := adm.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	r := summarizeCluster(md)
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else if err := printClusterReport(w, r); err != nil {
		return err
	}
	if r.OfflineCount > 0 {
		return fmt.Errorf("%d %w", r.OfflineCount, errOffline)
	}
	return nil
}

// summarizeCluster classifies every partition of md. A partition is offline
// when it has no leader or its leader is not among the live brokers (Kafka's
// "unavailable"); otherwise under-replicated when its ISR is smaller than
// its replica set. An offline partition is counted only as offline.
func summarizeCluster(md kadm.Metadata) clusterReport {
	r := clusterReport{
		ClusterID:       md.Cluster,
		Controller:      md.Controller,
		Brokers:         []clusterBroker{},
		UnderReplicated: []partitionState{},
		Offline:         []partitionState{},
	}
	live := map[int32]bool{}
	for _, b := range md.Brokers {
		live[b.NodeID] = true
		r.Brokers = append(r.Brokers, clusterBroker{ID: b.NodeID, Address: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), Rack: b.Rack})
	}
	sort.Slice(r.Brokers, func(i, j int) bool { return r.Brokers[i].ID < r.Brokers[j].ID })
	for _, td := range md.Topics.Sorted() {
		if errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			continue // deleted while we listed
		}
		r.Topics++
		if td.Err != nil && len(td.Partitions) == 0 {
			r.Offline = append(r.Offline, partitionState{Topic: td.Topic, Partition: -1, Leader: -1,
				Replicas: []int32{}, ISR: []int32{}, OfflineReplicas: []int32{}, Error: td.Err.Error()})
			continue
		}
		for _, p := range td.Partitions.Sorted() {
			r.Partitions++
			s := partitionState{Topic: td.Topic, Partition: p.Partition, Leader: p.Leader,
				Replicas: orEmpty(p.Replicas), ISR: orEmpty(p.ISR), OfflineReplicas: orEmpty(p.OfflineReplicas)}
			// LEADER_NOT_AVAILABLE says what Leader = -1 says, and
			// REPLICA_NOT_AVAILABLE what OfflineReplicas says; other codes
			// are worth showing.
			if p.Err != nil && !errors.Is(p.Err, kerr.LeaderNotAvailable) && !errors.Is(p.Err, kerr.ReplicaNotAvailable) {
				s.Error = p.Err.Error()
			}
			switch {
			case p.Leader < 0 || !live[p.Leader]:
				r.Offline = append(r.Offline, s)
			case len(p.ISR) < len(p.Replicas):
				r.UnderReplicated = append(r.UnderReplicated, s)
			}
		}
	}
	r.UnderReplicatedCount, r.OfflineCount = len(r.UnderReplicated), len(r.Offline)
	return r
}

func orEmpty(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}

func printClusterReport(w io.Writer, r clusterReport) error {
	ctrl := "none"
	if r.Controller >= 0 {
		ctrl = fmt.Sprint(r.Controller)
	}
	fmt.Fprintf(w, "Cluster ID: %s\nController: %s\nBrokers: %d\n", r.ClusterID, ctrl, len(r.Brokers))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tADDRESS\tRACK")
	for _, b := range r.Brokers {
		rack := "-"
		if b.Rack != nil {
			rack = *b.Rack
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\n", b.ID, b.Address, rack)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "Topics: %d, partitions: %d\n", r.Topics, r.Partitions)
	for _, sec := range []struct {
		title string
		parts []partitionState
	}{{"Under-replicated partitions", r.UnderReplicated}, {"Offline partitions", r.Offline}} {
		fmt.Fprintf(w, "%s: %d\n", sec.title, len(sec.parts))
		if len(sec.parts) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TOPIC\tPARTITION\tLEADER\tREPLICAS\tISR\tOFFLINE-REPLICAS\tERROR")
		for _, p := range sec.parts {
			errText := "-"
			if p.Error != "" {
				errText = p.Error
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, leaderString(p.Leader),
				dashIfEmpty(int32sString(p.Replicas)), dashIfEmpty(int32sString(p.ISR)), dashIfEmpty(int32sString(p.OfflineReplicas)), errText)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
