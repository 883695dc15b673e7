package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const groupDescribeLong = `For each GROUP: its coordinator, state, protocol type and protocol (the
assignor, shown while the group is Stable), its members (member id, client
id, host and the partitions assigned to each, decoded from the consumer
protocol's assignment) and, per partition, the committed offset, the log end
offset and the lag (log end - committed; "-" when nothing is committed), as
kafka-consumer-groups --describe shows them, plus the total lag of the group.

Rows cover every partition assigned to a member and every partition with a
committed offset. A commit past the log end counts as lag 0. A group that does
not exist is an error (exit 1); the others are still shown.

--format json prints, for scripts (these field names are stable):

  {"groups": [{
     "group": "...", "coordinator": 0, "state": "Stable",
     "protocol_type": "consumer", "protocol": "range",
     "members": [{"member_id": "...", "instance_id": null, "client_id": "...",
                  "host": "...", "assignment": [{"topic": "t", "partitions": [0, 1]}]}],
     "offsets": [{"topic": "t", "partition": 0, "committed_offset": 5,
                  "log_end_offset": 8, "lag": 3, "member_id": "...",
                  "client_id": "...", "host": "..."}],
     "total_lag": 3,
     "error": "..."}]}

committed_offset and lag are null when nothing is committed, log_end_offset
when it could not be listed; member_id, client_id and host are "" for a
partition no member is assigned; "error" appears only for a group (or, inside
"offsets", a partition) that could not be described; such a group has
coordinator -1 and no members or offsets.`

func newGroupDescribeCmd(admin groupAdmin) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Show state, members, committed offsets and lag per partition",
		Long:  groupDescribeLong,
		Args:  groupArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return describeGroups(ctx, adm, args, f, cmd.OutOrStdout())
			})
		},
	}
	addFormatFlag(cmd, &format)
	return cmd
}

// groupDescription is one group of `group describe --format json`; the JSON
// names are a contract documented in groupDescribeLong.
type groupDescription struct {
	Group        string         `json:"group"`
	Coordinator  int32          `json:"coordinator"`
	State        string         `json:"state"`
	ProtocolType string         `json:"protocol_type"`
	Protocol     string         `json:"protocol"`
	Members      []groupMember  `json:"members"`
	Offsets      []partitionLag `json:"offsets"`
	TotalLag     int64          `json:"total_lag"`
	Error        string         `json:"error,omitempty"`

	err error // Error as an error, for the exit status
}

type groupMember struct {
	MemberID   string            `json:"member_id"`
	InstanceID *string           `json:"instance_id"`
	ClientID   string            `json:"client_id"`
	Host       string            `json:"host"`
	Assignment []topicPartitions `json:"assignment"`
}

type topicPartitions struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

type partitionLag struct {
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition"`
	CommittedOffset *int64 `json:"committed_offset"`
	LogEndOffset    *int64 `json:"log_end_offset"`
	Lag             *int64 `json:"lag"`
	MemberID        string `json:"member_id"`
	ClientID        string `json:"client_id"`
	Host            string `json:"host"`
	Error           string `json:"error,omitempty"`
}

