package main

import (
	"fmt"
	"io"
	"time"

	"github.com/supplier-accountability/sal/system"
)

const keysUsage = `usage: sal keys init [flags]

Makes the keys of a deployment whose services run apart (sal serve): the
registry root key (-root), and in -dir its public half, the checkpoint key,
each emitting service's key, and each one's authorization signed by the
root. Existing keys are kept; run it again after -rotate.

No running service needs the root's private key: keep -root outside -dir,
and offline once the keys are made.
`

func runKeys(args []string, stdout, stderr io.Writer) error {
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
