package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// newGroupCmd is `strata group`, the consumer-group tools of
// kafka-consumer-groups.sh (and Redpanda's `rpk group`): list, describe with
// lag, reset-offsets, delete and delete-offsets.
//
// Every request goes through kadm, which sends group requests to each
// group's own coordinator (FindCoordinator, then one request per
// coordinator) and ListGroups to every broker, so the commands work
// unchanged when the groups of a cluster are spread over its brokers.
func newGroupCmd(getenv func(string) string) *cobra.Command {
	var bootstrap string
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe (with lag), reset offsets of and delete consumer groups (like kafka-consumer-groups)",
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
	cmd.AddCommand(
		newGroupListCmd(admin),
		newGroupDescribeCmd(admin),
		newGroupResetCmd(admin),
		newGroupDeleteCmd(admin),
		newGroupDeleteOffsetsCmd(admin),
	)
	return cmd
}

// groupAdmin runs fn with an admin client whose context carries the
// command's timeout.
type groupAdmin func(cmd *cobra.Command, fn func(context.Context, *kadm.Client) error) error

// groupArgs requires at least one GROUP argument, none of them empty (a
// broker would answer INVALID_GROUP_ID; saying so before connecting is
// clearer).
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usageErrorf("%s: missing GROUP argument", cmd.CommandPath())
	}
	for _, g := range args {
		if strings.TrimSpace(g) == "" {
			return usageErrorf("%s: a group id must not be empty", cmd.CommandPath())
		}
	}
	return nil
}

// oneGroupArg requires exactly one non-empty GROUP argument.
func oneGroupArg(cmd *cobra.Command, args []string) error {
	if err := exactArgs("GROUP")(cmd, args); err != nil {
		return err
	}
	return groupArgs(cmd, args)
}

// outputFormat is the value of --format: human-readable tables or JSON.
type outputFormat string

const (
	formatText outputFormat = "text"
	formatJSON outputFormat = "json"
)

func addFormatFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "format", string(formatText), "output format: text or json")
}

func parseFormat(s string) (outputFormat, error) {
	switch f := outputFormat(strings.ToLower(strings.TrimSpace(s))); f {
	case formatText, formatJSON:
		return f, nil
	}
	return "", usageErrorf("invalid --format %q: want text or json", s)
}

// dash renders an empty cell of a text table as "-", as
// kafka-consumer-groups does, so columns stay aligned and readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashInt(v *int64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}

// plural is "1 partition", "2 partitions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
