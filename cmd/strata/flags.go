package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	defaultBootstrapServer = "127.0.0.1:9092"
	bootstrapServerEnv     = "STRATA_BOOTSTRAP_SERVER"
)

// addBootstrapFlag registers --bootstrap-server. As with Kafka's tools the
// flag names the broker to reach; $STRATA_BOOTSTRAP_SERVER replaces the
// built-in default so a shell can point every command at one cluster.
func addBootstrapFlag(fs *pflag.FlagSet, dst *string, getenv func(string) string) {
	def := defaultBootstrapServer
	if v := strings.TrimSpace(getenv(bootstrapServerEnv)); v != "" {
		def = v
	}
	fs.StringVar(dst, "bootstrap-server", def,
		"broker HOST:PORT to connect to, comma-separated for several (env "+bootstrapServerEnv+")")
}

// seedBrokers splits a --bootstrap-server value into kgo seed addresses.
func seedBrokers(bootstrap string) ([]string, error) {
	var seeds []string
	for _, s := range strings.Split(bootstrap, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return nil, usageErrorf("--bootstrap-server is empty")
	}
	return seeds, nil
}

// newClient returns a kgo client for bootstrap with extra options appended.
func newClient(bootstrap string, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds, err := seedBrokers(bootstrap)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return cl, nil
}

// parseConfigs turns repeated --config name=value flags into the map kadm
// takes. The value may itself contain '=' (only the first one splits).
func parseConfigs(kvs []string) (map[string]*string, error) {
	configs := make(map[string]*string, len(kvs))
	for _, kv := range kvs {
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, usageErrorf("invalid --config %q: want name=value", kv)
		}
		if _, dup := configs[name]; dup {
			return nil, usageErrorf("config %q given twice", name)
		}
		configs[name] = &value
	}
	return configs, nil
}

// parseAcks accepts Kafka's acks values: -1 (or "all"), 0 and 1.
func parseAcks(s string) (kgo.Acks, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "-1", "all":
		return kgo.AllISRAcks(), nil
	case "1":
		return kgo.LeaderAck(), nil
	case "0":
		return kgo.NoAck(), nil
	}
	return kgo.Acks{}, usageErrorf("invalid --acks %q: want -1 (all), 0 or 1", s)
}

// producerAckOpts returns the producer options for acks. kgo's idempotent
// producer requires acks=all, so weaker acks turn idempotence off, as the
// Java client does when acks != all.
func producerAckOpts(acks string) ([]kgo.Opt, error) {
	a, err := parseAcks(acks)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.RequiredAcks(a)}
	if a != kgo.AllISRAcks() {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts, nil
}

// parseCompression maps Kafka's compression.type names to a kgo codec.
func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, usageErrorf("invalid --compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

// splitKey splits a console-producer line into key and value at the first
// sep. Like kafka-console-producer with parse.key=true, a line without the
// separator is an error rather than a silently key-less record.
func splitKey(line []byte, sep string) (key, value []byte, err error) {
	if sep == "" {
		return nil, line, nil
	}
	k, v, ok := bytes.Cut(line, []byte(sep))
	if !ok {
		return nil, nil, fmt.Errorf("no key separator %q in line %q", sep, truncate(string(line), 60))
	}
	return k, v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// unescapeSeparator lets users write separators such as "\t" on a shell line.
func unescapeSeparator(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
	if err != nil {
		return "", usageErrorf("invalid separator %q: %v", s, err)
	}
	return u, nil
}

// exactArgs is cobra.ExactArgs with a message naming the arguments and a
// usage-error exit status.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(args) < len(names) {
			return usageErrorf("%s: missing %s argument", cmd.CommandPath(), strings.Join(names[len(args):], " "))
		}
		return usageErrorf("%s: unexpected argument %q", cmd.CommandPath(), args[len(names)])
	}
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s: unexpected argument %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// requireFlag reports a usage error if a required string flag is empty.
func requireFlag(name, value string) error {
	if strings.TrimSpace(value) == "" {
		return usageErrorf("--%s is required", name)
	}
	return nil
}

// runGroup is the RunE of a command that only groups subcommands: bare, it
// prints help; with an argument, that argument is an unknown subcommand.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}
