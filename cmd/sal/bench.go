package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/supplier-accountability/sal/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench", stderr)
	events := fs.Int("events", 200_000, "how many signed events to generate and ingest")
	rate := fs.Int("query-rate", 1000, "scorecard requests per second to offer")
	queryFor := fs.Duration("query-for", 5*time.Second, "how long to offer queries")
	dir := fs.String("dir", "", "scratch directory, new or empty, kept after the run (default: a temporary one, removed after)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	periodic := fs.Bool("periodic-nats-sync", false, "ingest with JetStream's periodic fsync instead of an fsync per message, to see what the stricter default costs")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file, its samples labelled by phase (read one phase with go tool pprof -tagfocus phase=ingest)")
	heapProfile := fs.String("heapprofile", "", "write a heap profile to this file, taken when the live heap was at its highest in the run (read it with go tool pprof)")
	traceOut := fs.String("ingest-trace", "", "write a runtime execution trace of the ingest to this file (read it with go tool trace; go tool trace -pprof=sync or -pprof=syscall says where goroutines waited)")
	mapped := fs.Int("mapped-resident", 0, "MiB of the ledger file that may stay mapped in the process before the ledger releases them to the page cache (0: the ledger's default, 64; negative: never, as sal did before)")
	scale := fs.String("scale", "", "comma-separated event counts (e.g. 100000,1000000): run the whole bench once for each, each in its own process, and compare their memory against the first")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *scale != "" {
		var counts []int
		for _, f := range strings.Split(*scale, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				return fmt.Errorf("bench: -scale: %q is not a positive event count", f)
			}
			counts = append(counts, n)
		}
		var pass []string
		for _, name := range []string{"query-rate", "query-for", "periodic-nats-sync", "mapped-resident"} {
			if f := fs.Lookup(name); f != nil {
				pass = append(pass, "-"+name+"="+f.Value.String())
			}
		}
		return benchScale(ctx, counts, pass, *jsonOut, stdout, stderr)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var heap io.Writer
	if *heapProfile != "" {
		f, err := os.Create(*heapProfile)
		if err != nil {
			return fmt.Errorf("bench: heap profile: %w", err)
		}
		defer f.Close()
		heap = f
	}
	var ingestTrace io.Writer
	if *traceOut != "" {
		f, err := os.Create(*traceOut)
		if err != nil {
			return fmt.Errorf("bench: ingest trace: %w", err)
		}
		defer f.Close()
		ingestTrace = f
	}
	rep, err := bench.Run(ctx, bench.Options{HeapProfile: heap, IngestTrace: ingestTrace, Events: *events, QueryRate: *rate, QueryFor: *queryFor, Dir: *dir, Progress: stderr, PeriodicNATSSync: *periodic, MappedResident: int64(*mapped) << 20})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sal bench: %d events on %d cores\n\n", rep.Events, rep.Cores)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tunit\tratio\tof\ttarget\t\tnote")
	for _, f := range rep.Figures {
		ratio := ""
		if f.Of != "" {
			ratio = fmt.Sprintf("%.2f", f.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Value, f.Unit, ratio, f.Of, f.Target, verdict(f.Met), f.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// benchScale runs the bench once per event count, each in a process of
// its own (a process's peak RSS is all it ever held), then compares the
// memory figures of each run with the first's: flat memory means the
// ratios stay near 1 as the event count grows.
func benchScale(ctx context.Context, counts []int, pass []string, jsonOut string, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: -scale: %w", err)
	}
	tmp, err := os.MkdirTemp("", "sal-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	reps := make([]bench.Report, len(counts))
	for i, n := range counts {
		out := filepath.Join(tmp, fmt.Sprintf("%d.json", n))
		args := append([]string{"bench", "-events", strconv.Itoa(n), "-json", out}, pass...)
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("bench: -scale: the run of %d events: %w", n, err)
		}
		fmt.Fprintln(stdout)
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &reps[i]); err != nil {
			return fmt.Errorf("bench: -scale: report of %d events: %w", n, err)
		}
	}
	rows := memoryAgainstFirst(counts, reps)
	fmt.Fprintf(stdout, "sal bench -scale: memory against the run of %d events (target: ratio ≤ 1.5)\n\n", counts[0])
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "events\tfigure\tMiB\tratio\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.2f\t%s\n", r.Events, r.Name, r.MiB, r.Ratio, verdict(&r.Met))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(struct {
		Runs   []bench.Report `json:"runs"`
		Memory []memoryRow    `json:"memory"`
	}{reps, rows}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(jsonOut, append(b, '\n'), 0o644)
}

// memoryRow is one memory figure of one run, against the first run's:
// met when at most 1.5 times it.
type memoryRow struct {
	Events int     `json:"events"`
	Name   string  `json:"name"`
	MiB    float64 `json:"mib"`
	Ratio  float64 `json:"ratio"`
	Met    bool    `json:"met"`
}

// verdict says whether a figure with a target met it.
func verdict(met *bool) string {
	switch {
	case met == nil:
		return ""
	case *met:
		return "met"
	}
	return "missed"
}

// memoryAgainstFirst lists each run's memory figures with their ratio to
// the same figure of the first run.
func memoryAgainstFirst(counts []int, reps []bench.Report) []memoryRow {
	var rows []memoryRow
	for i, rep := range reps {
		for _, name := range []string{"peak RSS", "peak RSS without mapped files", "peak Go heap in use", "peak Go heap live"} {
			f, ok := rep.Get(name)
			base, ok0 := reps[0].Get(name)
			if !ok || !ok0 || base.Value == 0 {
				continue
			}
			ratio := f.Value / base.Value
			rows = append(rows, memoryRow{Events: counts[i], Name: name, MiB: f.Value, Ratio: ratio, Met: ratio <= 1.5})
		}
	}
	return rows
}
