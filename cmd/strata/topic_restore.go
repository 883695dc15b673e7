package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// restoreConfig is the CreateTopics config that makes the broker rebuild a
// topic from its remote storage (see broker/tiering_restore.go).
const restoreConfig = "strata.remote.restore"

func newTopicRestoreCmd(admin func(*cobra.Command, func(context.Context, *kadm.Client) error) error) *cobra.Command {
	return &cobra.Command{
		Use:   "restore NAME",
		Short: "Recreate a topic from the broker's remote storage (bucket) alone",
		Long: `Recreate a topic whose data lives in the broker's remote storage (--remote), for
example after every broker disk was lost. The broker reads the topic's stored
configuration and manifests from the bucket, creates the topic with the same
partitions and configs, and serves every tiered offset from the bucket; new
records continue after the last tiered offset.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return admin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return restoreTopic(ctx, adm, args[0], cmd.OutOrStdout())
			})
		},
	}
}

func restoreTopic(ctx context.Context, adm *kadm.Client, name string, w io.Writer) error {
	v := "true"
	resp, err := adm.CreateTopic(ctx, -1, -1, map[string]*string{restoreConfig: &v}, name)
	if err != nil {
		if resp.Err != nil {
			return topicError(name, resp.Err, resp.ErrMessage)
		}
		return fmt.Errorf("restore topic %q: %w", name, err)
	}
	fmt.Fprintf(w, "Restored topic %q from remote storage (%d partitions).\n", name, resp.NumPartitions)
	return nil
}
