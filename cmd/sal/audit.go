package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bundle"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/system"
)

// dataDir is a data directory opened for auditing: its ledger read-only,
// and the trust anchors from its keys.
type dataDir struct {
	l     *ledger.Ledger
	trust audit.Trust
	path  string
}

func openDataDir(dir string) (*dataDir, error) {
	rootKey, err := keys.Load(filepath.Join(dir, "keys", "registry-root.key"))
	if err != nil {
		return nil, fmt.Errorf("%w (is %s a sal data directory?)", err, dir)
	}
	cpKey, err := keys.Load(filepath.Join(dir, "keys", "checkpoint.key"))
	if err != nil {
		return nil, err
	}
	root := rootKey.Public().(ed25519.PublicKey)
	_, vkey, err := keys.NoteSigner(system.DefaultOrigin(root), cpKey)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "ledger.db")
	l, err := ledger.Open(path, root, ledger.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	return &dataDir{l: l, trust: audit.Trust{RootKey: root, CheckpointKey: vkey}, path: path}, nil
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("verify", stderr)
	data := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory to verify when no bundle or ledger file is named")
	rootHex := fs.String("root-key", "", "registry root public key (hex) to trust; default: the data directory's, or the bundle's own (with a warning)")
	cpKey := fs.String("checkpoint-key", "", "checkpoint verifier key (name+hash+key) to trust; default as for -root-key")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sal verify [flags] [bundle directory | ledger.db]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var src audit.Source
	var trust audit.Trust
	var what string
	switch target := fs.Arg(0); {
	case fs.NArg() > 1:
		fs.Usage()
		return errUsage
	case target == "":
		d, err := openDataDir(*data)
		if err != nil {
			return err
		}
		defer d.l.Close()
		src, trust, what = d.l, d.trust, "ledger "+d.path
	case isDir(target):
		b, err := bundle.Open(target)
		if err != nil {
			return err
		}
		src, what = b, "bundle "+target
		if err := b.CheckFiles(); err != nil {
			fmt.Fprintf(stdout, "note: %v (the manifest's file digests do not match; verifying the contents anyway)\n", err)
		}
		if *rootHex == "" || *cpKey == "" {
			fmt.Fprintln(stdout, "warning: trusting the keys named in the bundle itself; pass -root-key and -checkpoint-key obtained independently")
		}
		if trust.RootKey, err = b.RootKey(); err != nil {
			return err
		}
		trust.CheckpointKey = b.Manifest.CheckpointKey
	default:
		if *rootHex == "" || *cpKey == "" {
			return errors.New("verifying a bare ledger file needs -root-key and -checkpoint-key (or use -data with a data directory)")
		}
		trust.RootKey = nil
		k, err := hex.DecodeString(*rootHex)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("-root-key %q is not a hex Ed25519 public key", *rootHex)
		}
		l, err := ledger.Open(target, k, ledger.Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer l.Close()
		src, what = l, "ledger "+target
	}
	if *rootHex != "" {
		k, err := hex.DecodeString(*rootHex)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("-root-key %q is not a hex Ed25519 public key", *rootHex)
		}
		trust.RootKey = k
	}
	if *cpKey != "" {
		trust.CheckpointKey = *cpKey
	}
	start := time.Now()
	rep, err := audit.Verify(ctx, src, trust)
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "verified %s\n", what)
	fmt.Fprintf(stdout, "  entries:      %d\n  checkpoints:  %d\n", rep.Entries, rep.Checkpoints)
	if rep.OK() {
		fmt.Fprintf(stdout, "  suppliers:    %d\n  merkle root:  %s\n", rep.Suppliers, base64.StdEncoding.EncodeToString(rep.Root[:]))
	}
	fmt.Fprintf(stdout, "  time:         %s (%.0f events/s)\n", took.Round(time.Millisecond), float64(rep.Entries)/took.Seconds())
	if rep.Passes > 1 {
		fmt.Fprintf(stdout, "  readings:     %d (the scorecards were replayed a group of suppliers at a time)\n", rep.Passes)
	}
	if !rep.OK() {
		fmt.Fprintf(stdout, "FAIL: first bad sequence number %d: %s\n", rep.Failure.Seq, rep.Failure.Reason)
		return fmt.Errorf("verification failed at seq %d", rep.Failure.Seq)
	}
	fmt.Fprintln(stdout, "OK: hash chain intact; every signature valid for a key authorized at its entry; every checkpoint signed, its Merkle root and replayed scorecards matching")
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// sizeAt resolves "--at": a tree size, or an RFC 3339 time (the entries
// appended at or before it).
func sizeAt(ctx context.Context, l *ledger.Ledger, at string) (uint64, error) {
	head, _, err := l.Head()
	if err != nil {
		return 0, err
	}
	if at == "" {
		return head, nil
	}
	if n, err := strconv.ParseUint(at, 10, 64); err == nil {
		if n > head {
			return 0, fmt.Errorf("-at %d is beyond the log's %d entries", n, head)
		}
		return n, nil
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return 0, fmt.Errorf("-at %q is neither a tree size nor an RFC 3339 time (e.g. 2027-04-01T12:00:00Z)", at)
	}
	var size uint64
	err = l.Scan(ctx, func(e ledger.Entry) error {
		if !e.AppendedAt.After(t) {
			size = e.Seq
		}
		return nil
	})
	return size, err
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("replay", stderr)
	data := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory")
	at := fs.String("at", "", "tree size or RFC 3339 time to replay to (default: the head)")
	supplier := fs.String("supplier", "", "print only this supplier's scorecard")
	quiet := fs.Bool("q", false, "print only the comparison, not the scorecards")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, err := openDataDir(*data)
	if err != nil {
		return err
	}
	defer d.l.Close()
	size, err := sizeAt(ctx, d.l, *at)
	if err != nil {
		return err
	}
	cards, err := audit.Replay(ctx, d.l, size)
	if err != nil {
		return err
	}
	if !*quiet {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		out := map[string]json.RawMessage{}
		for id, b := range cards {
			if *supplier == "" || id == *supplier {
				out[id] = b
			}
		}
		if *supplier != "" && len(out) == 0 {
			return fmt.Errorf("supplier %s has no scorecard at size %d", *supplier, size)
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	digest, err := audit.Digest(cards, ledger.CardsFormat)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "replayed %d entries into %d scorecards; digest sha256:%x\n", size, len(cards), digest)
	head, _, _ := d.l.Head()
	if size == head {
		for _, id := range audit.SortedIDs(cards) {
			live, err := d.l.Scorecard(id)
			if err != nil || string(live) != string(cards[id]) {
				return fmt.Errorf("replay differs from the live projection for supplier %s", id)
			}
		}
		fmt.Fprintln(stderr, "matches the live projection byte for byte")
	}
	if signed, err := d.l.SignedCheckpoint(size); err == nil {
		c, err := ledger.ParseCheckpoint(ledger.CheckpointBody(signed))
		if err != nil {
			return err
		}
		older := ""
		if c.CardsFormat != ledger.CardsFormat {
			// Signed by an older sal: its cards hashed the older way.
			if digest, err = audit.Digest(cards, c.CardsFormat); err != nil {
				return err
			}
			older = fmt.Sprintf(" (cards format %d, as an older sal signed it: digest sha256:%x)", c.CardsFormat, digest)
		}
		if c.CardsDigest != digest {
			return fmt.Errorf("replay does not match the scorecards digest checkpoint %d committed to%s", size, older)
		}
		fmt.Fprintf(stderr, "matches the scorecards digest of the signed checkpoint at size %d%s\n", size, older)
	}
	return nil
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("export", stderr)
	data := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory")
	out := fs.String("out", "", "directory to write the bundle to (must not exist)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required: the directory to write the audit bundle to")
	}
	d, err := openDataDir(*data)
	if err != nil {
		return err
	}
	defer d.l.Close()
	head, _, err := d.l.Head()
	if err != nil {
		return err
	}
	cards, err := audit.Replay(ctx, d.l, head)
	if err != nil {
		return err
	}
	m, err := bundle.Write(ctx, *out, d.l, bundle.Keys{Root: d.trust.RootKey, CheckpointKey: d.trust.CheckpointKey, Origin: system.DefaultOrigin(d.trust.RootKey)}, cards)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote audit bundle %s: %d entries, %d files\n", *out, m.TreeSize, len(m.Files)+1)
	fmt.Fprintf(stdout, "verify it with:\n  sal verify -root-key %s -checkpoint-key %s %s\n", m.RootPublicKey, m.CheckpointKey, *out)
	return nil
}

