package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/remotestore"
)

// serveFlags are `strata serve`'s flags (DESIGN.md's command-line contract).
type serveFlags struct {
	dataDir       string
	listen        string
	advertise     string
	nodeID        int32
	remote        string
	consul        string
	consulPrefix  string
	configs       []string
	configFile    string
	metricsListen string
	logLevel      string
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Strata broker",
		Long: `Run a Strata broker that speaks the Kafka protocol.

Broker configs use Kafka's names and come, lowest precedence first, from a
properties file (--config-file), the environment (STRATA_ + upper-case name with
'_' for '.', e.g. STRATA_NUM_PARTITIONS=3), then -c name=value flags. With no
--remote and no --consul it runs as a single node on embedded defaults.`,
		Example: `  strata serve --data-dir ./data --listen 127.0.0.1:9092
  strata serve --data-dir /var/lib/strata -c num.partitions=6 -c log.segment.bytes=268435456`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, f, os.Environ(), cmd.OutOrStdout(), cmd.Flags().Changed)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for partition logs and metadata (log.dirs)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:9092", "host:port to accept Kafka clients on")
	fl.StringVar(&f.advertise, "advertise", "", "host:port clients are told to connect to (default: the listen address)")
	fl.Int32Var(&f.nodeID, "node-id", 0, "this broker's id (node.id)")
	fl.StringVar(&f.remote, "remote", "", "remote storage URL for tiered segments (file:///path or s3://bucket/prefix?endpoint=…)")
	fl.StringVar(&f.consul, "consul", "", "Consul agent HTTP address (host:port) for cluster mode")
	fl.StringVar(&f.consulPrefix, "consul-prefix", "strata/default/", "Consul key prefix of this cluster (two clusters on one Consul need two prefixes)")
	fl.StringArrayVarP(&f.configs, "config", "c", nil, "broker config name=value (repeatable)")
	fl.StringVar(&f.configFile, "config-file", "", "properties file of broker configs (name=value lines)")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "host:port to serve Prometheus metrics on /metrics (off when empty)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// runServe resolves configuration, starts the broker and blocks until ctx ends.
func runServe(ctx context.Context, f serveFlags, environ []string, out io.Writer, changed func(string) bool) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %q is not debug, info, warn or error", f.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	settings, err := collectSettings(f.configFile, environ, f.configs)
	if err != nil {
		return err
	}
	for _, k := range ignoredEnv {
		logger.Warn("ignoring environment variable: not a broker config", "name", k)
	}
	opts := broker.Options{Listen: f.listen, Advertise: f.advertise, Settings: settings, Logger: logger}
	opts.DataDir = f.dataDir
	if opts.DataDir == "" {
		opts.DataDir = firstDir(settings["log.dirs"])
	}
	if opts.DataDir == "" {
		return errors.New("no data directory: pass --data-dir DIR (or set log.dirs)")
	}
	opts.NodeID = f.nodeID
	if !changed("node-id") {
		if v, ok := settings["node.id"]; ok {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return fmt.Errorf("node.id: %q is not a number", v)
			}
			opts.NodeID = int32(n)
		}
	}
	if f.remote != "" {
		store, err := remotestore.Open(f.remote)
		if err != nil {
			return fmt.Errorf("--remote: %v", err)
		}
		defer store.Close()
		opts.Remote = store
	}
	if f.consul != "" {
		session, heartbeat, err := broker.SessionTimeouts(settings)
		if err != nil {
			return err
		}
		octx, cancel := context.WithTimeout(ctx, 60*time.Second)
		c, err := coord.OpenConsul(octx, coord.ConsulOptions{Address: f.consul, Prefix: f.consulPrefix, NodeID: opts.NodeID,
			SessionTimeout: session, HeartbeatInterval: heartbeat, Logger: logger})
		cancel()
		if err != nil {
			return fmt.Errorf("--consul %s: %v", f.consul, err)
		}
		defer c.Close()
		opts.Coord = c
	}
	b, err := broker.New(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "strata node %d listening on %s (data in %s)\n", opts.NodeID, b.Addr(), opts.DataDir)
	if f.metricsListen != "" {
		ln, err := net.Listen("tcp", f.metricsListen)
		if err != nil {
			b.Close()
			return fmt.Errorf("--metrics-listen %s: %v", f.metricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", b.MetricsHandler())
		// Go's profiler on the same (operator-only) listener, for the
		// profiles behind BENCHMARKS.md.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(out, "metrics on http://%s/metrics\n", ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Serve() }()
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := b.ControlledShutdown(sctx); err != nil {
			logger.Warn("controlled shutdown incomplete", "err", err)
		}
		cancel()
	case err := <-errc:
		b.Close()
		return err
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped cleanly")
	return nil
}

func firstDir(list string) string {
	for _, d := range strings.Split(list, ",") {
		if d = strings.TrimSpace(d); d != "" {
			return d
		}
	}
	return ""
}

// ignoredEnv lists the STRATA_ variables collectSettings did not take as
// configs; serve logs them so a misspelt one is noticed.
var ignoredEnv []string

// notBrokerEnv are STRATA_ variables that belong to the operator commands.
var notBrokerEnv = map[string]bool{"STRATA_BOOTSTRAP_SERVER": true}

// collectSettings merges broker configs: file, then environment, then -c.
func collectSettings(file string, environ []string, flags []string) (map[string]string, error) {
	out := map[string]string{}
	ignoredEnv = nil
	if file != "" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--config-file: %v", err)
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		line := 0
		for sc.Scan() {
			line++
			s := strings.TrimSpace(sc.Text())
			if s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, "!") {
				continue
			}
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: expected name=value, got %q", file, line, s)
			}
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--config-file: %v", err)
		}
	}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "STRATA_") || notBrokerEnv[k] {
			continue
		}
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "STRATA_"), "_", "."))
		if !broker.IsBrokerSetting(name) {
			// Other tools use STRATA_ variables too (STRATA_MINIO_BIN in
			// tests, say): only known config names are broker configs.
			ignoredEnv = append(ignoredEnv, k)
			continue
		}
		out[name] = v
	}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("-c %q: expected name=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}
