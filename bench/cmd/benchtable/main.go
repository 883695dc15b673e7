// Command benchtable turns `go test -bench` output from package bench into
// the Markdown tables in BENCHMARKS.md: the median of each metric over the
// -count runs, Strata next to kfake and raw, and the ratios the targets are
// stated in (produce ≥ 60% of raw and ≥ 1.25× kfake; consume ≥ 70% of raw).
//
//	go run ./bench/cmd/benchtable < bench/results/run.txt
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A benchmark line: name-GOMAXPROCS, iterations, then value/unit pairs.
var line = regexp.MustCompile(`^Benchmark(\S+?)-\d+\s+\d+\s+(.*)$`)

type key struct{ bench, target string }

func main() {
	vals := map[key]map[string][]float64{}
	var order []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name := m[1]
		i := strings.LastIndex(name, "/target=")
		if i < 0 {
			continue
		}
		k := key{name[:i], name[i+len("/target="):]}
		if !seen[k.bench] {
			seen[k.bench] = true
			order = append(order, k.bench)
		}
		if vals[k] == nil {
			vals[k] = map[string][]float64{}
		}
		f := strings.Fields(m[2])
		for j := 0; j+1 < len(f); j += 2 {
			v, err := strconv.ParseFloat(f[j], 64)
			if err == nil {
				vals[k][f[j+1]] = append(vals[k][f[j+1]], v)
			}
		}
	}
	med := func(k key, unit string) (float64, int, bool) {
		v := slices.Clone(vals[k][unit])
		if len(v) == 0 {
			return 0, 0, false
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2], len(v), true
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2, len(v), true
	}
	spread := func(k key, unit string) string {
		v := vals[k][unit]
		if len(v) < 2 {
			return ""
		}
		lo, hi := slices.Min(v), slices.Max(v)
		m, _, _ := med(k, unit)
		return fmt.Sprintf(" ±%.0f%%", 100*(hi-lo)/2/m)
	}
	num := func(k key, unit, format string) string {
		m, _, ok := med(k, unit)
		if !ok {
			return "–"
		}
		return fmt.Sprintf(format, m)
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}

	fmt.Println("### Produce (median of runs; MB/s of record values, 1 MB = 10^6 B)")
	fmt.Println()
	fmt.Println("| case | Strata MB/s | strata-proc MB/s | kfake MB/s | raw MB/s | Strata rec/s | Strata p50 / p99 ms | kfake p50 / p99 ms | raw p50 / p99 ms | Strata/raw (≥60%) | Strata/kfake (≥1.25×) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, b := range order {
		if !strings.HasPrefix(b, "Produce/") {
			continue
		}
		s, k, r, p := key{b, "strata"}, key{b, "kfake"}, key{b, "raw"}, key{b, "strata-proc"}
		sm, n, _ := med(s, "MB/s")
		km, _, _ := med(k, "MB/s")
		rm, _, _ := med(r, "MB/s")
		fmt.Printf("| %s | %s%s | %s | %s%s | %s%s | %s | %s / %s | %s / %s | %s / %s | %.0f%% %s | %.2f× %s |\n",
			strings.TrimPrefix(b, "Produce/"),
			num(s, "MB/s", "%.0f"), spread(s, "MB/s"), num(p, "MB/s", "%.0f"),
			num(k, "MB/s", "%.0f"), spread(k, "MB/s"), num(r, "MB/s", "%.0f"), spread(r, "MB/s"),
			num(s, "records/s", "%.0f"),
			num(s, "p50-ms", "%.0f"), num(s, "p99-ms", "%.0f"),
			num(k, "p50-ms", "%.0f"), num(k, "p99-ms", "%.0f"),
			num(r, "p50-ms", "%.0f"), num(r, "p99-ms", "%.0f"),
			100*sm/rm, yes(sm >= 0.6*rm), sm/km, yes(sm >= 1.25*km))
		_ = n
	}
	fmt.Println()
	fmt.Println("### Produce request round trip and batch size (median of runs)")
	fmt.Println()
	fmt.Println("| case | Strata req p50 / p99 ms | kfake req p50 / p99 ms | raw req p50 / p99 ms | kgo batch KiB (Strata) | raw batch KiB |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, b := range order {
		if !strings.HasPrefix(b, "Produce/") {
			continue
		}
		s, k, r := key{b, "strata"}, key{b, "kfake"}, key{b, "raw"}
		fmt.Printf("| %s | %s / %s | %s / %s | %s / %s | %s | %s |\n", strings.TrimPrefix(b, "Produce/"),
			num(s, "req-p50-ms", "%.1f"), num(s, "req-p99-ms", "%.1f"),
			num(k, "req-p50-ms", "%.1f"), num(k, "req-p99-ms", "%.1f"),
			num(r, "req-p50-ms", "%.1f"), num(r, "req-p99-ms", "%.1f"),
			num(s, "batch-KiB", "%.0f"), num(r, "batch-KiB", "%.0f"))
	}
	fmt.Println()
	fmt.Println("### Consume from the page cache (median of runs)")
	fmt.Println()
	fmt.Println("| case | Strata MB/s | strata-proc MB/s | kfake MB/s | raw MB/s | Strata rec/s | kfake rec/s | Strata/raw (≥70%) | Strata/kfake |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, b := range order {
		if !strings.HasPrefix(b, "Consume/") {
			continue
		}
		s, k, r, p := key{b, "strata"}, key{b, "kfake"}, key{b, "raw"}, key{b, "strata-proc"}
		sm, _, _ := med(s, "MB/s")
		km, _, _ := med(k, "MB/s")
		rm, _, _ := med(r, "MB/s")
		fmt.Printf("| %s | %s%s | %s | %s%s | %s%s | %s | %s | %.0f%% %s | %.2f× |\n", strings.TrimPrefix(b, "Consume/"),
			num(s, "MB/s", "%.0f"), spread(s, "MB/s"), num(p, "MB/s", "%.0f"),
			num(k, "MB/s", "%.0f"), spread(k, "MB/s"), num(r, "MB/s", "%.0f"), spread(r, "MB/s"),
			num(s, "records/s", "%.0f"), num(k, "records/s", "%.0f"),
			100*sm/rm, yes(sm >= 0.7*rm), sm/km)
	}
}
