// Command strata is the one Strata binary: the broker (`strata serve`) and the
// operator tools modelled on Kafka's own (kafka-topics, kafka-console-producer,
// kafka-console-consumer, kafka-producer-perf-test, kafka-dump-log).
//
// Every command's logic lives in a function that takes its options struct and
// io.Reader/io.Writer, so tests call the same code the binary runs; the cobra
// layer only parses flags into those structs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks errors caused by how the command was invoked (bad flag,
// missing argument) so they exit with status 2, as flag-parsing tools do,
// rather than 1 for runtime failures.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run executes the command line args and returns the process exit status.
// Errors are printed as one line prefixed with "strata: ".
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(getenv)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "strata: %v\n", err)
	var ue usageError
	// cobra reports unknown subcommands with an untyped error.
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", commandPathFor(root, args))
		return 2
	}
	return 1
}

// commandPathFor names the subcommand args would have run, for the usage hint.
func commandPathFor(root *cobra.Command, args []string) string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return root.CommandPath()
	}
	return cmd.CommandPath()
}

func newRootCmd(getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Strata: a Kafka-compatible broker with tiered storage",
		Long: `Strata speaks the Apache Kafka wire protocol. 'strata serve' runs a broker;
the other commands are operator tools that reach a broker with
--bootstrap-server HOST:PORT (default 127.0.0.1:9092, or $STRATA_BOOTSTRAP_SERVER).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServeCmd(),
		newTopicCmd(getenv),
		newProduceCmd(getenv),
		newConsumeCmd(getenv),
		newBenchCmd(getenv),
		newDumpLogCmd(),
		newTierCmd(getenv),
		newGroupCmd(getenv),
		newClusterCmd(getenv),
	)
	return root
}