func runProof(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "inclusion" && args[0] != "consistency") {
		fmt.Fprintln(stderr, "usage: sal proof inclusion -seq N [-size M] | sal proof consistency -from A [-to B]")
		return errUsage
	}
	kind := args[0]
	fs := flagSet("proof "+kind, stderr)
	data := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory")
	seq := fs.Uint64("seq", 0, "inclusion: the entry's sequence number")
	size := fs.Uint64("size", 0, "inclusion: the tree size (default: the head)")
	from := fs.Uint64("from", 0, "consistency: the older tree size")
	to := fs.Uint64("to", 0, "consistency: the newer tree size (default: the head)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	d, err := openDataDir(*data)
	if err != nil {
		return err
	}
	defer d.l.Close()
	head, _, err := d.l.Head()
	if err != nil {
		return err
	}
	out := map[string]any{}
	switch kind {
	case "inclusion":
		if *size == 0 {
			*size = head
		}
		p, err := d.l.InclusionProof(*seq, *size)
		if err != nil {
			return err
		}
		es, err := d.l.Entries(*seq, 1)
		if err != nil || len(es) == 0 {
			return fmt.Errorf("entry %d: %v", *seq, err)
		}
		root, err := d.l.TreeHead(*size)
		if err != nil {
			return err
		}
		leaf := ledger.LeafHash(es[0].Envelope)
		out = map[string]any{"seq": *seq, "leaf_index": *seq - 1, "tree_size": *size, "leaf_hash": b64(leaf[:]), "root_hash": b64(root[:]), "hashes": hashes(p)}
	case "consistency":
		if *to == 0 {
			*to = head
		}
		p, err := d.l.ConsistencyProof(*from, *to)
		if err != nil {
			return err
		}
		r1, err := d.l.TreeHead(*from)
		if err != nil {
			return err
		}
		r2, err := d.l.TreeHead(*to)
		if err != nil {
			return err
		}
		out = map[string]any{"from": *from, "to": *to, "from_root": b64(r1[:]), "to_root": b64(r2[:]), "hashes": hashes(p)}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func hashes[H ~[32]byte](hs []H) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = b64(h[:])
	}
	return out
}

func runAuditRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("audit-rules", stderr)
	data := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory")
	at := fs.String("at", "", "date (YYYY-MM-DD) at which nothing required may be missing (default: the date of the last event)")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, err := openDataDir(*data)
	if err != nil {
		return err
	}
	defer d.l.Close()
	cal, err := calendar.England()
	if err != nil {
		return err
	}
	findings, err := audit.Rules(ctx, d.l, rules.New(cal), *at)
	if err != nil {
		return err
	}
	for _, f := range findings {
		where := ""
		if f.Seq != 0 {
			where = fmt.Sprintf(" seq %d", f.Seq)
		}
		fmt.Fprintf(stdout, "%s%s %s (%s): %s\n", f.Kind, where, f.EventID, f.SupplierID, f.Detail)
	}
	if len(findings) > 0 {
		return fmt.Errorf("%d findings", len(findings))
	}
	fmt.Fprintln(stdout, "OK: every consequence in the log is one the rules required when it was recorded, and none is missing")
	return nil
}