// describeGroups prints the groups in the order given. Each request is one
// per coordinator (kadm shards DescribeGroups and OffsetFetch by group
// coordinator, ListOffsets by partition leader).
func describeGroups(ctx context.Context, adm *kadm.Client, groups []string, f outputFormat, w io.Writer) error {
	descs, err := collectGroupDescriptions(ctx, adm, groups)
	if err != nil {
		return err
	}
	if f == formatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Groups []groupDescription `json:"groups"`
		}{descs}); err != nil {
			return err
		}
	} else {
		first := true
		for i := range descs {
			if descs[i].err != nil {
				continue
			}
			if !first {
				fmt.Fprintln(w)
			}
			first = false
			printGroupDescription(w, &descs[i])
		}
	}
	var failed []string
	for _, d := range descs {
		if d.err != nil {
			failed = append(failed, d.err.Error())
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// collectGroupDescriptions gathers what describe shows: DescribeGroups for
// state and members, OffsetFetch for the commits, ListOffsets (latest) for
// the log end offsets of every partition assigned or committed.
func collectGroupDescriptions(ctx context.Context, adm *kadm.Client, groups []string) ([]groupDescription, error) {
	groups = dedupe(groups)
	described, err := adm.DescribeGroups(ctx, groups...)
	failed, err := shardGroupErrors(err, func(r kmsg.Request) []string {
		if req, ok := r.(*kmsg.DescribeGroupsRequest); ok {
			return req.Groups
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describe groups: %w", err)
	}

	descs := make([]groupDescription, len(groups))
	var ok []string
	for i, g := range groups {
		d := &descs[i]
		d.Group, d.Coordinator = g, -1
		d.Members, d.Offsets = []groupMember{}, []partitionLag{}
		dg, found := described[g]
		switch {
		case failed[g] != nil:
			d.err = groupError(g, failed[g], "")
		case !found:
			d.err = fmt.Errorf("group %q: the coordinator did not describe it", g)
		case dg.Err != nil:
			d.err = groupError(g, dg.Err, dg.ErrMessage)
		case dg.State == "Dead" && len(dg.Members) == 0:
			// Brokers before DescribeGroups v6 (KIP-1043) report an
			// unknown group as Dead rather than GROUP_ID_NOT_FOUND.
			d.err = groupError(g, kerr.GroupIDNotFound, "")
		}
		if d.err != nil {
			d.Error = d.err.Error()
			continue
		}
		d.Coordinator, d.State, d.ProtocolType, d.Protocol = dg.Coordinator.NodeID, dg.State, dg.ProtocolType, dg.Protocol
		for _, m := range dg.Members {
			d.Members = append(d.Members, describedMember(m))
		}
		ok = append(ok, g)
	}
	if len(ok) == 0 {
		return descs, nil
	}

	fetched := adm.FetchManyOffsets(ctx, ok...)
	topics := map[string]bool{}
	for i := range descs {
		d := &descs[i]
		if d.err != nil {
			continue
		}
		r, found := fetched[d.Group]
		switch {
		case !found:
			d.err = fmt.Errorf("group %q: fetch offsets: no answer from the coordinator", d.Group)
		case r.Err != nil:
			d.err = groupError(d.Group, r.Err, "")
		}
		if d.err != nil {
			d.Error = d.err.Error()
			continue
		}
		for _, m := range d.Members {
			for _, tp := range m.Assignment {
				topics[tp.Topic] = true
			}
		}
		r.Fetched.Each(func(o kadm.OffsetResponse) { topics[o.Topic] = true })
	}
	var ends kadm.ListedOffsets
	if len(topics) > 0 {
		ends, err = adm.ListEndOffsets(ctx, sortedKeys(topics)...)
		if ends == nil && err != nil {
			return nil, fmt.Errorf("list end offsets: %w", err)
		}
		// A shard error leaves its partitions out of ends; their rows say
		// the end offset is missing.
	}
	for i := range descs {
		d := &descs[i]
		if d.err == nil {
			d.Offsets, d.TotalLag = groupLagRows(d.Members, fetched[d.Group].Fetched, ends)
		}
	}
	return descs, nil
}

func describedMember(m kadm.DescribedGroupMember) groupMember {
	gm := groupMember{
		MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost,
		Assignment: []topicPartitions{},
	}
	// Only consumer-protocol assignments can be decoded (kadm does it for
	// protocol type "consumer"); other protocols show no partitions.
	if ca, ok := m.Assigned.AsConsumer(); ok && ca != nil {
		for _, t := range ca.Topics {
			ps := append([]int32(nil), t.Partitions...)
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			gm.Assignment = append(gm.Assignment, topicPartitions{Topic: t.Topic, Partitions: ps})
		}
		sort.Slice(gm.Assignment, func(i, j int) bool { return gm.Assignment[i].Topic < gm.Assignment[j].Topic })
	}
	return gm
}

// groupLagRows computes one row per partition assigned to a member or
// committed to, sorted by topic and partition, and the group's total lag.
// Lag is log end - committed, as kafka-consumer-groups computes it; nothing
// committed means no lag figure ("-"), and a commit past the end (after a
// truncation, or an admin commit) counts as 0 rather than a negative lag.
func groupLagRows(members []groupMember, commits kadm.OffsetResponses, ends kadm.ListedOffsets) ([]partitionLag, int64) {
	type tp struct {
		topic     string
		partition int32
	}
	rows := map[tp]*partitionLag{}
	row := func(topic string, p int32) *partitionLag {
		k := tp{topic, p}
		if r := rows[k]; r != nil {
			return r
		}
		r := &partitionLag{Topic: topic, Partition: p}
		rows[k] = r
		return r
	}
	for _, m := range members {
		for _, a := range m.Assignment {
			for _, p := range a.Partitions {
				r := row(a.Topic, p)
				r.MemberID, r.ClientID, r.Host = m.MemberID, m.ClientID, m.Host
			}
		}
	}
	commits.Each(func(o kadm.OffsetResponse) {
		r := row(o.Topic, o.Partition)
		switch {
		case o.Err != nil:
			r.Error = "committed offset: " + kafkaErrorText(o.Err, "")
		case o.At >= 0: // -1: the coordinator has no commit for it
			at := o.At
			r.CommittedOffset = &at
		}
	})
	var total int64
	out := make([]partitionLag, 0, len(rows))
	for _, r := range rows {
		end, ok := ends.Lookup(r.Topic, r.Partition)
		if missing, gone := ends.Lookup(r.Topic, -1); !ok && gone {
			end, ok = missing, true // kadm's marker for a topic that does not exist
		}
		switch {
		case !ok:
			if r.Error == "" {
				r.Error = "log end offset: not listed (unknown topic or partition, or its leader did not answer)"
			}
		case end.Err != nil:
			if r.Error == "" {
				r.Error = "log end offset: " + kafkaErrorText(end.Err, "")
			}
		default:
			e := end.Offset
			r.LogEndOffset = &e
			if r.CommittedOffset != nil {
				lag := max(0, e-*r.CommittedOffset)
				r.Lag = &lag
				total += lag
			}
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, total
}

// printGroupDescription writes one group as a key/value header, a members
// table and an offsets table (kafka-consumer-groups' --describe columns).
func printGroupDescription(w io.Writer, d *groupDescription) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GROUP\t%s\n", d.Group)
	fmt.Fprintf(tw, "COORDINATOR\t%d\n", d.Coordinator)
	fmt.Fprintf(tw, "STATE\t%s\n", dash(d.State))
	fmt.Fprintf(tw, "PROTOCOL-TYPE\t%s\n", dash(d.ProtocolType))
	fmt.Fprintf(tw, "PROTOCOL\t%s\n", dash(d.Protocol))
	fmt.Fprintf(tw, "MEMBERS\t%d\n", len(d.Members))
	fmt.Fprintf(tw, "TOTAL-LAG\t%d\n", d.TotalLag)
	tw.Flush()

	if len(d.Members) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER-ID\tCLIENT-ID\tHOST\tASSIGNMENT")
		for _, m := range d.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.MemberID, dash(m.ClientID), dash(m.Host), dash(assignmentString(m.Assignment)))
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	if len(d.Offsets) == 0 {
		fmt.Fprintln(w, "(no assigned partitions and no committed offsets)")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER-ID\tCLIENT-ID\tHOST")
	for _, r := range d.Offsets {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s", r.Topic, r.Partition, dashInt(r.CommittedOffset),
			dashInt(r.LogEndOffset), dashInt(r.Lag), dash(r.MemberID), dash(r.ClientID), dash(r.Host))
		if r.Error != "" {
			fmt.Fprintf(tw, "\terror: %s", r.Error)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// assignmentString renders an assignment as "t:0,1 u:2".
func assignmentString(as []topicPartitions) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, a.Topic+":"+int32sString(a.Partitions))
	}
	return strings.Join(parts, " ")
}

// dedupe drops repeated names, keeping the first occurrence's position.
func dedupe(names []string) []string {
	seen := map[string]bool{}
	out := names[:0:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
