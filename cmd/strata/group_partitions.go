package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// topicSelection is what repeated --topic T[:P,P...] flags select: per
// topic, either every partition (nil) or the listed ones.
type topicSelection map[string]map[int32]bool

// parseTopicSpecs parses --topic values as kafka-consumer-groups reads
// them: "orders" means every partition of orders, "orders:0,2" partitions 0
// and 2. Kafka topic names cannot contain ':', so the first one splits.
// Naming a topic twice merges the selections; naming it bare wins.
func parseTopicSpecs(specs []string) (topicSelection, error) {
	sel := topicSelection{}
	for _, spec := range specs {
		topic, parts, hasParts := strings.Cut(strings.TrimSpace(spec), ":")
		if topic == "" {
			return nil, usageErrorf("invalid --topic %q: want TOPIC or TOPIC:PARTITION,...", spec)
		}
		if !hasParts {
			sel[topic] = nil
			continue
		}
		var set map[int32]bool
		for _, ps := range strings.Split(parts, ",") {
			p, err := strconv.ParseInt(strings.TrimSpace(ps), 10, 32)
			if err != nil || p < 0 {
				return nil, usageErrorf("invalid --topic %q: partition %q is not a number >= 0", spec, ps)
			}
			if set == nil {
				set = map[int32]bool{}
			}
			set[int32(p)] = true
		}
		prev, seen := sel[topic]
		switch {
		case seen && prev == nil: // already every partition
		case seen:
			for p := range set {
				prev[p] = true
			}
		default:
			sel[topic] = set
		}
	}
	return sel, nil
}

// groupPartition is one partition the command acts on.
type groupPartition struct {
	Topic     string
	Partition int32
}

// resolvePartitions turns a selection into the partitions it names,
// sorted, checking against metadata that every topic and partition exists:
// an unknown one is an error before anything is changed.
func resolvePartitions(ctx context.Context, adm *kadm.Client, sel topicSelection) ([]groupPartition, error) {
	topics := sortedKeys(sel)
	md, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var out []groupPartition
	for _, topic := range topics {
		td, ok := md[topic]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			return nil, fmt.Errorf("topic %q does not exist", topic)
		case td.Err != nil:
			return nil, topicError(topic, td.Err, "")
		}
		if want := sel[topic]; want != nil {
			for _, p := range sortedPartitions(want) {
				if _, ok := td.Partitions[p]; !ok {
					return nil, fmt.Errorf("topic %q has no partition %d", topic, p)
				}
				out = append(out, groupPartition{topic, p})
			}
			continue
		}
		for _, p := range td.Partitions.Sorted() {
			out = append(out, groupPartition{topic, p.Partition})
		}
	}
	return out, nil
}

func sortedPartitions(set map[int32]bool) []int32 {
	ps := make([]int32, 0, len(set))
	for p := range set {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}
