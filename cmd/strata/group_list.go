package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// groupStates are the group states Kafka reports (ConsumerGroupState and
// GroupState): the classic protocol's five, KIP-848's Assigning and
// Reconciling, and Unknown. --state takes these, case-insensitively, as
// kafka-consumer-groups --list --state does.
var groupStates = []string{
	"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead",
	"Assigning", "Reconciling", "Unknown",
}

// parseStates canonicalises --state values (repeatable, each possibly a
// comma-separated list) and rejects unknown ones.
func parseStates(vals []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			canon := ""
			for _, known := range groupStates {
				if strings.EqualFold(s, known) {
					canon = known
				}
			}
			if canon == "" {
				return nil, usageErrorf("invalid --state %q: want one of %s", s, strings.Join(groupStates, ", "))
			}
			if !seen[canon] {
				seen[canon] = true
				out = append(out, canon)
			}
		}
	}
	return out, nil
}

func newGroupListCmd(admin groupAdmin) *cobra.Command {
	var states []string
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumer groups with their state and protocol type",
		Long: `Lists the groups of every broker (each coordinator reports its own groups).
--state keeps only groups in the given states (repeatable or comma-separated;
Empty, PreparingRebalance, CompletingRebalance, Stable, Dead, Assigning,
Reconciling, Unknown; case does not matter).

--format json prints {"groups": [{"group", "state", "protocol_type",
"coordinator"}]}, sorted by group; coordinator is the node id of the broker
that coordinates the group.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := parseStates(states)
			if err != nil {
				return err
			}
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return listGroups(ctx, adm, filter, f, cmd.OutOrStdout())
			})
		},
	}
	cmd.Flags().StringArrayVar(&states, "state", nil, "only groups in this state (repeatable, or comma-separated)")
	addFormatFlag(cmd, &format)
	return cmd
}

// listedGroupJSON is one entry of `group list --format json`.
type listedGroupJSON struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

// listGroups sends ListGroups to every broker with the state filter (v4+,
// KIP-518). The filter is applied here too, so a broker that ignores it
// (older versions) still gives the right answer. A broker that fails (or
// answers COORDINATOR_LOAD_IN_PROGRESS) makes the command fail after
// printing what the others reported, so a partial list is never mistaken
// for a full one.
func listGroups(ctx context.Context, adm *kadm.Client, states []string, f outputFormat, w io.Writer) error {
	listed, err := adm.ListGroups(ctx, states...)
	var se *kadm.ShardErrors
	if err != nil && (!errors.As(err, &se) || se.AllFailed) {
		return fmt.Errorf("list groups: %s", kafkaErrorText(err, ""))
	}
	keep := func(state string) bool {
		if len(states) == 0 {
			return true
		}
		for _, s := range states {
			if strings.EqualFold(s, state) {
				return true
			}
		}
		return false
	}
	rows := []listedGroupJSON{}
	for _, g := range listed.Sorted() {
		if keep(g.State) {
			rows = append(rows, listedGroupJSON{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
		}
	}
	if f == formatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Groups []listedGroupJSON `json:"groups"`
		}{rows}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL-TYPE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Group, dash(r.State), dash(r.ProtocolType))
		}
		tw.Flush()
	}
	if err != nil {
		return fmt.Errorf("list groups (the list above may be incomplete): %s", kafkaErrorText(err, ""))
	}
	return nil
}
