package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/supplier-accountability/sal/system"
)

const keysUsage = `usage: sal keys init [flags]
       sal keys nats-nkey -out FILE

init makes the keys of a deployment whose services run apart (sal serve):
the registry root key (-root), and in -dir its public half, the checkpoint key,
each emitting service's key, and each one's authorization signed by the
root. Existing keys are kept; run it again after -rotate.

No running service needs the root's private key: keep -root outside -dir,
and offline once the keys are made.

nats-nkey makes a NATS user NKey: its seed goes to FILE (0600), for the
services' -nats-nkey flag; its public key, printed, goes in the NATS
server's configuration (authorization { users: [ { nkey: U... } ] }).
`

func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "nats-nkey" {
		return runNATSNKey(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	fs := flagSet("keys init", stderr)
	dir := stringFlag(fs, "dir", "SAL_KEYS", "./keys", "key directory the services read")
	root := stringFlag(fs, "root", "SAL_ROOT_KEY", "./root/registry-root.key", "the registry root's private key file (created if missing)")
	rotate := stringFlag(fs, "rotate", "SAL_ROTATE_KEYS", "", "comma-separated services whose key to replace (commitments, assessments, enforcement)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	rep, err := system.InitKeys(*dir, *root, splitList(*rotate), time.Now().UTC())
	if err != nil {
		return err
	}
	for _, f := range rep.Created {
		fmt.Fprintf(stdout, "created %s\n", f)
	}
	if len(rep.Created) == 0 {
		fmt.Fprintln(stdout, "every key was already there; nothing created")
	}
	fmt.Fprintf(stdout, "registry root public key: %s\n  (auditors verify with: sal verify -root-key %s ...)\n", rep.RootPublicKey, rep.RootPublicKey)
	return nil
}

func runNATSNKey(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("keys nats-nkey", stderr)
	out := fs.String("out", "", "file to write the NKey seed to (must not exist)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		return fmt.Errorf("nkey: %w", err)
	}
	seed, err := user.Seed()
	if err != nil {
		return fmt.Errorf("nkey: %w", err)
	}
	pub, err := user.PublicKey()
	if err != nil {
		return fmt.Errorf("nkey: %w", err)
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("nkey: %w", err)
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("nkey: write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("nkey: write %s: %w", *out, err)
	}
	fmt.Fprintf(stdout, "NKey seed written to %s (give it to the services: -nats-nkey %s)\npublic key for the NATS server's configuration:\n  authorization { users: [ { nkey: %s } ] }\n", *out, *out, pub)
	return nil
}
