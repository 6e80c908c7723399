package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"github.com/supplier-accountability/sal/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench", stderr)
	events := fs.Int("events", 200_000, "how many signed events to generate and ingest")
	rate := fs.Int("query-rate", 1000, "scorecard requests per second to offer")
	queryFor := fs.Duration("query-for", 5*time.Second, "how long to offer queries")
	dir := fs.String("dir", "", "scratch directory (default: a temporary one, removed after)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	periodic := fs.Bool("periodic-nats-sync", false, "ingest with JetStream's periodic fsync instead of an fsync per message, to see what the stricter default costs")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (read it with go tool pprof)")
	if err := parse(fs, args); err != nil {
		return err
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
	rep, err := bench.Run(ctx, bench.Options{Events: *events, QueryRate: *rate, QueryFor: *queryFor, Dir: *dir, Progress: stderr, PeriodicNATSSync: *periodic})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sal bench: %d events on %d cores\n\n", rep.Events, rep.Cores)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tunit\tratio\tof\tnote")
	for _, f := range rep.Figures {
		ratio := ""
		if f.Of != "" {
			ratio = fmt.Sprintf("%.2f", f.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\n", f.Name, f.Value, f.Unit, ratio, f.Of, f.Note)
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
